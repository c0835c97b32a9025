"""The guided enlargement of mattes: edges follow the photo, bands change nothing, the predictor and CLI use it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from modnet_matting.cli.main import main
from modnet_matting.inference import Predictor, TorchBackend
from modnet_matting.inference.preprocess import resize
from modnet_matting.inference.refine import _enlarge_rows, guided_upsample
from modnet_matting.io import read_image, save_image
from modnet_matting.model import MODNet
from modnet_matting.weights import WeightsConfig, save_weights


def disc_photo(height: int = 400, width: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """A noisy photo of a sharp disc and its exact matte."""
    yy, xx = np.mgrid[:height, :width]
    truth = ((yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (0.3 * height) ** 2).astype(np.float32)
    colours = np.where(truth[..., None] > 0, [200, 120, 90], [40, 60, 70]).astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 8, (height, width, 3))
    return np.clip(colours + noise, 0, 255).astype(np.uint8), truth


def edge_error(matte: np.ndarray, truth: np.ndarray) -> float:
    band = cv2.dilate(truth, np.ones((9, 9))) != cv2.erode(truth, np.ones((9, 9)))
    return float(np.abs(matte - truth)[band].mean())


@pytest.mark.parametrize("low_height", [100, 50])
def test_a_small_matte_enlarged_along_the_photo_has_a_sharp_edge(low_height: int) -> None:
    rgb, truth = disc_photo()
    low = resize(truth, low_height, low_height * 3 // 4)
    plain = np.clip(resize(low, *truth.shape), 0, 1)
    guided = guided_upsample(low, rgb)
    assert guided.shape == truth.shape and guided.dtype == np.float32 and 0 <= guided.min() and guided.max() <= 1
    assert edge_error(guided, truth) < 0.5 * edge_error(plain, truth)


def test_row_bands_give_the_same_matte_as_one_pass() -> None:
    rgb, truth = disc_photo(203, 150)
    low = resize(truth, 40, 30)
    whole = guided_upsample(low, rgb, band_rows=10_000)
    assert np.abs(guided_upsample(low, rgb, band_rows=17) - whole).max() < 1e-5
    coefficients = np.random.default_rng(1).random((13, 17)).astype(np.float32)
    bands = np.concatenate([_enlarge_rows(coefficients, 203, 150, top, min(203, top + 16))
                            for top in range(0, 203, 16)])
    assert np.abs(bands - cv2.resize(coefficients, (150, 203), interpolation=cv2.INTER_LINEAR)).max() < 1e-5


def test_the_predictor_refines_by_default_and_only_mattes_it_enlarges() -> None:
    torch.manual_seed(0)
    net = MODNet().eval()
    config = WeightsConfig()
    backend = TorchBackend(net, "cpu")
    plain, refined = Predictor(backend, config, refine=False), Predictor(backend, config)
    big = disc_photo(1024, 768)[0]  # the network sees 512x384: enlarged 2x
    assert np.abs(refined.predict(big) - plain.predict(big)).max() > 1e-3
    small = disc_photo(512, 384)[0]  # network size: nothing to enlarge
    assert np.array_equal(refined.predict(small), plain.predict(small))


def test_matte_command_refines_unless_told_not_to(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = save_weights(MODNet(), tmp_path / "w.safetensors", WeightsConfig())
    photo = tmp_path / "disc.png"
    save_image(photo, disc_photo(1024, 768)[0])
    outputs = {}
    for flags, name in ((["--no-refine"], "plain"), ([], "refined"), (["--refine"], "asked")):
        assert main(["matte", str(photo), "--weights", str(weights), "--backend", "torch", "--precision", "fp32",
                     "-o", str(tmp_path / name), *flags]) == 0
        outputs[name] = read_image(tmp_path / name / "disc.alpha.png")
    assert outputs["plain"].shape == outputs["refined"].shape
    assert not np.array_equal(outputs["plain"], outputs["refined"])
    assert np.array_equal(outputs["asked"], outputs["refined"])


@pytest.mark.parametrize("command", [["matte", "x.jpg"], ["video", "x.mp4"], ["webcam"], ["serve"]])
def test_every_command_that_loads_weights_can_turn_refinement_off(command: list[str], monkeypatch) -> None:
    """Refinement is on by default; --no-refine reaches load_model from matte, video, webcam and serve."""
    from modnet_matting import inference
    from modnet_matting.cli import serve
    from modnet_matting.cli.main import build_parser
    from modnet_matting.cli.options import load_predictor

    parser = build_parser()
    assert parser.parse_args(command).refine is True
    args = parser.parse_args([*command, "--no-refine"])
    if command[0] == "serve":
        assert serve._options(args)["refine"] is False
        return
    seen = {}
    monkeypatch.setattr(inference, "load_model", lambda *a, **kw: seen.update(kw) or "predictor")
    assert load_predictor(args) == "predictor" and seen["refine"] is False

"""``modnet export --format tflite``: LiteRT runs the file as PyTorch runs the network; layout and config inside;
fp16 and int8 calibrated on photos, measured, and run by ``--weights model.tflite``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modnet_matting.cli.main import main

pytest.importorskip("litert_torch", reason="litert-torch is not installed (pip install 'modnet-matting[tflite]')")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")

from modnet_matting.inference import load_model  # noqa: E402
from modnet_matting.inference.backends.litert import LiteRTBackend, read_tflite_metadata  # noqa: E402
from modnet_matting.weights import load_weights  # noqa: E402

FP32_MAX = 1e-4


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_litert_matches_pytorch_and_the_file_says_how_to_feed_it(layout: str, random_weights: Path,
                                                                  tmp_path: Path, capsys) -> None:
    out = tmp_path / f"m-{layout}.tflite"
    assert main(["export", "--format", "tflite", "--weights", str(random_weights), "--size", "96x128",
                 "--layout", layout, "-o", str(out)]) == 0
    assert "max |export - pytorch| at 128x96" in capsys.readouterr().err
    model, config = load_weights(random_weights)
    batch = np.random.default_rng(1).uniform(-1, 1, (2, 3, 128, 96)).astype(np.float32)
    with torch.no_grad():
        expected = model.eval().forward_matte(torch.from_numpy(batch)).numpy()
    assert float(np.abs(LiteRTBackend(out).run(batch) - expected).max()) <= FP32_MAX
    metadata = read_tflite_metadata(out)
    io = json.loads(metadata["modnet_io"])
    shape = [1, 128, 96, 3] if layout == "nhwc" else [1, 3, 128, 96]
    assert io["input"]["shape"] == shape and io["input"]["layout"] == layout and io["output"]["name"] == "alpha"
    assert json.loads(metadata["modnet_config"])["card"] == config.card


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real photos: the bundled portrait, flipped and cropped."""
    import cv2

    from modnet_matting.io import read_image

    rgb = read_image(Path(__file__).parents[1] / "src" / "modnet_matting" / "assets" / "grace_hopper.jpg")
    folder = tmp_path_factory.mktemp("photos")
    height, width = rgb.shape[:2]
    for index in range(6):
        crop = rgb[index * height // 12:, index * width // 16:]
        crop = crop[:, ::-1] if index % 2 else crop
        cv2.imwrite(str(folder / f"p{index}.jpg"), np.ascontiguousarray(crop[..., ::-1]))
    return folder


@pytest.mark.parametrize(("precision", "bound"), [("fp16", 0.01), ("int8", 0.05)])
def test_fp16_and_int8_are_measured_on_photos_and_run_as_given(precision: str, bound: float, photos: Path,
                                                              random_weights: Path, tmp_path: Path, capsys) -> None:
    fp32, out = tmp_path / "fp32.tflite", tmp_path / f"{precision}.tflite"
    assert main(["export", "--format", "tflite", "--weights", str(random_weights), "--size", "64x96",
                 "-o", str(fp32)]) == 0
    assert main(["export", "--format", "tflite", "--weights", str(random_weights), "--size", "64x96",
                 "--precision", precision, "--calibration", str(photos), "--holdout", "2", "-o", str(out)]) == 0
    assert f"{precision} vs fp32 on 2 held-out photos" in capsys.readouterr().err
    metadata = read_tflite_metadata(out)
    assert json.loads(metadata["modnet_io"])["precision"] == precision
    accuracy = json.loads(metadata["modnet_accuracy"])
    assert accuracy["images"] == 2 and 0 < accuracy["mad"] <= bound
    assert 0.2 * fp32.stat().st_size < out.stat().st_size < 0.6 * fp32.stat().st_size  # weights all inside
    lossy, exact = load_model(out), load_model(fp32)
    assert lossy.backend.precision == precision and lossy.backend.name == "litert"
    photo = np.asarray(np.random.default_rng(2).integers(0, 256, (90, 70, 3)), np.uint8)
    assert float(np.abs(lossy.predict(photo) - exact.predict(photo)).mean()) <= bound


def test_tflite_options_are_checked(random_weights: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", "--format", "tflite", "--weights", str(random_weights), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "NAME.tflite" in capsys.readouterr().err
    assert main(["export", "--format", "onnx", "--layout", "nchw", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "--layout is for --format tflite" in capsys.readouterr().err

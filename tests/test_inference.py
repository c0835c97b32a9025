"""The predictor: reference-size rule, input kinds, extreme sizes, backends."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_portrait
from modnet_matting import inference
from modnet_matting.export import export_onnx
from modnet_matting.inference import OnnxBackend, Predictor, TorchBackend, load_model, make_backend, network_size
from modnet_matting.io import read_image
from modnet_matting.model import MODNet
from modnet_matting.weights import Preprocess, WeightsConfig

#: A small reference size keeps every forward pass cheap; the rule is the same.
SMALL = WeightsConfig(preprocess=Preprocess(reference_size=64))


@pytest.fixture(scope="module")
def net() -> MODNet:
    torch.manual_seed(0)
    return MODNet().eval()


@pytest.fixture(scope="module")
def predictor(net: MODNet) -> Predictor:
    return Predictor(TorchBackend(net, "cpu"), SMALL)


class Recording:
    """A backend that remembers the batch shapes it was given."""

    name = "recording"

    def __init__(self, inner: inference.Backend) -> None:
        self.inner, self.shapes = inner, []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.shapes.append(batch.shape)
        return self.inner.run(batch)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1080, 1920), (512, 896)), ((400, 600), (384, 576)), ((567, 319), (544, 288)), ((300, 400), (512, 672))],
)
def test_reference_size_rule_matches_the_spec(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert network_size(*size, Preprocess()) == expected


def test_short_side_mode_always_scales() -> None:
    assert network_size(400, 600, Preprocess(resize_mode="short_side")) == (512, 768)


def test_panorama_network_input_is_bounded() -> None:
    height, width = network_size(512, 40_000, Preprocess(), max_pixels=2048 * 2048)
    assert height * width <= 2048 * 2048 and height % 32 == 0 and width % 32 == 0
    assert width / height == pytest.approx(40_000 / 512, rel=0.1)


@pytest.mark.parametrize("mode", ["reference", "short_side"])
@pytest.mark.parametrize("size", [(8, 3_000_000), (3_000_000, 8), (40, 600_000), (1, 10**9), (33, 4_200_000)])
def test_extreme_aspect_ratios_stay_under_the_pixel_cap(size: tuple[int, int], mode: str) -> None:
    """Rounding the short side back up to one divisor once made a 8x3,000,000 strip run at 32x1,254,112."""
    for cap in (2048 * 2048, 512 * 512, 32 * 32):
        height, width = network_size(*size, Preprocess(resize_mode=mode), max_pixels=cap)
        assert height * width <= cap and height % 32 == 0 and width % 32 == 0 and min(height, width) >= 32
        assert height <= width if size[0] < size[1] else height >= width


def test_a_long_strip_runs_at_the_capped_size(net: MODNet) -> None:
    """The longest strip allowed (io.MAX_IMAGE_SIDE); a longer one is refused before the network."""
    from modnet_matting.io import ImageTooLargeError

    recording = Recording(TorchBackend(net, "cpu"))
    predictor = Predictor(recording, WeightsConfig(), max_pixels=64 * 1024)
    alpha = predictor.predict(np.zeros((8, 30_000, 3), np.uint8))
    assert alpha.shape == (8, 30_000)
    with pytest.raises(ImageTooLargeError, match="30,000"):
        predictor.predict(np.zeros((8, 300_000, 3), np.uint8))
    (_, _, height, width), = recording.shapes
    assert height * width <= 64 * 1024


@pytest.mark.parametrize("size", [(64, 96), (100, 77), (33, 250), (160, 128)])
def test_alpha_has_the_input_size(predictor: Predictor, size: tuple[int, int]) -> None:
    alpha = predictor.predict(np.zeros((*size, 3), np.uint8))
    assert alpha.shape == size and alpha.dtype == np.float32
    assert 0 <= alpha.min() and alpha.max() <= 1


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (31, 17), (1, 300)])
def test_tiny_images(predictor: Predictor, size: tuple[int, int]) -> None:
    alpha = predictor.predict(np.full((*size, 3), 128, np.uint8))
    assert alpha.shape == size and np.isfinite(alpha).all()


def test_huge_image_runs_with_bounded_memory(net: MODNet) -> None:
    recording = Recording(TorchBackend(net, "cpu"))
    predictor = Predictor(recording, WeightsConfig())
    image = np.zeros((4000, 6000, 3), np.uint8)
    tracemalloc.start()
    try:
        alpha = predictor.predict(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert alpha.shape == (4000, 6000)
    assert recording.shapes == [(1, 3, 512, 768)]
    assert peak < 3 * alpha.nbytes  # the matte at full size, its resize and the normalised input; no more


def test_batch_equals_single_predictions(predictor: Predictor) -> None:
    images = [make_portrait(96, 80, seed)[0] for seed in range(3)] + [make_portrait(64, 64)[0]]
    batch = predictor.predict_batch(images)
    for image, alpha in zip(images, batch):
        np.testing.assert_allclose(alpha, predictor.predict(image), atol=1e-5)


def test_channel_orders_and_kinds_agree(predictor: Predictor) -> None:
    rgb = make_portrait(96, 80)[0]
    expected = predictor.predict(rgb)
    np.testing.assert_allclose(predictor.predict(rgb[:, :, ::-1].copy(), color="BGR"), expected, atol=1e-6)
    rgba = np.concatenate([rgb, np.zeros((96, 80, 1), np.uint8)], axis=2)
    np.testing.assert_allclose(predictor.predict(rgba), expected, atol=1e-6)  # alpha channel dropped
    np.testing.assert_allclose(predictor.predict(Image.fromarray(rgb)), expected, atol=1e-6)


def test_grey_input_equals_its_rgb_replica(predictor: Predictor) -> None:
    grey = make_portrait(96, 80)[0][:, :, 1].copy()
    np.testing.assert_allclose(predictor.predict(grey), predictor.predict(np.dstack([grey] * 3)), atol=1e-6)


def test_16_bit_png_equals_8_bit(predictor: Predictor, tmp_path: Path) -> None:
    rgb = make_portrait(96, 80)[0]
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1].astype(np.uint16) * 257)
    assert np.array_equal(read_image(path), rgb)
    np.testing.assert_allclose(predictor.predict(path), predictor.predict(rgb), atol=1e-6)


def test_exif_orientation_is_honoured(predictor: Predictor, tmp_path: Path) -> None:
    rgb = np.zeros((40, 80, 3), np.uint8)
    rgb[:, :40] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=100, exif=exif)
    upright = read_image(buffer.getvalue())
    assert upright.shape == (80, 40, 3)
    assert upright[:30].min() > 200 and upright[50:].max() < 50  # the white half is now on top
    assert predictor.predict(buffer.getvalue()).shape == (80, 40)


def test_onnx_backend_matches_torch(net: MODNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODNET_HOME", str(tmp_path))
    backend = make_backend(net, "onnx", device="cpu")
    assert isinstance(backend, OnnxBackend) and backend.name == "onnx"
    cached = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert make_backend(net, "onnx", device="cpu").model_path == cached[0]  # exported once, then reused
    assert cached[0].stat().st_mtime_ns == stamp

    image = make_portrait(96, 80)[0]
    torch_alpha = Predictor(TorchBackend(net, "cpu"), SMALL).predict(image)
    onnx_alpha = Predictor(backend, SMALL).predict(image)
    assert np.abs(onnx_alpha - torch_alpha).max() <= 1e-4


def test_load_model_takes_an_onnx_file_with_its_config(net: MODNet, tmp_path: Path) -> None:
    path = export_onnx(net, tmp_path / "m.onnx", config=SMALL)
    predictor = load_model(path, device="cpu", backend="onnx")
    assert predictor.backend.name == "onnx" and predictor.preprocess.reference_size == 64
    assert predictor.predict(np.zeros((50, 70, 3), np.uint8)).shape == (50, 70)


def test_bad_choices_are_value_errors(net: MODNet) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend(net, "tensorflow")
    with pytest.raises(ValueError, match="fp32 only"):
        make_backend(net, "onnx", precision="bf16")
    with pytest.raises(ValueError, match="fp16 is for GPUs"):
        TorchBackend(net, "cpu", "fp16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA was requested"):
            TorchBackend(net, "cuda")


def test_value_conventions_refuse_the_obvious_mismatch() -> None:
    """float is 0..1 and uint16 0..65535: 0..255 data in those dtypes is an error, not a silent clip."""
    from modnet_matting.io import to_rgb_uint8

    rgb = np.random.default_rng(0).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    assert np.array_equal(to_rgb_uint8(rgb.astype(np.float64) / 255.0), rgb)
    with pytest.raises(ValueError, match=r"float images are 0..1, but this one reaches \d+: divide 0..255 data by 255"):
        to_rgb_uint8(rgb.astype(np.float64))
    with pytest.raises(ValueError, match="pass 0..255 data as uint8"):
        to_rgb_uint8(rgb.astype(np.uint16))
    assert np.array_equal(to_rgb_uint8(rgb.astype(np.uint16) * 257), rgb)
    with pytest.raises(ValueError, match="NaN"):
        to_rgb_uint8(np.full((4, 4, 3), np.nan, np.float32))


def test_bytearray_memoryview_and_file_objects_are_encoded_images() -> None:
    from modnet_matting.io import ImageReadError, encode_png, to_rgb_uint8

    rgb = np.random.default_rng(1).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    data = encode_png(rgb)
    for source in (bytearray(data), memoryview(data), io.BytesIO(data)):
        assert np.array_equal(to_rgb_uint8(source), rgb)
    with pytest.raises(ImageReadError, match="cannot read image bytes"):
        to_rgb_uint8(b"not an image")

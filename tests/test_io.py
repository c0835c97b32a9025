"""The image reader's format allow-list and the marker on the files we write."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import png_header_only
from modnet_matting.io import ImageReadError, encode_image, is_marked_output, read_image, save_image

RGB = np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)


def _pil_bytes(fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(RGB).save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_read_exactly(fmt: str) -> None:
    options = {"lossless": True} if fmt == "WEBP" else {}
    assert np.array_equal(read_image(_pil_bytes(fmt, **options)), RGB)


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "MPO"])
def test_lossy_and_palette_formats_read(fmt: str) -> None:
    options = {"save_all": True, "append_images": [Image.fromarray(RGB[::-1])]} if fmt == "MPO" else {}
    assert read_image(_pil_bytes(fmt, **options)).shape == RGB.shape


@pytest.mark.parametrize("fmt", ["EPS", "PPM", "TGA", "ICO"])
def test_formats_outside_the_allow_list_are_refused_whatever_the_name(fmt: str, tmp_path: Path) -> None:
    """EPS would run Ghostscript where it is installed; the suffix must not smuggle it in."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(_pil_bytes(fmt))
    with pytest.raises(ImageReadError, match="not a supported image format"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_our_files_carry_the_marker_and_stay_standard(suffix: str, tmp_path: Path) -> None:
    path = save_image(tmp_path / f"out{suffix}", RGB)
    assert is_marked_output(path)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    with Image.open(path) as img:
        assert np.array_equal(np.asarray(img.convert("RGB")), decoded)  # both decoders agree
    if suffix == ".png":
        assert np.array_equal(decoded, RGB)


def test_a_16_bit_png_keeps_its_depth_with_the_marker(tmp_path: Path) -> None:
    alpha = np.random.default_rng(1).integers(0, 65536, (10, 12), dtype=np.uint16)
    path = tmp_path / "a.png"
    path.write_bytes(encode_image(alpha, ".png"))
    assert is_marked_output(path) and np.array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), alpha)


def test_other_peoples_files_are_not_marked(tmp_path: Path) -> None:
    for fmt, suffix in (("PNG", ".png"), ("JPEG", ".jpg")):
        path = tmp_path / f"photo{suffix}"
        path.write_bytes(_pil_bytes(fmt))
        assert not is_marked_output(path)
    assert not is_marked_output(tmp_path / "missing.png")


def test_a_write_error_names_the_target_not_our_temporary_file(tmp_path: Path, monkeypatch, capsys) -> None:
    """A read-only folder's error showed '.x.alpha.png.k2j3.part'; root ignores modes, so mkstemp is made to fail."""
    import errno
    import tempfile

    from modnet_matting.cli.main import main

    def refuse(prefix: str = "", suffix: str = "", dir: str | None = None) -> tuple[int, str]:  # noqa: A002
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}abc123{suffix}")

    source = tmp_path / "x.png"
    source.write_bytes(encode_image(RGB, ".png"))
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OSError, match=r"cannot write .*out\.png: Permission denied$"):
        save_image(tmp_path / "out.png", RGB)
    assert main(["matte", str(source), "-o", str(tmp_path / "out"), "--backend", "torch"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'out' / 'x.alpha.png'}: Permission denied" in err and ".part" not in err


@pytest.mark.parametrize("size, words", [((16000, 12000), "megapixels"), ((12000, 16000), "megapixels"),
                                         ((8, 3_000_000), "sides"), ((600_000, 40), "sides"),
                                         ((11000, 11000), "megapixels")])
def test_images_over_the_size_limits_are_refused_from_the_header(size, words, tmp_path: Path) -> None:
    from modnet_matting.io import ImageTooLargeError, read_image

    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(*size))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no Pillow DecompressionBombWarning on the way
        for source in (path, path.read_bytes()):
            with pytest.raises(ImageTooLargeError, match=words) as caught:
                read_image(source)
            assert "\n" not in str(caught.value)


def test_array_conventions_other_than_the_three_are_refused_not_clipped() -> None:
    from modnet_matting.io import to_rgb_uint8

    rgb = RGB.astype(np.float32) / 255.0
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        to_rgb_uint8(rgb * 2 - 1)  # the network's own -1..1 scaling
    assert np.array_equal(to_rgb_uint8(np.clip(rgb - 1e-4, 0, None) - 1e-4), to_rgb_uint8(rgb - 2e-4))  # rounding
    for dtype in (np.int8, np.bool_):
        with pytest.raises(ValueError, match="cannot hold"):
            to_rgb_uint8(RGB.astype(dtype))
    assert np.array_equal(to_rgb_uint8(RGB.astype(np.int64)), RGB)
    with pytest.raises(ValueError, match="0..255"):
        to_rgb_uint8(RGB.astype(np.int32) * 4)
    with pytest.raises(ValueError, match="sides"):
        to_rgb_uint8(np.zeros((2, 40_000), np.uint8))

"""Reading images into RGB uint8 arrays and writing outputs atomically.

Every entry point (library, CLI, server, evaluation) goes through these two
helpers so that EXIF orientation, greyscale, RGBA, 16-bit and palette images
are handled the same way everywhere.
"""

from __future__ import annotations

import io as _io
import json
import os
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import (  # noqa: F401 - the plugins register the allowed formats with Pillow
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

ImageInput = str | os.PathLike | np.ndarray | Image.Image | bytes | bytearray | memoryview | _io.BufferedIOBase

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
#: The only formats decoded, whatever the suffix: Pillow identifies some 40 more (EPS among them, which
#: runs Ghostscript), none of which a photo of a person needs. (Pillow's JPEG opener also reads MPO,
#: the JPEG of many phone cameras.)
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
SUPPORTED_FORMATS = "JPEG, PNG, WebP, BMP, TIFF or GIF"
#: Written into every PNG (a tEXt chunk) and JPEG (a comment) we encode, so that a later run can tell
#: its own outputs from a user's file of the same name and never overwrite the latter.
OUTPUT_MARKER = b"modnet-matting"


#: The largest image read, checked from the header before any pixel is decoded: 120 megapixels (a 108 MP
#: phone photo fits; decoding one takes 360 MB and matting it about 3 GB at most) and 30,000 px a side
#: (a strip of 8 x 3,000,000 px is 24 MP, but no PNG encoder writes its matte, and its work is unbounded).
MAX_IMAGE_PIXELS = 120_000_000
MAX_IMAGE_SIDE = 30_000


class ImageReadError(ValueError):
    """An input could not be decoded as an image."""


class ImageTooLargeError(ImageReadError):
    """An image over ``MAX_IMAGE_PIXELS`` or ``MAX_IMAGE_SIDE`` (refused before its pixels are decoded)."""


def check_image_size(width: int, height: int, what: str = "image") -> None:
    """Raise ``ImageTooLargeError`` (one line, with the limit) for an image over the size limits."""
    if max(width, height) > MAX_IMAGE_SIDE:
        raise ImageTooLargeError(f"{what} is {width}x{height} pixels; sides are limited to {MAX_IMAGE_SIDE:,} pixels")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(f"{what} is {width}x{height} = {width * height / 1e6:.1f} megapixels; the limit is "
                                 f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels")


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.float32)
        peak = 65535.0 if arr.max() > 255 or img.mode.startswith("I;16") else 255.0
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def open_image(source: str | os.PathLike | bytes) -> Image.Image:
    """Pillow's lazy image (header read, pixels not yet) for one of ``IMAGE_FORMATS`` only.

    Raises ``UnidentifiedImageError`` for anything else; callers use it to probe a size before decoding.
    """
    return Image.open(_io.BytesIO(source) if isinstance(source, bytes) else source, formats=IMAGE_FORMATS)


def read_image(source: str | os.PathLike | bytes, name: str | None = None) -> np.ndarray:
    """Decode a file path or encoded bytes to an RGB uint8 array, EXIF-rotated.

    ``name`` is how errors refer to bytes input (default "bytes"; the server says "upload"). The size
    limits (``check_image_size``) are checked from the header, before the pixels are decoded.
    """
    name = (name or "bytes") if isinstance(source, bytes) else str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies, in one line
            with open_image(source) as img:
                check_image_size(*img.size, what=f"image {name}")
                img.load()
                return _decode_with_depth(img, source)
    except ImageTooLargeError:
        raise
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"image {name} has more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels; the limit is "
                                 f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = (f"not a supported image format ({SUPPORTED_FORMATS})" if isinstance(exc, UnidentifiedImageError)
                  else str(exc))
        raise ImageReadError(f"cannot read image {name}: {reason}") from None


def _decode_with_depth(img: Image.Image, source: str | os.PathLike | bytes) -> np.ndarray:
    """PIL reduces 16-bit colour PNGs to 8 bits badly; let OpenCV decode those."""
    if img.format == "PNG" and img.mode in ("RGB", "RGBA") and img.info.get("bits", 8) == 16:
        import cv2

        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is not None and arr.dtype == np.uint16:  # a file's 16 bits are 0..65535 even when it is dark:
            return to_rgb_uint8(_uint16_to_uint8(arr), color="BGR")  # scale here, not in the array check
    return _pil_to_rgb(img)


def _uint16_to_uint8(arr: np.ndarray) -> np.ndarray:
    return (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)


def to_rgb_uint8(image: ImageInput, color: str = "RGB") -> np.ndarray:
    """Coerce any supported input to an ``H x W x 3`` RGB uint8 array.

    ``color`` states the channel order of numpy inputs ("RGB" or "BGR", as
    OpenCV gives). Greyscale is replicated, alpha is dropped. Value conventions:
    uint8 is 0..255, uint16 is 0..65535, float is 0..1 and other integers 0..255; a
    float image reaching above 1.5 or below 0 (-1..1 data), a uint16 one that never
    exceeds 255, and bool or int8 arrays are refused with a clear error (data in
    another convention would otherwise be silently clipped or darkened).
    ``bytearray``, ``memoryview`` and file objects (``BytesIO``) are read as encoded bytes.
    """
    if isinstance(image, (bytearray, memoryview)):
        image = bytes(image)
    elif hasattr(image, "read") and not isinstance(image, (np.ndarray, Image.Image)):
        image = image.read()
        if not isinstance(image, bytes):
            raise TypeError("a file object given as an image must be opened in binary mode")
    if isinstance(image, (str, os.PathLike, bytes)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"unsupported image type {type(image).__name__}")
    arr = image
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {arr.shape}")
    check_image_size(arr.shape[1], arr.shape[0], what="the image array")
    if arr.dtype == np.bool_ or arr.dtype == np.int8:
        raise ValueError(f"{arr.dtype} arrays cannot hold an image's 0..255 values: pass uint8 (0..255), uint16 "
                         "(0..65535) or float (0..1)")
    if arr.dtype == np.uint16:
        if 0 < (arr.max() if arr.size else 0) <= 255:
            raise ValueError("uint16 images span 0..65535, but this one never exceeds 255: "
                             "pass 0..255 data as uint8")
        arr = _uint16_to_uint8(arr)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError("float image holds NaN or infinite values")
        peak = float(arr.max()) if arr.size else 0.0
        low = float(arr.min()) if arr.size else 0.0
        if peak > 1.5:
            raise ValueError(f"float images are 0..1, but this one reaches {peak:.4g}: divide 0..255 data by 255 "
                             "or pass it as uint8")
        if low < -0.5 / 255:  # a rounding error below 0 is clipped; real negatives are another convention
            raise ValueError(f"float images are 0..1, but this one goes down to {low:.4g}: for data scaled to "
                             "-1..1 pass (x + 1) / 2")
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"{arr.dtype} images must hold 0..255, but this one spans {arr.min()}..{arr.max()}")
        arr = arr.astype(np.uint8)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    arr = arr[:, :, :3]
    if color.upper() == "BGR":
        arr = arr[:, :, ::-1]
    elif color.upper() != "RGB":
        raise ValueError(f"color must be 'RGB' or 'BGR', not {color!r}")
    return np.ascontiguousarray(arr)


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8/uint16 greyscale, RGB or RGBA array."""
    import cv2

    arr = array
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr))
    if not ok:
        raise ValueError("PNG encoding failed")
    return _mark(buf.tobytes())


def encode_image(array: np.ndarray, suffix: str = ".png", quality: int = 95) -> bytes:
    """Encode for the given suffix; JPEG has no alpha, so RGBA is refused there."""
    suffix = suffix.lower()
    if suffix == ".png":
        return encode_png(array)
    import cv2

    if array.ndim == 3 and array.shape[2] == 4 and suffix in (".jpg", ".jpeg"):
        raise ValueError("JPEG cannot hold an alpha channel; use .png or .webp")
    arr = array[:, :, ::-1] if array.ndim == 3 and array.shape[2] == 3 else array
    if array.ndim == 3 and array.shape[2] == 4:
        arr = array[:, :, [2, 1, 0, 3]]
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(arr), params)
    if not ok:
        raise ValueError(f"cannot encode {suffix}")
    return _mark(buf.tobytes())


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT = b"tEXt" + b"Software\x00" + OUTPUT_MARKER
_PNG_MARK = struct.pack(">I", len(_PNG_TEXT) - 4) + _PNG_TEXT + struct.pack(">I", zlib.crc32(_PNG_TEXT))
_JPEG_MARK = b"\xff\xfe" + struct.pack(">H", len(OUTPUT_MARKER) + 2) + OUTPUT_MARKER


def _mark(data: bytes) -> bytes:
    """Insert ``OUTPUT_MARKER`` as a PNG tEXt chunk after IHDR, or a JPEG comment after the JFIF header.

    Other formats are returned as they are (nothing we scan for outputs writes them).
    """
    if data.startswith(_PNG_SIGNATURE):
        end_of_ihdr = len(_PNG_SIGNATURE) + 8 + struct.unpack(">I", data[8:12])[0] + 4
        return data[:end_of_ihdr] + _PNG_MARK + data[end_of_ihdr:]
    if data.startswith(b"\xff\xd8"):
        at = 2 + (2 + struct.unpack(">H", data[4:6])[0] if data[2:4] == b"\xff\xe0" else 0)
        return data[:at] + _JPEG_MARK + data[at:]
    return data


#: What our other outputs carry: a video's container comment (``OUTPUT_MARKER``), and every model export's
#: config (ONNX metadata, TorchScript extra file, TFLite and Core ML metadata named ``modnet_config``; the
#: OpenVINO IR's rt_info holds the config, whose architecture is ``modnet-v2-se``).
_OTHER_MARKS = (OUTPUT_MARKER, b"modnet_config", b"modnet-v2-se")
#: Where those sit: a container's header or index, a protobuf's or zip's last fields.
_SCAN_HEAD, _SCAN_TAIL = 1 << 20, 8 << 20


def is_marked_output(path: str | os.PathLike) -> bool:
    """True if the file was written by this package: the one rule every writer follows before replacing a file.

    Images carry the marker in their first bytes; videos and model exports in their header or their
    last megabytes (at most 9 MB are read, whatever the file's size). An OpenVINO ``.bin`` counts as
    ours when its ``.xml`` is.
    """
    path = Path(path)
    if path.suffix.lower() == ".bin" and path.with_suffix(".xml").is_file():
        return is_marked_output(path.with_suffix(".xml"))
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SCAN_HEAD)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(len(head), size - _SCAN_TAIL))
            tail = handle.read(_SCAN_TAIL)
    except OSError:
        return False
    if head.startswith(_PNG_SIGNATURE) or head.startswith(b"\xff\xd8"):
        return _PNG_MARK in head[:256] or _JPEG_MARK in head[:256]
    return any(mark in head or mark in tail for mark in _OTHER_MARKS)


class OverwriteRefused(ValueError):
    """A target exists and this package did not write it."""


def check_replaceable(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse (``OverwriteRefused``, one line) to replace a file this package did not write, unless ``overwrite``."""
    path = Path(path)
    if path.is_file() and not overwrite and not is_marked_output(path):
        raise OverwriteRefused(f"refusing to overwrite {path}: modnet did not write it (--overwrite replaces it)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once at import (setting it is process-wide): new files get the usual 0666 & ~umask, folders 0777 & ~umask.
_FILE_MODE = 0o666 & ~_umask()
_FOLDER_MODE = 0o777 & ~_umask()


def scratch_folder(target: str | os.PathLike) -> Path:
    """A new hidden folder beside ``target``, to be filled and renamed into place as ``target``.

    ``mkdtemp`` makes it private (0700); it gets the permissions a normally created folder would
    have, or a web server running as another user could not read an exported page.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(scratch, _FOLDER_MODE)
    return scratch


def read_json_object(path: str | os.PathLike) -> dict:
    """A small JSON store (a cache's memory): its object, or {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temporary name in the target folder, then rename into place.

    The temporary file is created private (0600); it is given the permissions a
    normally created file would have before it replaces the target.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:  # name the file the user asked for, not our temporary one
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_image(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Encode by the file's suffix and write atomically."""
    return atomic_write(path, encode_image(array, Path(path).suffix or ".png"))


def alpha_to_uint(alpha: np.ndarray, bits: int = 8) -> np.ndarray:
    """Float alpha in [0, 1] -> uint8 or uint16 grey levels (rounded)."""
    peak = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    return (np.clip(alpha, 0.0, 1.0) * peak + 0.5).astype(dtype)

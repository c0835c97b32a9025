"""Turning an HTTP request into image bytes, and image bytes into pixels, within limits.

The body is read into memory with a byte limit (checked against
``Content-Length`` first, then while streaming), so an oversized upload is
refused before it is all received; multipart parts stay in memory too, so no
temporary file is ever created. The
header of each image is probed before it is decoded, so a small file that
claims huge dimensions (a decompression bomb) costs no memory.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from ..io import SUPPORTED_FORMATS, open_image, read_image
from .errors import ApiError

SUPPORTED = SUPPORTED_FORMATS
#: Smaller images are refused (422): there is no portrait to matte, and foreground
#: estimation cannot solve a single pixel.
MIN_SIDE = 8


@dataclass
class Upload:
    """The photo and the optional background image of one request, as encoded bytes."""

    photo: bytes
    background: bytes | None = None


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, or 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        message = f"upload is {_megabytes(int(declared))}; the limit is {_megabytes(limit)}"
        raise ApiError(413, "payload_too_large", message)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"upload exceeds the limit of {_megabytes(limit)}")
        chunks.append(chunk)
    return b"".join(chunks)


class _InMemoryParser(MultiPartParser):
    """Starlette's parser, but parts never roll over to a temporary file: the body is already bounded."""

    spool_max_size = 1 << 62


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _file_bytes(value: UploadFile | str | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):  # a plain form field, e.g. from a form without enctype
        return value.encode()
    return await value.read()


async def split_upload(request: Request, body: bytes) -> Upload:
    """Photo (+ background) from a multipart form (``file``, ``background``) or a raw image body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        if not body:
            raise ApiError(422, "no_image", "no image: send it as the request body or as multipart field 'file'")
        return Upload(body)
    parser = _InMemoryParser(request.headers, _once(body), max_files=2, max_fields=8)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, "bad_multipart", f"malformed multipart body: {exc.message}") from None
    try:
        photo = await _file_bytes(form.get("file"))
        background = await _file_bytes(form.get("background"))
    finally:
        await form.close()
    if not photo:
        raise ApiError(422, "no_image", "the multipart body needs a non-empty image in field 'file'")
    return Upload(photo, background or None)


def probe_size(data: bytes, what: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the image header; 415 if not an image, 413 if too many pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_image(data) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        raise ApiError(413, "too_many_pixels", f"{what} has too many pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ApiError(415, "not_an_image", f"{what} is not an image this server reads ({SUPPORTED})") from None
    if width * height > max_pixels:
        raise ApiError(
            413, "too_many_pixels", f"{what} is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
        )
    return width, height


def decode(data: bytes, what: str, max_pixels: int) -> np.ndarray:
    """RGB uint8 pixels of an upload, or an ``ApiError`` that says what is wrong with it."""
    width, height = probe_size(data, what, max_pixels)
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ApiError(422, "too_small", f"{what} is {width}x{height}; both sides must be at least {MIN_SIDE} pixels")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return read_image(data, name="upload")
    except Exception:  # noqa: BLE001 - any decoder failure on untrusted bytes is the upload's fault
        raise ApiError(422, "corrupt_image", f"{what} is damaged or truncated and cannot be decoded") from None

"""Turning an HTTP request into image bytes, and image bytes into pixels, within limits.

The body is read into memory with a byte limit (checked against
``Content-Length`` first, then while streaming), so an oversized upload is
refused before it is all received; multipart parts are cut from that buffer
as bytes, so no temporary file is ever created. The
header of each image is probed before it is decoded, so a small file that
claims huge dimensions (a decompression bomb) costs no memory.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.requests import ClientDisconnect, Request

from ..io import MAX_IMAGE_SIDE, SUPPORTED_FORMATS, open_image, read_image
from .admission import ClientGone
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
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "payload_too_large", f"upload exceeds the limit of {_megabytes(limit)}")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone("the client disconnected during the upload") from None
    return b"".join(chunks)


#: The form fields ``/v1/matte`` reads; any other part is refused rather than silently ignored.
FORM_FIELDS = ("file", "background")


@dataclass
class _Part:
    name: str = ""
    data: bytearray = field(default_factory=bytearray)
    header_name: bytes = b""
    header_value: bytes = b""


def parse_form(content_type: str, body: bytes) -> dict[str, bytes]:
    """Each form field's raw bytes, with or without a filename (a part without one is data too).

    The body is already in memory and bounded, so python-multipart's push parser runs over it
    once, with no temporary file. 400 for a malformed or truncated body, 422 for a field that
    is unknown or given twice.
    """
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise ApiError(400, "bad_multipart", "malformed multipart body: no boundary in Content-Type")
    parts: list[_Part] = []
    ended: list[bool] = []

    def header_end() -> None:
        part = parts[-1]
        if part.header_name.lower() == b"content-disposition":
            part.name = parse_options_header(part.header_value)[1].get(b"name", b"").decode("latin-1")
        part.header_name = part.header_value = b""

    def header_field(data: bytes, start: int, end: int) -> None:
        parts[-1].header_name += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        parts[-1].header_value += data[start:end]

    def part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data += data[start:end]

    callbacks = {
        "on_part_begin": lambda: parts.append(_Part()),
        "on_header_field": header_field,
        "on_header_value": header_value,
        "on_header_end": header_end,
        "on_part_data": part_data,
        "on_end": lambda: ended.append(True),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise ApiError(400, "bad_multipart", f"malformed multipart body: {exc}") from None
    if not ended:
        raise ApiError(400, "bad_multipart", "malformed multipart body: it ends before its closing boundary")
    form: dict[str, bytes] = {}
    for part in parts:
        if part.name not in FORM_FIELDS:
            raise ApiError(422, "unknown_field", f"unknown form field {part.name!r}: the fields are file, background")
        if part.name in form:
            raise ApiError(422, "duplicate_field", f"form field {part.name!r} is given more than once")
        form[part.name] = bytes(part.data)
    return form


def split_upload(content_type: str, body: bytes) -> Upload:
    """Photo (+ background) from a multipart form (``file``, ``background``) or a raw image body.

    Parsing a 20 MB form takes about 0.1 s, so the server calls this off the event loop.
    """
    if not content_type.lower().startswith("multipart/form-data"):
        if not body:
            raise ApiError(422, "no_image", "no image: send it as the request body or as multipart field 'file'")
        return Upload(body)
    form = parse_form(content_type, body)
    if not form.get("file"):
        raise ApiError(422, "no_image", "the multipart body needs a non-empty image in field 'file'")
    return Upload(form["file"], form.get("background") or None)


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
    if max(width, height) > MAX_IMAGE_SIDE:  # a thin strip: few pixels, but no encoder writes its answer
        raise ApiError(413, "side_too_long",
                       f"{what} is {width}x{height}; sides are limited to {MAX_IMAGE_SIDE} pixels")
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

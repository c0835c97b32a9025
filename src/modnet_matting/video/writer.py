"""Streaming, atomic video outputs: encoded files (with audio) and PNG sequences.

Every writer works on a temporary name beside the target and renames it into
place only when ``close()`` succeeds, so a crash, a Ctrl-C or a bad input never
leaves a half-written file under the requested name. Frames arrive upright;
encoded files are rotated back and get the input's rotation metadata, so
players show them exactly like the source.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

from ..io import OUTPUT_MARKER, atomic_write, encode_png
from .audio import AudioPassthrough
from .reader import rotation_steps
from .timing import StreamTiming

#: Container format for each suffix FFmpeg can write here.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}

#: Default encoder and pixel format per (suffix, kind); kind is "rgb", "gray" or "rgba".
DEFAULT_CODECS = {
    (".mov", "rgba"): ("prores_ks", "yuva444p10le"),
    (".webm", "rgba"): ("libvpx-vp9", "yuva420p"),
    (".webm", "rgb"): ("libvpx-vp9", "yuv420p"),
    (".webm", "gray"): ("libvpx-vp9", "yuv420p"),
}
FALLBACK_CODEC = ("libx264", "yuv420p")

#: Encoder options that make the defaults sensible (quality-based, not glacial). On two cores the
#: encoder competes with the network, so x264 runs "superfast": on 60 DAVIS frames at 720p, crf 18
#: (2026-12-08, the project's 2-core CPU) it took 12.8 ms of CPU a frame against veryfast's 22.6 and
#: fast's 37 (docs/performance.md), at the same PSNR (37.0 against 36.9 dB) and 14% more bytes;
#: "ultrafast" (7.8 ms) doubles the file.
CODEC_OPTIONS = {
    "libx264": {"crf": "18", "preset": "superfast"},
    "libvpx-vp9": {"crf": "30", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
    "prores_ks": {"profile": "4444", "vendor": "apl0"},
}

#: Pixel formats that hold alpha, best first, for ``--codec`` overrides.
ALPHA_FORMATS = ("yuva444p10le", "yuva444p", "yuva420p", "gbrap", "rgba", "bgra", "argb", "yuva444p16le")

class VideoWriteError(ValueError):
    """An output cannot be written as asked (unknown suffix, codec without alpha...)."""


def check_encoder(name: str) -> av.codec.Codec:
    """The named encoder, or a one-line error saying it is not in this FFmpeg build."""
    try:
        codec = av.codec.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):
        raise VideoWriteError(f"encoder {name!r} is not available in this PyAV/FFmpeg build") from None
    if codec.type != "video":
        raise VideoWriteError(f"{name!r} is not a video encoder")
    return codec


def choose_codec(suffix: str, kind: str, codec: str | None = None, even: bool = True) -> tuple[str, str]:
    """(encoder, pixel format) for a container suffix and frame kind.

    With ``codec`` given, its first pixel format that suits the kind is used:
    one with alpha for cut-outs (an error if it has none), 4:2:0 otherwise.
    """
    if codec is None:
        if kind == "rgba" and (suffix, kind) not in DEFAULT_CODECS:
            raise VideoWriteError(f"{suffix} cannot hold transparency here; use .mov (ProRes 4444), .webm (VP9) "
                                  "or a folder name for a PNG sequence")
        return DEFAULT_CODECS.get((suffix, kind), FALLBACK_CODEC)
    formats = [f.name for f in (check_encoder(codec).video_formats or [])]
    if kind == "rgba":
        for name in ALPHA_FORMATS:
            if name in formats:
                return codec, name
        raise VideoWriteError(f"encoder {codec!r} cannot store alpha (its formats: {', '.join(formats) or 'unknown'})")
    for name in ("yuv420p", "yuv444p", "yuv422p", "yuv420p10le", "gbrp"):
        if name in formats:
            return codec, name
    return codec, formats[0] if formats else "yuv420p"


def _needs_even(codec: str, pix_fmt: str) -> bool:
    """x264/x265 refuse odd sizes with subsampled chroma."""
    return codec.startswith(("libx26", "h264", "hevc")) and pix_fmt.startswith(("yuv420", "yuv422", "nv"))


def _temp_path(path: Path) -> Path:
    """A hidden, unique name beside ``path``; created by the muxer with normal permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part"


class _CommitOrAbort:
    """Context manager for outputs written under a temporary name.

    A clean exit commits (``close`` renames into place); an exception aborts
    (``abort`` removes the partial file), so no half-written output is left.
    """

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Output) -> _Output:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


_Output = TypeVar("_Output", bound=_CommitOrAbort)


class VideoFileWriter(_CommitOrAbort):
    """Encodes frames of one kind ("rgb", "gray" alpha or "rgba" cut-out) into a video file.

    The encoder opens on the first frame, when the size and rotation are
    known. Frames of another size (a resolution change mid-stream) are scaled
    to the first size. ``audio_from`` names a file whose audio track is copied.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        kind: str,
        timing: StreamTiming,
        codec: str | None = None,
        audio_from: str | None = None,
        codec_options: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in CONTAINERS:
            raise VideoWriteError(f"cannot write {self.path.name}: use one of {', '.join(sorted(CONTAINERS))}")
        if kind not in ("rgb", "gray", "rgba"):
            raise ValueError(f"unknown frame kind {kind!r}")
        self.kind, self.timing, self.audio_from = kind, timing, audio_from
        self.codec, self.pix_fmt = choose_codec(suffix, kind, codec)
        check_encoder(self.codec)
        self.options = {**CODEC_OPTIONS.get(self.codec, {}), **(codec_options or {})}
        self.format = CONTAINERS[suffix]
        self.problems: list[str] = []
        self.frames = 0
        self._tmp = _temp_path(self.path)
        self._container: av.container.OutputContainer | None = None
        self._audio: AudioPassthrough | None = None
        self._last_pts: int | None = None

    def _open(self, height: int, width: int, rotation: int) -> None:
        self._steps = rotation_steps(rotation)
        stored_h, stored_w = (width, height) if self._steps % 2 else (height, width)
        self._pad = (0, 0)
        if _needs_even(self.codec, self.pix_fmt) and (stored_h % 2 or stored_w % 2):
            self._pad = (stored_h % 2, stored_w % 2)
            self.problems.append(f"{self.codec} needs even sizes: {stored_w}x{stored_h} padded by one pixel")
        self._size = (height, width)
        container = av.open(str(self._tmp), mode="w", format=self.format)
        container.metadata["comment"] = OUTPUT_MARKER.decode()  # how a later run knows it may replace the file
        self._container = container
        try:
            stream = container.add_stream(self.codec, rate=self.timing.fps or 25)
            stream.width, stream.height = stored_w + self._pad[1], stored_h + self._pad[0]
            stream.pix_fmt = self.pix_fmt
            stream.time_base = self.timing.time_base
            stream.codec_context.time_base = self.timing.time_base
            stream.codec_context.options = dict(self.options)
            if rotation and self._steps:
                stream.set_display_rotation(rotation)
            self._stream = stream
            if self.audio_from:
                self._audio = AudioPassthrough(self.audio_from, container, self.timing)
        except (av.error.FFmpegError, ValueError) as exc:
            raise VideoWriteError(f"cannot set up {self.codec} for {self.path.name}: {exc}") from None

    def write(self, image: np.ndarray, pts: int, time: float = 0.0, rotation: int = 0) -> None:
        """Encode one upright frame (HxWx3 RGB, HxW grey or HxWx4 RGBA uint8) at ``pts``."""
        if self._container is None:
            self._open(image.shape[0], image.shape[1], rotation)
        if image.shape[:2] != self._size:
            import cv2

            image = cv2.resize(image, (self._size[1], self._size[0]), interpolation=cv2.INTER_AREA)
        if self._steps:
            image = np.rot90(image, -self._steps)
        if any(self._pad):
            pads = ((0, self._pad[0]), (0, self._pad[1])) + ((0, 0),) * (image.ndim - 2)
            image = np.pad(image, pads, mode="edge")
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        fmt = {"rgb": "rgb24", "gray": "gray", "rgba": "rgba"}[self.kind]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
        frame.pts = pts
        frame.time_base = self.timing.time_base
        try:
            packets = self._stream.encode(frame)
        except av.error.FFmpegError as exc:
            raise VideoWriteError(f"{self.codec} failed on frame {self.frames} of {self.path.name}: {exc}") from None
        self._mux(packets)
        if self._audio is not None:
            self._audio.write_until(self._container, float(pts * self.timing.time_base))
        self.frames += 1

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._container.mux(packet)

    def close(self) -> Path:
        """Finish encoding and move the file into place (an error if no frame was written)."""
        if self._container is None:
            self.abort()
            raise VideoWriteError(f"no frames to write to {self.path.name}")
        try:
            self._mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.write_until(self._container, None)
                self.problems += self._audio.problems
                self._audio.close()
            self._container.close()
        except BaseException:
            self.abort()
            raise
        self._container = None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; the target name is left untouched."""
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self._container is not None:
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError):
                pass
            self._container = None
        self._tmp.unlink(missing_ok=True)


def _ours(path: Path) -> bool:
    """Files a previous PNG sequence run leaves (safe to replace)."""
    return path.name == "timestamps.csv" or (path.name.startswith("frame_") and path.suffix == ".png")


class PngSequenceWriter(_CommitOrAbort):
    """RGBA (or any) frames as numbered PNGs in a folder, plus ``timestamps.csv``.

    PNG has no clock, so each frame's presentation time is listed in the CSV.
    Frames are written into a temporary folder that replaces the target folder
    when ``close()`` succeeds. Audio is not carried (a warning says so).
    """

    def __init__(self, path: str | os.PathLike[str], has_audio: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise VideoWriteError(f"{self.path} exists and is not a folder")
        if self.path.is_dir() and any(not _ours(p) for p in self.path.iterdir()):
            raise VideoWriteError(f"{self.path} holds other files; give a new or empty folder for the PNG sequence")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _temp_path(self.path)
        self._tmp.mkdir()
        self.frames = 0
        self.problems = ["PNG sequences carry no audio; the audio track was not written"] if has_audio else []
        self._times: list[str] = ["frame,time_s"]

    def write(self, image: np.ndarray, pts: int, time: float = 0.0, rotation: int = 0) -> None:
        """Save one upright frame; ``time`` (seconds) goes into timestamps.csv."""
        name = f"frame_{self.frames:06d}.png"
        (self._tmp / name).write_bytes(encode_png(image))
        self._times.append(f"{name},{time:.6f}")
        self.frames += 1

    def close(self) -> Path:
        if not self.frames:
            self.abort()
            raise VideoWriteError(f"no frames to write to {self.path.name}")
        atomic_write(self._tmp / "timestamps.csv", ("\n".join(self._times) + "\n").encode())
        old = None
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
            os.replace(self.path, old)
        os.replace(self._tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

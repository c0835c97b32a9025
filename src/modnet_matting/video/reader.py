"""Streaming video decoding with PyAV: one frame in memory at a time.

Frames come out upright (the container's rotation metadata applied) as RGB
uint8 with their presentation time, so the network sees people the right
way up; writers rotate back and copy the metadata. Damage in the middle of a
file is survived: undecodable packets are skipped and a broken tail ends the
stream early, and both are reported in ``VideoReader.problems``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

#: Give up on a stream after this many undecodable packets in a row.
MAX_CONSECUTIVE_ERRORS = 25

#: File suffixes treated as video (e.g. to tell a background video from a picture).
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".wmv", ".flv"}


class VideoReadError(ValueError):
    """A video cannot be opened or has nothing to decode (one-line message)."""


@dataclass
class Frame:
    """One decoded frame, upright.

    ``pts`` is in ``time_base`` ticks, shifted so a trimmed clip starts at 0;
    ``time`` is the same instant in seconds. ``rotation`` is the container's
    display rotation (degrees counter-clockwise, a multiple of 90) that was
    undone to make ``rgb`` upright.
    """

    rgb: np.ndarray
    pts: int
    time: float
    index: int
    rotation: int = 0


@dataclass
class VideoInfo:
    """What the container says about the video (counts and durations are estimates)."""

    path: str
    width: int
    height: int
    fps: Fraction | None
    time_base: Fraction
    frames: int | None
    duration: float | None
    codec: str
    audio_codec: str | None


def rotation_steps(rotation: float) -> int:
    """Quarter turns (counter-clockwise) for a display rotation; others are ignored."""
    steps = round(rotation / 90.0)
    return steps % 4 if abs(rotation - steps * 90.0) < 1.0 else 0


def _check_path(path: str | os.PathLike[str]) -> str:
    text = str(path)
    if "://" in text or text.startswith(("rtsp:", "rtmp:")):
        return text
    if not Path(text).exists():
        raise FileNotFoundError(f"no such file: {text}")
    if Path(text).is_dir():
        raise VideoReadError(f"{text} is a folder, not a video file")
    return text


def open_input(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open a container, turning FFmpeg's errors into one-line ``VideoReadError``s."""
    text = _check_path(path)
    try:
        return av.open(text, mode="r")
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise VideoReadError(f"cannot read video {text}: {reason} (not a video, or truncated?)") from None


#: A timestamp step longer than this many frame intervals means frames were lost (a variable frame rate
#: stretches an interval to two or three at most).
GAP_FRAMES = 5


class VideoReader:
    """Iterate the frames of a video file or URL, optionally trimmed to [start, end) seconds.

    Use as a context manager or call ``close()``. Iterating twice decodes again.
    """

    def __init__(
        self, path: str | os.PathLike[str], start: float | None = None, end: float | None = None, upright: bool = True
    ) -> None:
        if start is not None and start < 0:
            raise VideoReadError(f"--start must be >= 0, got {start}")
        if start is not None and end is not None and end <= start:
            raise VideoReadError(f"--end ({end}) must be after --start ({start})")
        self.path = str(path)
        self.start, self.end, self.upright = start, end, upright
        self.container = open_input(path)
        if not self.container.streams.video:
            self.container.close()
            raise VideoReadError(f"{self.path} has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.problems: list[str] = []
        self.info = self._info()
        # Source time that is output time 0 and what --start/--end count from: where the video starts.
        # Trimming moves output time 0 to the first kept frame.
        self.origin = self._origin_seconds()
        self.offset_pts = round(self.origin / self.info.time_base)

    def _info(self) -> VideoInfo:
        stream, ctx = self.stream, self.stream.codec_context
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif self.container.duration is not None:
            duration = self.container.duration / av.time_base
            if self.container.format.name.startswith("matroska") and self.container.start_time:
                duration -= self.container.start_time / av.time_base  # Matroska reports where it ends
        frames = stream.frames or (round(duration * fps) if duration and fps else None)
        if fps and duration and (self.start or self.end):  # trimmed: the span's frames
            span = min(duration, self.end or duration) - (self.start or 0.0)
            frames = max(0, round(span * fps))
        audio = self.container.streams.audio
        return VideoInfo(
            path=self.path, width=ctx.width, height=ctx.height, fps=Fraction(fps) if fps else None,
            time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000),
            frames=frames or None, duration=duration, codec=ctx.name,
            audio_codec=audio[0].codec_context.name if audio else None,
        )

    def _origin_seconds(self) -> float:
        """Where the video starts (MPEG-TS recordings often at 1.4 s): output time 0 and where --start counts from."""
        stream = self.stream
        if stream.start_time is None or stream.time_base is None:
            return 0.0
        return float(stream.start_time * stream.time_base)

    @property
    def offset_seconds(self) -> float:
        """Source time that becomes output time 0: the file's start, or the first kept frame when trimming."""
        return float(self.offset_pts * self.info.time_base)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def _reopen(self) -> None:
        self.container.close()
        self.container = open_input(self.path)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Decoded frames from near ``--start`` on; from the beginning where seeking does not land before it.

        Seeking MPEG-TS by time can land past the target or nowhere at all; decoding from the
        start is slower but always right, so a seek is trusted only when its first frame is at
        or before ``--start``.
        """
        if self.start:
            try:
                self.container.seek(int((self.origin + self.start) / self.info.time_base), stream=self.stream,
                                    backward=True)
                frames = self._decode()
                first = next(frames, None)
                if first is not None and first.pts is not None and self._time(first.pts) <= self.start + 1e-6:
                    yield first
                    yield from frames
                    return
            except av.error.FFmpegError:
                pass
            self._reopen()
        yield from self._decode()

    def _time(self, pts: int) -> float:
        """Seconds from the start of the video."""
        return float(pts * self.info.time_base) - self.origin

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order, surviving damaged packets and tails."""
        packets = self.container.demux(self.stream)
        failures = 0
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                self.problems.append(f"the file ends in damaged data ({_reason(exc)}); stopped there")
                return
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                failures += 1
                if failures == 1 or failures == MAX_CONSECUTIVE_ERRORS:
                    self.problems.append(f"skipped undecodable data ({_reason(exc)})")
                if failures >= MAX_CONSECUTIVE_ERRORS:
                    self.problems.append(f"gave up after {failures} undecodable packets in a row")
                    return
                continue
            failures = 0
            yield from frames

    def __iter__(self) -> Iterator[Frame]:
        time_base = self.info.time_base
        step = 1 / self.info.fps if self.info.fps else Fraction(1, 25)
        ticks = step / time_base  # one frame interval
        index, last_pts, first = 0, None, True
        missing, first_gap = 0, None
        for av_frame in self._decoded():
            pts = av_frame.pts
            if pts is None:  # raw streams without timestamps: synthesise from the frame rate
                pts = self.offset_pts if last_pts is None else last_pts + max(1, round(ticks))
            elif last_pts is not None and pts <= last_pts:
                pts = last_pts + 1  # duplicate/backwards timestamps would break encoders
            time = self._time(pts)
            if self.start is not None and time < self.start - 1e-6:
                continue
            if self.end is not None and time >= self.end - 1e-6:
                break
            if first and self.start:
                self.offset_pts = pts
            if last_pts is not None and pts - last_pts > GAP_FRAMES * ticks:  # frames lost in between
                missing += round((pts - last_pts) / ticks) - 1
                first_gap = self._time(last_pts) + float(step) if first_gap is None else first_gap
            first = False
            last_pts = pts
            yield self._frame(av_frame, pts, index)
            index += 1
        self._check_count(index, missing, first_gap)

    def _check_count(self, decoded: int, missing: int, first_gap: float | None) -> None:
        """Note frames lost inside the stream (timestamp gaps) or at its end (a truncated file)."""
        if missing:
            self.problems.append(f"about {missing} frame(s) are missing from the stream (the first at "
                                 f"{first_gap:.2f} s): the file is damaged")
            return
        expected = self.info.frames
        if self.end is None and not self.problems and expected and decoded < 0.97 * expected - 1:
            self.problems.append(f"only {decoded} of about {expected} frames could be decoded (truncated file?)")

    def _frame(self, av_frame: av.VideoFrame, pts: int, index: int) -> Frame:
        rotation = int(round(getattr(av_frame, "rotation", 0) or 0))
        rgb = av_frame.to_ndarray(format="rgb24")
        steps = rotation_steps(rotation)
        if self.upright and steps:
            rgb = np.ascontiguousarray(np.rot90(rgb, steps))
        shifted = pts - self.offset_pts
        return Frame(rgb, shifted, float(shifted * self.info.time_base), index, rotation if self.upright else 0)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


@dataclass
class RGBAFrame:
    """A frame decoded with its alpha channel (for checking cut-out videos)."""

    rgba: np.ndarray
    time: float


def read_rgba(path: str | os.PathLike[str]) -> Iterator[RGBAFrame]:
    """Decode a video keeping its alpha channel, one frame at a time.

    FFmpeg's built-in VP9 decoder drops the alpha that WebM stores beside each
    frame; libvpx keeps it, so VP9 streams are decoded with libvpx here.
    """
    container = open_input(path)
    try:
        if not container.streams.video:
            raise VideoReadError(f"{path} has no video stream")
        stream = container.streams.video[0]
        decoder = None
        if stream.codec_context.name == "vp9":
            decoder = av.codec.CodecContext.create("libvpx-vp9", "r")
        for packet in container.demux(stream):
            frames = decoder.decode(packet if packet.size else None) if decoder else packet.decode()
            for frame in frames:
                time = float(packet.time_base * frame.pts) if frame.pts is not None else 0.0
                yield RGBAFrame(frame.to_ndarray(format="rgba"), time)
    finally:
        container.close()

"""The file-to-file video pipeline: decode | matte + OFD | compose + encode, overlapped.

Three stages run concurrently, joined by small bounded queues: a thread
decodes, a thread runs the network (batching whatever frames are already
waiting) and OFD, and the calling thread composes and encodes while showing
progress. Memory is bounded by the queue sizes, whatever the clip's length.
PyAV and PyTorch release the GIL in their heavy calls, so the stages really
overlap and the accelerator is not left waiting on the decoder.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..compose import Background, composite, parse_background
from ..inference import Predictor
from ..io import alpha_to_uint
from .matter import VideoMatter
from .ofd import DEFAULT_THRESHOLD
from .reader import VIDEO_SUFFIXES, Frame, VideoReader, VideoReadError
from .timing import StreamTiming
from .writer import PngSequenceWriter, VideoFileWriter, VideoWriteError

KINDS = ("alpha", "composite", "cutout")
_END = object()


@dataclass(frozen=True)
class OutputSpec:
    """One requested output: "alpha" (grey matte video), "composite" or "cutout".

    A cut-out path without a suffix is a folder of RGBA PNGs; ``.mov`` is
    ProRes 4444 and ``.webm`` VP9, both with alpha.
    """

    kind: str
    path: Path

    @property
    def png_sequence(self) -> bool:
        return self.kind == "cutout" and self.path.suffix == ""


@dataclass
class VideoResult:
    """What a run produced, how long each stage was busy, and what went wrong on the way."""

    outputs: list[Path]
    frames: int
    wall_s: float
    stage_s: dict[str, float]
    problems: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


class VideoBackground:
    """A second video behind the person, streamed frame by frame and looped when it ends."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._reader = VideoReader(self.path)
        self._frames = iter(self._reader)
        self._used = False

    def _next_rgb(self) -> np.ndarray:
        for _ in range(2):
            frame = next(self._frames, None)
            if frame is not None:
                self._used = True
                return frame.rgb
            if not self._used:
                break
            self._reader.close()
            self._reader = VideoReader(self.path)
            self._frames = iter(self._reader)
        raise VideoReadError(f"background video {self.path} has no decodable frames")

    def render(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        from ..compose import cover

        return cover(self._next_rgb(), rgb.shape[0], rgb.shape[1])

    def close(self) -> None:
        self._reader.close()


class CachedBackground:
    """Colours and pictures are the same every frame: render once per frame size."""

    def __init__(self, background: Background | VideoBackground) -> None:
        self.background = background
        self.static = isinstance(background, Background) and background.kind in ("color", "image")
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def render(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        if not self.static:
            return self.background.render(rgb, alpha)
        key = rgb.shape[:2]
        if key not in self._cache:
            self._cache = {key: self.background.render(rgb, alpha)}
        return self._cache[key]

    def close(self) -> None:
        close = getattr(self.background, "close", None)
        if close is not None:
            close()


def load_background(spec: str | os.PathLike[str] | None) -> CachedBackground:
    """A video file becomes a ``VideoBackground``; anything else goes to ``compose.parse_background``."""
    if spec is None:
        return CachedBackground(Background("color"))
    if Path(str(spec)).suffix.lower() in VIDEO_SUFFIXES and Path(str(spec)).is_file():
        return CachedBackground(VideoBackground(spec))
    return CachedBackground(parse_background(spec))


class _Stage(threading.Thread):
    """A pipeline thread that records its busy time and hands its exception to the caller."""

    def __init__(self, name: str, body: Callable[[_Stage], None], stop: threading.Event) -> None:
        super().__init__(name=f"modnet-{name}", daemon=True)
        self.body, self.stop, self.busy, self.error = body, stop, 0.0, None

    def run(self) -> None:
        try:
            self.body(self)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            self.error = exc
            self.stop.set()

    def put(self, q: queue.Queue, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


def _decode_stage(reader: VideoReader, out_q: queue.Queue) -> Callable[[_Stage], None]:
    def body(stage: _Stage) -> None:
        frames = iter(reader)
        while True:
            began = time.perf_counter()
            frame = next(frames, None)
            stage.busy += time.perf_counter() - began
            if frame is None or not stage.put(out_q, frame):
                break
        stage.put(out_q, _END)

    return body


def _infer_stage(matter: VideoMatter, in_q: queue.Queue, out_q: queue.Queue, batch: int) -> Callable[[_Stage], None]:
    def body(stage: _Stage) -> None:
        finished = False
        while not finished:
            frames: list[Frame] = []
            item = _get(in_q, stage.stop)
            while item is not _END:
                frames.append(item)
                if len(frames) >= batch:
                    break
                try:
                    item = in_q.get_nowait()
                except queue.Empty:
                    break
            finished = item is _END
            if frames:
                began = time.perf_counter()
                results = matter.process_batch([f.rgb for f in frames], frames)
                stage.busy += time.perf_counter() - began
                for result in results:
                    stage.put(out_q, result)
        last = matter.flush()
        if last is not None:
            stage.put(out_q, last)
        stage.put(out_q, _END)

    return body


def _open_writers(specs: Iterable[OutputSpec], reader: VideoReader, timing: StreamTiming, codec: str | None,
                  codec_options: dict[str, str] | None) -> list[Any]:
    audio = reader.path if reader.info.audio_codec else None
    writers: list[Any] = []
    try:
        for spec in specs:
            if spec.png_sequence:
                writers.append(PngSequenceWriter(spec.path, has_audio=audio is not None))
            else:
                kind = {"alpha": "gray", "composite": "rgb", "cutout": "rgba"}[spec.kind]
                use_codec = codec if spec.kind != "cutout" else None
                writers.append(VideoFileWriter(spec.path, kind, timing, use_codec, audio, codec_options))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return writers


def render_output(kind: str, rgb: np.ndarray, alpha: np.ndarray, background: CachedBackground | None) -> np.ndarray:
    """The picture one output wants for a frame: grey matte, RGBA cut-out or composite."""
    if kind == "alpha":
        return alpha_to_uint(alpha)
    if kind == "cutout":
        return np.dstack([rgb, alpha_to_uint(alpha)])
    assert background is not None
    return composite(rgb, alpha, background.render(rgb, alpha), decontaminate=False)


def process_video(
    source: str | os.PathLike[str],
    outputs: Iterable[OutputSpec],
    predictor: Predictor,
    background: str | os.PathLike[str] | None = None,
    start: float | None = None,
    end: float | None = None,
    ofd: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
    codec: str | None = None,
    codec_options: dict[str, str] | None = None,
    progress: bool = True,
    batch_size: int = 4,
    queue_size: int = 8,
) -> VideoResult:
    """Matte a video file into the requested outputs; see the module docstring.

    Raises ``VideoReadError`` when nothing can be decoded; a file damaged part
    way gives the frames before the damage and a note in ``problems``. Outputs
    appear only when complete.
    """
    specs = list(outputs)
    if not specs:
        raise ValueError("no outputs requested")
    matter = VideoMatter(predictor, ofd=ofd, threshold=threshold)
    wall = time.perf_counter()
    with VideoReader(source, start, end) as reader:
        bg = load_background(background) if any(s.kind == "composite" for s in specs) else None
        try:
            timing = StreamTiming(reader.info.time_base, reader.info.fps, offset=reader.start or 0.0, end=reader.end)
            writers = _open_writers(specs, reader, timing, codec, codec_options)
            frames, stages, compose_s, encode_s = _run(reader, matter, specs, writers, timing, bg, progress,
                                                       batch_size, queue_size)
        finally:
            if bg is not None:
                bg.close()
        problems = list(reader.problems)
    window = "" if start is None and end is None else f" between {start or 0:g} s and {end or float('inf'):g} s"
    began = time.perf_counter()
    paths = _close_all(writers, frames, source, window)  # flushing the encoders is encode time too
    encode_s += time.perf_counter() - began
    for writer in writers:
        problems += [f"{writer.path.name}: {p}" for p in writer.problems]
    stage_s = {"decode": stages[0].busy, "inference": stages[1].busy, "compose": compose_s, "encode": encode_s}
    return VideoResult(paths, frames, time.perf_counter() - wall, stage_s, problems)


def _run(reader: VideoReader, matter: VideoMatter, specs: list[OutputSpec], writers: list[Any], timing: StreamTiming,
         bg: Any, progress: bool, batch_size: int, queue_size: int) -> tuple[int, list[_Stage], float, float]:
    from tqdm import tqdm

    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(queue_size)
    matted: queue.Queue = queue.Queue(queue_size)
    stages = [_Stage("decode", _decode_stage(reader, decoded), stop),
              _Stage("infer", _infer_stage(matter, decoded, matted, batch_size), stop)]
    frames, compose_s, encode_s = 0, 0.0, 0.0
    bar = tqdm(total=reader.info.frames, unit="frame", desc=Path(reader.path).name, disable=not progress,
               dynamic_ncols=True, leave=False)
    try:
        for stage in stages:
            stage.start()
        while (result := _get(matted, stop)) is not _END:
            frame: Frame = result.item
            if frames == 0:  # audio shifts by exactly what the video does: to the first kept frame
                timing.offset = reader.offset_seconds
            for spec, writer in zip(specs, writers):
                began = time.perf_counter()
                image = render_output(spec.kind, frame.rgb, result.alpha, bg)
                mid = time.perf_counter()
                writer.write(image, frame.pts, frame.time, frame.rotation)
                compose_s, encode_s = compose_s + mid - began, encode_s + time.perf_counter() - mid
            frames += 1
            bar.update(1)
    except BaseException:
        stop.set()
        for writer in writers:
            writer.abort()
        raise
    finally:
        stop.set()
        for stage in stages:
            stage.join()
        bar.close()
    for stage in stages:
        if stage.error is not None:
            for writer in writers:
                writer.abort()
            raise stage.error
    return frames, stages, compose_s, encode_s


def _close_all(writers: list[Any], frames: int, source: str | os.PathLike[str], window: str = "") -> list[Path]:
    """Finish every output; with no frames, or when one fails, the unfinished ones are removed."""
    if frames == 0:
        for writer in writers:
            writer.abort()
        raise VideoReadError(f"no frames could be decoded from {source}{window}")
    paths: list[Path] = []
    try:
        for writer in writers:
            paths.append(writer.close())
    except (VideoWriteError, OSError):
        for writer in writers[len(paths) + 1:]:
            writer.abort()
        raise
    return paths

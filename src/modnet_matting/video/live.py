"""Live matting: camera, stream or file in; preview window, virtual camera or file out.

The loop is deliberately simple (read, matte, compose, show) because a live
source cannot be read ahead. OFD still applies, so what is shown is one frame
behind the camera (about 33 ms at 30 fps).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from .matter import VideoMatter
from .pipeline import load_background, render_output
from .reader import VideoReader, VideoReadError
from .timing import StreamTiming
from .writer import PngSequenceWriter, VideoFileWriter

WINDOW_TITLE = "modnet webcam (q or Esc to quit)"


class DisplayUnavailable(RuntimeError):
    """No way to show a window here (one-line reason)."""


@dataclass
class LiveFrame:
    rgb: np.ndarray
    pts: int
    time: float
    rotation: int = 0


class LiveSource:
    """Frames from a camera index (OpenCV) or a file/URL (PyAV), upright RGB with times."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.is_camera = source.isdigit()
        self._reader: VideoReader | None = None
        self._capture: Any = None
        if self.is_camera:
            self._capture = _quiet_capture(int(source))
            if not self._capture.isOpened():
                raise VideoReadError(f"cannot open camera {source} (no such device, or in use)")
            fps = self._capture.get(cv2.CAP_PROP_FPS) or 30.0
            self.timing = StreamTiming(Fraction(1, 1000), Fraction(fps).limit_denominator(1001))
        else:
            self._reader = VideoReader(source)
            self.timing = StreamTiming(self._reader.info.time_base, self._reader.info.fps)

    def __iter__(self) -> Iterator[LiveFrame]:
        if self._reader is not None:
            for frame in self._reader:
                yield LiveFrame(frame.rgb, frame.pts, frame.time, frame.rotation)
            return
        began = time.perf_counter()
        while True:
            ok, bgr = self._capture.read()
            if not ok:
                return
            seconds = time.perf_counter() - began
            yield LiveFrame(np.ascontiguousarray(bgr[:, :, ::-1]), round(seconds * 1000), seconds)

    @property
    def problems(self) -> list[str]:
        return self._reader.problems if self._reader is not None else []

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._capture is not None:
            self._capture.release()


def _quiet_capture(index: int) -> Any:
    """Open a camera without OpenCV's multi-line backend warnings (our error says it in one)."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    previous = logging.getLogLevel() if logging else None
    if logging:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(index)
    finally:
        if logging:
            logging.setLogLevel(previous)


class Display(Protocol):
    def show(self, rgb: np.ndarray) -> bool:  # False once the user closed the window
        ...

    def close(self) -> None: ...


class OpenCVDisplay:
    """cv2.imshow; needs an OpenCV build with a GUI (not opencv-python-headless)."""

    def __init__(self) -> None:
        try:
            cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise DisplayUnavailable("this OpenCV build has no GUI") from None

    def show(self, rgb: np.ndarray) -> bool:
        cv2.imshow(WINDOW_TITLE, rgb[:, :, ::-1])
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        cv2.destroyWindow(WINDOW_TITLE)


class TkDisplay:
    """A Tk window (standard library) for OpenCV builds without a GUI."""

    def __init__(self) -> None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise DisplayUnavailable("no DISPLAY is set")
        try:
            import tkinter

            from PIL import ImageTk  # noqa: F401 - checked here, used in show()
        except ImportError as exc:
            raise DisplayUnavailable(f"tkinter is not available ({exc})") from None
        try:
            self._root = tkinter.Tk()
        except tkinter.TclError as exc:
            raise DisplayUnavailable(f"Tk cannot open a window ({exc})") from None
        self._root.title(WINDOW_TITLE)
        self._label = tkinter.Label(self._root)
        self._label.pack()
        self._open = True
        self._root.protocol("WM_DELETE_WINDOW", self._closed)
        self._root.bind("<Key>", lambda event: self._closed() if event.keysym in ("q", "Escape") else None)

    def _closed(self) -> None:
        self._open = False

    def show(self, rgb: np.ndarray) -> bool:
        from PIL import Image, ImageTk

        if not self._open:
            return False
        photo = ImageTk.PhotoImage(Image.fromarray(rgb))
        self._label.configure(image=photo)
        self._label.image = photo  # keep a reference or Tk shows nothing
        self._root.update()
        return self._open

    def close(self) -> None:
        try:
            self._root.destroy()
        except Exception:  # noqa: BLE001 - already gone
            pass


def open_display() -> Display:
    """OpenCV's window if this build has one, else Tk; a one-line error if neither works."""
    reasons = []
    for kind in (OpenCVDisplay, TkDisplay):
        try:
            return kind()
        except DisplayUnavailable as exc:
            reasons.append(str(exc))
    raise DisplayUnavailable(
        f"cannot show a preview window: {reasons[0]} (opencv-python-headless?) and {reasons[1]}; "
        "use --headless -o OUT, or install opencv-python"
    )


def open_virtual_camera(width: int, height: int, fps: float) -> Any:
    """A pyvirtualcam camera (optional dependency) sending RGB frames."""
    try:
        import pyvirtualcam
    except ImportError:
        raise DisplayUnavailable("--virtual-cam needs the pyvirtualcam package (pip install pyvirtualcam)") from None
    try:
        return pyvirtualcam.Camera(width=width, height=height, fps=fps, fmt=pyvirtualcam.PixelFormat.RGB)
    except RuntimeError as exc:
        raise DisplayUnavailable(f"no virtual camera device: {exc}") from None


def draw_fps(rgb: np.ndarray, fps: float) -> np.ndarray:
    """The frame with its rate written in the corner (for the preview only)."""
    out = rgb.copy()
    scale = max(0.4, rgb.shape[0] / 720)
    cv2.putText(out, f"{fps:.1f} fps", (10, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 0),
                max(1, int(2 * scale)), cv2.LINE_AA)
    return out


@dataclass
class LiveStats:
    """Frames delivered and the wall time they took."""

    frames: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


class LiveSession:
    """One live run: matte each frame, compose it, send it to the preview, camera and file.

    ``run()`` stops when the source ends, ``max_frames`` composites have been
    delivered, or the preview window is closed. The preview shows the frame
    rate; the file and the virtual camera get clean composites. The caller
    owns (and closes) ``source`` and ``display``.
    """

    def __init__(
        self,
        source: LiveSource,
        matter: VideoMatter,
        background: str | None = None,
        mirror: bool = False,
        display: Display | None = None,
        virtual_cam: bool = False,
        output: str | os.PathLike[str] | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.source, self.matter, self.mirror, self.display = source, matter, mirror, display
        self.virtual_cam, self.output, self.max_frames = virtual_cam, output, max_frames
        self.background = load_background(background)
        self.stats = LiveStats()
        self._writer: Any = None
        self._camera: Any = None
        self._rate = 0.0
        self._last = 0.0

    def run(self) -> LiveStats:
        began = self._last = time.perf_counter()
        try:
            if self.output:
                self._writer = live_writer(self.output, self.source.timing)
            if self._feed():
                tail = self.matter.flush()
                if tail is not None:
                    self._deliver(tail.alpha, tail.item)
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        finally:
            self._cleanup()
        self.stats.seconds = time.perf_counter() - began
        return self.stats

    def _feed(self) -> bool:
        """Frames until the source ends (True) or the user/limit stops the run (False)."""
        for frame in self.source:
            rgb = np.ascontiguousarray(frame.rgb[:, ::-1]) if self.mirror else frame.rgb
            result = self.matter.process_frame(rgb, LiveFrame(rgb, frame.pts, frame.time, frame.rotation))
            if result is not None and not self._deliver(result.alpha, result.item):
                return False
        return True

    def _deliver(self, alpha: np.ndarray, frame: LiveFrame) -> bool:
        """Send one composite everywhere; False when the run should stop."""
        image = render_output("composite", frame.rgb, alpha, self.background)
        now = time.perf_counter()
        instant = 1.0 / max(now - self._last, 1e-6)
        self._rate = instant if not self.stats.frames else 0.9 * self._rate + 0.1 * instant
        self._last = now
        self.stats.frames += 1
        if self._writer is not None:
            self._writer.write(image, frame.pts, frame.time, frame.rotation)
        if self.virtual_cam:
            if self._camera is None:
                fps = float(self.source.timing.fps or 30)
                self._camera = open_virtual_camera(image.shape[1], image.shape[0], fps)
            self._camera.send(image)
        if self.display is not None and not self.display.show(draw_fps(image, self._rate)):
            return False
        return self.max_frames is None or self.stats.frames < self.max_frames

    def _cleanup(self) -> None:
        if self._writer is not None:
            self._writer.abort()
        if self._camera is not None:
            self._camera.close()
        self.background.close()


def live_writer(path: str | os.PathLike[str], timing: StreamTiming) -> VideoFileWriter | PngSequenceWriter:
    """A video file (by suffix) or, for a name without suffix, a PNG folder."""
    if Path(path).suffix == "":
        return PngSequenceWriter(path)
    return VideoFileWriter(path, "rgb", timing)

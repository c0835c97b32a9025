"""Generated test clips: a moving 'person' over a textured background, with a tone.

Tests and benchmarks need videos with known content, frame count, timing and
audio without shipping media files; this writes them with PyAV.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np


def synthetic_frame(height: int, width: int, t: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 frame and its float alpha at phase ``t`` (the figure drifts sideways)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx = width * (0.5 + 0.2 * np.sin(2 * np.pi * t))
    head = ((yy - height * 0.3) / (height * 0.16)) ** 2 + ((xx - cx) / (width * 0.12)) ** 2 <= 1
    body = ((yy - height * 0.85) / (height * 0.4)) ** 2 + ((xx - cx) / (width * 0.25)) ** 2 <= 1
    alpha = (head | body).astype(np.float32)
    background = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    background = np.kron(background, np.ones((8, 8, 1), np.uint8))[:height, :width].astype(np.float32)
    person = np.array([200, 150, 120], np.float32)
    rgb = alpha[..., None] * person + (1 - alpha[..., None]) * background
    return rgb.astype(np.uint8), alpha


def write_synthetic_video(
    path: str | os.PathLike[str],
    frames: int = 16,
    height: int = 64,
    width: int = 96,
    fps: int = 25,
    audio: bool = True,
    codec: str = "libx264",
    rotation: int = 0,
    sample_rate: int = 16000,
) -> str:
    """Write a clip (H.264 + AAC tone by default) and return its path.

    ``rotation`` (degrees counter-clockwise) is stored as display metadata.
    """
    path = str(path)
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if codec != "libx264" or (width % 2 == 0 and height % 2 == 0) else "yuv444p"
        if codec == "libx264":
            stream.codec_context.options = {"preset": "ultrafast", "crf": "12"}
        if rotation:
            stream.set_display_rotation(rotation)
        tone = container.add_stream("aac", rate=sample_rate, layout="mono") if audio else None
        for index in range(frames):
            rgb, _ = synthetic_frame(height, width, index / max(frames, 1))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if tone is not None:
            _write_tone(container, tone, frames / fps, sample_rate)
    return path


def _write_tone(container: av.container.OutputContainer, stream: av.AudioStream, seconds: float, rate: int) -> None:
    """A 440 Hz sine as long as the video, in 1024-sample chunks."""
    total = int(seconds * rate)
    for start in range(0, total, 1024):
        count = min(1024, total - start)
        t = (np.arange(start, start + count) / rate).astype(np.float32)
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)

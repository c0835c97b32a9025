"""`modnet webcam`'s latency per frame on a paced 640x480 source: capture to composite shown.

A camera delivers a frame every 1/fps seconds and keeps only the newest one: a slow consumer does
not fall behind, it skips frames. ``PacedCamera`` does the same with real DAVIS frames from
../shared (generated ones where those are missing), so this runs without a camera. Each frame is
stamped when the camera "captures" it; the latency is from that stamp to the moment its composite
has gone to the preview (a stub that takes the picture, as a window would). OFD holds a frame back
until the next arrives, so with OFD on (the default) the latency includes one frame interval of the
rate actually delivered.

    python benchmarks/webcam_latency.py --seconds 10 --json benchmarks/results/webcam_latency.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from modnet_matting.inference import load_model
from modnet_matting.video import VideoMatter
from modnet_matting.video.live import LiveFrame, LiveSession
from modnet_matting.video.synthetic import synthetic_frame
from modnet_matting.video.timing import StreamTiming

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "people" / "davis_people" / "images"


def camera_frames(height: int, width: int, count: int) -> list[np.ndarray]:
    """The pictures the camera shows, in order (real people where ../shared has them)."""
    from modnet_matting.io import read_image

    files = sorted(DAVIS.glob("*.jpg"))[:count] if DAVIS.is_dir() else []
    if files:
        return [cv2.resize(read_image(f), (width, height), interpolation=cv2.INTER_AREA) for f in files]
    return [synthetic_frame(height, width, i / count)[0] for i in range(count)]


class PacedCamera:
    """A camera at ``fps`` that hands out the newest captured frame, stamped with its capture time."""

    def __init__(self, frames: list[np.ndarray], fps: float, seconds: float) -> None:
        self.frames, self.fps, self.seconds = frames, fps, seconds
        self.timing = StreamTiming(Fraction(1, 1000), Fraction(fps).limit_denominator(1001))
        self.captured = 0  # frames the camera produced while we read
        self.problems: list[str] = []

    def __iter__(self) -> Iterator[LiveFrame]:
        began = time.perf_counter()
        last = -1
        while True:
            now = time.perf_counter() - began
            if now >= self.seconds:
                return
            index = int(now * self.fps)
            if index == last:  # nothing new yet: wait for the next capture
                time.sleep((index + 1) / self.fps - now)
                index += 1
            last = index
            self.captured = index + 1
            rgb = self.frames[index % len(self.frames)]
            yield LiveFrame(rgb, index, began + index / self.fps)  # time: the capture instant (perf_counter)

    def close(self) -> None:
        pass


class StubDisplay:
    """Takes each preview picture as a window would, and says to go on."""

    def show(self, rgb: np.ndarray) -> bool:
        return rgb.size > 0

    def close(self) -> None:
        pass


class TimedSession(LiveSession):
    """``LiveSession`` recording, for every frame shown, the seconds since its capture."""

    latencies: list[float]

    def _deliver(self, alpha: np.ndarray, frame: LiveFrame) -> bool:
        go_on = super()._deliver(alpha, frame)
        self.latencies.append(time.perf_counter() - frame.time)
        return go_on


def run(matter: VideoMatter, frames: list[np.ndarray], fps: float, seconds: float) -> dict:
    camera = PacedCamera(frames, fps, seconds)
    session = TimedSession(camera, matter, "green", display=StubDisplay())  # type: ignore[arg-type]
    session.latencies = []
    stats = session.run()
    lat = np.array(session.latencies[5:]) * 1000  # the first frames include compiling and warm-up
    return {"shown": stats.frames, "captured": camera.captured, "shown_fps": round(stats.fps, 1),
            "latency_ms_median": round(float(np.median(lat)), 1),
            "latency_ms_p95": round(float(np.percentile(lat, 95)), 1), "latency_ms_max": round(float(lat.max()), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="modnet-people")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0, help="the camera's rate (default 30)")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (default 640x480)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = camera_frames(height, width, 90)
    predictor = load_model(args.weights)
    rows = []
    for ofd in (True, False):
        matter = VideoMatter(predictor, ofd=ofd)
        matter.process_frame(frames[0])  # compile the network for this size before the clock starts
        matter.reset()
        rows.append({"ofd": ofd, **run(matter, frames, args.fps, args.seconds)})
        print(json.dumps(rows[-1]), flush=True)
    backend = predictor.backend
    print(f"\n{args.size} camera at {args.fps:g} fps, {backend.name} {backend.precision}, {args.seconds:g} s each\n")
    print("| OFD | frames shown / captured | shown fps | latency median (ms) | p95 | max |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {'on' if row['ofd'] else 'off'} | {row['shown']} / {row['captured']} | {row['shown_fps']} | "
              f"{row['latency_ms_median']} | {row['latency_ms_p95']} | {row['latency_ms_max']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        machine = {"cpu": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
                   "backend": f"{backend.name} {backend.precision}", "size": args.size, "camera_fps": args.fps}
        args.json.write_text(json.dumps({"machine": machine, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

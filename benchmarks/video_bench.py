"""End-to-end video throughput at 720p and 1080p, split into decode, inference, compose and encode.

Generates short H.264 clips, then times each stage on its own and the
overlapped pipeline (``process_video``) as a whole, on the CPU and, when one
is present, the GPU. By default it runs what ``modnet video`` runs: the bundled
weights (their preprocessing fixes the network input size) on the auto backend
and precision; ``--weights random --precision fp32`` is the authors' eager path.

    python benchmarks/video_bench.py --frames 8 --json benchmarks/results/video_bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from modnet_matting.inference import Predictor, load_model, make_backend
from modnet_matting.model import MODNet
from modnet_matting.video import OutputSpec, VideoFileWriter, VideoMatter, VideoReader, process_video
from modnet_matting.video.pipeline import load_background, render_output
from modnet_matting.video.synthetic import write_synthetic_video
from modnet_matting.video.timing import StreamTiming
from modnet_matting.weights import WeightsConfig

SIZES = {"720p": (720, 1280), "1080p": (1080, 1920)}


def make_predictor(weights: str, device: str, precision: str) -> Predictor:
    """What ``modnet video`` runs: the weights on the auto backend ("random": eager PyTorch, seed 0)."""
    if weights != "random":
        return load_model(weights, device=device, precision=precision)
    torch.manual_seed(0)
    return Predictor(make_backend(MODNet().eval(), "torch", device, "fp32" if precision == "auto" else precision),
                     WeightsConfig())


def time_decode(path: str) -> tuple[list[np.ndarray], float]:
    began = time.perf_counter()
    with VideoReader(path) as reader:
        frames = [frame.rgb for frame in reader]
    return frames, time.perf_counter() - began


def time_inference(matter: VideoMatter, frames: list[np.ndarray], batch: int) -> tuple[list[np.ndarray], float]:
    matter.predictor.predict_rgb(frames[:batch])  # warm-up (allocations, cuDNN autotune)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    began = time.perf_counter()
    alphas: list[np.ndarray] = []
    for start in range(0, len(frames), batch):
        alphas += matter.predictor.predict_rgb(frames[start:start + batch])
    return alphas, time.perf_counter() - began


def time_compose(frames: list[np.ndarray], alphas: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    background = load_background("green")
    began = time.perf_counter()
    out = [render_output("composite", rgb, a, background) for rgb, a in zip(frames, alphas)]
    return out, time.perf_counter() - began


def time_encode(images: list[np.ndarray], path: Path, kind: str) -> float:
    timing = StreamTiming(time_base=Fraction(1, 25), fps=Fraction(25))
    began = time.perf_counter()
    with VideoFileWriter(path, kind, timing) as writer:
        for index, image in enumerate(images):
            writer.write(image, index)
    return time.perf_counter() - began


def bench_size(name: str, clip: str, predictor: Predictor, device: str, batch: int, work: Path) -> dict:
    matter = VideoMatter(predictor)
    frames, decode_s = time_decode(clip)
    alphas, infer_s = time_inference(matter, frames, batch)
    composites, compose_s = time_compose(frames, alphas)
    encode_s = time_encode(composites, work / "enc.mp4", "rgb")
    rgba = [np.dstack([rgb, (a * 255).astype(np.uint8)]) for rgb, a in zip(frames, alphas)]
    prores_s = time_encode(rgba, work / "enc.mov", "rgba")
    result = process_video(clip, [OutputSpec("composite", work / "e2e.mp4")], predictor, background="green",
                           progress=False, batch_size=batch)
    n = len(frames)
    net_h, net_w = matter.predictor.prepare(frames[0]).shape[1:]
    return {
        "size": name, "device": device, "frames": n, "batch": batch, "network_input": f"{net_w}x{net_h}",
        "fps": {
            "decode": n / decode_s, "inference": n / infer_s, "compose": n / compose_s,
            "encode_h264": n / encode_s, "encode_prores4444": n / prores_s, "end_to_end": result.fps,
        },
        "end_to_end_busy_s": {k: round(v, 3) for k, v in result.stage_s.items()},
        "end_to_end_wall_s": round(result.wall_s, 3),
    }


def table(rows: list[dict]) -> str:
    cols = ["decode", "inference", "compose", "encode_h264", "encode_prores4444", "end_to_end"]
    lines = ["| size | device | net input | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 3)]
    for row in rows:
        cells = " | ".join(f"{row['fps'][c]:.2f}" if row["fps"][c] < 10 else f"{row['fps'][c]:.1f}" for c in cols)
        lines.append(f"| {row['size']} | {row['device']} | {row['network_input']} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--weights", default="modnet-people",
                        help="registry name, checkpoint file or 'random' (default: modnet-people, whose "
                             "preprocessing sets the network input size)")
    parser.add_argument("--precision", default="auto", help="CPU precision (default auto, as modnet video)")
    parser.add_argument("--devices", nargs="+", help="default: cpu, plus cuda when available")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clips = {}
        for name in args.sizes:
            height, width = SIZES[name]
            clips[name] = write_synthetic_video(work / f"{name}.mp4", frames=args.frames, height=height, width=width)
        for device in devices:
            precision = "fp16" if device.startswith("cuda") else args.precision
            predictor = make_predictor(args.weights, device, precision)
            backend = predictor.backend
            precision = f"{backend.name} {getattr(backend, 'precision', precision)}"
            batch = 4 if device.startswith("cuda") else 1
            for name in args.sizes:
                rows.append(bench_size(name, clips[name], predictor, f"{device} {precision}", batch, work))
                print(json.dumps(rows[-1]), flush=True)
    machine = {
        "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__, "python": platform.python_version(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

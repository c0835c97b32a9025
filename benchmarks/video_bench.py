"""End-to-end video throughput at 720p and 1080p, split into decode, inference, compose and encode.

Writes short H.264 clips (real DAVIS frames from ../shared where present, else generated ones),
then times each stage on its own, the network alone on the same frames (the rate the pipeline is
judged against: issue 36 asks end to end for 85% of it), and the overlapped pipeline
(``process_video``, median of ``--repeat`` runs, with the process's CPU time per frame), on the
CPU and, when one is present, the GPU. By default it runs what ``modnet video`` runs: the bundled
weights (their preprocessing fixes the network input size) on the auto backend and precision, OFD
on, a composite into H.264; ``--weights random --precision fp32`` is the authors' eager path.

    python benchmarks/video_bench.py --frames 48 --json benchmarks/results/video_bench.json
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

from modnet_matting.allocator import tune_allocator
from modnet_matting.inference import Predictor, load_model, make_backend
from modnet_matting.model import MODNet
from modnet_matting.video import OutputSpec, VideoFileWriter, VideoMatter, VideoReader, process_video
from modnet_matting.video.pipeline import load_background, render_output
from modnet_matting.video.synthetic import write_synthetic_video
from modnet_matting.video.timing import StreamTiming
from modnet_matting.weights import WeightsConfig

SIZES = {"720p": (720, 1280), "1080p": (1080, 1920)}
DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "people" / "davis_people" / "images"


def write_davis_clip(path: Path, frames: int, height: int, width: int) -> str:
    """Consecutive DAVIS frames (real people, real motion) enlarged to the size, as H.264 at crf 18:
    encoders and decoders work harder on them than on generated frames."""
    import cv2

    from modnet_matting.io import read_image

    files = sorted(DAVIS.glob("*.jpg"))[:frames]
    timing = StreamTiming(time_base=Fraction(1, 25), fps=Fraction(25))
    with VideoFileWriter(path, "rgb", timing) as writer:
        for index, file in enumerate(files):
            writer.write(cv2.resize(read_image(file), (width, height), interpolation=cv2.INTER_CUBIC), index)
    return str(path)


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


def time_network(matter: VideoMatter, frames: list[np.ndarray]) -> float:
    """Seconds for the network alone on every frame, one at a time, inputs prepared beforehand."""
    inputs = [matter.predictor.network_frame(rgb)[None] for rgb in frames]
    matter.predictor.run_network(inputs[0])
    began = time.perf_counter()
    for batch in inputs:
        matter.predictor.run_network(batch)
    return time.perf_counter() - began


def time_end_to_end(clip: str, predictor: Predictor, batch: int, work: Path, repeat: int) -> dict:
    """The median of ``repeat`` runs of the whole pipeline, with the process's CPU time per frame."""
    runs = []
    for _ in range(repeat):
        cpu = time.process_time()
        result = process_video(clip, [OutputSpec("composite", work / "e2e.mp4")], predictor, background="green",
                               progress=False, batch_size=batch)
        runs.append((result.fps, (time.process_time() - cpu) / result.frames, result))
    fps, cpu_per_frame, result = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
    return {"fps": fps, "fps_runs": [round(run[0], 2) for run in runs], "cpu_ms_per_frame": 1000 * cpu_per_frame,
            "busy_s": {k: round(v, 3) for k, v in result.stage_s.items()}, "wall_s": round(result.wall_s, 3)}


def bench_size(name: str, clip: str, predictor: Predictor, device: str, batch: int, work: Path,
               repeat: int) -> dict:
    matter = VideoMatter(predictor)
    frames, decode_s = time_decode(clip)
    network_s = time_network(matter, frames)
    alphas, infer_s = time_inference(matter, frames, batch)
    composites, compose_s = time_compose(frames, alphas)
    encode_s = time_encode(composites, work / "enc.mp4", "rgb")
    rgba = [np.dstack([rgb, (a * 255).astype(np.uint8)]) for rgb, a in zip(frames, alphas)]
    prores_s = time_encode(rgba, work / "enc.mov", "rgba")
    end = time_end_to_end(clip, predictor, batch, work, repeat)
    n = len(frames)
    net_h, net_w = matter.predictor.network_frame(frames[0]).shape[:2]
    return {
        "size": name, "device": device, "frames": n, "batch": batch, "network_input": f"{net_w}x{net_h}",
        "fps": {
            "decode": n / decode_s, "network": n / network_s, "inference": n / infer_s, "compose": n / compose_s,
            "encode_h264": n / encode_s, "encode_prores4444": n / prores_s, "end_to_end": end["fps"],
        },
        "end_to_end_of_network": end["fps"] * network_s / n,
        "end_to_end_runs_fps": end["fps_runs"],
        "end_to_end_cpu_ms_per_frame": round(end["cpu_ms_per_frame"], 1),
        "end_to_end_busy_s": end["busy_s"],
        "end_to_end_wall_s": end["wall_s"],
    }


def table(rows: list[dict]) -> str:
    cols = ["decode", "network", "inference", "compose", "encode_h264", "encode_prores4444", "end_to_end"]
    lines = ["| size | device | net input | " + " | ".join(cols) + " | end to end / network | CPU ms a frame |",
             "|" + "---|" * (len(cols) + 5)]
    for row in rows:
        cells = " | ".join(f"{row['fps'][c]:.2f}" if row["fps"][c] < 10 else f"{row['fps'][c]:.1f}" for c in cols)
        lines.append(f"| {row['size']} | {row['device']} | {row['network_input']} | {cells} | "
                     f"{row['end_to_end_of_network']:.0%} | {row['end_to_end_cpu_ms_per_frame']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=3, help="end-to-end runs; the median is reported")
    parser.add_argument("--source", choices=["davis", "synthetic"],
                        help="clip content (default: DAVIS frames where ../shared has them, else generated)")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--weights", default="modnet-people",
                        help="registry name, checkpoint file or 'random' (default: modnet-people, whose "
                             "preprocessing sets the network input size)")
    parser.add_argument("--precision", default="auto", help="CPU precision (default auto, as modnet video)")
    parser.add_argument("--devices", nargs="+", help="default: cpu, plus cuda when available")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    tune_allocator()  # as the command line does
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clips = {}
        source = args.source or ("davis" if DAVIS.is_dir() else "synthetic")
        for name in args.sizes:
            height, width = SIZES[name]
            if source == "davis":
                clips[name] = write_davis_clip(work / f"{name}.mp4", args.frames, height, width)
            else:
                clips[name] = write_synthetic_video(work / f"{name}.mp4", frames=args.frames, height=height,
                                                    width=width)
        for device in devices:
            precision = "fp16" if device.startswith("cuda") else args.precision
            predictor = make_predictor(args.weights, device, precision)
            backend = predictor.backend
            precision = f"{backend.name} {getattr(backend, 'precision', precision)}"
            batch = 4 if device.startswith("cuda") else 1
            for name in args.sizes:
                rows.append(bench_size(name, clips[name], predictor, f"{device} {precision}", batch, work,
                                       args.repeat))
                print(json.dumps(rows[-1]), flush=True)
    machine = {
        "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__, "python": platform.python_version(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "source": source, "date": time.strftime("%Y-%m-%d"),
    }
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Latency of each fast-inference step, measured side by side (docs/performance.md).

    python benchmarks/fast_steps.py [--weights FILE] [--sizes 512x512,288x512] [--repeat 7] [--threads 2]
        [--int8 FILE.xml | --photos DIR] [--compile] [--json benchmarks/results/fast_steps.json]

Every variant is timed as ``modnet bench`` times it (``perf_counter`` around the
backend's ``run``: numpy in, numpy out), but in interleaved rounds, one call of
each variant per round after warm-up rounds, so that load from other processes
on a shared machine hits all variants alike; the median over rounds is reported,
with the process's CPU time per call divided by the threads (an estimate of the
undisturbed latency when other processes keep the cores busy). Speed does not
depend on the weights, so random ones are the default; the int8 model is
calibrated on a few photos from ``--photos`` unless given.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from modnet_matting.evaluate.speed import machine_info, parse_size
from modnet_matting.export import export_onnx
from modnet_matting.inference import Backend, OnnxBackend, OpenVinoBackend, TorchBackend, openvino_bf16_supported
from modnet_matting.io import atomic_write
from modnet_matting.model import MODNet
from modnet_matting.model.fuse import fuse_modnet
from modnet_matting.weights import WeightsConfig, load_weights


class AuthorsEager:
    """The authors' way: eager fp32 PyTorch on a contiguous NCHW tensor, no folding."""

    name = "authors"

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = copy.deepcopy(model).eval()  # TorchBackend turns its model channels_last in place

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.model.forward_matte(torch.from_numpy(batch)).numpy()


def _onnx(model: torch.nn.Module, folder: Path, name: str) -> Path:
    return export_onnx(model, folder / f"{name}.onnx")


def _int8(args: argparse.Namespace, onnx_path: Path, folder: Path) -> Path | None:
    if args.int8:
        return args.int8
    try:
        from modnet_matting.inference.backends.openvino import save_ir
        from modnet_matting.inference.int8 import find_images, network_inputs, quantize_openvino
    except ImportError:
        return None
    found = find_images([args.photos])
    photos = found[:: max(1, len(found) // 16)][:16]
    return save_ir(quantize_openvino(onnx_path, network_inputs(photos, WeightsConfig())), folder / "int8.xml",
                   WeightsConfig())


def variants(model: MODNet, args: argparse.Namespace, folder: Path) -> dict[str, Callable[[], Backend]]:
    """Name -> builder, in the order of docs/performance.md."""
    threads = args.threads
    plain_onnx = _onnx(model, folder, "plain")
    slice_onnx = _onnx(fuse_modnet(model, "slice"), folder, "slice")
    fused_onnx = _onnx(fuse_modnet(model, "where"), folder, "fused")
    int8 = _int8(args, fused_onnx, folder)
    out: dict[str, Callable[[], Backend]] = {
        "torch fp32 eager NCHW (authors)": lambda: AuthorsEager(model),
        "torch fp32 channels_last": lambda: TorchBackend(copy.deepcopy(model), "cpu", "fp32"),
        "torch fp32 channels_last, BN folded (slice)": lambda: TorchBackend(model, "cpu", "fp32", fuse="slice"),
        "torch fp32 channels_last, BN folded (where)": lambda: TorchBackend(model, "cpu", "fp32", fuse="where"),
        "torch bf16 channels_last": lambda: TorchBackend(copy.deepcopy(model), "cpu", "bf16"),
        "torch bf16 channels_last, BN folded (slice)": lambda: TorchBackend(model, "cpu", "bf16", fuse="slice"),
        "torch bf16 channels_last, BN folded (where)": lambda: TorchBackend(model, "cpu", "bf16", fuse="where"),
        "onnxruntime fp32 (exporter folds backbone BN)": lambda: OnnxBackend(plain_onnx, "cpu", threads),
        "onnxruntime fp32, IBNorm BN folded (slice)": lambda: OnnxBackend(slice_onnx, "cpu", threads),
        "onnxruntime fp32, IBNorm BN folded (where)": lambda: OnnxBackend(fused_onnx, "cpu", threads),
        "openvino fp32 (exporter folds backbone BN)": lambda: OpenVinoBackend(plain_onnx, "fp32", threads),
        "openvino fp32, IBNorm BN folded (slice)": lambda: OpenVinoBackend(slice_onnx, "fp32", threads),
        "openvino fp32, IBNorm BN folded (where)": lambda: OpenVinoBackend(fused_onnx, "fp32", threads),
    }
    if openvino_bf16_supported():
        out["openvino bf16 (exporter folds backbone BN)"] = lambda: OpenVinoBackend(plain_onnx, "bf16", threads)
        out["openvino bf16, IBNorm BN folded (slice)"] = lambda: OpenVinoBackend(slice_onnx, "bf16", threads)
        out["openvino bf16, IBNorm BN folded (where)"] = lambda: OpenVinoBackend(fused_onnx, "bf16", threads)
    if int8 is not None:
        out["openvino int8, f32 rest"] = lambda: OpenVinoBackend(int8, "fp32", threads)
        if openvino_bf16_supported():
            out["openvino int8, bf16 rest"] = lambda: OpenVinoBackend(int8, "bf16", threads)
    if args.compile:
        out["torch.compile fp32, BN folded"] = lambda: TorchBackend(model, "cpu", "fp32", fuse=True, compile=True)
        out["torch.compile bf16, BN folded"] = lambda: TorchBackend(model, "cpu", "bf16", fuse=True, compile=True)
    return out


def interleaved(backends: dict[str, Backend], height: int, width: int, repeat: int,
                warmup: int) -> dict[str, tuple[list[float], list[float]]]:
    """Per variant: wall milliseconds (``perf_counter`` around ``run``, as ``modnet bench``) and this
    process's CPU milliseconds per call (all threads), over the timed rounds."""
    data = np.random.default_rng(0).uniform(-1, 1, (1, 3, height, width)).astype(np.float32)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in backends}
    for round_index in range(warmup + repeat):
        for name, backend in backends.items():
            cpu, wall = time.process_time(), time.perf_counter()
            backend.run(data)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if round_index >= warmup:
                times[name][0].append(wall * 1000.0)
                times[name][1].append(cpu * 1000.0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="registry name or checkpoint (default: random, seed 0)")
    parser.add_argument("--sizes", default="512x512,288x512")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--int8", type=Path, help="an int8 IR (default: calibrate on 16 photos from --photos)")
    parser.add_argument("--photos", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/people")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows (minutes to compile)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/fast_steps.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.weights:
        model, _ = load_weights(args.weights)
    else:
        torch.manual_seed(0)
        model = MODNet().eval()
    folder = Path(tempfile.mkdtemp(prefix="modnet-steps-"))
    backends = {name: build() for name, build in variants(model, args, folder).items()}
    report = {"machine": {**machine_info("cpu", args.threads), "load_before": os.getloadavg()},
              "settings": {"repeat": args.repeat, "warmup": args.warmup, "statistic": "median of interleaved rounds",
                           "onnxruntime": ort.__version__},
              "results": []}
    for text in args.sizes.split(","):
        height, width = parse_size(text)
        start = time.time()
        times = interleaved(backends, height, width, args.repeat, args.warmup)
        for name, (values, cpu) in times.items():
            row = {"variant": name, "size": f"{height}x{width}", "median_ms": statistics.median(values),
                   "min_ms": min(values), "cpu_ms_per_thread": statistics.median(cpu) / args.threads,
                   "times_ms": values, "cpu_ms": cpu}
            report["results"].append(row)
            print(f"{height}x{width}  {name:50s} {row['median_ms']:8.1f} ms (min {row['min_ms']:.1f}, "
                  f"CPU/thread {row['cpu_ms_per_thread']:.1f})", flush=True)
        print(f"# {height}x{width}: {time.time() - start:.0f} s, load {os.getloadavg()}", file=sys.stderr)
    report["machine"]["load_after"] = os.getloadavg()
    atomic_write(args.json, (json.dumps(report, indent=2) + "\n").encode())
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

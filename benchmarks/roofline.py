"""How fast could MODNet possibly run on this CPU? Dense-arithmetic peaks against the network's MACs.

    python benchmarks/roofline.py [--threads 2] [--sizes 512x512,288x512] [--targets 35,20]
        [--measure] [--json benchmarks/results/roofline.json]

A latency target is only reachable if the network's multiply-accumulates fit in
it at the best rate the processor sustains. This measures that rate per
precision with OpenVINO (the fastest CPU runtime here) on convolution and matrix
shapes like MODNet's largest layers: fp32, bf16 (``INFERENCE_PRECISION_HINT``)
and int8 (FakeQuantize on input and weights, which the CPU plugin runs as VNNI
integer kernels), plus PyTorch's fp32/bf16 GEMM for reference. The best shape
per precision (either runtime) is the *peak*; ``MACs / peak`` is a lower bound on the latency of
the authors' network at that precision, before any memory-bound work (depthwise
convolutions, resizes, norms, activations). ``--measure`` adds the measured
OpenVINO latency of the whole network (random weights: speed does not depend on
them) so the table shows how close to the bound each path runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from modnet_matting.evaluate.speed import count_macs, machine_info, network_shape, parse_size, run_benchmark
from modnet_matting.io import atomic_write
from modnet_matting.model import MODNet

#: (name, kind, shape): "gemm" (m, k, n) or "conv" (channels in, channels out, kernel, height, width).
SHAPES = [
    ("gemm 2048x2048x2048", "gemm", (2048, 2048, 2048)),
    ("conv 1x1 320->1280 @ 32x32", "conv", (320, 1280, 1, 32, 32)),
    ("conv 1x1 256->256 @ 128x128", "conv", (256, 256, 1, 128, 128)),
    ("conv 3x3 128->128 @ 128x128", "conv", (128, 128, 3, 128, 128)),
    ("conv 3x3 256->256 @ 64x64", "conv", (256, 256, 3, 64, 64)),
    ("conv 5x5 1280->96 @ 32x32 (conv_lr16x at 512)", "conv", (1280, 96, 5, 32, 32)),
]
OV_PRECISIONS = ("fp32", "bf16", "int8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="512x512,288x512", help="network sizes (height x width)")
    parser.add_argument("--targets", default="35,20", help="latency targets in ms, one per size")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--measure", action="store_true", help="also time the whole network in OpenVINO")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/roofline.json"))
    return parser.parse_args(argv)


def median_seconds(call: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def shape_macs(kind: str, shape: tuple[int, ...]) -> int:
    if kind == "gemm":
        m, k, n = shape
        return m * k * n
    cin, cout, kernel, height, width = shape
    return cin * cout * kernel * kernel * height * width


def _quantized(node, levels: int = 256):  # noqa: ANN001, ANN202 - openvino nodes
    """A FakeQuantize of ``node`` over [-4, 4]: the pattern the CPU plugin turns into int8 arithmetic."""
    import openvino.opset13 as ops

    low, high = ops.constant(np.float32(-4.0)), ops.constant(np.float32(4.0))
    return ops.fake_quantize(node, low, high, low, high, levels)


def openvino_rate(kind: str, shape: tuple[int, ...], precision: str, threads: int, repeat: int) -> float:
    """Sustained GMAC/s of one layer in OpenVINO at ``precision``."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    if kind == "gemm":
        m, k, n = shape
        data = rng.standard_normal((m, k), dtype=np.float32)
        weight = rng.standard_normal((k, n), dtype=np.float32)
    else:
        cin, cout, kernel, height, width = shape
        data = rng.standard_normal((1, cin, height, width), dtype=np.float32)
        weight = rng.standard_normal((cout, cin, kernel, kernel), dtype=np.float32)
    param = ops.parameter(list(data.shape), np.float32)
    x, w = param, ops.constant(weight)
    if precision == "int8":
        x, w = _quantized(x), _quantized(w, levels=255)
    if kind == "gemm":
        out = ops.matmul(x, w, False, False)
    else:
        pad = shape[2] // 2
        out = ops.convolution(x, w, [1, 1], [pad, pad], [pad, pad], [1, 1])
    hint = "bf16" if precision == "bf16" else "f32"
    compiled = ov.Core().compile_model(ov.Model([out], [param]), "CPU", {
        "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    seconds = median_seconds(lambda: request.infer({0: data}), repeat)
    return shape_macs(kind, shape) / seconds / 1e9


def torch_gemm_rate(dtype: torch.dtype, repeat: int, n: int = 2048) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return n**3 / median_seconds(lambda: a @ b, repeat) / 1e9


def measured_network_ms(model: MODNet, sizes: list[tuple[int, int]], threads: int,
                        repeat: int) -> dict[str, dict[str, float]]:
    """Median ms of the whole network in OpenVINO fp32 and bf16 (BatchNorm-folded, as ``auto`` runs it)."""
    report = run_benchmark(model, backends=("openvino",), precisions=("fp32", "bf16"), sizes=sizes,
                           repeat=repeat, threads=threads)
    out: dict[str, dict[str, float]] = {}
    for row in report["results"]:
        if row["median_ms"] is not None:
            out.setdefault(f"{row['height']}x{row['width']}", {})[row["precision"]] = row["median_ms"]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [network_shape(*parse_size(s)) for s in args.sizes.split(",")]
    targets = [float(t) for t in args.targets.split(",")]
    if len(targets) != len(sizes):
        raise SystemExit("give one target per size")

    rates: dict[str, dict[str, float]] = {}
    for name, kind, shape in SHAPES:
        rates[name] = {p: openvino_rate(kind, shape, p, args.threads, args.repeat) for p in OV_PRECISIONS}
        print(f"{name:48s} " + "  ".join(f"{p} {rates[name][p]:6.0f}" for p in OV_PRECISIONS) + "  GMAC/s",
              flush=True)
    torch_rates = {"fp32": torch_gemm_rate(torch.float32, args.repeat),
                   "bf16": torch_gemm_rate(torch.bfloat16, args.repeat)}
    print("torch gemm 2048^3                                " +
          "  ".join(f"{p} {v:6.0f}" for p, v in torch_rates.items()) + "  GMAC/s")
    peak = {p: max([rates[name][p] for name in rates] + [torch_rates.get(p, 0.0)]) for p in OV_PRECISIONS}

    model = MODNet().eval()
    measured = measured_network_ms(model, sizes, args.threads, args.repeat) if args.measure else {}
    rows = []
    print("\n| size | GMACs | target ms | needs GMAC/s | " +
          " | ".join(f"{p} bound ms (peak {peak[p]:.0f})" for p in OV_PRECISIONS) +
          (" | measured fp32 / bf16 ms" if measured else "") + " |")
    print("|---" * (4 + len(OV_PRECISIONS) + bool(measured)) + "|")
    for (height, width), target in zip(sizes, targets):
        macs = count_macs(model, height, width)
        bounds = {p: macs / (peak[p] * 1e9) * 1000 for p in OV_PRECISIONS}
        key = f"{height}x{width}"
        row = {"size": key, "macs": macs, "target_ms": target, "needs_gmacs": macs / (target / 1000) / 1e9,
               "bound_ms": bounds, "reachable": {p: bounds[p] <= target for p in OV_PRECISIONS},
               "measured_ms": measured.get(key, {})}
        rows.append(row)
        cells = [key, f"{macs / 1e9:.2f}", f"{target:g}", f"{row['needs_gmacs']:.0f}"]
        cells += [f"{bounds[p]:.0f}" + ("" if bounds[p] <= target else " (over)") for p in OV_PRECISIONS]
        if measured:
            cells.append(" / ".join(f"{measured.get(key, {}).get(p, float('nan')):.0f}" for p in ("fp32", "bf16")))
        print("| " + " | ".join(cells) + " |")
    report = {"machine": machine_info("cpu", args.threads), "threads": args.threads, "repeat": args.repeat,
              "layer_rates_gmacs": rates, "torch_gemm_gmacs": torch_rates, "peak_gmacs": peak, "sizes": rows}
    atomic_write(args.json, (json.dumps(report, indent=2) + "\n").encode())
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

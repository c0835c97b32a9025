"""``modnet bench``: parameters, MACs and latency per backend, precision, size and batch.

    modnet bench [--backends torch,compile,onnx] [--precision fp32,bf16] [--sizes 512x512,1080x1920]
                 [--batch 1] [--repeat 7] [--warmup 3] [--threads N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys

from .main import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure parameters, MACs and latency",
        description="Median latency per backend x precision x size x batch after warm-up (CUDA events on GPU). "
                    "Prints a table; --json writes every number. Without --weights the network is randomly "
                    "initialised (speed does not depend on the weights).",
    )
    parser.add_argument("--weights", help="registry name or checkpoint file (default: random initialisation)")
    parser.add_argument("--backends", default=None,
                        help="comma list: torch, compile, onnx, openvino, litert, auto (default torch; for an exported "
                             ".onnx, .xml or .tflite: auto, its own runtime); litert converts the network to a "
                             ".tflite per size and precision first (the [tflite] extra), unless --weights is one")
    parser.add_argument("--precision", default="fp32", help="comma list: fp32, bf16, fp16, int8, auto (default fp32)")
    parser.add_argument("--sizes", default="512x512", help="comma list of HEIGHTxWIDTH (default 512x512)")
    parser.add_argument("--batch", default="1", help="comma list of batch sizes (default 1)")
    parser.add_argument("--repeat", type=int, default=7, help="timed calls per setting (default 7)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    parser.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    parser.set_defaults(func=run)


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _litert_builder(model, config, threads: int | None):  # noqa: ANN001, ANN202 - torch and config types
    """LiteRT runs a .tflite converted for one size: convert per size and precision (cached), then time it."""

    def build(precision: str, height: int, width: int):  # noqa: ANN202 - a Backend
        from ..deploy.tflite import cached_tflite
        from ..inference.backends.litert import LiteRTBackend

        print(f"  litert {precision} {height}x{width}: converting (cached after the first time)", file=sys.stderr)
        return LiteRTBackend(cached_tflite(model, config, (height, width), precision), threads)

    return build


def _export_builder(path: str, backend: str, device: str, threads: int | None):  # noqa: ANN202 - a builder
    """``build(precision, height, width)`` for an export file on ``backend`` (a .tflite has its own size)."""

    def build(precision: str, height: int, width: int):  # noqa: ANN202, ARG001 - a Backend; sizes come per call
        from ..inference import load_model

        return load_model(path, device=device, precision=precision, backend=backend, threads=threads).backend

    return build


def run(args: argparse.Namespace) -> int:
    import torch

    from ..evaluate.speed import format_report, parse_size, run_benchmark

    args.backends_given = args.backends is not None
    args.backends = args.backends or "torch"
    from ..inference.hardware import pick_device
    from ..io import atomic_write

    try:
        sizes = [parse_size(s) for s in _list(args.sizes)]
        batches = [int(b) for b in _list(args.batch)]
        device = str(pick_device(args.device))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if not sizes or not batches or min(batches) < 1 or args.repeat < 1 or args.warmup < 0:
        raise CLIError("need at least one size, batch sizes >= 1, --repeat >= 1 and --warmup >= 0")
    from ..weights import export_kind

    backends, precisions, fixed_size = _list(args.backends), _list(args.precision), {}
    kind = export_kind(args.weights)  # an export is timed on the runtime that reads it, never converted
    if kind is not None:
        from ..model import MODNet

        model, config = MODNet().eval(), None  # counts parameters and MACs only: exports run as they are
        if backends == ["torch"] and not args.backends_given:
            backends = ["auto"]  # the default backend cannot read an export: its own runtime times it
        if kind == "tflite":
            precisions = ["auto"] if precisions == ["fp32"] else precisions
            sizes = [_export_builder(args.weights, "auto", device, args.threads)("auto", 0, 0).size]
        fixed_size = {name: _export_builder(args.weights, name, device, args.threads) for name in backends}
    elif args.weights:
        from ..weights import load_weights

        model, config = load_weights(args.weights)
    else:
        from ..model import MODNet

        torch.manual_seed(0)
        model, config = MODNet().eval(), None

    def progress(timing) -> None:
        state = timing.error or f"{timing.median_ms:.2f} ms"
        print(f"  {timing.backend} {timing.precision} {timing.height}x{timing.width} b{timing.batch}: {state}",
              file=sys.stderr)

    report = run_benchmark(
        model, backends, precisions, sizes, batches, args.repeat, args.warmup, device,
        args.threads, weights=args.weights or "random initialisation", progress=progress, config=config,
        fixed_size=fixed_size or {"litert": _litert_builder(model, config, args.threads)},
    )
    print(format_report(report))
    if args.json:
        atomic_write(args.json, (json.dumps(report, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    failed = [r for r in report["results"] if r["error"]]
    return 1 if failed and len(failed) == len(report["results"]) else 0

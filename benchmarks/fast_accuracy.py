"""Accuracy cost of each fast inference path against fp32 eager PyTorch, on real photos.

    python benchmarks/fast_accuracy.py --weights FILE [--photos ../shared/data/people] [--calibration 160]
        [--holdout 60] [--threads 2] [--json benchmarks/results/fast_accuracy.json] [--cache]

Photos are found under ``--photos`` (every ``*/images`` folder), spread evenly
over the sets, and split into a calibration part (int8 ranges only) and a
held-out part on which every path's matte is compared with the reference
(``compare_mattes``: per-photo mean absolute difference at full resolution).
``--cache`` stores the int8 IR where ``--backend auto`` and ``modnet bench
--precision int8`` find it for these weights. Prints a table and writes JSON.
Timing is ``modnet bench``'s job (docs/performance.md lists the commands).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from modnet_matting.inference import (
    ACCURACY_BOUND,
    OPENVINO_HALF_NORM,
    OpenVinoBackend,
    Predictor,
    TorchBackend,
    int8_cache_path,
    make_backend,
    openvino_bf16_supported,
)
from modnet_matting.inference.backends.openvino import save_ir
from modnet_matting.inference.hardware import cpu_name, openvino_version
from modnet_matting.inference.int8 import compare_mattes, find_images, network_inputs, quantize_openvino, split_images
from modnet_matting.io import atomic_write
from modnet_matting.weights import load_weights, save_weights, with_card


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="registry name or checkpoint file")
    parser.add_argument("--photos", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/people")
    parser.add_argument("--calibration", type=int, default=160, help="photos for the int8 ranges")
    parser.add_argument("--holdout", type=int, default=60, help="photos every path is measured on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", action="store_true", help="store the int8 IR in the cache for these weights")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/fast_accuracy.json"))
    parser.add_argument("--record", type=Path, help="write a copy of the weights whose model card records the "
                        "held-out figures of the bf16 paths (what backend='auto' then trusts)")
    return parser.parse_args(argv)


#: Paths of this script whose figures ``backend="auto"`` can use, by its candidate name.
RECORDED_PATHS = {"torch bf16 folded": "torch bf16", "openvino bf16": "openvino bf16"}


def record_accuracy(model: torch.nn.Module, config, rows: list[dict], photos: int, out: Path) -> None:  # noqa: ANN001
    """Save the weights again (same fp16 values) with the held-out accuracy in their card."""
    accuracy = dict(config.card.get("accuracy", {}))
    for row in rows:
        if row["path"] in RECORDED_PATHS:
            accuracy[RECORDED_PATHS[row["path"]]] = {
                "mad": round(row["mad"], 6), "worst_photo_mad": round(row["worst_mad"], 6), "photos": photos,
                "reference": "torch fp32", "measured": time.strftime("%Y-%m-%d"), "cpu": cpu_name(),
                "openvino": openvino_version(),
            }
    save_weights(model, out, with_card(config, accuracy=accuracy))
    print(f"wrote {out} (accuracy recorded for {', '.join(sorted(accuracy))})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model, config = load_weights(args.weights)
    folders = sorted(p for p in args.photos.glob("*/images") if p.is_dir()) or [args.photos]
    calib_paths, held = split_images(find_images(folders), args.calibration, args.holdout)
    print(f"{len(calib_paths)} calibration photos, {len(held)} held out, from {len(folders)} folders", file=sys.stderr)
    reference = Predictor(TorchBackend(model, "cpu", "fp32"), config)

    start = time.perf_counter()
    from modnet_matting.export import cached_onnx, fingerprint
    from modnet_matting.model.fuse import fuse_modnet

    onnx_path = cached_onnx(fuse_modnet(model, OPENVINO_HALF_NORM), config)
    int8 = quantize_openvino(onnx_path, network_inputs(calib_paths, config))
    scratch = Path(tempfile.mkdtemp(prefix="modnet-int8-"))
    int8_path = save_ir(int8, scratch / "int8.xml", config)
    calibration_s = time.perf_counter() - start

    candidates = {
        "torch fp32 folded": lambda: TorchBackend(model, "cpu", "fp32", fuse=True),
        "torch bf16 folded": lambda: TorchBackend(model, "cpu", "bf16", fuse=True),
        "onnx fp32": lambda: make_backend(model, "onnx", "cpu", "fp32", config=config),
        "openvino fp32": lambda: make_backend(model, "openvino", "cpu", "fp32", args.threads, config),
        "openvino int8 (f32 rest)": lambda: OpenVinoBackend(int8_path, "fp32", args.threads),
    }
    if openvino_bf16_supported():
        candidates["openvino bf16"] = lambda: make_backend(model, "openvino", "cpu", "bf16", args.threads, config)
        candidates["openvino int8 (bf16 rest)"] = lambda: OpenVinoBackend(int8_path, "bf16", args.threads)
    rows, memo = [], {}
    for name, build in candidates.items():
        accuracy = compare_mattes(Predictor(build(), config), reference, held, memo=memo)
        rows.append({"path": name, **accuracy.__dict__, "within_bound": accuracy.mad <= ACCURACY_BOUND})
        print(f"{name:28s} MAD {accuracy.mad:.5f}  worst photo {accuracy.worst_mad:.5f}  "
              f"worst pixel {accuracy.max_abs:.3f}  {'ok' if accuracy.mad <= ACCURACY_BOUND else 'OVER'}",
              flush=True)
    if args.cache:
        target = save_ir(int8, int8_cache_path(fingerprint(model)[:20]), config)
        print(f"stored the int8 IR at {target}", file=sys.stderr)
    if args.record:
        record_accuracy(model, config, rows, len(held), args.record)
    report = {
        "weights": str(args.weights),
        "reference": "torch fp32 eager (the authors' way)",
        "bound": ACCURACY_BOUND,
        "photos": {"folders": [str(f) for f in folders], "calibration": len(calib_paths), "held_out": len(held)},
        "calibration_seconds": round(calibration_s, 1),
        "results": rows,
    }
    atomic_write(args.json, (json.dumps(report, indent=2) + "\n").encode())
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

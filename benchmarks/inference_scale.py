"""Which inference scale suits a weights file: held-out IoU and MAD per short-side size.

    python benchmarks/inference_scale.py --weights FILE [--sizes 256,288,320,352,384,448,512]
        [--heldout runs/benchmarks/heldout] [--json benchmarks/results/inference_scale.json]

A network trained on small crops sees people at one apparent size; run at a
different scale its semantic branch meets them bigger or smaller than it learnt
(the weights issue measured 88.4 vs 82.7 mIoU for one probe at its training scale
vs 512). This sweeps the short-side size stored in the weights' preprocessing
(mode "short_side") over the held-out portrait sets that ``run_benchmarks.py``
links (``images/`` + ``masks/`` per set), with eager fp32 PyTorch by default so that
only the scale changes (``--backend openvino --precision bf16`` is 4x faster and
moves IoU by about 0.001). Prints a table and writes JSON; the winner is a candidate
for the ``infer_reference`` of the training config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from modnet_matting.evaluate.runner import Conventions, ModelMethod, evaluate, find_dataset
from modnet_matting.inference import Predictor, make_backend
from modnet_matting.inference.hardware import cpu_name
from modnet_matting.io import atomic_write
from modnet_matting.weights import WeightsConfig, load_weights, save_weights


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="modnet-people", help="registry name or checkpoint file")
    parser.add_argument("--sizes", default="256,288,320,352,384,448,512", help="short-side sizes to try")
    parser.add_argument("--heldout", type=Path, default=Path("runs/benchmarks/heldout"),
                        help="folder of <set>/images + <set>/masks (run_benchmarks.py makes it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", default="torch", help="torch (fp32 eager, the reference) or openvino")
    parser.add_argument("--precision", default="fp32", help="fp32, or bf16 for a faster sweep")
    parser.add_argument("--apply", type=Path, help="write a copy of the weights whose preprocessing uses the size "
                        "with the best mean IoU, with the sweep recorded in their card")
    parser.add_argument("--choose", type=int, help="with --apply: store this swept size instead of the best-IoU "
                        "one (say a cheaper size level within noise); the card records the whole sweep either way")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/inference_scale.json"))
    args = parser.parse_args(argv)
    if args.choose is not None and args.choose not in [int(s) for s in args.sizes.split(",")]:
        parser.error(f"--choose {args.choose} is not one of --sizes {args.sizes}")
    return args


def sweep(backend, config: WeightsConfig, heldout: Path, sizes: list[int]) -> dict[int, dict[str, dict]]:  # noqa: ANN001
    """Per size and set: mean IoU and MAD of the held-out photos (``evaluate.runner``, one method per size).

    The sizes take turns on each photo, so load changes hit them alike and each photo is read once.
    """
    methods = []
    for size in sizes:
        pre = dataclasses.replace(config.preprocess, reference_size=size, resize_mode="short_side")
        methods.append(ModelMethod(Predictor(backend, dataclasses.replace(config, preprocess=pre)), name=str(size)))
    results: dict[int, dict[str, dict]] = {size: {} for size in sizes}
    for folder in sorted(heldout.iterdir()):
        if not (folder / "images").is_dir():
            continue
        start = time.perf_counter()
        dataset = find_dataset(folder)
        for result, _ in evaluate(dataset, methods, Conventions("segmentation"), worst=0):
            means = result.means()
            results[int(result.method)][folder.name] = {"iou": means["iou"], "mad": means["mad"],
                                                        "images": len(result.rows)}
        for problem in dataset.problems:
            print(f"{folder.name}: {problem}", file=sys.stderr)
        print(f"{folder.name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.heldout.is_dir():
        print(f"error: {args.heldout} not found; run benchmarks/run_benchmarks.py first", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    model, config = load_weights(args.weights)
    backend = make_backend(model, args.backend, "cpu", args.precision, args.threads, config)
    results = sweep(backend, config, args.heldout, sizes)
    names = list(results[sizes[0]])
    print("| short side | " + " | ".join(f"IoU {n}" for n in names) + " | IoU mean | MAD mean |")
    print("|---" * (len(names) + 3) + "|")
    for size, per_set in results.items():
        mean_iou = float(np.mean([per_set[n]["iou"] for n in names]))
        mean_mad = float(np.mean([per_set[n]["mad"] for n in names]))
        per_set["mean"] = {"iou": mean_iou, "mad": mean_mad}
        cells = " | ".join(f"{per_set[n]['iou']:.4f}" for n in names)
        marker = " (stored)" if size == config.preprocess.reference_size else ""
        print(f"| {size}{marker} | {cells} | {mean_iou:.4f} | {mean_mad:.4f} |")
    report = {"backend": f"{args.backend} {args.precision}",
              "weights": str(args.weights), "machine": cpu_name(), "date": time.strftime("%Y-%m-%d"),
              "stored_size": config.preprocess.reference_size, "results": results}
    atomic_write(args.json, json.dumps(report, indent=2).encode())
    if args.apply:
        apply_best(model, config, results, report, args.apply, args.choose)
    return 0


def apply_best(model: torch.nn.Module, config: WeightsConfig, results: dict[int, dict[str, dict[str, float]]],
               report: dict, out: Path, choose: int | None = None) -> None:
    """Save the weights again (same values) with the best-IoU size (or ``choose``) as their inference scale."""
    best = choose if choose is not None else max(results, key=lambda size: results[size]["mean"]["iou"])
    sweep = {str(size): {k: round(v, 4) for k, v in per_set["mean"].items()} for size, per_set in results.items()}
    card = {**config.card, "inference_scale": {
        "chosen": best, "was": config.preprocess.reference_size, "sweep_mean_over_sets": sweep,
        "rule": "best mean IoU" if choose is None else "chosen by hand (--choose)",
        "photos": "held-out portrait photos (runs/benchmarks/heldout)", "backend": report["backend"],
        "measured": report["date"], "cpu": report["machine"]}}
    pre = dataclasses.replace(config.preprocess, reference_size=best, resize_mode="short_side")
    save_weights(model, out, dataclasses.replace(config, preprocess=pre, card=card))
    print(f"wrote {out}: short side {best} (was {config.preprocess.reference_size})", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())

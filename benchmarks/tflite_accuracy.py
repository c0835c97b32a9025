"""What a fixed-size .tflite costs in matte accuracy, on real held-out photos.

    python benchmarks/tflite_accuracy.py m32.tflite m16.tflite m8.tflite [--weights modnet-people]
        [--photos runs/benchmarks/heldout] [--count 60] [--json benchmarks/results/tflite_accuracy.json]

Each file runs as ``--weights FILE.tflite`` does (the LiteRT backend: every photo stretched to
the file's size), and its matte is compared at full resolution (``compare_mattes``: per-photo
mean absolute difference) with two references: eager PyTorch fp32 at the weights' own network
size (what the user gives up by exporting for one size and precision), and the first file
(the precision's share alone, when the first is the fp32 export). Where a photo has its mask
(``SET/masks/STEM.*`` beside ``SET/images/``), every path, PyTorch's too, is also scored
against it: IoU at 0.5 and MAD, per set. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from modnet_matting.evaluate.metrics import as_alpha, iou, mad
from modnet_matting.inference import Predictor, TorchBackend
from modnet_matting.inference.backends.litert import LiteRTBackend
from modnet_matting.inference.hardware import cpu_name
from modnet_matting.inference.int8 import compare_mattes, find_images, split_images
from modnet_matting.io import atomic_write, read_image
from modnet_matting.weights import load_weights


def against_truth(predictor: Predictor, photos: list[Path]) -> dict:
    """IoU (at 0.5) and MAD against the masks, per set (the folder above ``images``) and their mean."""
    scores: dict[str, list[tuple[float, float]]] = {}
    for path in photos:
        masks = sorted((path.parent.parent / "masks").glob(path.stem + ".*"))
        if path.parent.name != "images" or not masks:
            continue
        truth = as_alpha(cv2.imread(str(masks[0]), cv2.IMREAD_GRAYSCALE))
        alpha = predictor.predict_rgb([read_image(path)])[0]
        if truth.shape != alpha.shape:
            truth = cv2.resize(truth, alpha.shape[::-1], interpolation=cv2.INTER_LINEAR)
        scores.setdefault(path.parent.parent.name, []).append((iou(alpha, truth), mad(alpha, truth)))
    per_set = {name: {"iou": round(float(np.mean([x[0] for x in v])), 4),
                      "mad": round(float(np.mean([x[1] for x in v])), 4), "images": len(v)}
               for name, v in sorted(scores.items())}
    if per_set:
        per_set["mean"] = {key: round(float(np.mean([v[key] for v in per_set.values()])), 4) for key in ("iou", "mad")}
    return per_set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help=".tflite exports, the fp32 one first")
    parser.add_argument("--weights", default="modnet-people", help="the weights they were exported from")
    parser.add_argument("--photos", type=Path, action="append", help="photo folders (default: the held-out sets)")
    parser.add_argument("--count", type=int, default=60, help="photos, spread over the folders")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    photos = find_images(args.photos or [Path("runs/benchmarks/heldout")])
    if any(path.parent.name == "images" for path in photos):  # SET/images beside SET/masks: not the masks
        photos = [path for path in photos if path.parent.name == "images"]
    _, held = split_images(photos, 0, args.count)
    model, config = load_weights(args.weights)
    torch_path = Predictor(TorchBackend(model, "cpu", "fp32"), config)
    first = Predictor(LiteRTBackend(args.files[0]), config)
    memo_torch: dict = {}
    memo_first: dict = {}
    truth = {"pytorch": against_truth(torch_path, held)}
    rows = []
    for path in args.files:
        backend = LiteRTBackend(path)
        candidate = Predictor(backend, config)
        begin = time.perf_counter()
        vs_torch = compare_mattes(candidate, torch_path, held, memo=memo_torch)
        vs_first = compare_mattes(candidate, first, held, memo=memo_first)
        rows.append({"file": path.name, "precision": backend.precision, "size": list(backend.size),
                     "megabytes": round(path.stat().st_size / 1e6, 1), "vs_pytorch": dataclasses.asdict(vs_torch),
                     "vs_first": dataclasses.asdict(vs_first), "vs_truth": against_truth(candidate, held),
                     "seconds": round(time.perf_counter() - begin, 1)})
        print(f"{path.name:28} {backend.precision:5} {backend.size[1]}x{backend.size[0]} "
              f"{rows[-1]['megabytes']:6.1f} MB  MAD vs PyTorch {vs_torch.mad:.4f}  vs {args.files[0].name} "
              f"{vs_first.mad:.4f} (worst photo {vs_first.worst_mad:.4f})", file=sys.stderr)
    for name, scores in [("pytorch", truth["pytorch"]), *((r["file"], r["vs_truth"]) for r in rows)]:
        if scores:
            sets = ", ".join(f"{k} {v['iou']:.3f}" for k, v in scores.items() if k != "mean")
            print(f"{name:28} against the masks: IoU {scores['mean']['iou']:.4f} ({sets}), MAD "
                  f"{scores['mean']['mad']:.4f}", file=sys.stderr)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": cpu_name(), "weights": args.weights,
              "photos": len(held), "pytorch_vs_truth": truth["pytorch"], "results": rows}
    if args.json:
        atomic_write(args.json, (json.dumps(report, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())

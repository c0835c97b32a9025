"""Does the guided enlargement of the matte (``inference/refine.py``) sharpen edges? Boundary MAD and Grad.

    python benchmarks/refine_edges.py [--weights modnet-people] [--composites runs/benchmarks/composites]
        [--sizes own,176,128] [--json benchmarks/results/refine_edges.json]

The composites of ``run_benchmarks.py`` (held-out people over held-out backgrounds, exact hard-edged
ground truth) are matted once per network size; each low-resolution matte is then enlarged by a plain
resize and by the guided filter at several radii and regularisers, so the rows differ only in the
enlargement. The composites are at most 640 px, so the weights' own size enlarges by about 1.5x;
the smaller network sizes stand in for large photos, whose mattes are enlarged 4-12x. Also timed:
one 6000x4000 enlargement, with its peak memory (tracemalloc). Prints tables and writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from modnet_matting.evaluate.metrics import gradient_error, mad, unknown_band
from modnet_matting.inference import Predictor, make_backend
from modnet_matting.inference.hardware import cpu_name
from modnet_matting.inference.preprocess import resize
from modnet_matting.inference.refine import guided_upsample
from modnet_matting.io import atomic_write, read_image
from modnet_matting.weights import load_weights

SETTINGS = [(1, 1e-3), (2, 1e-4), (2, 1e-3), (2, 1e-2), (4, 1e-3)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="modnet-people")
    parser.add_argument("--composites", type=Path, default=Path("runs/benchmarks/composites"),
                        help="image/ + matte/ (run_benchmarks.py makes it)")
    parser.add_argument("--sizes", default="own,176,128", help="network short sides; 'own' = the weights' size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/refine_edges.json"))
    return parser.parse_args(argv)


def pairs(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB photo, float alpha) of each composite."""
    out = []
    for image in sorted((folder / "image").glob("*.png")):
        alpha = read_image(folder / "matte" / image.name)[..., 0].astype(np.float32) / 255.0
        out.append((read_image(image), alpha))
    return out


def scores(predictions: list[np.ndarray], truths: list[np.ndarray], bands: list[np.ndarray]) -> dict[str, float]:
    return {
        "mad": float(np.mean([mad(p, t) for p, t in zip(predictions, truths)])),
        "band_mad": float(np.mean([mad(p, t, b) for p, t, b in zip(predictions, truths, bands)])),
        "band_grad": float(np.mean([gradient_error(p, t, b) for p, t, b in zip(predictions, truths, bands)])),
    }


def large_photo_cost(low_size: tuple[int, int] = (352, 528)) -> dict[str, float]:
    """Seconds and peak traced MB of enlarging a matte to 6000x4000 (resize vs guided)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4000, 6000, 3), dtype=np.uint8)
    matte = rng.random(low_size, dtype=np.float32)
    result = {}
    for name, enlarge in (("resize", lambda: np.clip(resize(matte, 4000, 6000), 0, 1)),
                          ("guided", lambda: guided_upsample(matte, rgb))):
        tracemalloc.start()
        start = time.perf_counter()
        enlarge()
        result[f"{name}_s"] = time.perf_counter() - start
        result[f"{name}_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = pairs(args.composites)
    if not data:
        print(f"no composites in {args.composites}/image: run benchmarks/run_benchmarks.py first", file=sys.stderr)
        return 2
    model, config = load_weights(args.weights)
    backend = make_backend(model, "torch", "cpu", "fp32")
    truths = [t for _, t in data]
    bands = [unknown_band(t) for t in truths]
    results: dict[str, dict] = {}
    for size in args.sizes.split(","):
        pre = config.preprocess if size == "own" else dataclasses.replace(
            config.preprocess, reference_size=int(size), resize_mode="short_side")
        predictor = Predictor(backend, dataclasses.replace(config, preprocess=pre))
        label = f"{pre.reference_size}" + (" (own)" if size == "own" else "")
        lows = [backend.run(predictor.prepare(rgb)[None])[0, 0].astype(np.float32) for rgb, _ in data]
        factor = float(np.mean([np.sqrt(rgb.shape[0] * rgb.shape[1] / low.size) for (rgb, _), low in zip(data, lows)]))
        rows = {"resize": scores([np.clip(resize(low, *t.shape), 0, 1) for low, t in zip(lows, truths)], truths, bands)}
        for radius, eps in SETTINGS:
            start = time.perf_counter()
            refined = [guided_upsample(low, rgb, radius, eps) for low, (rgb, _) in zip(lows, data)]
            ms = 1000 * (time.perf_counter() - start) / len(data)
            rows[f"guided r={radius} eps={eps:g}"] = {**scores(refined, truths, bands), "ms": ms}
        results[label] = {"enlargement": factor, "rows": rows}
        print(f"\nnetwork short side {label}, mean enlargement {factor:.2f}x, {len(data)} composites")
        print("| enlargement | MAD | band MAD | band Grad | ms/img |\n|---|---|---|---|---|")
        for name, row in rows.items():
            ms = f"{row['ms']:.1f}" if "ms" in row else "-"
            print(f"| {name} | {row['mad']:.4f} | {row['band_mad']:.4f} | {row['band_grad']:.3f} | {ms} |")
    cost = large_photo_cost()
    print(f"\n6000x4000 from 352x528: resize {cost['resize_s']:.2f} s ({cost['resize_peak_mb']:.0f} MB peak), "
          f"guided {cost['guided_s']:.2f} s ({cost['guided_peak_mb']:.0f} MB peak)")
    report = {"weights": str(args.weights), "machine": cpu_name(), "date": time.strftime("%Y-%m-%d"),
              "composites": len(data), "sizes": results, "large_photo": cost}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.json, json.dumps(report, indent=1).encode())
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

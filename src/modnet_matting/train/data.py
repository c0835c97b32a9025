"""Datasets from folders and the compact pre-resized cache training reads.

Layouts understood:
* ``images/`` + ``masks/`` (binary person masks, 255 = person): soft labels are
  made by ``labels.soft_alpha``;
* ``image/`` + ``matte/`` (PPM-100 style soft alpha);
* ``fg/`` + ``alpha/`` (foregrounds to composite over backgrounds).

Decoding JPEGs and resizing would steal the two CPU cores from the network, so
every sample is decoded once, resized to a fixed short side, labelled, and kept
as uint8 arrays in one ``.npz`` per set (no pickles).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..io import IMAGE_SUFFIXES, ImageReadError, read_image
from .labels import foreground_colours, soft_alpha

LAYOUTS = (("images", "masks", "mask"), ("image", "matte", "matte"), ("fg", "alpha", "matte"))


def is_held_out(stem: str, fold: int = 8) -> bool:
    """Stable validation split by name: md5(stem) % 8 == 0 (about 1 in 8)."""
    return int(hashlib.md5(stem.encode()).hexdigest(), 16) % fold == 0


@dataclass
class PairReport:
    """Pairs found in a dataset folder and the names that could not be paired."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    kind: str = "mask"
    problems: list[str] = field(default_factory=list)


def _index(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def find_pairs(root: str | os.PathLike) -> PairReport:
    """Pair images with labels by file stem in any supported layout, reporting mismatches."""
    root = Path(root)
    for image_dir, label_dir, kind in LAYOUTS:
        if (root / image_dir).is_dir() and (root / label_dir).is_dir():
            images, labels = _index(root / image_dir), _index(root / label_dir)
            report = PairReport(kind=kind)
            report.pairs = [(images[s], labels[s]) for s in sorted(images.keys() & labels.keys())]
            unlabelled, orphans = sorted(images.keys() - labels.keys()), sorted(labels.keys() - images.keys())
            report.problems += [f"{root.name}: no label for {images[s].name}" for s in unlabelled]
            report.problems += [f"{root.name}: no image for {labels[s].name}" for s in orphans]
            return report
    raise FileNotFoundError(f"{root}: expected images/+masks/, image/+matte/ or fg/+alpha/ folders")


def _resize_short(array: np.ndarray, short: int, nearest: bool = False) -> np.ndarray:
    h, w = array.shape[:2]
    scale = short / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return cv2.resize(array, size, interpolation=interp)


def _read_label(path: Path) -> np.ndarray:
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise ImageReadError(f"cannot read label {path}")
    if label.ndim == 3:
        label = label[:, :, -1] if label.shape[2] == 4 else label[:, :, 0]
    if label.dtype == np.uint16:
        label = (label / 257.0 + 0.5).astype(np.uint8)
    return label


def prepare_sample(args: tuple[Path, Path, str, int, str]) -> tuple[str, dict[str, np.ndarray] | str]:
    """Decode, resize, label one pair: arrays, or an error message (never raises)."""
    image_path, label_path, kind, short, method = args
    try:
        image = read_image(image_path)
        label = _read_label(label_path)
        if label.shape[:2] != image.shape[:2]:
            return image_path.stem, f"{image_path.name}: image {image.shape[:2]} and label {label.shape[:2]} differ"
        image = _resize_short(image, short)
        if kind == "mask":
            mask = _resize_short(label, short, nearest=True)
            alpha = soft_alpha(image, mask, method=method)
        else:
            alpha = _resize_short(label, short).astype(np.float32) / 255.0
        fg = foreground_colours(image, alpha)
        return image_path.stem, {"image": image, "alpha": (alpha * 255 + 0.5).astype(np.uint8), "fg": fg}
    except (ImageReadError, OSError, ValueError, cv2.error) as exc:
        return image_path.stem, f"{image_path.name}: {exc}"


@dataclass
class CachedSet:
    """One dataset in memory: uint8 images, alphas and foreground colours."""

    name: str
    stems: list[str]
    images: list[np.ndarray]
    alphas: list[np.ndarray]
    fgs: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.stems)

    def take(self, indices: Sequence[int]) -> CachedSet:
        pick = lambda xs: [xs[i] for i in indices]  # noqa: E731
        return CachedSet(self.name, pick(self.stems), pick(self.images), pick(self.alphas), pick(self.fgs))

    def subset(self, held_out: bool) -> CachedSet:
        """The validation (``held_out=True``) or training side of the name-hash split."""
        return self.take([i for i, s in enumerate(self.stems) if is_held_out(s) == held_out])

    def spread(self, count: int) -> CachedSet:
        """At most ``count`` samples spread evenly over the set (a fixed validation subset)."""
        stride = max(1, len(self) // max(1, count))
        return self.take(list(range(0, len(self), stride))[:count])


def build_cache(
    root: str | os.PathLike, cache_file: str | os.PathLike, short: int = 384, method: str = "closed_form",
    workers: int | None = None, log=print,
) -> CachedSet:
    """Build (or load, when present) the cache of one dataset folder.

    ``workers`` defaults to every core: labelling is the slow part of a first run.
    """
    cache_file = Path(cache_file)
    if cache_file.exists():
        return load_cache(cache_file)
    report = find_pairs(root)
    for problem in report.problems:
        log(f"warning: {problem}")
    jobs = [(img, lab, report.kind, short, method) for img, lab in report.pairs]
    arrays: dict[str, np.ndarray] = {}
    stems: list[str] = []
    # spawn, not fork: forking after torch/numba started their thread pools can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1, mp_context=context) as pool:
        for stem, result in pool.map(prepare_sample, jobs, chunksize=8):
            if isinstance(result, str):
                log(f"warning: skipped {result}")
                continue
            for key, value in result.items():
                arrays[f"{key}_{len(stems)}"] = value
            stems.append(stem)
            if len(stems) % 200 == 0:
                log(f"{Path(root).name}: {len(stems)}/{len(jobs)} samples prepared")
    arrays["stems"] = np.frombuffer(json.dumps(stems).encode(), dtype=np.uint8)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, cache_file)
    log(f"cached {len(stems)} samples of {Path(root).name} -> {cache_file}")
    return load_cache(cache_file)


def load_cache(cache_file: str | os.PathLike) -> CachedSet:
    with np.load(cache_file, allow_pickle=False) as data:
        stems = json.loads(bytes(data["stems"]).decode())
        n = len(stems)
        return CachedSet(
            Path(cache_file).stem,
            stems,
            [data[f"image_{i}"] for i in range(n)],
            [data[f"alpha_{i}"] for i in range(n)],
            [data[f"fg_{i}"] for i in range(n)],
        )


def load_backgrounds(folders: Iterable[str | os.PathLike], short: int, held_out: bool) -> list[np.ndarray]:
    """Background photos (resized to ``short``) on one side of the name-hash split."""
    out = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or is_held_out(path.stem) != held_out:
                continue
            try:
                out.append(_resize_short(read_image(path), short))
            except ImageReadError:
                continue
    return out


def concat_sets(sets: Sequence[CachedSet]) -> CachedSet:
    return CachedSet(
        "+".join(s.name for s in sets),
        [f"{s.name}/{x}" for s in sets for x in s.stems],
        [x for s in sets for x in s.images],
        [x for s in sets for x in s.alphas],
        [x for s in sets for x in s.fgs],
    )

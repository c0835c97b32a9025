"""The benchmark runner: pair images with references, predict, score (``report`` writes the results).

Two folder layouts are recognised:

* matting (PPM-100 style): ``image/`` + ``matte/`` with the same file stems;
  scored with MSE, MAD, SAD, Grad and Conn;
* segmentation: ``images/`` + ``masks/`` (binary masks, 255 = person); scored
  with IoU and boundary F plus MAD and MSE against the binary mask.

Every method (our model, a folder of predicted mattes, or a peer from
``peers.py``) goes through the same ``evaluate`` loop: prediction at the
method's own working size, scoring at the reference's original resolution.
Files that are missing, unreadable or of the wrong size are reported and
skipped; the rest are still scored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ..io import IMAGE_SUFFIXES, ImageReadError, read_image, save_image
from . import metrics as M

LAYOUTS = {"matting": ("image", "matte"), "segmentation": ("images", "masks")}
MATTING_METRICS = ("mse", "mad", "sad", "grad", "conn")
SEGMENTATION_METRICS = ("iou", "boundary_f", "mad", "mse", "ff")
LABELS = {
    "mse": "MSE", "mad": "MAD", "sad": "SAD", "grad": "Grad", "conn": "Conn",
    "iou": "IoU", "boundary_f": "BF", "ff": "FF", "ms": "ms/img",
}
_MS = "median milliseconds per image for the method (its preprocessing included, file reading excluded)"
LOWER_IS_BETTER = {"mse", "mad", "sad", "grad", "conn", "ff", "ms"}


class Method(Protocol):
    """Anything that turns an RGB uint8 image into an alpha matte at the same size.

    ``reference`` is the ground truth, given only to methods that declare
    ``needs_reference`` (the trimap-based upper reference) or look up a file.
    """

    name: str
    needs_reference: bool

    def predict(self, rgb: np.ndarray, stem: str, reference: np.ndarray | None = None) -> np.ndarray: ...


class SkipSample(Exception):
    """A method has no usable prediction for one sample (reported, then skipped)."""


@dataclass
class Sample:
    stem: str
    image: Path
    reference: Path


@dataclass
class Dataset:
    """Paired files of one benchmark folder, and what could not be paired."""

    root: Path
    kind: str
    samples: list[Sample]
    problems: list[str] = field(default_factory=list)


def _image_files(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            found.setdefault(path.stem, []).append(path)
    return found


def find_dataset(root: str | Path, limit: int | None = None) -> Dataset:
    """Pair ``image/``+``matte/`` or ``images/``+``masks/`` files by stem (sorted, first ``limit``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    kinds = [k for k, (i, r) in LAYOUTS.items() if (root / i).is_dir() and (root / r).is_dir()]
    if not kinds:
        raise FileNotFoundError(
            f"{root} has neither image/ + matte/ (matting) nor images/ + masks/ (segmentation) folders"
        )
    kind = kinds[0]
    image_dir, ref_dir = LAYOUTS[kind]
    images, refs = _image_files(root / image_dir), _image_files(root / ref_dir)
    problems: list[str] = []
    samples: list[Sample] = []
    for stem, paths in images.items():
        if len(paths) > 1 or len(refs.get(stem, [])) > 1:
            problems.append(f"{stem}: several files share this name")
        elif stem not in refs:
            problems.append(f"{paths[0].name}: no reference in {ref_dir}/")
        else:
            samples.append(Sample(stem, paths[0], refs[stem][0]))
    problems += [f"{ref_dir}/{paths[0].name}: no image in {image_dir}/" for stem, paths in refs.items()
                 if stem not in images]
    if limit is not None:
        samples = samples[:limit]
    return Dataset(root, kind, samples, problems)


def read_matte(path: str | Path) -> np.ndarray:
    """A matte or mask file -> float64 alpha in [0, 1] (first channel of colour files)."""
    return M.as_alpha(read_image(path)[..., 0])


# ---------------------------------------------------------------- methods


class ModelMethod:
    """Our network through the ``Predictor`` (reference-size rule, matte at input size)."""

    needs_reference = False

    def __init__(self, predictor: Any, name: str = "modnet") -> None:
        self.predictor = predictor
        self.name = name
        self.info: dict[str, Any] = {}  # stored with the results (weights, model card)

    def predict(self, rgb: np.ndarray, stem: str, reference: np.ndarray | None = None) -> np.ndarray:
        return self.predictor.predict_rgb([rgb])[0]


class FolderMethod:
    """Predicted mattes already on disk: ``<folder>/<stem>.png`` (any image suffix accepted)."""

    needs_reference = False

    def __init__(self, folder: str | Path, name: str | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"prediction folder not found: {self.folder}")
        self.files = _image_files(self.folder)
        self.name = name or f"pred:{self.folder.name}"
        self.info: dict[str, Any] = {"folder": str(self.folder)}

    def predict(self, rgb: np.ndarray, stem: str, reference: np.ndarray | None = None) -> np.ndarray:
        paths = self.files.get(stem)
        if not paths:
            raise SkipSample(f"no predicted matte named {stem}.png in {self.folder}")
        return read_matte(paths[0])


# ---------------------------------------------------------------- scoring


@dataclass
class Conventions:
    """How the numbers were computed; printed above every table and stored in the JSON."""

    kind: str
    region: str = "whole"  # "whole", "unknown" or "both"
    band_radius: int | None = None  # None: metrics.default_band_radius per image

    def metric_names(self) -> list[str]:
        if self.kind == "segmentation":
            return list(SEGMENTATION_METRICS)
        names: list[str] = []
        if self.region in ("whole", "both"):
            names += [*MATTING_METRICS, "ff"]
        if self.region in ("unknown", "both"):
            names += [f"{name}_u" for name in MATTING_METRICS]
        return names

    def describe(self) -> dict[str, str]:
        band = "1.5% of the mean side (min 2 px)" if self.band_radius is None else f"{self.band_radius} px"
        if self.kind == "segmentation":
            return {
                "alpha": "predictions and binary masks (255 = person) as alpha in [0, 1]",
                "region": "whole image",
                "iou": "intersection over union, prediction binarised at 0.5",
                "boundary_f": "boundary F-score, contours matched within 0.8% of the diagonal",
                "mad, mse": "mean over the whole image against the binary mask, no extra scale",
                "ff": "false foreground: share of the image above 0.5 where the mask is background",
                "ms": _MS,
            }
        return {
            "alpha": "alpha in [0, 1], scored at the reference's resolution",
            "region": {"whole": "whole image", "unknown": "unknown band (suffix _u)",
                       "both": "whole image, and unknown band (suffix _u)"}[self.region],
            "unknown band": f"pixels within {band} of a not fully opaque/transparent reference pixel",
            "mse, mad": "mean over the region, no extra scale",
            "sad, grad, conn": "sum over the region / 1000 (Grad: Gaussian derivative sigma 1.4; "
                               "Conn: step 0.1, theta 0.15)",
            "ff": "false foreground (whole image): share of pixels above 0.5 where the reference is 0",
            "ms": _MS,
        }

    def header(self) -> str:
        return "; ".join(f"{key}: {value}" for key, value in self.describe().items())


def score(pred: np.ndarray, ref: np.ndarray, conv: Conventions) -> dict[str, float]:
    """All metrics of ``conv`` for one prediction (both at the reference's size)."""
    if conv.kind == "segmentation":
        mask = (ref >= 0.5).astype(np.float64)
        return {"iou": M.iou(pred, mask), "boundary_f": M.boundary_f(pred, mask),
                "mad": M.mad(pred, mask), "mse": M.mse(pred, mask), "ff": M.false_foreground(pred, mask)}
    functions: dict[str, Callable[..., float]] = {
        "mse": M.mse, "mad": M.mad, "sad": M.sad, "grad": M.gradient_error, "conn": M.connectivity_error,
    }
    values: dict[str, float] = {}
    if conv.region in ("whole", "both"):
        values.update({name: fn(pred, ref) for name, fn in functions.items()})
        values["ff"] = M.false_foreground(pred, ref)
    if conv.region in ("unknown", "both"):
        band = M.unknown_band(ref, conv.band_radius)
        values.update({f"{name}_u": fn(pred, ref, band) for name, fn in functions.items()})
    return values


# ------------------------------------------------------------- evaluation


@dataclass
class Row:
    stem: str
    values: dict[str, float]
    ms: float


@dataclass
class MethodResult:
    """Per-image rows and the problems met, for one method on one dataset."""

    method: str
    conv: Conventions
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def means(self) -> dict[str, float]:
        if not self.rows:
            return {}
        names = self.conv.metric_names()
        out = {name: float(np.mean([row.values[name] for row in self.rows])) for name in names}
        out["ms"] = float(np.median([row.ms for row in self.rows]))
        return out

    def primary(self) -> str:
        return "iou" if self.conv.kind == "segmentation" else ("mad" if self.conv.region != "unknown" else "mad_u")


@dataclass
class Case:
    row: Row
    image: np.ndarray
    ref: np.ndarray
    pred: np.ndarray


def evaluate(
    dataset: Dataset,
    methods: Sequence[Method],
    conv: Conventions,
    worst: int = 8,
    save_root: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[MethodResult, list[Case]]]:
    """Run every method on every sample; per method its result and worst cases (thumbnails).

    Samples are the outer loop: each image is read once, and the methods take
    turns on it, so a change in machine load affects all of them alike. Each
    method first predicts the first image once untimed, so one-off costs (graph
    compilation, JIT, allocator warm-up) do not land in ``ms``. Unreadable or
    mismatched files are reported once in ``dataset.problems``; a method that
    fails on one image has it reported in its own problems and goes on. With
    ``save_root``, predictions are written to ``save_root/<method>/pred/<stem>.png``.
    """
    results = [MethodResult(method.name, conv) for method in methods]
    cases: list[list[Case]] = [[] for _ in methods]
    for method in methods:
        _warm_up(dataset, method)
    for index, sample in enumerate(dataset.samples):
        try:
            rgb = read_image(sample.image)
            ref = read_matte(sample.reference)
            if ref.shape != rgb.shape[:2]:
                raise SkipSample(f"reference is {ref.shape[1]}x{ref.shape[0]}, image {rgb.shape[1]}x{rgb.shape[0]}")
        except (SkipSample, ImageReadError) as exc:
            dataset.problems.append(f"{sample.stem}: {exc}")
            continue
        thumbs = (thumbnail(rgb), thumbnail(ref))
        for method, result, kept in zip(methods, results, cases):
            try:
                pred, elapsed = _predict(method, rgb, sample.stem, ref)
            except Exception as exc:  # one image failing one method must not stop the batch
                result.problems.append(f"{method.name}: {sample.stem}: {_one_line(exc)}")
                continue
            row = Row(sample.stem, score(pred, ref, conv), elapsed)
            result.rows.append(row)
            if save_root is not None:
                folder = save_root / safe_name(method.name) / "pred"
                save_image(folder / f"{sample.stem}.png", (pred * 255.0 + 0.5).astype(np.uint8))
            kept[:] = _keep_worst(kept, Case(row, *thumbs, thumbnail(pred)), result.primary(), worst)
        if progress is not None:
            progress(f"{index + 1}/{len(dataset.samples)} {sample.stem}")
    return list(zip(results, cases))


def _predict(method: Method, rgb: np.ndarray, stem: str, ref: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    pred = method.predict(rgb, stem, ref if method.needs_reference else None)
    elapsed = (time.perf_counter() - start) * 1000.0
    pred = M.as_alpha(pred)
    if pred.shape != ref.shape:
        raise SkipSample(f"prediction is {pred.shape[1]}x{pred.shape[0]}, reference {ref.shape[1]}x{ref.shape[0]}")
    return pred, elapsed


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, (SkipSample, ImageReadError)):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _warm_up(dataset: Dataset, method: Method) -> None:
    for sample in dataset.samples[:1]:
        try:
            rgb = read_image(sample.image)
            ref = read_matte(sample.reference)
            if ref.shape == rgb.shape[:2]:
                method.predict(rgb, sample.stem, ref if method.needs_reference else None)
        except Exception:  # noqa: BLE001 - whatever fails here is reported by the scoring loop
            pass


def _badness(row: Row, primary: str) -> float:
    value = row.values[primary]
    return value if primary in LOWER_IS_BETTER or primary.removesuffix("_u") in LOWER_IS_BETTER else -value


def _keep_worst(cases: list[Case], case: Case, primary: str, worst: int) -> list[Case]:
    cases = sorted(cases + [case], key=lambda c: _badness(c.row, primary), reverse=True)
    return cases[:worst]


THUMB_HEIGHT = 160


def thumbnail(array: np.ndarray) -> np.ndarray:
    """A small copy for the contact sheet of worst cases, kept while the evaluation runs."""
    h, w = array.shape[:2]
    scale = THUMB_HEIGHT / h
    width = max(1, min(int(round(w * scale)), THUMB_HEIGHT * 2))
    return cv2.resize(array.astype(np.float32) if array.dtype != np.uint8 else array, (width, THUMB_HEIGHT),
                      interpolation=cv2.INTER_AREA)


def safe_name(name: str) -> str:
    """A method's name as a folder name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)

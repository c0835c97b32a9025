"""Turn a mask set (``images/`` + ``masks/``) into a soft-alpha set (``image/`` + ``matte/``).

Each mask gets an unknown band around its edge that a classical solver fills
(``labels.soft_alpha``); with a teacher model (our weights) the band is the mean
of the solver and the teacher, which mends the solver where foreground and
background colours are alike. The result is a PPM-100 style folder that
training reads like any matte set. Finished names are skipped on a rerun.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..io import ImageReadError, atomic_write, encode_image, encode_png, read_image
from .data import _read_label, _resize_short, find_pairs
from .labels import band_trimap, default_band, soft_alpha

Teacher = Callable[[np.ndarray], np.ndarray]  # RGB uint8 -> alpha float32 in [0, 1] at the same size


@dataclass
class LabelReport:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already done
    problems: list[str] = field(default_factory=list)


def label_image(image: np.ndarray, mask: np.ndarray, method: str = "closed_form", band: int | None = None,
                teacher: Teacher | None = None) -> np.ndarray:
    """Soft alpha (float32, [0, 1]) for one image and its binary mask; known pixels keep the mask's value."""
    band = band or default_band(mask.shape)
    alpha = soft_alpha(image, mask, band=band, method=method)
    if teacher is not None:
        unknown = band_trimap(mask, band) == 0.5
        alpha = np.where(unknown, 0.5 * (alpha + np.clip(teacher(image), 0, 1)), alpha).astype(np.float32)
    return alpha


def label_folder(root: str | os.PathLike, out: str | os.PathLike, method: str = "closed_form",
                 band: int | None = None, teacher: Teacher | None = None, short_side: int = 0,
                 overwrite: bool = False, log: Callable[[str], None] = print) -> LabelReport:
    """Write ``out/image/<name>`` and ``out/matte/<stem>.png`` for every readable pair under ``root``."""
    root, out = Path(root), Path(out)
    pairs = find_pairs(root)
    if pairs.kind != "mask":
        raise ValueError(f"{root}: expected images/ + masks/ (binary person masks)")
    if out.resolve() == root.resolve():
        raise ValueError("the output folder must differ from the mask set")
    report = LabelReport(problems=list(pairs.problems))
    for number, (image_path, mask_path) in enumerate(pairs.pairs, 1):
        suffix = ".png" if short_side else image_path.suffix.lower()
        image_out, matte_out = out / "image" / (image_path.stem + suffix), out / "matte" / f"{image_path.stem}.png"
        if not overwrite and image_out.exists() and matte_out.exists():
            report.skipped.append(image_path.stem)
            continue
        try:
            image, mask = read_image(image_path), _read_label(mask_path)
            if image.shape[:2] != mask.shape[:2]:
                raise ValueError(f"image {image.shape[:2]} and mask {mask.shape[:2]} differ in size")
            if short_side:
                image, mask = _resize_short(image, short_side), _resize_short(mask, short_side, nearest=True)
            alpha = label_image(image, mask, method, band, teacher)
        except (ImageReadError, ValueError, OSError, cv2.error) as exc:
            report.problems.append(f"{image_path.name}: {exc}")
            continue
        atomic_write(image_out, encode_image(image, suffix) if short_side else image_path.read_bytes())
        atomic_write(matte_out, encode_png((alpha * 255 + 0.5).astype(np.uint8)))
        report.written.append(image_path.stem)
        if number % 50 == 0:
            log(f"{number}/{len(pairs.pairs)} labelled")
    return report

"""Composite benchmark sets with exact ground truth (Composition-1k style).

Users with cut-outs (foreground + alpha) but no natural photos with ground
truth can still measure: each foreground is laid over backgrounds chosen
deterministically (seeded by the seed and the foreground's name, so adding
files does not reshuffle the others), I = alpha * F + (1 - alpha) * B. The alpha
written to ``matte/`` is exactly the 8-bit alpha used for the composite.

Output layout (PPM-100 style, so ``modnet eval --data OUT`` scores it)::

    OUT/image/<fg>__<bg>.png    composite
    OUT/matte/<fg>__<bg>.png    ground-truth alpha
    OUT/fg/<fg>__<bg>.png       the foreground colours used
    OUT/manifest.json           source files, background crop and seed per composite
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import ImageOps, UnidentifiedImageError

from ..io import IMAGE_SUFFIXES, ImageReadError, atomic_write, open_image, read_image, save_image


@dataclass
class CompositeEntry:
    name: str
    foreground: str
    alpha: str
    background: str
    crop: tuple[int, int, int, int]  # x, y, width, height in the scaled background
    scale: float


@dataclass
class Manifest:
    seed: int
    per_foreground: int
    entries: list[CompositeEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")}


def stable_seed(*parts: object) -> int:
    """A seed that depends only on the given values (not on Python's salted hash)."""
    return int(hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()[:16], 16)


def _read_rgba(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """RGB and alpha of a cut-out; ``io.read_image`` drops alpha on purpose, so PIL is used here."""
    try:
        with open_image(path) as img:
            img = ImageOps.exif_transpose(img)
            if "A" not in img.getbands():
                raise ImageReadError(f"{path} has no alpha channel; pass --alpha DIR with the mattes")
            rgba = np.asarray(img.convert("RGBA"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None
    return np.ascontiguousarray(rgba[..., :3]), rgba[..., 3]


def _fit_background(
    bg: np.ndarray, height: int, width: int, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """Scale the background to cover height x width, then crop at a seeded offset."""
    bh, bw = bg.shape[:2]
    scale = max(height / bh, width / bw)
    sh, sw = max(height, int(np.ceil(bh * scale))), max(width, int(np.ceil(bw * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(bg, (sw, sh), interpolation=interp) if (sh, sw) != (bh, bw) else bg
    y = int(rng.integers(0, sh - height + 1))
    x = int(rng.integers(0, sw - width + 1))
    return scaled[y:y + height, x:x + width], (x, y, width, height), float(scale)


def _limit_size(rgb: np.ndarray, alpha: np.ndarray, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    h, w = alpha.shape
    if max_side is None or max(h, w) <= max_side:
        return rgb, alpha
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)


def composite(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """alpha * F + (1 - alpha) * B in float, rounded to uint8 (alpha as uint8 0..255)."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    out = a * fg.astype(np.float32) + (1.0 - a) * bg.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def build_composites(
    fg_dir: str | Path,
    bg_dir: str | Path,
    out: str | Path,
    alpha_dir: str | Path | None = None,
    per_foreground: int = 1,
    seed: int = 0,
    max_side: int | None = None,
    limit: int | None = None,
) -> Manifest:
    """Write the composite set; bad files are listed in ``problems`` and skipped."""
    fg_dir, bg_dir, out = Path(fg_dir), Path(bg_dir), Path(out)
    sources = [fg_dir, bg_dir] + ([Path(alpha_dir)] if alpha_dir else [])
    if any(out.resolve() == s.resolve() for s in sources):
        raise ValueError(f"output folder {out} is one of the input folders; choose another")
    foregrounds, backgrounds = _files(fg_dir), _files(bg_dir)
    alphas = _files(Path(alpha_dir)) if alpha_dir else {}
    if not backgrounds:
        raise FileNotFoundError(f"no background images in {bg_dir}")
    if per_foreground < 1 or per_foreground > len(backgrounds):
        raise ValueError(f"--per-fg must be between 1 and the number of backgrounds ({len(backgrounds)})")
    bg_names = sorted(backgrounds)
    manifest = Manifest(seed=seed, per_foreground=per_foreground)
    stems = sorted(foregrounds)[:limit] if limit else sorted(foregrounds)
    for stem in stems:
        try:
            fg, alpha, alpha_source = _read_foreground(foregrounds[stem], alphas, stem, alpha_dir)
        except ImageReadError as exc:
            manifest.problems.append(str(exc))
            continue
        fg, alpha = _limit_size(fg, alpha, max_side)
        rng = np.random.default_rng(stable_seed(seed, stem))
        for index in rng.choice(len(bg_names), per_foreground, replace=False):
            bg_path = backgrounds[bg_names[int(index)]]
            try:
                bg = read_image(bg_path)
            except ImageReadError as exc:
                manifest.problems.append(str(exc))
                continue
            crop_bg, crop, scale = _fit_background(bg, *alpha.shape, rng)
            name = f"{stem}__{bg_path.stem}"
            save_image(out / "image" / f"{name}.png", composite(fg, alpha, crop_bg))
            save_image(out / "matte" / f"{name}.png", alpha)
            save_image(out / "fg" / f"{name}.png", fg)
            entry = CompositeEntry(name, str(foregrounds[stem]), alpha_source, str(bg_path), crop, scale)
            manifest.entries.append(entry)
    data = {"seed": seed, "per_foreground": per_foreground, "composites": [asdict(e) for e in manifest.entries],
            "problems": manifest.problems}
    atomic_write(out / "manifest.json", (json.dumps(data, indent=2) + "\n").encode())
    return manifest


def _read_foreground(
    path: Path, alphas: dict[str, Path], stem: str, alpha_dir: str | Path | None
) -> tuple[np.ndarray, np.ndarray, str]:
    if alpha_dir is None:
        rgb, alpha = _read_rgba(path)
        return rgb, alpha, f"{path} (alpha channel)"
    if stem not in alphas:
        raise ImageReadError(f"{path.name}: no alpha named {stem}.* in {alpha_dir}; skipped")
    rgb, alpha = read_image(path), read_image(alphas[stem])[..., 0]
    if alpha.shape != rgb.shape[:2]:
        raise ImageReadError(f"{path.name}: alpha is {alpha.shape[1]}x{alpha.shape[0]}, "
                             f"foreground {rgb.shape[1]}x{rgb.shape[0]}; skipped")
    return rgb, alpha, str(alphas[stem])

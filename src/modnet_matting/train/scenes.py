"""Zoom-out scenes: smaller people placed anywhere beside whole, large photos of animals, food and things.

A composite keeps its photo's framing: a head-and-shoulders portrait fills the crop and the new
background shows only as a strip around it. The network then never sees what it fails on in
users' photos: a whole dog, bird, fruit or painting as large as the person, beside or behind
them. ``zoom_out_scene`` builds exactly that:

* each person is cut to its box and scaled to 25-80% of the crop's height; a side cut by the
  photo's edge (the bottom of a portrait) stays on the crop's edge, so no person floats with a
  straight cut through the body; otherwise the person goes anywhere, partly out of frame too;
* one to three people in a crop;
* the background is an object photo shown large (covering the crop, aspect kept), or a scene
  with an object photo shown whole on it;
* side-by-side pairs: the person on one side, an object photo on the other, meeting at a seam
  that may cut into the person (the photo is in front there, so the target is 0).

``load_object_photos`` reads the person-free photo folders (``<source>/images/*.jpg``, masks
where a source has them) on one side of a per-category split, with their categories.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..io import IMAGE_SUFFIXES, ImageReadError, read_image
from .data import CachedSet
from .distractors import clip_window, cover_crop, to_u8

#: A side counts as cut by the photo's edge when this share of the edge's pixels is person.
CUT_SHARE = 0.02


@dataclass
class ObjectPhotos:
    """Person-free photos (target all zero), their categories, and the masked ones as paste-able cut-outs."""

    stems: list[str] = field(default_factory=list)  # "<source>/<file stem>"
    images: list[np.ndarray] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    cutouts: CachedSet = field(default_factory=lambda: CachedSet("cutouts", [], [], [], []))

    def __len__(self) -> int:
        return len(self.stems)


def _categories(folder: Path) -> dict[str, str]:
    """``index.csv`` (source, image path, category) when the folder has one: {"<source>/<stem>": category}."""
    index = folder / "index.csv"
    if not index.is_file():
        return {}
    with open(index, newline="") as handle:
        return {f"{row['source']}/{Path(row['image']).stem}": row["category"] for row in csv.DictReader(handle)}


def held_out_by_category(names: list[str], categories: list[str], share: float = 0.125,
                         least: int = 2) -> set[str]:
    """The held-out names: in each category the ``share`` (at least ``least``) with the lowest md5 of the name.

    Per category, so every kind of subject (even one with nine photos) is on both sides; by
    hash, so the split is stable as folders grow.
    """
    by_category: dict[str, list[str]] = {}
    for name, category in zip(names, categories):
        by_category.setdefault(category, []).append(name)
    held = set()
    for members in by_category.values():
        ranked = sorted(members, key=lambda n: hashlib.md5(n.encode()).hexdigest())
        held.update(ranked[:min(len(ranked) - 1, max(least, round(len(ranked) * share)))])
    return held


def load_object_photos(folders: Iterable[str | os.PathLike], held_out: bool) -> ObjectPhotos:
    """Every ``images/`` folder below ``folders``, on one side of the per-category split."""
    entries: list[tuple[Path, str, str]] = []
    for root in map(Path, folders):
        if not root.is_dir():
            raise FileNotFoundError(f"object photos not found: {root}")
        categories = _categories(root)
        for image_dir in sorted(p for p in root.rglob("images") if p.is_dir()):
            for path in sorted(image_dir.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    name = f"{image_dir.parent.name}/{path.stem}"
                    entries.append((path, name, categories.get(name, image_dir.parent.name)))
    held = held_out_by_category([e[1] for e in entries], [e[2] for e in entries])
    photos = ObjectPhotos()
    for path, name, category in entries:
        if (name in held) != held_out:
            continue
        try:
            image = read_image(path)
        except ImageReadError:
            continue
        photos.stems.append(name), photos.images.append(image), photos.categories.append(category)
        mask_path = path.parent.parent / "masks" / f"{path.stem}.png"
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) if mask_path.is_file() else None
        if mask is not None and mask.shape == image.shape[:2]:
            cut = photos.cutouts
            cut.stems.append(name), cut.images.append(image), cut.alphas.append(mask), cut.fgs.append(image)
    return photos


# ------------------------------------------------------------------ people


@dataclass
class _Person:
    """One person cut to its box: float alpha (0..1) and foreground colours, and which sides the photo cut."""

    alpha: np.ndarray
    fg: np.ndarray
    cut: dict[str, bool]


def cut_person(alpha: np.ndarray, fg: np.ndarray) -> _Person | None:
    """The person's box (alpha > 8/255) and the photo edges that cut through the person."""
    ys, xs = np.nonzero(alpha > 8)
    if not len(ys):
        return None
    solid = alpha > 127
    edges = {"top": solid[0], "bottom": solid[-1], "left": solid[:, 0], "right": solid[:, -1]}
    cut = {side: bool(line.mean() > CUT_SHARE) for side, line in edges.items()}
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return _Person(alpha[top:bottom, left:right].astype(np.float32) / 255.0,
                   fg[top:bottom, left:right].astype(np.float32), cut)


def _scaled(person: _Person, height: int) -> _Person:
    h, w = person.alpha.shape
    scale = height / h
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return _Person(cv2.resize(person.alpha, size, interpolation=interp),
                   cv2.resize(person.fg, size, interpolation=interp), person.cut)


def _person_height(person: _Person, crop: int, rng: np.random.Generator, max_width: float) -> int:
    """25-80% of the crop (all of it when the photo cut both top and bottom), no wider than ``max_width`` x crop."""
    h, w = person.alpha.shape
    height = crop if person.cut["top"] and person.cut["bottom"] else round(crop * rng.uniform(0.25, 0.8))
    return max(8, min(height, round(max_width * crop * h / max(1, w))))


def _position(size: tuple[int, int], cut: dict[str, bool], crop: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left: cut sides on the crop's edges; free sides anywhere, up to a quarter out of frame."""
    h, w = size
    if cut["bottom"]:
        top = crop - h
    elif cut["top"]:
        top = 0
    elif rng.random() < 0.6:  # standing on the ground: the feet at (or just below) the bottom
        top = crop - h + int(rng.integers(0, max(1, h // 8)))
    else:
        top = int(rng.integers(-h // 4, max(-h // 4 + 1, crop - 3 * h // 4)))
    if cut["left"] and not cut["right"]:
        left = 0
    elif cut["right"] and not cut["left"]:
        left = crop - w
    elif cut["left"] and cut["right"]:
        left = 0 if rng.random() < 0.5 else crop - w  # the other cut side is hidden by a pair's seam
    else:
        left = int(rng.integers(-w // 4, max(-w // 4 + 1, crop - 3 * w // 4)))
    return top, left


def _add_layer(canvas: np.ndarray, alpha: np.ndarray, fg: np.ndarray, person: _Person, top: int, left: int) -> None:
    """Composite ``person`` over the canvas in place; the target alpha and foreground colours follow it."""
    windows = clip_window(canvas.shape, person.alpha.shape, top, left)
    if windows is None:
        return
    window, of_person = windows
    a = person.alpha[of_person][..., None]
    colour = person.fg[of_person]
    canvas[window] = colour * a + canvas[window] * (1 - a)
    below = alpha[window][..., None]
    union = a + below * (1 - a)
    fg[window] = (colour * a + fg[window] * below * (1 - a)) / np.maximum(union, 1e-6)
    alpha[window] = union[..., 0]


# -------------------------------------------------------------- background


def _backdrop(backgrounds: list[np.ndarray], photos: list[np.ndarray], crop: int,
              rng: np.random.Generator) -> np.ndarray:
    """An object photo covering the crop (aspect kept), or a scene with an object photo shown whole on it."""
    choice = rng.random()
    if photos and (choice < 0.65 or not backgrounds):
        return cover_crop(photos[int(rng.integers(len(photos)))], crop, crop, rng).astype(np.float32)
    scene = cover_crop(backgrounds[int(rng.integers(len(backgrounds)))], crop, crop, rng).astype(np.float32)
    if photos and choice < 0.9:
        photo = photos[int(rng.integers(len(photos)))]
        side = rng.uniform(0.45, 0.95) * crop
        scale = side / max(photo.shape[:2])
        size = (max(1, round(photo.shape[1] * scale)), max(1, round(photo.shape[0] * scale)))
        shown = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        top = int(rng.integers(-size[1] // 5, crop - 4 * size[1] // 5 + 1))
        left = int(rng.integers(-size[0] // 5, crop - 4 * size[0] // 5 + 1))
        on_scene, of_photo = clip_window(scene.shape, shown.shape, top, left)  # a fifth out at most: never None
        scene[on_scene] = shown[of_photo]
    return scene


def _pair_seam(crop: int, first: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, str]:
    """Where the object photo of a side-by-side pair begins, and on which side of the first person it lies.

    ``first`` is the first person's (left, width, aligned) with aligned -1 (left edge), 1 (right edge) or 0;
    the seam lies at the person's far side, cutting up to 15% into them (the photo is in front there).
    """
    left, width, aligned = first
    side = "right" if aligned < 0 or (aligned == 0 and rng.random() < 0.5) else "left"
    overlap = int(width * rng.uniform(0.0, 0.15))
    seam = left + width - overlap if side == "right" else left + overlap
    return int(np.clip(seam, crop // 5, crop - crop // 5)), side


def zoom_out_scene(
    people: CachedSet, first: tuple[np.ndarray, np.ndarray], backgrounds: list[np.ndarray],
    photos: list[np.ndarray], crop: int, rng: np.random.Generator, pair_prob: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A crop x crop scene: 1-3 smaller people over an object photo; (image, person alpha, fg), all uint8.

    ``first`` is the sample's own person (alpha, fg) after its augmentation; more people come
    from ``people``. A first person cut on both left and right always becomes a side-by-side
    pair, so the far cut is hidden by the seam. None when the first alpha has no person.
    """
    person = cut_person(*first)
    if person is None or not (backgrounds or photos):
        return None
    canvas = _backdrop(backgrounds, photos, crop, rng)
    alpha = np.zeros((crop, crop), np.float32)
    fg = canvas.copy()
    count = 1 + int(rng.random() < 0.3) + int(rng.random() < 0.1)
    pair = photos and (rng.random() < pair_prob or (person.cut["left"] and person.cut["right"]))
    placed = None
    for i in range(count):
        if i:
            k = int(rng.integers(len(people)))
            person = cut_person(people.alphas[k], people.fgs[k])
            if person is None or (person.cut["left"] and person.cut["right"]):  # only the first gets a seam
                continue
        if rng.random() < 0.5:
            person = _Person(person.alpha[:, ::-1], person.fg[:, ::-1],
                             {**person.cut, "left": person.cut["right"], "right": person.cut["left"]})
        person = _scaled(person, _person_height(person, crop, rng, 0.7 if pair else 1.2))
        top, left = _position(person.alpha.shape, person.cut, crop, rng)
        _add_layer(canvas, alpha, fg, person, top, left)
        if placed is None:
            aligned = -1 if left == 0 and person.cut["left"] else (1 if person.cut["right"] else 0)
            placed = (left, person.alpha.shape[1], aligned)
    if pair and placed is not None:
        seam, side = _pair_seam(crop, placed, rng)
        photo = cover_crop(photos[int(rng.integers(len(photos)))], crop, crop, rng).astype(np.float32)
        region = (slice(None), slice(seam, None)) if side == "right" else (slice(None), slice(0, seam))
        canvas[region] = photo[region]
        alpha[region] = 0
    return to_u8(canvas), to_u8(alpha * 255), to_u8(fg)


# -------------------------------------------------------------- evaluation


def object_scene_set(people: CachedSet, photos: ObjectPhotos, count: int, side: int = 384,
                     seed: int = 11) -> CachedSet:
    """Held-out people over held-out object photos, and the photos alone: the failure, as a fixed set.

    Of every three samples, one is a person in the photo's own framing over an object photo
    covering the frame, one is a person at 45-75% of a ``side`` x ``side`` square over an object
    photo (cut sides on the edges, free ones on the ground), and one is an object photo alone
    (target 0). Stems start with the object photo's category (``<category>__...``) for per-category
    figures. Plain geometry, not the training sampler's: the set judges, it does not mirror.
    """
    rng = np.random.default_rng(seed)
    stems, images, alphas = [], [], []
    order = rng.permutation(len(photos))
    for i in range(count):
        k = int(order[i % len(order)])
        photo, category = photos.images[k], photos.categories[k]
        name = photos.stems[k].replace("/", "_")
        if i % 3 == 2:
            stems.append(f"{category}__alone__{name}")
            images.append(photo), alphas.append(np.zeros(photo.shape[:2], np.uint8))
            continue
        j = int(rng.integers(len(people)))
        alpha, fg = people.alphas[j], people.fgs[j]
        if i % 3 == 0:
            h, w = alpha.shape
            canvas = cover_crop(photo, h, w, rng).astype(np.float32)
            a = alpha.astype(np.float32)[..., None] / 255.0
            image, target = canvas * (1 - a) + fg.astype(np.float32) * a, alpha
        else:
            person = cut_person(alpha, fg)
            if person is None:
                continue
            person = _scaled(person, round(side * rng.uniform(0.45, 0.75)))
            canvas = cover_crop(photo, side, side, rng).astype(np.float32)
            matte, colours = np.zeros((side, side), np.float32), canvas.copy()
            _add_layer(canvas, matte, colours, person, *_position(person.alpha.shape, person.cut, side, rng))
            image, target = canvas, to_u8(matte * 255)
        stems.append(f"{category}__{people.stems[j].replace('/', '_')}__{i}")
        images.append(to_u8(image)), alphas.append(target)
    return CachedSet("objects", stems, images, alphas, list(images))


def category_of(stem: str) -> str:
    """The category an ``object_scene_set`` stem starts with."""
    return Path(stem).name.split("__", 1)[0]

"""Training samples: rescale, crop around the person, flip, colour jitter, new backgrounds, turns, prints.

Every sample is a pure function of (seed, epoch, position), so a resumed run
draws exactly the samples the uninterrupted run would have drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .data import CachedSet
from .distractors import busy_background, negative_image, paste_object, patterned_clothing
from .scenes import zoom_out_scene
from .trimap import trimap_from_matte


@dataclass(frozen=True)
class AugmentConfig:
    crop: int = 256
    scale_min: float = 0.65
    scale_max: float = 1.05
    composite_prob: float = 0.5
    flip_prob: float = 0.5
    jitter: float = 0.2
    person_crop_prob: float = 0.9
    # "is this a person?" samples (train/distractors.py) and hard photometric cases
    object_prob: float = 0.0  # paste a large object (behind or in front of the person)
    object_touch_prob: float = 0.0  # such an object placed on the person's outline (touching, overlapping)
    negative_prob: float = 0.0  # a sample without a person: object frame, scene or collage, target 0
    busy_background_prob: float = 0.0  # a composite's background becomes a collage or a recoloured scene
    grey_prob: float = 0.0
    low_light_prob: float = 0.0
    # a composite's person turned by up to rotate_max_degrees either way (tilted cameras, people lying down)
    rotate_prob: float = 0.0
    rotate_max_degrees: float = 90.0
    # busy, saturated patches inside the person (printed clothes, ribbon bars, badges) that stay foreground
    patch_prob: float = 0.0
    # share of composites that become zoom-out scenes (train/scenes.py): smaller people over object photos
    zoom_out_prob: float = 0.0


def _rescale(arrays: list[np.ndarray], scale: float) -> list[np.ndarray]:
    h, w = arrays[0].shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return [cv2.resize(a, size, interpolation=interp) for a in arrays]


def _crop_origin(alpha: np.ndarray, crop: int, rng: np.random.Generator, around_person: bool) -> tuple[int, int]:
    h, w = alpha.shape
    if around_person:
        ys, xs = np.nonzero(alpha > 127)
        if len(ys):
            pick = rng.integers(len(ys))
            cy, cx = int(ys[pick]), int(xs[pick])
            top = int(np.clip(cy - rng.integers(0, crop), 0, max(0, h - crop)))
            left = int(np.clip(cx - rng.integers(0, crop), 0, max(0, w - crop)))
            return top, left
    return int(rng.integers(0, max(1, h - crop + 1))), int(rng.integers(0, max(1, w - crop + 1)))


def _pad_to(array: np.ndarray, crop: int) -> np.ndarray:
    h, w = array.shape[:2]
    if h >= crop and w >= crop:
        return array
    pad = ((0, max(0, crop - h)), (0, max(0, crop - w))) + ((0, 0),) * (array.ndim - 2)
    return np.pad(array, pad, mode="reflect" if min(h, w) > 1 else "edge")


def colour_jitter(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast, saturation and a small hue shift, in float HSV."""
    if strength <= 0:
        return image
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-0.05, 0.05) * 255) % 256
    hsv[..., 1] *= rng.uniform(1 - strength, 1 + strength)
    hsv[..., 2] *= rng.uniform(1 - strength, 1 + strength)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).astype(np.float32)
    mean = out.mean()
    out = (out - mean) * rng.uniform(1 - strength, 1 + strength) + mean
    return np.clip(out, 0, 255).astype(np.uint8)


def photometric(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Greyscale and low light (dark, gamma-lifted shadows, sensor noise): photos the data lacks."""
    if rng.random() < cfg.grey_prob:
        image = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    if rng.random() < cfg.low_light_prob:
        dark = (image.astype(np.float32) / 255.0) ** rng.uniform(1.2, 2.2) * rng.uniform(0.15, 0.5) * 255
        dark += rng.normal(0, rng.uniform(1, 6), dark.shape)
        image = np.clip(dark + 0.5, 0, 255).astype(np.uint8)
    return image


def rotate_person(alpha: np.ndarray, fg: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The cut-out person (alpha, foreground colours) turned by ``degrees`` on a canvas that holds all of it.

    Only composites are turned: their new background fills the corners that the turn
    exposes, so no made-up border pixels get a label.
    """
    h, w = alpha.shape
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(turn[0, 0]), abs(turn[0, 1])
    out_w, out_h = max(1, round(h * sin + w * cos)), max(1, round(h * cos + w * sin))
    turn[:, 2] += ((out_w - w) / 2, (out_h - h) / 2)
    alpha = cv2.warpAffine(alpha, turn, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=0)
    fg = cv2.warpAffine(fg, turn, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return alpha, fg


def _background(backgrounds: list[np.ndarray], objects: CachedSet | None, height: int, width: int,
                cfg: AugmentConfig, rng: np.random.Generator, photos: list[np.ndarray] | None = None) -> np.ndarray:
    if rng.random() < cfg.busy_background_prob:
        return busy_background(backgrounds, objects, height, width, rng, photos)
    bg = backgrounds[rng.integers(len(backgrounds))]
    return cv2.resize(bg, (width, height), interpolation=cv2.INTER_AREA)


def make_sample(
    data: CachedSet, index: int, backgrounds: list[np.ndarray], cfg: AugmentConfig, rng: np.random.Generator,
    objects: CachedSet | None = None, photos: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented (RGB uint8 crop, float32 alpha crop) pair.

    ``photos``: person-free object photos (train/scenes.py) for zoom-out scenes, negatives and collages.
    """
    image, alpha, fg = data.images[index], data.alphas[index], data.fgs[index]
    image, alpha, fg = _rescale([image, alpha, fg], rng.uniform(cfg.scale_min, cfg.scale_max))
    if cfg.negative_prob and rng.random() < cfg.negative_prob and (backgrounds or objects is not None):
        image = negative_image(backgrounds, objects, image.shape[0], image.shape[1], rng, photos)
        alpha = np.zeros(image.shape[:2], np.uint8)
    else:
        if cfg.patch_prob and rng.random() < cfg.patch_prob:  # no draw at 0: older streams stay as they were
            image, fg = patterned_clothing(image, fg, alpha, backgrounds, rng)
        if backgrounds and rng.random() < cfg.composite_prob:
            scene = None
            if cfg.zoom_out_prob and rng.random() < cfg.zoom_out_prob:  # no draw at 0: older streams stay
                scene = zoom_out_scene(data, (alpha, fg), backgrounds, photos or [], cfg.crop, rng)
            if scene is not None:
                image, alpha, fg = scene
            else:
                if cfg.rotate_prob and rng.random() < cfg.rotate_prob:  # no draw at 0: older streams stay
                    alpha, fg = rotate_person(alpha, fg, rng.uniform(-cfg.rotate_max_degrees, cfg.rotate_max_degrees))
                bg = _background(backgrounds, objects, alpha.shape[0], alpha.shape[1], cfg, rng, photos)
                a = alpha[..., None].astype(np.float32) / 255.0
                image = (fg * a + bg * (1 - a) + 0.5).astype(np.uint8)
        if objects is not None and len(objects) and rng.random() < cfg.object_prob:
            image, alpha = paste_object(image, alpha, fg, objects, rng, touch_prob=cfg.object_touch_prob)
    image, alpha = _pad_to(image, cfg.crop), _pad_to(alpha, cfg.crop)
    top, left = _crop_origin(alpha, cfg.crop, rng, rng.random() < cfg.person_crop_prob)
    image = image[top:top + cfg.crop, left:left + cfg.crop]
    alpha = alpha[top:top + cfg.crop, left:left + cfg.crop]
    if rng.random() < cfg.flip_prob:
        image, alpha = image[:, ::-1], alpha[:, ::-1]
    image = colour_jitter(np.ascontiguousarray(image), rng, cfg.jitter)
    image = photometric(image, rng, cfg)
    return image, np.ascontiguousarray(alpha).astype(np.float32) / 255.0


class MattingSamples(Dataset):
    """Index = position in an endless stream; the stream is fixed by ``seed``.

    Each epoch visits photo ``i`` ``repeats[i]`` times (once each without ``repeats``), in a
    seed-dependent order; with all repeats 1 the stream is the one runs before repeats existed saw.
    """

    def __init__(self, data: CachedSet, backgrounds: list[np.ndarray], cfg: AugmentConfig, seed: int,
                 objects: CachedSet | None = None, repeats: Sequence[int] | None = None,
                 photos: list[np.ndarray] | None = None) -> None:
        self.data, self.backgrounds, self.cfg, self.seed, self.objects = data, backgrounds, cfg, seed, objects
        self.photos = photos
        if repeats is not None and len(repeats) != len(data):
            raise ValueError(f"{len(repeats)} repeats for {len(data)} photos")
        self.pool = np.arange(len(data)) if repeats is None else np.repeat(np.arange(len(data)), repeats)

    def __len__(self) -> int:
        return len(self.pool)

    def sample_index(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.pool))
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.pool))
        return int(self.pool[order[offset]])

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 1, position])
        image, alpha = make_sample(self.data, self.sample_index(position), self.backgrounds, self.cfg, rng,
                                   self.objects, self.photos)
        trimap = trimap_from_matte(alpha, rng)
        x = torch.from_numpy(image).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
        return {"image": x, "matte": torch.from_numpy(alpha)[None], "trimap": torch.from_numpy(trimap)[None]}


class StreamSampler(Sampler[int]):
    """Positions ``start, start+1, ...`` (endless): resuming means starting later."""

    def __init__(self, start: int = 0, stride: int = 1, offset: int = 0) -> None:
        self.start, self.stride, self.offset = start, stride, offset

    def __iter__(self):
        position = self.start + self.offset
        while True:
            yield position
            position += self.stride

    def __len__(self) -> int:  # pragma: no cover - endless
        return 2**62

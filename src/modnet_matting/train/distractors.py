"""Samples that teach "salient is not person": objects beside people, no-person crops, busy scenes.

Every training photo's salient thing is a person and the composite backgrounds are
quiet scenes, so a network learns "salient = foreground" and keeps a big animal,
a car or a painting behind a person. These helpers make the counter-examples:

* ``paste_object``: an object cut out with its mask (animals and cars of
  ``davis_objects``) placed at large scale behind the person (target unchanged) or
  in front of it (target occluded);
* ``negative_image``: an object frame, a background crop or a collage, with an
  all-zero target;
* ``busy_background``: a collage of crops of backgrounds and object frames, or a
  background with strong colour and contrast changes applied to it alone.

All draw from a numpy Generator, so the sample stream stays a pure function of
(seed, position). ``distractor_validation`` builds the fixed held-out set that
shows the failure.
"""

from __future__ import annotations

import cv2
import numpy as np

from .data import CachedSet, is_held_out


def sequence_of(stem: str) -> str:
    """Frames are named ``<sequence>_<frame>``: the split is by sequence, so no scene is on both sides."""
    return stem.rsplit("/", 1)[-1].rsplit("_", 1)[0]


#: One sequence in three is held out (md5 of its name): with DAVIS's ten object sequences that keeps
#: car-shadow, goat and libby (a dog), animals and a car, out of training.
SEQUENCE_FOLD = 3


def split_by_sequence(objects: CachedSet, held_out: bool) -> CachedSet:
    keep = [i for i, s in enumerate(objects.stems) if is_held_out(sequence_of(s), SEQUENCE_FOLD) == held_out]
    return objects.take(keep)


def _bbox(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(alpha > 127)
    if not len(ys):
        return None
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def _cut_object(objects: CachedSet, index: int, height: int, rng: np.random.Generator):
    """The object of one frame, cropped to its mask and scaled so its height is ``height`` px."""
    alpha = objects.alphas[index]
    box = _bbox(alpha)
    if box is None:
        return None
    top, bottom, left, right = box
    rgb, a = objects.fgs[index][top:bottom, left:right], alpha[top:bottom, left:right]
    scale = height / max(1, bottom - top)
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    if rng.random() < 0.5:
        rgb, a = rgb[:, ::-1], a[:, ::-1]
    return cv2.resize(np.ascontiguousarray(rgb), size), cv2.resize(np.ascontiguousarray(a), size)


def _place(canvas_shape: tuple[int, int], size: tuple[int, int], rng: np.random.Generator):
    """Random top-left so that at least half of the object (each way) is on the canvas."""
    (h, w), (oh, ow) = canvas_shape, size
    top = int(rng.integers(-oh // 2, max(-oh // 2 + 1, h - oh // 2)))
    left = int(rng.integers(-ow // 2, max(-ow // 2 + 1, w - ow // 2)))
    return top, left


def _place_touching(
    person: np.ndarray, object_alpha: np.ndarray, rng: np.random.Generator,
) -> tuple[int, int] | None:
    """Top-left that puts a random pixel of the object on a random edge pixel of the person.

    The failures that remain are objects that touch or overlap the person (a child holding a
    goat): uniform placement mostly puts the object beside the person instead.
    """
    solid = (person > 127).astype(np.uint8)
    edge = np.argwhere(solid != cv2.erode(solid, np.ones((3, 3), np.uint8)))
    inside = np.argwhere(object_alpha > 127)
    if not len(edge) or not len(inside):
        return None
    (py, px), (oy, ox) = edge[rng.integers(len(edge))], inside[rng.integers(len(inside))]
    return int(py - oy), int(px - ox)


Window = tuple[slice, slice]


def clip_window(canvas_shape: tuple[int, ...], size: tuple[int, ...], top: int,
                left: int) -> tuple[Window, Window] | None:
    """Where an array of ``size`` placed at (top, left) lands on the canvas: (canvas window, array window),
    clipped at the borders; None when nothing of it is on the canvas."""
    (h, w), (sh, sw) = canvas_shape[:2], size[:2]
    y0, x0, y1, x1 = max(0, top), max(0, left), min(h, top + sh), min(w, left + sw)
    if y1 <= y0 or x1 <= x0:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))


def _layer(canvas_shape: tuple[int, int], rgb: np.ndarray, alpha: np.ndarray, top: int, left: int):
    """The object as full-canvas float layers (colour and alpha in 0..1), clipped at the borders."""
    h, w = canvas_shape
    colour = np.zeros((h, w, 3), np.float32)
    cover = np.zeros((h, w), np.float32)
    windows = clip_window(canvas_shape, rgb.shape, top, left)
    if windows is not None:
        on_canvas, of_object = windows
        colour[on_canvas] = rgb[of_object]
        cover[on_canvas] = alpha[of_object] / 255.0
    return colour, cover


def paste_object(
    image: np.ndarray, alpha: np.ndarray, fg: np.ndarray, objects: CachedSet, rng: np.random.Generator,
    in_front_prob: float = 0.25, touch_prob: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Put a large object into a person photo; returns (image, person alpha), both uint8.

    Behind the person, ``fg * a + (B (1 - o) + O o)(1 - a)`` is written without knowing
    B as ``image - fg a`` = ``B (1 - a)``; in front, the object covers both and the
    person's alpha becomes ``a (1 - o)``. With ``touch_prob`` the object is placed on the
    person's outline instead of anywhere (no draw at 0, so older sample streams stay as they were).
    """
    h, w = alpha.shape
    cut = _cut_object(objects, int(rng.integers(len(objects))), round(h * rng.uniform(0.5, 1.2)), rng)
    if cut is None:
        return image, alpha
    rgb, mask = cut
    origin = _place_touching(alpha, mask, rng) if touch_prob and rng.random() < touch_prob else None
    colour, cover = _layer((h, w), rgb, mask, *(origin or _place((h, w), mask.shape, rng)))
    a = alpha.astype(np.float32)[..., None] / 255.0
    o = cover[..., None]
    img, person = image.astype(np.float32), fg.astype(np.float32)
    if rng.random() < in_front_prob:
        out, target = img * (1 - o) + colour * o, a[..., 0] * (1 - cover)
    else:
        out, target = person * a + (img - person * a) * (1 - o) + colour * o * (1 - a), a[..., 0]
    return to_u8(out), to_u8(target * 255)


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def cover_crop(image: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Scale ``image`` to cover height x width (with up to 1.6x zoom) and crop at random."""
    ih, iw = image.shape[:2]
    scale = max(height / ih, width / iw) * rng.uniform(1.0, 1.6)
    size = (max(width, round(iw * scale)), max(height, round(ih * scale)))
    scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top = int(rng.integers(0, size[1] - height + 1))
    left = int(rng.integers(0, size[0] - width + 1))
    return scaled[top:top + height, left:left + width]


def strong_colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Saturated, high-contrast, hue-rotated or inverted: art-like variants of a scene."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(0, 256)) % 256
    hsv[..., 1] = hsv[..., 1] * rng.uniform(1.2, 2.5)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).astype(np.float32)
    out = (out - 128) * rng.uniform(1.2, 2.0) + 128
    if rng.random() < 0.2:
        out = 255 - out
    return to_u8(out)


def collage(sources: list[np.ndarray], height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A grid of 2-4 x 2-4 crops of other images, some recoloured: busy over the whole frame."""
    rows, cols = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    ys = np.linspace(0, height, rows + 1).astype(int)
    xs = np.linspace(0, width, cols + 1).astype(int)
    out = np.empty((height, width, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            tile = cover_crop(sources[int(rng.integers(len(sources)))], ys[r + 1] - ys[r], xs[c + 1] - xs[c], rng)
            out[ys[r]:ys[r + 1], xs[c]:xs[c + 1]] = strong_colour(tile, rng) if rng.random() < 0.4 else tile
    return out


def busy_background(
    backgrounds: list[np.ndarray], objects: CachedSet | None, height: int, width: int, rng: np.random.Generator,
    photos: list[np.ndarray] | None = None,
) -> np.ndarray:
    """A collage of backgrounds, object frames and object photos, or one recoloured scene."""
    sources = backgrounds + (objects.images if objects is not None else []) + (photos or [])
    if rng.random() < 0.5:
        return collage(sources, height, width, rng)
    return strong_colour(cover_crop(sources[int(rng.integers(len(sources)))], height, width, rng), rng)


def negative_image(
    backgrounds: list[np.ndarray], objects: CachedSet | None, height: int, width: int, rng: np.random.Generator,
    photos: list[np.ndarray] | None = None,
) -> np.ndarray:
    """An image with no person in it: an object photo (half the time, when given), else an object frame (half
    the time), a scene, or a busy collage. No draw for photos when there are none: older streams stay."""
    if photos and rng.random() < 0.5:
        return cover_crop(photos[int(rng.integers(len(photos)))], height, width, rng)
    choice = rng.random()
    if objects is not None and len(objects) and choice < 0.5:
        return cover_crop(objects.images[int(rng.integers(len(objects)))], height, width, rng)
    if choice < 0.8 and backgrounds:
        return cover_crop(backgrounds[int(rng.integers(len(backgrounds)))], height, width, rng)
    return busy_background(backgrounds, objects, height, width, rng, photos)


def _stripes(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Bands (or checks) of saturated colours: ribbon bars, striped shirts, badges."""
    bands = int(rng.integers(3, 11))
    colours = rng.integers(0, 256, (bands, 3))
    along = (np.arange(width) * bands // max(1, width))[None, :].repeat(height, 0)
    if rng.random() < 0.3:  # checks
        rows = (np.arange(height) * bands // max(1, height))[:, None]
        along = (along + rows) % bands
    elif rng.random() < 0.3:  # horizontal bands
        along = (np.arange(height) * bands // max(1, height))[:, None].repeat(width, 1)
    return colours[along].astype(np.uint8)


def patterned_clothing(
    image: np.ndarray, fg: np.ndarray, alpha: np.ndarray, backgrounds: list[np.ndarray], rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Busy, saturated patches painted inside the opaque person; returns (image, fg), alpha unchanged.

    The counterweight to the busy backgrounds and pasted objects: those teach that a colourful
    thing is not a person, so without this the network cuts colourful patches out of people
    (a ribbon bar on a dark uniform, a printed shirt). Each patch lies wholly inside the
    person's opaque region and keeps the shading of what it covers, so it reads as print on
    the clothes, not as an object in front of them.
    """
    opaque = (alpha >= 250).astype(np.uint8)
    ys, xs = np.nonzero(opaque)
    if not len(ys):
        return image, fg
    person_width = int(xs.max() - xs.min() + 1)
    body_top = int(ys.min() + (ys.max() - ys.min()) / 3)
    image, fg = image.copy(), fg.copy()
    for _ in range(int(rng.integers(1, 4))):
        pw = max(6, round(person_width * rng.uniform(0.08, 0.35)))
        ph = max(4, round(pw * rng.uniform(0.15, 1.0)))
        # centres whose whole patch is opaque person (and on the image: outside counts as background)
        inside = cv2.erode(opaque, np.ones((ph + 2, pw + 2), np.uint8), borderType=cv2.BORDER_CONSTANT,
                           borderValue=0)
        inside[:body_top] = 0  # clothes: below the top third of the person (upright; turns come later)
        cy, cx = np.nonzero(inside)
        if not len(cy):
            continue
        pick = int(rng.integers(len(cy)))
        top, left = int(cy[pick]) - ph // 2, int(cx[pick]) - pw // 2
        if backgrounds and rng.random() < 0.5:
            texture = strong_colour(cover_crop(backgrounds[int(rng.integers(len(backgrounds)))], ph, pw, rng), rng)
        else:
            texture = _stripes(ph, pw, rng)
        shape = np.ones((ph, pw), np.float32)
        if rng.random() < 0.4:
            half = (pw // 2, ph // 2)
            shape = cv2.ellipse(np.zeros((ph, pw), np.float32), half, half, 0, 0, 360, 1, -1)
        weight = (shape * rng.uniform(0.75, 1.0))[..., None]
        window = (slice(top, top + ph), slice(left, left + pw))
        for target in (image, fg):
            under = target[window].astype(np.float32)
            shade = under.mean(axis=2, keepdims=True) / max(1.0, float(under.mean()))
            painted = texture.astype(np.float32) * np.clip(shade, 0.3, 1.6)
            target[window] = to_u8(under * (1 - weight) + painted * weight)
    return image, fg


def distractor_validation(
    people: CachedSet, objects: CachedSet, backgrounds: list[np.ndarray], count: int = 40, seed: int = 7
) -> CachedSet:
    """Held-out people over held-out scenes with held-out objects pasted large, plus object frames alone.

    Three in four samples are composites (one in four of those with the object in
    front); the rest are the object frames themselves, whose person alpha is 0.
    """
    rng = np.random.default_rng(seed)
    stems, images, alphas, fgs = [], [], [], []
    for i in range(count):
        if i % 4 == 3:
            k = int(rng.integers(len(objects)))
            image = objects.images[k]
            alpha = np.zeros(image.shape[:2], np.uint8)
            stems.append(f"object_{objects.stems[k]}")
            images.append(image), alphas.append(alpha), fgs.append(image)
            continue
        k = int(rng.integers(len(people)))
        fg, alpha = people.fgs[k], people.alphas[k]
        h, w = alpha.shape
        bg = cover_crop(backgrounds[int(rng.integers(len(backgrounds)))], h, w, rng).astype(np.float32)
        a = alpha.astype(np.float32)[..., None] / 255.0
        image = to_u8(fg * a + bg * (1 - a))
        image, alpha = paste_object(image, alpha, fg, objects, rng)
        stems.append(f"{people.stems[k]}__{i}")
        images.append(image), alphas.append(alpha), fgs.append(fg)
    return CachedSet("distractors", stems, images, alphas, fgs)


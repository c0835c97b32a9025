"""Distractor samples: objects pasted beside people, no-person samples, busy scenes, the validation set."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from modnet_matting.evaluate.metrics import false_foreground
from modnet_matting.train.augment import AugmentConfig, make_sample, photometric
from modnet_matting.train.data import CachedSet
from modnet_matting.train.distractors import (
    busy_background,
    distractor_validation,
    paste_object,
    split_by_sequence,
)
from modnet_matting.train.synthetic import synthetic_backgrounds, synthetic_set


def object_set(sequences: tuple[str, ...] = ("cows", "dog", "goat", "camel"), frames: int = 3) -> CachedSet:
    """Frames named <sequence>_<frame> with a bright square object in the middle."""
    rng = np.random.default_rng(4)
    stems, images, alphas = [], [], []
    for sequence in sequences:
        for frame in range(frames):
            image = rng.integers(0, 80, (60, 80, 3), dtype=np.uint8)
            alpha = np.zeros((60, 80), np.uint8)
            alpha[15:45, 20:60] = 255
            image[alpha > 0] = (250, 200, 30)
            stems.append(f"{sequence}_{frame:05d}")
            images.append(image), alphas.append(alpha)
    return CachedSet("objects", stems, images, alphas, [im.copy() for im in images])


def test_object_behind_the_person_leaves_the_person_and_its_alpha_alone() -> None:
    people = synthetic_set(1, 96, 80)
    image, alpha, fg = people.images[0], people.alphas[0], people.fgs[0]
    for seed in range(20):
        rng = np.random.default_rng(seed)
        out, target = paste_object(image, alpha, fg, object_set(), rng, in_front_prob=0.0)
        assert np.array_equal(target, alpha)
        solid = alpha == 255
        assert np.abs(out[solid].astype(int) - image[solid].astype(int)).max() <= 1
    changed = np.abs(out.astype(int) - image.astype(int)).sum(2) > 30
    assert changed[alpha == 0].mean() > 0.05  # the object is visible where there is no person


def test_object_in_front_occludes_the_person_alpha() -> None:
    people = synthetic_set(1, 96, 80)
    image, alpha, fg = people.images[0], people.alphas[0], people.fgs[0]
    rng = np.random.default_rng(1)
    out, target = paste_object(image, alpha, fg, object_set(), rng, in_front_prob=1.0)
    assert (target <= alpha).all() and target.sum() < alpha.sum()
    occluded = (alpha == 255) & (target == 0)
    assert np.abs(out[occluded].astype(int) - (250, 200, 30)).max() <= 1


def test_touching_objects_always_reach_the_person() -> None:
    """On a wide photo with a narrow person, anywhere-placement often misses; on the outline never."""
    image = np.full((120, 600, 3), 40, np.uint8)
    alpha = np.zeros((120, 600), np.uint8)
    alpha[40:120, 280:320] = 255
    fg = np.full_like(image, 200)

    def occludes(seed: int, touch_prob: float) -> bool:
        rng = np.random.default_rng(seed)
        _, target = paste_object(image, alpha, fg, object_set(), rng, in_front_prob=1.0, touch_prob=touch_prob)
        return bool((target < alpha).any())

    assert all(occludes(seed, 1.0) for seed in range(30))
    assert not all(occludes(seed, 0.0) for seed in range(30))


def test_negative_samples_have_no_person() -> None:
    cfg = AugmentConfig(crop=64, negative_prob=1.0, jitter=0.0)
    for seed in range(6):
        image, alpha = make_sample(synthetic_set(2), 0, synthetic_backgrounds(3), cfg, np.random.default_rng(seed),
                                   object_set())
        assert image.shape == (64, 64, 3) and alpha.shape == (64, 64) and not alpha.any()


def test_busy_background_and_greyscale() -> None:
    rng = np.random.default_rng(0)
    bg = busy_background(synthetic_backgrounds(3), object_set(), 50, 70, rng)
    assert bg.shape == (50, 70, 3) and bg.dtype == np.uint8
    grey = photometric(synthetic_set(1).images[0], rng, AugmentConfig(grey_prob=1.0))
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    dark = photometric(synthetic_set(1).images[0], rng, AugmentConfig(low_light_prob=1.0))
    assert dark.mean() < 0.6 * synthetic_set(1).images[0].mean()


def test_split_by_sequence_keeps_each_sequence_on_one_side() -> None:
    objects = object_set(("blackswan", "camel", "car-roundabout", "car-shadow", "cows", "dog", "goat", "libby"))
    train, held = split_by_sequence(objects, False), split_by_sequence(objects, True)
    sequences = lambda s: {stem.rsplit("_", 1)[0] for stem in s.stems}  # noqa: E731
    assert len(train) + len(held) == len(objects) and len(held) > 0 and len(train) > 0
    assert not sequences(train) & sequences(held)


def test_distractor_validation_is_fixed_and_holds_object_frames_with_zero_alpha() -> None:
    people, objects, scenes = synthetic_set(4, 96, 80), object_set(), synthetic_backgrounds(3, 96, 80)
    first = distractor_validation(people, objects, scenes, count=8)
    again = distractor_validation(people, objects, scenes, count=8)
    assert all(np.array_equal(a, b) for a, b in zip(first.images, again.images))
    alone = [i for i, s in enumerate(first.stems) if s.startswith("object_")]
    assert len(alone) == 2 and all(not first.alphas[i].any() for i in alone)
    assert all(first.alphas[i].any() for i in range(8) if i not in alone)


def test_false_foreground_counts_person_predicted_on_true_background() -> None:
    truth = np.zeros((4, 4), np.float32)
    truth[:2] = 1.0
    pred = np.zeros((4, 4), np.float32)
    pred[:, :1] = 0.9  # 2 of its 4 pixels lie on the background
    assert false_foreground(pred, truth) == pytest.approx(2 / 16)


def test_validation_reports_the_distractor_set_outside_the_mean_iou(tmp_path: Path) -> None:
    from modnet_matting.train.loop import Trainer
    from test_train_loop import tiny_config

    trainer = Trainer(tiny_config(tmp_path, object_prob=0.5, negative_prob=0.2, busy_background_prob=0.5),
                      log=lambda *_: None)
    val = synthetic_set(2, 80, 72, seed=9, name="val")
    trainer.use_data(synthetic_set(12, 80, 72), [val], synthetic_backgrounds(4, 80, 72))
    plain = trainer.validate()
    trainer.objects = object_set()
    trainer.extra_val = [distractor_validation(val, object_set(), synthetic_backgrounds(2, 80, 72), count=4)]
    stats = trainer.run(max_steps=2)
    assert math.isfinite(stats["total"])
    metrics = trainer.validate()
    assert {"mad_distractors", "ff_distractors"} <= metrics.keys()
    assert set(metrics) - {"mad_distractors", "ff_distractors"} == set(plain)

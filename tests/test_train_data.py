"""Dataset folders, the training cache and the augmented sample stream."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from modnet_matting.io import save_image
from modnet_matting.train.augment import AugmentConfig, MattingSamples, StreamSampler, make_sample, rotate_person
from modnet_matting.train.data import CachedSet, build_cache, find_pairs, is_held_out, load_cache
from modnet_matting.train.synthetic import synthetic_backgrounds, synthetic_portrait, synthetic_set


def write_pair(root: Path, name: str, seed: int, image_dir: str = "images", label_dir: str = "masks") -> None:
    image, alpha, _ = synthetic_portrait(96, 80, np.random.default_rng(seed))
    label = np.where(alpha > 127, 255, 0).astype(np.uint8) if label_dir == "masks" else alpha
    save_image(root / image_dir / f"{name}.jpg", image)
    save_image(root / label_dir / f"{name}.png", label)


@pytest.fixture
def messy_set(tmp_path: Path) -> Path:
    """Three good pairs and every kind of problem a real mask set has."""
    root = tmp_path / "people"
    for i in range(3):
        write_pair(root, f"good{i}", i)
    save_image(root / "images" / "nolabel.jpg", np.zeros((96, 80, 3), np.uint8))
    save_image(root / "masks" / "noimage.png", np.zeros((96, 80), np.uint8))
    (root / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    save_image(root / "masks" / "corrupt.png", np.zeros((96, 80), np.uint8))
    save_image(root / "images" / "wrongsize.jpg", np.zeros((50, 60, 3), np.uint8))
    save_image(root / "masks" / "wrongsize.png", np.zeros((96, 80), np.uint8))
    (root / "masks" / "notes.txt").write_text("ignored")
    return root


def test_find_pairs_reports_unpaired_names(messy_set: Path) -> None:
    report = find_pairs(messy_set)
    assert report.kind == "mask"
    assert [p[0].stem for p in report.pairs] == ["corrupt", "good0", "good1", "good2", "wrongsize"]
    assert any("nolabel.jpg" in p for p in report.problems) and any("noimage.png" in p for p in report.problems)


@pytest.mark.parametrize(("image_dir", "label_dir", "kind"), [("image", "matte", "matte"), ("fg", "alpha", "matte")])
def test_find_pairs_other_layouts(tmp_path: Path, image_dir: str, label_dir: str, kind: str) -> None:
    write_pair(tmp_path, "x", 0, image_dir, label_dir)
    report = find_pairs(tmp_path)
    assert report.kind == kind and len(report.pairs) == 1 and not report.problems


def test_unknown_layout_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="images/\\+masks/"):
        find_pairs(tmp_path)


def test_cache_keeps_the_good_samples_and_reports_the_rest(messy_set: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    cache_file = tmp_path / "cache" / "people.npz"
    data = build_cache(messy_set, cache_file, short=64, method="guided", workers=1, log=messages.append)
    assert data.stems == ["good0", "good1", "good2"]
    text = "\n".join(messages)
    for name in ("nolabel.jpg", "noimage.png", "corrupt.jpg", "wrongsize.jpg"):
        assert name in text
    assert "differ" in text
    image, alpha, fg = data.images[0], data.alphas[0], data.fgs[0]
    assert image.shape == fg.shape == (77, 64, 3) and alpha.shape == (77, 64)
    assert image.dtype == alpha.dtype == fg.dtype == np.uint8
    assert 0 < ((alpha > 5) & (alpha < 250)).sum() < alpha.size // 4  # soft edge, hard inside and outside
    again = load_cache(cache_file)
    assert again.stems == data.stems and np.array_equal(again.alphas[2], data.alphas[2])
    assert not list(cache_file.parent.glob("*.tmp*"))


def test_held_out_split_is_stable_and_about_one_in_eight() -> None:
    names = [f"img_{i:05d}" for i in range(4000)]
    held = [n for n in names if is_held_out(n)]
    assert 0.10 < len(held) / len(names) < 0.15
    assert held == [n for n in names if is_held_out(n)]
    data = synthetic_set(40)
    val, train = data.subset(True), data.subset(False)
    assert len(val) + len(train) == 40 and not set(val.stems) & set(train.stems)


def test_sample_stream_is_a_pure_function_of_seed_and_position() -> None:
    data = synthetic_set(5, 96, 80)
    cfg = AugmentConfig(crop=64, scale_min=0.8, scale_max=1.0)
    samples = MattingSamples(data, synthetic_backgrounds(3, 96, 80), cfg, seed=3)
    first, again = samples[7], MattingSamples(data, synthetic_backgrounds(3, 96, 80), cfg, seed=3)[7]
    for key in ("image", "matte", "trimap"):
        assert np.array_equal(first[key].numpy(), again[key].numpy())
    assert first["image"].shape == (3, 64, 64) and first["matte"].shape == first["trimap"].shape == (1, 64, 64)
    assert -1 <= first["image"].min() and first["image"].max() <= 1
    assert set(np.unique(first["trimap"].numpy())) <= {0.0, 0.5, 1.0}
    # Each epoch visits every sample once, in a seed-dependent order.
    assert sorted(samples.sample_index(p) for p in range(5, 10)) == list(range(5))
    assert not np.array_equal(samples[7]["image"].numpy(), MattingSamples(data, [], cfg, seed=4)[7]["image"].numpy())


def test_repeats_weight_a_photo_within_each_epoch() -> None:
    data = synthetic_set(4, 96, 80)
    cfg = AugmentConfig(crop=64, scale_min=0.8, scale_max=1.0)
    plain = MattingSamples(data, [], cfg, seed=3)
    ones = MattingSamples(data, [], cfg, seed=3, repeats=[1, 1, 1, 1])
    assert [ones.sample_index(p) for p in range(12)] == [plain.sample_index(p) for p in range(12)]
    weighted = MattingSamples(data, [], cfg, seed=3, repeats=[1, 1, 1, 3])
    assert len(weighted) == 6
    for epoch in range(3):
        visits = [weighted.sample_index(p) for p in range(6 * epoch, 6 * epoch + 6)]
        assert sorted(visits) == [0, 1, 2, 3, 3, 3]
    with pytest.raises(ValueError, match="3 repeats for 4 photos"):
        MattingSamples(data, [], cfg, seed=3, repeats=[1, 1, 1])


def test_stream_sampler_splits_positions_between_ranks() -> None:
    take = lambda sampler, n: [x for _, x in zip(range(n), sampler)]  # noqa: E731
    single = take(StreamSampler(start=8), 8)
    ranks = [take(StreamSampler(start=8, stride=2, offset=r), 4) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == single == list(range(8, 16))


def tall_bar_person(height: int = 120, width: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """A standing "person": a 10 px wide, 90 px tall bar (alpha, foreground colours)."""
    alpha = np.zeros((height, width), np.uint8)
    alpha[15:105, 45:55] = 255
    fg = np.full((height, width, 3), (200, 60, 30), np.uint8)
    return alpha, fg


def tilt_from_upright(alpha: np.ndarray) -> float:
    """Degrees between the alpha's long axis (from its second moments) and the vertical."""
    m = cv2.moments(alpha.astype(np.float32))
    axis = 0.5 * np.degrees(np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"]))  # from the x axis
    return 90.0 - abs(axis)


def test_a_turned_person_keeps_all_of_itself_and_its_shape() -> None:
    alpha, fg = tall_bar_person()
    lying, lying_fg = rotate_person(alpha, fg, 90)
    assert lying.shape == (100, 120) and lying_fg.shape == (100, 120, 3)  # the canvas turned with it
    ys, xs = np.nonzero(lying > 127)
    assert np.ptp(xs) > 5 * np.ptp(ys) and tilt_from_upright(lying) > 85
    tilted, _ = rotate_person(alpha, fg, 30)
    assert tilted.shape[0] > 120 and tilted.shape[1] > 100  # nothing of the person is cut off
    for turned in (lying, tilted):
        assert turned.astype(float).sum() == pytest.approx(alpha.astype(float).sum(), rel=0.03)
    assert tilt_from_upright(tilted) == pytest.approx(30, abs=3)


def test_rotated_composites_show_people_at_many_tilts_and_none_without_rotation() -> None:
    alpha, fg = tall_bar_person()
    person = CachedSet("bar", ["bar_0000"], [fg.copy()], [alpha], [fg])
    backgrounds = synthetic_backgrounds(2, 120, 100)

    def tilts(rotate_prob: float) -> list[float]:
        cfg = AugmentConfig(crop=96, scale_min=1.0, scale_max=1.0, composite_prob=1.0, jitter=0.0,
                            rotate_prob=rotate_prob, rotate_max_degrees=90)
        return [tilt_from_upright(make_sample(person, 0, backgrounds, cfg, np.random.default_rng(seed))[1])
                for seed in range(12)]

    assert max(tilts(0.0)) < 3
    turned = tilts(1.0)
    assert max(turned) > 45 and min(turned) < max(turned) - 30


def test_printed_patches_stay_inside_the_person_and_keep_it_foreground() -> None:
    """patch_prob paints busy patches on the person only: background, alpha target and shape are untouched."""
    alpha = np.zeros((160, 120), np.uint8)
    alpha[20:150, 30:90] = 255
    colour = np.array((200, 60, 30), np.uint8)
    photo = np.where(alpha[..., None] > 0, colour, np.uint8(90)).astype(np.uint8)
    person = CachedSet("block", ["block_0000"], [photo], [alpha], [np.broadcast_to(colour, photo.shape).copy()])
    backgrounds = synthetic_backgrounds(2, 160, 120)

    def samples(patch_prob: float) -> list[tuple[np.ndarray, np.ndarray]]:
        cfg = AugmentConfig(crop=128, scale_min=1.0, scale_max=1.0, composite_prob=0.0, jitter=0.0,
                            flip_prob=0.0, patch_prob=patch_prob)
        return [make_sample(person, 0, backgrounds, cfg, np.random.default_rng(seed)) for seed in range(10)]

    def painted(image: np.ndarray, target: np.ndarray) -> bool:
        return bool((np.abs(image.astype(int) - colour).max(axis=2)[target == 1] > 30).any())

    plain, printed = samples(0.0), samples(1.0)
    assert not any(painted(image, target) for image, target in plain)
    assert sum(painted(image, target) for image, target in printed) >= 8
    for image, target in printed:
        assert set(np.unique(target)) <= {0.0, 1.0} and target.sum() > 0  # the person stays wholly foreground
        assert (image[target == 0] == 90).all()  # nothing is painted on the background

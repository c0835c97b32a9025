"""Zoom-out scenes: smaller people beside whole object photos, cut sides kept on the edges, pairs, the split."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from modnet_matting.train.augment import AugmentConfig, make_sample
from modnet_matting.train.data import CachedSet, concat_sets
from modnet_matting.train.scenes import (
    category_of,
    cut_person,
    held_out_by_category,
    load_object_photos,
    object_scene_set,
    zoom_out_scene,
)
from modnet_matting.train.synthetic import synthetic_backgrounds

CROP = 128


def person(height: int, width: int, box: tuple[int, int, int, int], colour=(200, 40, 40)) -> CachedSet:
    """One photo whose person is a solid block at ``box`` (top, bottom, left, right); the rest is grey."""
    alpha = np.zeros((height, width), np.uint8)
    top, bottom, left, right = box
    alpha[top:bottom, left:right] = 255
    fg = np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()
    image = np.where(alpha[..., None] > 0, fg, np.uint8(128)).astype(np.uint8)
    return CachedSet("block", ["block_0000"], [image], [alpha], [fg])


def photos(count: int = 4) -> list[np.ndarray]:
    """Object photos: flat green, smaller than the crop (scenes scale them up, aspect kept)."""
    return [np.full((60, 90, 3), (20, 180 + i, 20), np.uint8) for i in range(count)]


def rows_with_person(alpha: np.ndarray) -> np.ndarray:
    return np.nonzero((alpha > 127).any(axis=1))[0]


def test_a_whole_person_is_scaled_to_a_quarter_to_four_fifths_of_the_crop() -> None:
    data = person(200, 160, (40, 160, 50, 110))  # no side touches the photo's edge
    heights = []
    for seed in range(120):
        rng = np.random.default_rng(seed)
        image, alpha, _ = zoom_out_scene(data, (data.alphas[0], data.fgs[0]), [], photos(), CROP, rng,
                                         pair_prob=0.0)
        assert image.shape == (CROP, CROP, 3) and alpha.shape == (CROP, CROP)
        solid = alpha == 255
        assert np.abs(image[solid].astype(int) - (200, 40, 40)).max() <= 1  # the person's own colours
        assert (image[alpha == 0][:, 1] > 150).all()  # elsewhere the object photo
        rows = rows_with_person(alpha)
        if len(rows) and rows.min() > 0 and rows.max() < CROP - 1:  # wholly in frame: its full height shows
            heights.append(len(rows) / CROP)
    assert len(heights) >= 10
    assert min(heights) >= 0.24 and max(heights) <= 0.81
    assert max(heights) - min(heights) > 0.25  # sizes vary over the range


def test_a_person_cut_by_the_photos_bottom_stays_on_the_crops_bottom() -> None:
    data = person(200, 160, (60, 200, 40, 120))  # a portrait: the body runs off the bottom
    assert cut_person(data.alphas[0], data.fgs[0]).cut == {"top": False, "bottom": True, "left": False,
                                                            "right": False}
    for seed in range(20):
        _, alpha, _ = zoom_out_scene(data, (data.alphas[0], data.fgs[0]), synthetic_backgrounds(2, 80, 80),
                                     photos(), CROP, np.random.default_rng(seed), pair_prob=0.0)
        first = alpha > 127
        assert first[-1].any(), f"seed {seed}: the cut body floats above the crop's bottom"


def test_a_person_cut_on_both_sides_becomes_a_side_by_side_pair() -> None:
    """The far cut would be a straight line through the body: the object photo's seam hides it."""
    data = person(160, 120, (40, 160, 0, 120))  # shoulders run off both sides and the bottom
    for seed in range(20):
        rng = np.random.default_rng(seed)
        image, alpha, _ = zoom_out_scene(data, (data.alphas[0], data.fgs[0]), [], photos(), CROP, rng,
                                         pair_prob=0.0)
        columns = np.nonzero((alpha > 127).any(axis=0))[0]
        assert len(columns)
        assert columns.min() == 0 or columns.max() == CROP - 1  # one cut side on the crop's edge
        far = slice(columns.max() + 1, None) if columns.min() == 0 else slice(0, columns.min())
        strip = image[:, far]
        assert strip.size and (strip[..., 1] > 150).all()  # the object photo fills the other side
        assert not alpha[:, far].any()


def test_scenes_show_several_people_at_times() -> None:
    data = concat_sets([person(200, 160, (40, 160, 50, 110)), person(200, 160, (40, 160, 50, 110), (40, 40, 200))])
    blobs = []
    for seed in range(30):
        _, alpha, _ = zoom_out_scene(data, (data.alphas[0], data.fgs[0]), [], photos(), CROP,
                                     np.random.default_rng(seed), pair_prob=0.0)
        blobs.append(cv2.connectedComponents((alpha > 127).astype(np.uint8))[0] - 1)
    assert max(blobs) >= 2 and min(blobs) <= 1


def test_make_sample_uses_scenes_only_when_asked() -> None:
    data = person(200, 160, (40, 160, 50, 110))
    backgrounds = [np.full((200, 160, 3), 128, np.uint8)]

    def green_share(zoom_out_prob: float) -> float:
        cfg = AugmentConfig(crop=CROP, composite_prob=1.0, zoom_out_prob=zoom_out_prob, jitter=0.0)
        shares = []
        for seed in range(10):
            image, _ = make_sample(data, 0, backgrounds, cfg, np.random.default_rng(seed), photos=photos())
            shares.append(float(((image[..., 1] > 150) & (image[..., 0] < 60)).mean()))
        return float(np.mean(shares))

    assert green_share(0.0) == 0.0  # no object photo in a plain composite
    assert green_share(1.0) > 0.3


def test_negatives_draw_object_photos_when_given() -> None:
    data = person(200, 160, (40, 160, 50, 110))
    cfg = AugmentConfig(crop=CROP, negative_prob=1.0, jitter=0.0)
    samples = [make_sample(data, 0, synthetic_backgrounds(2, 200, 160), cfg, np.random.default_rng(s),
                           photos=photos()) for s in range(12)]
    assert all(target.max() == 0 for _, target in samples)
    assert any((image[..., 1] > 150).mean() > 0.9 for image, _ in samples)


def write_photo_folder(root: Path, per_category: dict[str, int]) -> None:
    """``<source>/images`` (+ ``masks`` for the stamps source) and an index.csv with categories."""
    rows = ["source,image,category"]
    for category, count in per_category.items():
        source = "stamps" if category == "toys" else "web"
        for i in range(count):
            name = f"{category}_{i:03d}"
            image = np.full((40, 50, 3), 30 + i, np.uint8)
            (root / source / "images").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / source / "images" / f"{name}.jpg"), image)
            if source == "stamps":
                (root / source / "masks").mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / source / "masks" / f"{name}.png"), np.full((40, 50), 255, np.uint8))
            rows.append(f"{source},{source}/images/{name}.jpg,{category}")
    (root / "index.csv").write_text("\n".join(rows) + "\n")


def test_object_photos_split_by_category_with_every_kind_on_both_sides(tmp_path: Path) -> None:
    write_photo_folder(tmp_path, {"birds": 40, "food": 9, "toys": 3})
    train = load_object_photos([tmp_path], held_out=False)
    held = load_object_photos([tmp_path], held_out=True)
    assert not set(train.stems) & set(held.stems) and len(train) + len(held) == 52
    for category, held_count in {"birds": 5, "food": 2, "toys": 2}.items():
        assert held.categories.count(category) == held_count
        assert category in train.categories
    assert len(train.cutouts) == 1 and len(held.cutouts) == 2  # only the stamps source has masks
    assert held_out_by_category(["a", "b"], ["x", "x"]) == {min("a", "b", key=lambda n: __import__(
        "hashlib").md5(n.encode()).hexdigest())}  # a category keeps at least one training photo
    with pytest.raises(FileNotFoundError):
        load_object_photos([tmp_path / "missing"], held_out=False)


def test_object_scene_set_is_fixed_and_named_by_category(tmp_path: Path) -> None:
    write_photo_folder(tmp_path, {"birds": 40, "food": 20})
    held = load_object_photos([tmp_path], held_out=True)
    people = person(200, 160, (60, 200, 40, 120))
    first = object_scene_set(people, held, 12, side=96)
    again = object_scene_set(people, held, 12, side=96)
    assert first.stems == again.stems and all(np.array_equal(a, b) for a, b in zip(first.images, again.images))
    assert {category_of(s) for s in first.stems} <= {"birds", "food"}
    alone = [i for i, s in enumerate(first.stems) if "__alone__" in s]
    assert len(alone) == 4 and all(first.alphas[i].max() == 0 for i in alone)
    assert all(first.alphas[i].max() == 255 for i in range(12) if i not in alone)


def test_a_run_with_object_photos_trains_on_scenes_and_validates_on_held_out_photos(tmp_path: Path) -> None:
    from modnet_matting.train.loop import Trainer
    from modnet_matting.train.synthetic import synthetic_set
    from test_train_loop import tiny_config

    write_photo_folder(tmp_path / "objects", {"birds": 16, "toys": 8})
    cfg = tiny_config(tmp_path, object_photos=[str(tmp_path / "objects")], zoom_out_prob=1.0, composite_prob=1.0,
                      object_prob=0.5, negative_prob=0.2, val_object_scenes=6)
    trainer = Trainer(cfg, log=lambda *_: None)
    trainer.use_data(synthetic_set(12, 80, 72), [synthetic_set(2, 80, 72, seed=9, name="val")],
                     synthetic_backgrounds(4, 80, 72))
    trainer._prepare_object_photos()
    assert len(trainer.photos) == 20 and len(trainer.objects) == 6  # the stamps' training side is pasted too
    assert trainer.sample_stream().photos is trainer.photos
    stats = trainer.run(max_steps=2)
    assert np.isfinite(stats["total"])
    metrics = trainer.validate()
    assert {"mad_objects", "ff_objects"} <= metrics.keys()

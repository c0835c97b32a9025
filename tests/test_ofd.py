"""OFD (one-frame delay): removes one-frame flicker, keeps real motion, streams with one frame of latency."""

from __future__ import annotations

import numpy as np
import pytest

from modnet_matting.evaluate.metrics import flicker_counts
from modnet_matting.inference import Predictor
from modnet_matting.video import OFDFilter, VideoMatter, ofd_correct, ofd_sequence
from modnet_matting.weights import Preprocess, WeightsConfig


def _still(frames: int = 8, height: int = 24, width: int = 32) -> list[np.ndarray]:
    alpha = np.zeros((height, width), np.float32)
    alpha[6:18, 10:22] = 1.0
    return [alpha.copy() for _ in range(frames)]


def _moving_box(frames: int = 10, height: int = 24, width: int = 40, step: int = 2) -> list[np.ndarray]:
    out = []
    for t in range(frames):
        alpha = np.zeros((height, width), np.float32)
        alpha[6:18, 4 + step * t:14 + step * t] = 1.0
        alpha[6:18, 3 + step * t] = 0.5  # a soft edge that moves too
        out.append(alpha)
    return out


def test_planted_flicker_is_removed():
    frames = _still()
    frames[4] = frames[4].copy()
    frames[4][0:4, 0:8] = 0.9  # background pixels jump for one frame
    frames[4][8:12, 12:16] = 0.2  # a hole punched into the person for one frame
    fixed = list(ofd_sequence(frames))
    assert len(fixed) == len(frames)
    assert flicker_counts(frames).sum() > 0
    assert flicker_counts(fixed).sum() == 0
    np.testing.assert_allclose(fixed[4], frames[3])  # neighbours agree, so their mean is the still matte


def test_real_motion_is_left_alone():
    frames = _moving_box()
    fixed = list(ofd_sequence(frames))
    for before, after in zip(frames, fixed):
        np.testing.assert_array_equal(before, after)


def test_threshold_decides_what_is_flicker():
    prev, nxt = np.full((4, 4), 0.5, np.float32), np.full((4, 4), 0.5, np.float32)
    small = np.full((4, 4), 0.58, np.float32)
    large = np.full((4, 4), 0.8, np.float32)
    np.testing.assert_array_equal(ofd_correct(prev, small, nxt), small)  # within xi = 0.1
    np.testing.assert_allclose(ofd_correct(prev, large, nxt), prev)
    np.testing.assert_array_equal(ofd_correct(prev, large, nxt, threshold=0.5), large)
    disagreeing_next = np.full((4, 4), 0.7, np.float32)  # neighbours differ: motion, not flicker
    np.testing.assert_array_equal(ofd_correct(prev, np.ones((4, 4), np.float32), disagreeing_next), 1.0)


def test_streaming_has_one_frame_latency_and_keeps_items():
    frames = _still(5)
    frames[2] = np.ones_like(frames[2])
    ofd = OFDFilter()
    assert ofd.latency == 1
    outputs = [ofd.process_frame(alpha, item=index) for index, alpha in enumerate(frames)]
    assert outputs[0] is None
    assert [out.item for out in outputs[1:]] == [0, 1, 2, 3]
    last = ofd.flush()
    assert last is not None and last.item == 4
    assert ofd.flush() is None
    streamed = [out.alpha for out in outputs[1:]] + [last.alpha]
    for a, b in zip(streamed, ofd_sequence(frames)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(streamed[2], frames[1])


def test_first_and_last_frames_are_unchanged():
    frames = _still(3)
    frames[0], frames[2] = np.ones_like(frames[0]), np.ones_like(frames[2])  # blips at both ends
    fixed = list(ofd_sequence(frames))
    np.testing.assert_array_equal(fixed[0], frames[0])
    np.testing.assert_array_equal(fixed[2], frames[2])


def test_resolution_change_restarts_the_stream():
    ofd = OFDFilter()
    small, big = np.zeros((8, 8), np.float32), np.ones((16, 12), np.float32)
    assert ofd.process_frame(small, "a") is None
    out = ofd.process_frame(big, "b")  # pending frame comes out as it was
    assert out is not None and out.item == "a" and out.alpha.shape == (8, 8)
    out = ofd.process_frame(np.zeros((16, 12), np.float32), "c")
    assert out.item == "b"
    np.testing.assert_array_equal(out.alpha, big)  # first frame of the new stream: not corrected


def test_reset_drops_pending_frame_and_disabled_passes_through():
    ofd = OFDFilter()
    ofd.process_frame(np.zeros((4, 4), np.float32))
    ofd.reset()
    assert ofd.flush() is None
    off = OFDFilter(enabled=False)
    assert off.latency == 0
    out = off.process_frame(np.ones((4, 4), np.float32), "x")
    assert out is not None and out.item == "x"
    with pytest.raises(ValueError):
        OFDFilter(threshold=2.0)


class _RedChannel:
    """A stand-in network: alpha is the red channel, so results are predictable."""

    name = "fake"

    def run(self, batch: np.ndarray) -> np.ndarray:
        return ((batch[:, :1] + 1.0) / 2.0).astype(np.float32)


def test_video_matter_delays_by_one_frame_and_flushes():
    predictor = Predictor(_RedChannel(), WeightsConfig(preprocess=Preprocess(reference_size=32)))
    matter = VideoMatter(predictor)
    assert matter.predictor.preprocess.resize_mode == "short_side"
    assert predictor.preprocess.resize_mode == "reference"  # the caller's predictor is not changed
    frames = [np.full((32, 48, 3), value, np.uint8) for value in (0, 255, 0, 0)]
    results = [matter.process_frame(rgb, item=index) for index, rgb in enumerate(frames)]
    assert results[0] is None
    assert [r.item for r in results[1:]] == [0, 1, 2]
    np.testing.assert_allclose(results[2].alpha, 0.0, atol=1e-6)  # the white blip at frame 1 was flicker
    assert matter.flush().item == 3

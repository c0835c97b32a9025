"""One-frame delay (OFD): the MODNet authors' flicker fix for video mattes.

A pixel flickers when its alpha in frame ``t`` disagrees with both neighbours
while the neighbours agree with each other. For such pixels the matte of frame
``t`` is replaced by the mean of frames ``t - 1`` and ``t + 1``::

    |a[t-1] - a[t+1]| <= xi  and  |a[t] - a[t-1]| > xi  and  |a[t] - a[t+1]| > xi
        ->  a[t] = (a[t-1] + a[t+1]) / 2            (xi = 0.1 by default)

Real motion changes a pixel over several frames, so its neighbours disagree
and it is left alone; a one-frame blip is removed. The neighbours used are the
network's raw predictions, not already-corrected mattes, so the result is a
pure function of the prediction sequence.

Because frame ``t`` needs frame ``t + 1``, the streaming filter returns each
matte one frame late: ``process_frame`` for frame ``t + 1`` returns frame
``t``, and ``flush`` returns the last frame at the end of the stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

DEFAULT_THRESHOLD = 0.1


def ofd_correct(prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The OFD-corrected matte for ``cur`` given its raw neighbours (new array, float32)."""
    if not prev.shape == cur.shape == nxt.shape:
        raise ValueError(f"OFD needs three mattes of one size, got {prev.shape}, {cur.shape}, {nxt.shape}")
    prev, cur, nxt = (np.asarray(a, np.float32) for a in (prev, cur, nxt))
    flicker = (
        (np.abs(prev - nxt) <= threshold) & (np.abs(cur - prev) > threshold) & (np.abs(cur - nxt) > threshold)
    )
    return np.where(flicker, (prev + nxt) * 0.5, cur).astype(np.float32)


class OFDOutput(NamedTuple):
    """A corrected matte and whatever the caller passed in with its frame."""

    alpha: np.ndarray
    item: Any


class OFDFilter:
    """Streaming OFD with one frame of latency, for files and live pipelines.

    Feed raw mattes in order with ``process_frame(alpha, item)``; each call
    returns the corrected *previous* frame (with the ``item`` it came with, e.g.
    the RGB frame and its timestamp) or ``None`` for the first frame. Call
    ``flush()`` at the end of a stream to get the last frame (uncorrected: it
    has no successor). The first frame of a stream is never changed either.

    A matte of a different size than the previous one starts a new stream:
    the pending frame is returned as it is and the history is dropped, as if
    ``flush`` and ``reset`` had been called. ``enabled=False`` passes frames
    straight through with no latency, so callers need not branch.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, enabled: bool = True) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"OFD threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold
        self.enabled = enabled
        self.reset()

    @property
    def latency(self) -> int:
        """Frames between feeding a matte and getting it back (1 when enabled, else 0)."""
        return 1 if self.enabled else 0

    def reset(self) -> None:
        """Forget all history (a cut, a new clip, a camera change); pending frames are dropped."""
        self._prev: np.ndarray | None = None  # raw matte of frame t-1
        self._cur: np.ndarray | None = None  # raw matte of frame t, waiting for t+1
        self._cur_item: Any = None

    def process_frame(self, alpha: np.ndarray, item: Any = None) -> OFDOutput | None:
        """Add the next raw matte; return the corrected previous frame, if any."""
        alpha = np.asarray(alpha, np.float32)
        if not self.enabled:
            return OFDOutput(alpha, item)
        out: OFDOutput | None = None
        if self._cur is not None and self._cur.shape != alpha.shape:
            out = self.flush()
        elif self._cur is not None:
            fixed = self._cur if self._prev is None else ofd_correct(self._prev, self._cur, alpha, self.threshold)
            out = OFDOutput(fixed, self._cur_item)
        self._prev, self._cur, self._cur_item = self._cur, alpha, item
        return out

    def flush(self) -> OFDOutput | None:
        """Return the frame still held back (end of stream) and reset."""
        out = None if self._cur is None else OFDOutput(self._cur, self._cur_item)
        self.reset()
        return out


def ofd_sequence(
    alphas: Iterable[np.ndarray], threshold: float = DEFAULT_THRESHOLD, enabled: bool = True
) -> Iterator[np.ndarray]:
    """OFD over a whole sequence of mattes, lazily (same count out as in)."""
    ofd = OFDFilter(threshold, enabled)
    for alpha in alphas:
        out = ofd.process_frame(alpha)
        if out is not None:
            yield out.alpha
    last = ofd.flush()
    if last is not None:
        yield last.alpha

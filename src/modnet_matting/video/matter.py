"""Frame-by-frame video matting: the predictor in video mode plus OFD.

``VideoMatter`` is the Python entry point for live pipelines (webcam, a
stream server): push RGB frames in, get ``(alpha, item)`` pairs out one frame
later (OFD needs the next frame before it can fix the current one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..inference import Predictor
from .ofd import DEFAULT_THRESHOLD, OFDFilter, OFDOutput


def video_predictor(predictor: Predictor) -> Predictor:
    """A predictor sharing the backend that always scales the short side to the reference size.

    That is the authors' rule for video: every frame of a clip gets the same
    network size and the person's scale does not depend on the clip's size.
    """
    pre = dataclasses.replace(predictor.config.preprocess, resize_mode="short_side")
    return dataclasses.replace(predictor, config=dataclasses.replace(predictor.config, preprocess=pre))


class VideoMatter:
    """Mattes a stream of RGB frames with OFD; one frame of latency when OFD is on.

    ``process_frame(rgb)`` returns the *previous* frame's result as
    ``OFDOutput(alpha, item)`` (``item`` defaults to the RGB frame itself), or
    ``None`` while the first frame is held back. ``flush()`` returns the last
    frame at the end of a stream; ``reset()`` forgets history (e.g. at a cut).
    A change of frame size resets OFD by itself. With ``ofd=False`` results
    come back immediately.

    OFD runs on the network's mattes, before they are enlarged to the frame (as the authors apply
    it to the network's output): a 720p frame has 4.4 times the pixels of its 352x608 matte, and
    each frame is enlarged once, when its result is due.
    """

    def __init__(
        self,
        predictor: Predictor,
        ofd: bool = True,
        threshold: float = DEFAULT_THRESHOLD,
        short_side: bool = True,
    ) -> None:
        self.predictor = video_predictor(predictor) if short_side else predictor
        self.ofd = OFDFilter(threshold, enabled=ofd)
        self._frame_shape: tuple[int, ...] | None = None

    @property
    def latency(self) -> int:
        """Frames between feeding a frame and getting its matte back."""
        return self.ofd.latency

    def process_frame(self, rgb: np.ndarray, item: Any = None) -> OFDOutput | None:
        """Matte one RGB uint8 frame; returns the result due now, if any."""
        results = self.process_batch([rgb], None if item is None else [item])
        return results[0] if results else None

    def process_batch(self, rgbs: Sequence[np.ndarray], items: Sequence[Any] | None = None) -> list[OFDOutput]:
        """Several consecutive frames in one network batch; the results due, in order."""
        items = list(rgbs) if items is None else list(items)
        results: list[OFDOutput] = []
        for (low, small), rgb, item in zip(self.predictor.network_mattes(list(rgbs)), rgbs, items):
            if self._frame_shape is not None and rgb.shape != self._frame_shape:
                results += self._due(self.ofd.flush())
            self._frame_shape = rgb.shape
            results += self._due(self.ofd.process_frame(low, (rgb, small, item)))
        return results

    def _due(self, out: OFDOutput | None) -> list[OFDOutput]:
        """A corrected network matte at its frame's size, with the caller's item."""
        if out is None:
            return []
        rgb, small, item = out.item
        return [OFDOutput(self.predictor.enlarge(out.alpha, rgb, small), item)]

    def flush(self) -> OFDOutput | None:
        """The frame still held back by OFD at the end of a stream."""
        self._frame_shape = None
        due = self._due(self.ofd.flush())
        return due[0] if due else None

    def reset(self) -> None:
        self.ofd.reset()
        self._frame_shape = None

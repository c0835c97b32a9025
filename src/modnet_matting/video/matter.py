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

    @property
    def latency(self) -> int:
        """Frames between feeding a frame and getting its matte back."""
        return self.ofd.latency

    def process_frame(self, rgb: np.ndarray, item: Any = None) -> OFDOutput | None:
        """Matte one RGB uint8 frame; returns the result due now, if any."""
        alpha = self.predictor.predict_rgb([rgb])[0]
        return self.ofd.process_frame(alpha, rgb if item is None else item)

    def process_batch(self, rgbs: Sequence[np.ndarray], items: Sequence[Any] | None = None) -> list[OFDOutput]:
        """Several consecutive frames in one network batch (faster on GPUs); results in order."""
        alphas = self.predictor.predict_rgb(list(rgbs))
        items = list(rgbs) if items is None else list(items)
        results = [self.ofd.process_frame(alpha, item) for alpha, item in zip(alphas, items)]
        return [result for result in results if result is not None]

    def flush(self) -> OFDOutput | None:
        """The frame still held back by OFD at the end of a stream."""
        return self.ofd.flush()

    def reset(self) -> None:
        self.ofd.reset()

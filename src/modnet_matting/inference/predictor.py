"""The ``Predictor``: images in, alpha mattes at the images' sizes out, whatever the backend."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..io import ImageInput, to_rgb_uint8
from .preprocess import DEFAULT_MAX_PIXELS, network_input, network_size, normalise, resize
from .refine import MIN_UPSCALE, guided_upsample

if TYPE_CHECKING:
    from ..weights import Preprocess, WeightsConfig
    from .backends import Backend


@dataclass
class Predictor:
    """Image(s) in, float32 alpha matte(s) in [0, 1] at the input size out.

    ``refine`` (on by default): a matte enlarged 1.5x or more follows the photo's edges
    (``refine.guided_upsample``) instead of being resized; on the held-out composites that lowered the
    edge band's MAD and Grad at every such enlargement and changed nothing else (docs/performance.md).
    """

    backend: Backend
    config: WeightsConfig
    max_pixels: int = DEFAULT_MAX_PIXELS
    batch_size: int = 4
    refine: bool = True

    @property
    def preprocess(self) -> Preprocess:
        return self.config.preprocess

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 at any size -> normalised network input at the reference size."""
        return network_input(rgb, self.preprocess, self.max_pixels)

    def network_frame(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 at any size -> RGB uint8 at the network size (``prepare`` before normalising)."""
        return resize(rgb, *network_size(rgb.shape[0], rgb.shape[1], self.preprocess, self.max_pixels))

    def predict(self, image: ImageInput, color: str = "RGB") -> np.ndarray:
        """Alpha (H x W float32) for one image; ``color`` is the order of numpy input."""
        return self.predict_batch([image], color=color)[0]

    __call__ = predict

    def predict_batch(self, images: Sequence[ImageInput], color: str = "RGB") -> list[np.ndarray]:
        """Alphas for several images; those with the same network size share a batch."""
        rgbs = [to_rgb_uint8(image, color) for image in images]
        return self.predict_rgb(rgbs)

    def predict_rgb(self, rgbs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Like ``predict_batch`` for images already decoded to RGB uint8."""
        return [self.enlarge(low, rgb, small) for (low, small), rgb in zip(self.network_mattes(rgbs), rgbs)]

    def network_mattes(self, rgbs: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each RGB uint8 image: the network's matte (float32 at the network size) and the image at
        that size (what ``enlarge`` takes to follow the image's edges without resizing it again)."""
        frames = [self.network_frame(rgb) for rgb in rgbs]
        results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(rgbs)
        for indices in group_by_shape(frames, self.batch_size):
            mattes = self.run_network(np.stack([frames[i] for i in indices]))
            for i, matte in zip(indices, mattes):
                results[i] = (matte[0].astype(np.float32, copy=False), frames[i])
        return results  # type: ignore[return-value]

    def run_network(self, frames: np.ndarray) -> np.ndarray:
        """``N x H x W x 3`` uint8 frames at the network size -> ``N x 1 x H x W`` mattes.

        A backend with ``run_uint8`` (OpenVINO) normalises inside its compiled graph; the others get
        the normalised float batch.
        """
        pre = self.preprocess
        run_uint8 = getattr(self.backend, "run_uint8", None)
        if run_uint8 is not None:
            return run_uint8(frames, pre.mean, pre.std)
        return self.backend.run(np.stack([normalise(frame, pre) for frame in frames]))

    def enlarge(self, matte: np.ndarray, rgb: np.ndarray, small: np.ndarray | None = None) -> np.ndarray:
        """The network-size matte at the photo's size (``small``: the photo at the matte's size, if at hand)."""
        h, w = rgb.shape[:2]
        if self.refine and h * w >= MIN_UPSCALE**2 * matte.size:
            return guided_upsample(matte, rgb, small=small)
        return np.clip(resize(matte, h, w), 0.0, 1.0)


def group_by_shape(inputs: Sequence[np.ndarray], batch_size: int) -> Iterable[list[int]]:
    """Indices of same-shaped inputs, in batches of at most ``batch_size``."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, array in enumerate(inputs):
        groups.setdefault(array.shape, []).append(index)
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            yield indices[start:start + batch_size]

"""The ``Predictor``: images in, alpha mattes at the images' sizes out, whatever the backend."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..io import ImageInput, to_rgb_uint8
from .preprocess import DEFAULT_MAX_PIXELS, network_input, resize
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
        inputs = [self.prepare(rgb) for rgb in rgbs]
        results: list[np.ndarray | None] = [None] * len(rgbs)
        for indices in group_by_shape(inputs, self.batch_size):
            mattes = self.backend.run(np.stack([inputs[i] for i in indices]))
            for i, matte in zip(indices, mattes):
                results[i] = self.enlarge(matte[0].astype(np.float32), rgbs[i])
        return results  # type: ignore[return-value]

    def enlarge(self, matte: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        """The network-size matte at the photo's size."""
        h, w = rgb.shape[:2]
        if self.refine and h * w >= MIN_UPSCALE**2 * matte.size:
            return guided_upsample(matte, rgb)
        return np.clip(resize(matte, h, w), 0.0, 1.0)


def group_by_shape(inputs: Sequence[np.ndarray], batch_size: int) -> Iterable[list[int]]:
    """Indices of same-shaped inputs, in batches of at most ``batch_size``."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, array in enumerate(inputs):
        groups.setdefault(array.shape, []).append(index)
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            yield indices[start:start + batch_size]

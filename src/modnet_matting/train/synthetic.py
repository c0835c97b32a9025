"""Generated portrait data: tests, the DDP check and throughput benchmarks need no dataset on disk."""

from __future__ import annotations

import cv2
import numpy as np

from .data import CachedSet


def synthetic_portrait(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """A head-and-shoulders blob with a soft edge over a textured background: image, alpha, foreground."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx = width * rng.uniform(0.35, 0.65)
    head = ((yy - height * 0.32) / (height * 0.17)) ** 2 + ((xx - cx) / (width * 0.15)) ** 2
    body = ((yy - height * 0.95) / (height * 0.45)) ** 2 + ((xx - cx) / (width * 0.33)) ** 2
    alpha = (np.minimum(head, body) <= 1).astype(np.float32)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.8, min(height, width) / 80))
    fg = np.empty((height, width, 3), np.float32)
    fg[:] = rng.integers(60, 256, 3)
    fg += 20 * np.sin(xx / 5.0)[..., None]
    bg = cv2.resize(rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8), (width, height),
                    interpolation=cv2.INTER_LINEAR).astype(np.float32)
    image = fg * alpha[..., None] + bg * (1 - alpha[..., None])
    as_u8 = lambda x: np.clip(x + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
    return as_u8(image), as_u8(alpha * 255), as_u8(fg)


def synthetic_set(count: int, height: int = 96, width: int = 80, seed: int = 0, name: str = "synthetic") -> CachedSet:
    """``count`` generated samples in the in-memory layout training reads."""
    rng = np.random.default_rng(seed)
    images, alphas, fgs = zip(*(synthetic_portrait(height, width, rng) for _ in range(count)))
    return CachedSet(name, [f"{name}_{i:04d}" for i in range(count)], list(images), list(alphas), list(fgs))


def synthetic_backgrounds(count: int, height: int = 96, width: int = 80, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [cv2.resize(rng.integers(0, 256, (6, 6, 3)).astype(np.uint8), (width, height)) for _ in range(count)]

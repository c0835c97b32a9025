"""Shared fixtures: small generated images and a randomly initialised checkpoint."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch

from modnet_matting.model import MODNet
from modnet_matting.weights import WeightsConfig, save_weights

torch.set_num_threads(2)


def make_portrait(height: int = 96, width: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic 'person' (ellipse head + body) over a textured background, and its alpha."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    head = ((yy - height * 0.3) / (height * 0.16)) ** 2 + ((xx - width * 0.5) / (width * 0.16)) ** 2 <= 1
    body = ((yy - height * 0.85) / (height * 0.4)) ** 2 + ((xx - width * 0.5) / (width * 0.32)) ** 2 <= 1
    alpha = (head | body).astype(np.float32)
    background = rng.integers(0, 256, (height, width, 3)).astype(np.float32)
    foreground = np.array([200, 150, 120], np.float32)
    image = alpha[..., None] * foreground + (1 - alpha[..., None]) * background
    return image.astype(np.uint8), alpha


@pytest.fixture
def portrait() -> tuple[np.ndarray, np.ndarray]:
    return make_portrait()


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory: pytest.TempPathFactory):
    """A safetensors file with seeded random MODNet weights (our format)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random.safetensors"
    save_weights(MODNet().eval(), path, WeightsConfig(card={"source": "random test weights"}), dtype=torch.float32)
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size but has no pixel data: a decompression bomb's header, a few bytes to send."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")

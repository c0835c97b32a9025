"""A contact sheet of a training config's sample stream: what the network is shown, with its targets.

    python benchmarks/sample_sheet.py --config configs/people_v6.yaml [key=value ...] [--count 48]
        [--out docs/training/sample_stream.jpg]

Each tile is a training crop with its target matte tinted red (faint where the target is 0),
so a look tells whether the people, objects and negatives are what the recipe means.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from modnet_matting.io import save_image
from modnet_matting.train.config import load_config
from modnet_matting.train.loop import Trainer


def tile(image: np.ndarray, matte: np.ndarray, size: int) -> np.ndarray:
    """The crop beside it the crop with the target tinted red."""
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    matte = cv2.resize(matte, (size, size), interpolation=cv2.INTER_AREA)[..., None]
    tinted = image * (1 - 0.6 * matte) + np.array([255, 0, 0]) * 0.6 * matte
    dimmed = tinted * np.where(matte > 0.02, 1.0, 0.45)
    return np.concatenate([image, dimmed.astype(np.uint8)], axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--start", type=int, default=0, help="first stream position")
    parser.add_argument("--columns", type=int, default=6)
    parser.add_argument("--size", type=int, default=160, help="tile side in pixels")
    parser.add_argument("--out", type=Path, default=Path("docs/training/sample_stream.jpg"))
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    trainer = Trainer(cfg)
    trainer.prepare_data()
    stream = trainer.sample_stream()
    tiles = []
    for position in range(args.start, args.start + args.count):
        sample = stream[position]
        image = ((sample["image"].permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        tiles.append(tile(image, sample["matte"][0].numpy(), args.size))
    while len(tiles) % args.columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + args.columns], axis=1) for i in range(0, len(tiles), args.columns)]
    save_image(args.out, np.concatenate(rows, axis=0))
    print(f"wrote {args.out}: positions {args.start}..{args.start + args.count - 1} of {cfg.name}'s stream")
    return 0


if __name__ == "__main__":
    sys.exit(main())

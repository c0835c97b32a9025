"""Temporal quality with and without OFD: DAVIS people sequences and carphone.mp4.

DAVIS frames have manual binary masks, used as the reference for dtSSD and
MESSDdt (``evaluate.metrics``; note that a binary reference rewards a matte
that snaps to 0/1). carphone has no reference, so only reference-free numbers
are given: the flicker rate (pixels OFD's rule calls flicker) and the mean
absolute change between consecutive mattes.

    python benchmarks/video_temporal.py --weights modnet-people --json benchmarks/results/video_temporal.json

``--weights random`` runs untrained random weights (checks the script; the
numbers then say nothing about quality).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from modnet_matting.evaluate.metrics import dtssd, flicker_rate, mad, messddt
from modnet_matting.inference import Predictor, load_model, make_backend
from modnet_matting.io import read_image
from modnet_matting.model import MODNet
from modnet_matting.video import VideoMatter, VideoReader, ofd_sequence
from modnet_matting.weights import WeightsConfig

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def make_predictor(weights: str, device: str) -> Predictor:
    if weights == "random":
        torch.manual_seed(0)
        return Predictor(make_backend(MODNet().eval(), "torch", device), WeightsConfig())
    return load_model(weights, device=device)


def davis_sequences(root: Path) -> dict[str, list[str]]:
    """Frame stems per sequence: files are named ``<sequence>_<NNNNN>.jpg``."""
    sequences: dict[str, list[str]] = defaultdict(list)
    for path in sorted((root / "images").glob("*.jpg")):
        match = re.fullmatch(r"(.+)_(\d+)", path.stem)
        if match and (root / "masks" / f"{path.stem}.png").exists():
            sequences[match.group(1)].append(path.stem)
    return dict(sequences)


def mean_change(alphas: list[np.ndarray]) -> float:
    """Mean |a[t] - a[t-1]| over pixels and pairs: how much the matte moves (no reference needed)."""
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(alphas, alphas[1:])]))


def scores(alphas: list[np.ndarray], refs: list[np.ndarray] | None, xi: float) -> dict[str, float]:
    out = {"flicker_rate": flicker_rate(alphas, xi), "mean_abs_change": mean_change(alphas)}
    if refs is not None:
        out["dtssd"] = dtssd(alphas, refs)
        out["messddt"] = messddt(alphas, refs)
        out["mad"] = float(np.mean([mad(a, r) for a, r in zip(alphas, refs)]))
    return out


def evaluate(name: str, frames: list[np.ndarray], refs: list[np.ndarray] | None, matter: VideoMatter,
             xi: float) -> dict:
    began = time.perf_counter()
    raw = [matter.predictor.predict_rgb([rgb])[0] for rgb in frames]
    seconds = time.perf_counter() - began
    fixed = list(ofd_sequence(raw, xi))
    changed = float(np.mean([(a != b).mean() for a, b in zip(raw, fixed)]))
    row = {"clip": name, "frames": len(frames), "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
           "no_ofd": scores(raw, refs, xi), "ofd": scores(fixed, refs, xi), "ofd_changed_pixels": changed,
           "seconds_per_frame": seconds / len(frames)}
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> str:
    keys = ["dtssd", "messddt", "mad", "flicker_rate", "mean_abs_change"]
    head = "| clip | frames | " + " | ".join(f"{k} (no OFD / OFD)" for k in keys) + " | OFD changed |"
    lines = [head, "|" + "---|" * (len(keys) + 3)]
    for row in rows:
        cells = []
        for key in keys:
            if key in row["no_ofd"]:
                cells.append(f"{row['no_ofd'][key]:.5f} / {row['ofd'][key]:.5f}")
            else:
                cells.append("n/a")
        lines.append(f"| {row['clip']} | {row['frames']} | " + " | ".join(cells)
                     + f" | {row['ofd_changed_pixels']:.2e} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="modnet-people", help="registry name, file, or 'random'")
    parser.add_argument("--davis", type=Path, default=SHARED / "data/people/davis_people")
    parser.add_argument("--video", type=Path, default=SHARED / "data/video/carphone.mp4")
    parser.add_argument("--max-frames", type=int, default=40, help="frames per clip (from the start)")
    parser.add_argument("--sequences", nargs="*", help="DAVIS sequences (default: all)")
    parser.add_argument("--ofd-threshold", type=float, default=0.1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    matter = VideoMatter(make_predictor(args.weights, args.device), ofd=False)
    rows = []
    if args.davis.is_dir():
        for name, stems in davis_sequences(args.davis).items():
            if args.sequences and name not in args.sequences:
                continue
            stems = stems[: args.max_frames]
            frames = [read_image(args.davis / "images" / f"{s}.jpg") for s in stems]
            refs = [read_image(args.davis / "masks" / f"{s}.png")[..., 0].astype(np.float32) / 255 for s in stems]
            rows.append(evaluate(f"davis/{name}", frames, refs, matter, args.ofd_threshold))
    if args.video.is_file():
        with VideoReader(args.video) as reader:
            frames = [frame.rgb for _, frame in zip(range(args.max_frames), reader)]
        rows.append(evaluate(args.video.name, frames, None, matter, args.ofd_threshold))
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        pre = matter.predictor.config.preprocess
        backend = matter.predictor.backend
        meta = {"weights": args.weights, "ofd_threshold": args.ofd_threshold, "max_frames": args.max_frames,
                "reference": "DAVIS binary masks; carphone has none",
                "preprocess": f"short side to {pre.reference_size} (video rule)",
                "backend": f"{backend.name} {getattr(backend, 'precision', '')}".strip()}
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""``modnet backbone import``: a pretrained MobileNetV2 from TensorFlow Lite files as a backbone checkpoint.

The result (``features.*`` in safetensors) is what ``backbone_weights`` in a training
config reads; a config can also name the ``.tflite`` files directly, and then the
batch norms are recalibrated on its own training photos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .main import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backbone", help="import a pretrained MobileNetV2 backbone", description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="read .tflite MobileNetV2 encoders into a backbone checkpoint",
                             description="Later files fill the layers earlier ones lack (DeepLab's encoder has "
                             "no features.18: give the ImageNet classifier second).")
    imp.add_argument("files", nargs="+", metavar="FILE.tflite")
    imp.add_argument("-o", "--output", required=True, help="backbone checkpoint to write (.safetensors)")
    imp.add_argument("--calibration", metavar="DIR",
                     help="photos (of people) whose statistics the batch norms get; without it batch norm stays "
                     "an identity plus the folded bias, exact for inference but erased by train-mode batch norm")
    imp.add_argument("--count", type=int, default=256, help="at most this many calibration photos (default 256)")
    parser.set_defaults(func=run)


def _photos(folder: str, count: int):
    from ..io import IMAGE_SUFFIXES, ImageReadError, read_image

    root = Path(folder)
    if not root.is_dir():
        raise CLIError(f"calibration folder not found: {folder}")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise CLIError(f"no images in {folder}")
    stride = max(1, len(paths) // max(1, count))
    for path in paths[::stride][:count]:
        try:
            yield read_image(path)
        except ImageReadError as exc:
            print(f"warning: skipped {exc}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from ..model import MobileNetV2Backbone
    from ..train.backbone import save_backbone
    from ..train.tflite_backbone import import_backbone

    if not args.output.endswith(".safetensors"):
        raise CLIError("--output must end in .safetensors")
    for file in args.files:
        if not Path(file).is_file():
            raise CLIError(f"file not found: {file}")
    if args.count < 1:
        raise CLIError("--count must be at least 1")
    backbone = MobileNetV2Backbone()
    photos = _photos(args.calibration, args.count) if args.calibration else None
    try:
        message = import_backbone(backbone, args.files, photos)
    except ValueError as exc:  # CheckpointError, or no calibration photo could be read
        raise CLIError(str(exc)) from None
    save_backbone(backbone, args.output)
    print(f"{message} -> {args.output}")
    return 0

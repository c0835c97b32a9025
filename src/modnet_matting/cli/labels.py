"""``modnet labels MASK_SET -o OUT``: soft alpha labels from binary person masks.

MASK_SET holds ``images/`` and ``masks/`` (same names, 255 = person). OUT gets
``image/`` and ``matte/`` (PNG alpha), the layout training and evaluation read
as soft mattes. An unknown band around each mask edge is solved by closed-form
matting (or a guided filter), optionally averaged with a teacher model. Bad
pairs are reported and skipped (exit code 1); a rerun skips finished names.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .main import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "labels",
        help="turn binary person masks into soft alpha labels (image/ + matte/)",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument("mask_set", type=Path, metavar="MASK_SET_DIR", help="folder with images/ and masks/")
    parser.add_argument("-o", "--out-dir", type=Path, required=True, help="output folder (image/ + matte/)")
    parser.add_argument("--method", default="closed_form", choices=["closed_form", "guided"])
    parser.add_argument("--band", type=int, help="unknown band in pixels each side of the edge "
                        "(default 1.5%% of the short side, at least 3)")
    parser.add_argument("--teacher", help="weights (name or file) whose matte is averaged with the solver in the band")
    parser.add_argument("--short-side", type=int, default=0, help="resize so the short side is this (0: keep size)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="for the teacher")
    parser.add_argument("--overwrite", action="store_true", help="redo names that already have outputs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.softlabels import label_folder

    if args.band is not None and args.band < 1:
        raise CLIError("--band must be at least 1 pixel")
    if args.short_side < 0:
        raise CLIError("--short-side must be >= 0")
    teacher = None
    if args.teacher:
        from ..inference import load_model

        try:
            predictor = load_model(args.teacher, device=args.device)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        teacher = predictor.predict
    try:
        report = label_folder(args.mask_set, args.out_dir, args.method, args.band, teacher, args.short_side,
                              args.overwrite)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(f"{len(report.written)} labelled, {len(report.skipped)} already done, {len(report.problems)} problem(s) "
          f"-> {args.out_dir}")
    for problem in report.problems:
        print(f"  skipped: {problem}")
    return 1 if report.problems else 0

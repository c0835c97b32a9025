"""``modnet video``: matte a video file into a matte, composite and/or cut-out video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .main import CLIError
from .options import add_model_options, announce, load_predictor

#: x264's speed presets, fastest first.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

if TYPE_CHECKING:
    from ..inference import Predictor

CUTOUT_SUFFIXES = {"mov": ".mov", "webm": ".webm", "png": ""}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "video",
        help="matte a video: alpha matte, composite or transparent cut-out (keeps timing and audio)",
        description="Matte a video file frame by frame (streaming, bounded memory) with the one-frame-delay "
        "flicker fix. Outputs keep the frame timing, rotation metadata and audio track.",
    )
    parser.add_argument("input", help="video file")
    parser.add_argument("-o", "--out", help="output file; with --output all, a folder (default: next to the input)")
    parser.add_argument("--output", choices=("alpha", "composite", "cutout", "all"), default="composite",
                        help="alpha: grey matte video; composite: over --background; cutout: transparent "
                        "(.mov ProRes 4444, .webm VP9 or a folder of RGBA PNGs); all: the three (default: composite)")
    parser.add_argument("--background", default="white",
                        help="composite background: colour (name, #hex, r,g,b), image file, video file or 'blur'")
    parser.add_argument("--cutout-format", choices=tuple(CUTOUT_SUFFIXES), default=None,
                        help="cut-out format when OUT does not say (default: mov = ProRes 4444); "
                        "an OUT whose suffix says another is an error")
    parser.add_argument("--start", type=float, help="start time in seconds")
    parser.add_argument("--end", type=float, help="end time in seconds")
    parser.add_argument("--no-ofd", action="store_true", help="turn off the one-frame-delay flicker fix")
    parser.add_argument("--ofd-threshold", type=float, default=0.1, help="OFD threshold xi (default 0.1)")
    add_model_options(parser)
    parser.add_argument("--codec", help="video encoder for alpha/composite outputs (e.g. libx264, ffv1, libvpx-vp9)")
    parser.add_argument("--crf", type=int, help="quality for x264/VP9 (lower is better; default 18 / 30)")
    parser.add_argument("--preset", choices=X264_PRESETS,
                        help="x264 speed preset for .mp4/.mkv/.mov outputs (default superfast; slower presets "
                        "make smaller files but take CPU from the network)")
    parser.add_argument("--batch-size", type=int, default=4, help="frames per network call (default 4)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs that modnet did not write (its own are always replaced)")
    parser.set_defaults(func=run)


def output_paths(source: Path, kind: str, out: str | None, cutout_format: str) -> list[tuple[str, Path]]:
    """(kind, path) for each output: OUT as given, or ``<stem>_<kind>.<ext>`` beside the input / in OUT."""
    kinds = ("alpha", "composite", "cutout") if kind == "all" else (kind,)

    def default(k: str, folder: Path) -> Path:
        suffix = CUTOUT_SUFFIXES[cutout_format] if k == "cutout" else ".mp4"
        return folder / f"{source.stem}_{k}{suffix}"

    if out is None:
        return [(k, default(k, source.parent)) for k in kinds]
    target = Path(out).expanduser()
    if kind == "all" or (target.is_dir() and not (kind == "cutout" and target.suffix == "")):
        if target.exists() and not target.is_dir():
            raise CLIError(f"with --output all, -o must be a folder ({target} is a file)")
        return [(k, default(k, target)) for k in kinds]
    if target.suffix == "" and kind != "cutout":
        raise CLIError(f"-o {target} needs a video suffix such as .mp4, .mov, .mkv or .webm")
    return [(kind, target)]


def check_conflicts(args: argparse.Namespace, specs: list) -> None:  # noqa: ANN001 - OutputSpec list
    """Options that cannot all be honoured are an error, not silently dropped."""
    cutouts = [spec.path for spec in specs if spec.kind == "cutout"]
    if args.cutout_format is not None:
        for path in cutouts:
            if path.suffix.lower() != CUTOUT_SUFFIXES[args.cutout_format]:
                what = f"a {path.suffix} file" if path.suffix else "a folder of PNGs"
                raise CLIError(f"--cutout-format {args.cutout_format} conflicts with -o {path} ({what}): "
                               "give one of them")
    if args.codec is not None and all(spec.kind == "cutout" for spec in specs):
        raise CLIError("--codec is for alpha and composite videos; a cut-out's encoder follows its format "
                       "(.mov ProRes 4444, .webm VP9, PNG)")


def check_targets(paths: list[Path], inputs: list[Path], overwrite: bool) -> None:
    """Inputs are never overwritten, two outputs never share a name, and a file (or a PNG in a cut-out folder)
    that modnet did not write is replaced only with ``--overwrite``: the rule of every writer (io.check_replaceable)."""
    from ..io import OverwriteRefused, check_replaceable

    resolved = {p.resolve() for p in inputs}
    seen: set[Path] = set()
    for path in paths:
        if path.resolve() in resolved:
            raise CLIError(f"refusing to overwrite the input {path}")
        if path.resolve() in seen:
            raise CLIError(f"two outputs would both be written to {path}")
        seen.add(path.resolve())
        try:
            for target in sorted(path.glob("*.png")) if path.is_dir() else [path]:
                check_replaceable(target, overwrite)
        except OverwriteRefused as exc:
            raise CLIError(str(exc)) from None


def _predictor(args: argparse.Namespace) -> Predictor:
    predictor = load_predictor(args)
    announce(predictor, args)
    predictor.batch_size = args.batch_size
    return predictor


def check_background(spec: str) -> list[Path]:
    """Fail early on a bad --background; returns the file it names, if any (never to be overwritten)."""
    from ..compose import parse_background
    from ..video.reader import VIDEO_SUFFIXES

    path = Path(spec).expanduser()
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"no such background video: {path}")
        return [path]
    try:
        parse_background(spec)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return [path] if path.is_file() else []


def run(args: argparse.Namespace) -> int:
    from ..video import OutputSpec, VideoReadError, VideoWriteError, process_video

    source = Path(args.input).expanduser()
    if not source.exists():
        raise FileNotFoundError(f"no such file: {source}")
    if args.batch_size < 1:
        raise CLIError("--batch-size must be at least 1")
    if not 0.0 <= args.ofd_threshold <= 1.0:
        raise CLIError("--ofd-threshold must be between 0 and 1")
    specs = [OutputSpec(k, p) for k, p in output_paths(source, args.output, args.out, args.cutout_format or "mov")]
    check_conflicts(args, specs)
    check_targets([s.path for s in specs], [source, *check_background(args.background)], args.overwrite)
    codec_options = {"crf": str(args.crf)} if args.crf is not None else {}
    if args.preset:
        codec_options["preset"] = args.preset  # other encoders ignore it
    predictor = _predictor(args)
    try:
        result = process_video(
            source, specs, predictor, background=args.background, start=args.start, end=args.end,
            ofd=not args.no_ofd, threshold=args.ofd_threshold, codec=args.codec, codec_options=codec_options,
            progress=not args.quiet, batch_size=args.batch_size,
        )
    except (VideoReadError, VideoWriteError) as exc:
        raise CLIError(str(exc)) from None
    for problem in result.problems:
        print(f"modnet: warning: {problem}", file=sys.stderr)
    for path in result.outputs:
        print(path)
    if not args.quiet:
        print(f"{result.frames} frames in {result.wall_s:.1f} s ({result.fps:.1f} fps)", file=sys.stderr)
    return 0

"""``modnet webcam``: live matting preview from a camera, stream or file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .main import CLIError
from .options import add_model_options
from .video import _predictor, check_background, check_targets


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "webcam",
        help="live preview: camera/stream/file composited over a new background",
        description="Live matting with a preview window showing the composite and frame rate. The picture is one "
        "frame behind the camera because of the one-frame-delay flicker fix (--no-ofd removes that).",
    )
    parser.add_argument("--source", default="0", help="camera index, stream URL or video file (default 0)")
    parser.add_argument("--background", default="green",
                        help="colour (name, #hex, r,g,b), image file, video file or 'blur' (default green)")
    parser.add_argument("--mirror", action="store_true", help="flip left-right, like a mirror")
    parser.add_argument("--virtual-cam", action="store_true", help="also send the composite to a virtual camera "
                        "(needs pyvirtualcam and a virtual camera driver)")
    parser.add_argument("--headless", action="store_true", help="no window (write -o OUT instead)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("-o", "--out", help="also write the composite to this video file (or PNG folder)")
    parser.add_argument("--no-ofd", action="store_true", help="turn off the one-frame-delay flicker fix")
    parser.add_argument("--ofd-threshold", type=float, default=0.1, help="OFD threshold xi (default 0.1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing -o file that modnet did not write (its own are replaced)")
    add_model_options(parser)
    parser.set_defaults(func=run, batch_size=1)


def run(args: argparse.Namespace) -> int:
    from ..video import VideoMatter, VideoReadError, VideoWriteError
    from ..video.live import DisplayUnavailable, LiveSession, LiveSource, open_display

    if args.headless and not args.out and not args.virtual_cam:
        raise CLIError("--headless needs -o OUT (or --virtual-cam) to put the composite somewhere")
    if args.max_frames is not None and args.max_frames < 1:
        raise CLIError("--max-frames must be at least 1")
    inputs = check_background(args.background)
    if not args.source.isdigit() and "://" not in args.source:
        inputs.append(Path(args.source).expanduser())
    if args.out:
        check_targets([Path(args.out).expanduser()], inputs, args.overwrite)
    display = None
    try:
        source = LiveSource(args.source)
    except VideoReadError as exc:
        raise CLIError(str(exc)) from None
    try:
        display = None if args.headless else open_display()
        matter = VideoMatter(_predictor(args), ofd=not args.no_ofd, threshold=args.ofd_threshold)
        session = LiveSession(source, matter, args.background, args.mirror, display, args.virtual_cam, args.out,
                              args.max_frames)
        stats = session.run()
    except (DisplayUnavailable, VideoReadError, VideoWriteError) as exc:
        raise CLIError(str(exc)) from None
    finally:
        source.close()
        if display is not None:
            display.close()
    for problem in source.problems:
        print(f"modnet: warning: {problem}", file=sys.stderr)
    if args.out:
        print(Path(args.out))
    print(f"{stats.frames} frames, {stats.fps:.1f} fps", file=sys.stderr)
    return 0

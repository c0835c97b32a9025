"""``modnet eval``: score our model, a folder of mattes, or peers on a benchmark folder.

    modnet eval --data DIR [--weights W] [--pred DIR] [--peers LIST] [--out DIR] [--limit N]
    modnet eval composites --fg DIR [--alpha DIR] --bg DIR --out DIR [--per-fg N] [--seed S]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .main import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="benchmark mattes against ground truth (and build composite sets)",
        description="Score MODNet, a folder of predicted mattes, or peer methods on a folder with image/ + matte/ "
                    "(matting) or images/ + masks/ (segmentation). Writes per-image CSV, summary JSON and a contact "
                    "sheet of the worst cases per method.",
    )
    parser.add_argument("--data", metavar="DIR", help="benchmark folder: image/ + matte/, or images/ + masks/")
    parser.add_argument("--weights", metavar="NAME|FILE",
                        help="registry name or checkpoint file (default: modnet-people)")
    parser.add_argument("--pred", metavar="DIR",
                        help="score this folder of predicted mattes (<stem>.png) instead of running MODNet")
    parser.add_argument("--peers", default="", metavar="LIST",
                        help="also run these methods: mediapipe,rvm,u2netp,grabcut,closed_form or 'all'")
    parser.add_argument("--peer-models", action="append", default=[], metavar="DIR",
                        help="folder with peer model files (repeatable; see benchmarks/get_peers.sh)")
    parser.add_argument("--no-model", action="store_true", help="run only the peers, not MODNet")
    parser.add_argument("--out", default="eval-out", metavar="DIR", help="output folder (default: ./eval-out)")
    parser.add_argument("--limit", type=int, metavar="N", help="score only the first N pairs (sorted by name)")
    parser.add_argument("--region", choices=("whole", "unknown", "both"), default="whole",
                        help="matting metrics over the whole image (the paper's protocol), the unknown band "
                             "derived from the reference, or both")
    parser.add_argument("--band", type=int, metavar="PX",
                        help="unknown-band radius in pixels (default: 1.5%% of the mean side)")
    parser.add_argument("--worst", type=int, default=8, metavar="K",
                        help="rows in the worst-case contact sheet (default 8)")
    parser.add_argument("--save-pred", action="store_true",
                        help="also write each method's mattes to OUT/<method>/pred/")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--precision", default=None, choices=("fp32", "fp16", "bf16", "int8", "auto"),
                        help="default fp32 (a .tflite export: the precision it was exported in)")
    parser.add_argument("--backend", default=None,
                        help="inference backend for MODNet (default: torch, the authors' way; for an exported "
                             ".onnx, .xml or .tflite, the runtime that reads it)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for MODNet and the peers")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=run)

    actions = parser.add_subparsers(dest="eval_action", metavar="ACTION")
    comp = actions.add_parser(
        "composites",
        help="build a composite benchmark set with exact ground truth",
        description="Lay foregrounds (with alpha) over backgrounds: OUT/image, OUT/matte, OUT/fg and "
                    "OUT/manifest.json. Deterministic for a given seed.",
    )
    comp.add_argument("--fg", required=True, metavar="DIR", help="foregrounds (RGBA cut-outs, or RGB with --alpha)")
    comp.add_argument("--alpha", metavar="DIR", help="alpha mattes with the same stems as the foregrounds")
    comp.add_argument("--bg", required=True, metavar="DIR", help="background images")
    comp.add_argument("--out", required=True, dest="comp_out", metavar="DIR", help="output folder")
    comp.add_argument("--per-fg", type=int, default=1, help="backgrounds per foreground (default 1)")
    comp.add_argument("--seed", type=int, default=0)
    comp.add_argument("--max-side", type=int, help="scale foregrounds down to this long side first")
    comp.add_argument("--limit", type=int, dest="comp_limit", metavar="N", help="use only the first N foregrounds")
    comp.set_defaults(func=run_composites)


def run_composites(args: argparse.Namespace) -> int:
    from ..evaluate.composite import build_composites

    try:
        manifest = build_composites(args.fg, args.bg, args.comp_out, alpha_dir=args.alpha,
                                    per_foreground=args.per_fg, seed=args.seed, max_side=args.max_side,
                                    limit=args.comp_limit)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote {len(manifest.entries)} composites to {args.comp_out}")
    for problem in manifest.problems:
        print(f"modnet: skipped: {problem}", file=sys.stderr)
    return 1 if manifest.problems else 0


def _methods(args: argparse.Namespace) -> tuple[list[Any], list[str]]:
    """The methods to run, and one line per requested method that cannot run."""
    from ..evaluate import peers as P
    from ..evaluate.runner import FolderMethod
    from ..weights import CheckpointError

    methods: list[Any] = []
    unavailable: list[str] = []
    try:
        peer_names = P.parse_peers(args.peers) if args.peers else []
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.pred:
        methods.append(FolderMethod(args.pred))
    elif not args.no_model:
        try:
            methods.append(_model_method(args))
        except (CheckpointError, CLIError, FileNotFoundError, RuntimeError) as exc:
            if not peer_names:
                raise
            unavailable.append(f"modnet: {exc}")
    dirs = P.model_dirs(args.peer_models)
    for name in peer_names:
        try:
            methods.append(P.build_peer(name, dirs, args.threads))
        except P.PeerUnavailable as exc:
            unavailable.append(f"{name}: {exc}")
    return methods, unavailable


def _model_path(args: argparse.Namespace) -> tuple[str, str]:
    """(backend, precision): torch fp32 for weights, an export's own runtime (fp32, or a .tflite's own) for exports."""
    from ..weights import export_kind

    kind = export_kind(args.weights)
    backend = args.backend or ("torch" if kind is None else "auto")
    precision = args.precision or ("auto" if kind == "tflite" else "fp32")
    return backend, precision


def _model_method(args: argparse.Namespace) -> Any:
    import torch

    from ..evaluate.runner import ModelMethod
    from ..inference import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    backend, precision = _model_path(args)
    try:
        predictor = load_model(args.weights, device=args.device, precision=precision, backend=backend)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    method = ModelMethod(predictor)
    method.info = {"weights": args.weights or "modnet-people", "card": predictor.config.card}
    return method


def run(args: argparse.Namespace) -> int:
    from ..evaluate.report import format_table, write_reports
    from ..evaluate.runner import Conventions, evaluate, find_dataset

    if not args.data:
        raise CLIError("--data DIR is required (or use `modnet eval composites ...`)")
    if args.limit is not None and args.limit < 1:
        raise CLIError("--limit must be at least 1")
    if args.pred and args.no_model:
        raise CLIError("--pred and --no-model do not go together")
    out = Path(args.out)
    dataset = find_dataset(args.data, args.limit)
    if out.resolve() == Path(args.data).resolve() or (args.pred and out.resolve() == Path(args.pred).resolve()):
        raise CLIError("--out must not be an input folder")
    if not dataset.samples:
        raise CLIError(f"no image/reference pairs found in {args.data}")
    methods, unavailable = _methods(args)
    for line in unavailable:
        print(f"modnet: not run: {line}", file=sys.stderr)
    if not methods:
        raise CLIError("no method could run (see the lines above)")
    conv = Conventions(dataset.kind, args.region if dataset.kind == "matting" else "whole", args.band)
    progress = None if args.quiet else _progress
    outcome = evaluate(dataset, methods, conv, worst=args.worst, save_root=out if args.save_pred else None,
                       progress=progress)
    results, worst = [], {}
    for method, (result, cases) in zip(methods, outcome):
        result.info.update(getattr(method, "info", {}))
        model_file = getattr(method, "model", None)
        if model_file:
            result.info["model_file"] = model_file
        results.append(result)
        worst[method.name] = cases
    if progress is not None:
        print(file=sys.stderr)
    extra = {"not_run": unavailable}
    write_reports(out, dataset, results, worst, extra)
    title = f"{dataset.root} ({dataset.kind}, {len(dataset.samples)} pairs)"
    print(format_table(results, title))
    problems = dataset.problems + [p for r in results for p in r.problems]
    for problem in problems:
        print(f"modnet: skipped: {problem}", file=sys.stderr)
    print(f"wrote {out}/summary.json and per-method CSV and worst-case sheets")
    return 1 if problems or unavailable else 0


def _progress(text: str) -> None:
    print(f"\r{text[:100]:<100}", end="", file=sys.stderr, flush=True)

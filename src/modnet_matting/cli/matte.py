"""``modnet matte``: alpha mattes, cut-outs, new backgrounds and previews for photos.

Inputs are files, folders (``--recursive`` for subfolders), globs, or ``-`` for
stdin. Outputs go next to each input, or under ``-o DIR`` (keeping a folder
input's subfolders), named ``<stem>.alpha.png``, ``<stem>.cutout.png``,
``<stem>.composite.jpg|png`` and ``<stem>.preview.jpg``. A bad file is reported
and skipped; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import glob
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from ..io import IMAGE_SUFFIXES, ImageReadError, alpha_to_uint, encode_png, read_image, save_image
from .main import CLIError
from .options import add_model_options, load_predictor

OUTPUTS = ("alpha", "cutout", "composite", "preview")
STDIN = "-"
#: Inputs in lossless formats get a lossless composite; others (JPEG, WebP, stdin) a JPEG.
_LOSSLESS = {".png", ".tif", ".tiff", ".bmp"}


@dataclass(frozen=True)
class Job:
    """One image to matte and where its outputs go (``out_dir`` None: stdout)."""

    source: Path | None  # None: stdin
    out_dir: Path | None
    stem: str
    label: str

    def suffix(self, kind: str) -> str:
        if kind in ("alpha", "cutout"):
            return ".png"
        if kind == "preview":
            return ".jpg"
        lossless = self.source is None or self.source.suffix.lower() in _LOSSLESS
        return ".png" if lossless else ".jpg"

    def target(self, kind: str) -> Path:
        assert self.out_dir is not None
        return self.out_dir / f"{self.stem}.{kind}{self.suffix(kind)}"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "matte",
        help="matte photos: alpha, cut-out, new background, preview",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        allow_abbrev=False,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs, or - for stdin")
    parser.add_argument("-o", "--out-dir", type=Path, help="output folder (default: next to each input)")
    parser.add_argument(
        "--output",
        default="alpha",
        help="comma-separated outputs: alpha, cutout, composite, preview (default: alpha)",
    )
    parser.add_argument(
        "--background",
        default="white",
        help="for composite: colour name, #hex or r,g,b; an image file (resized to cover); or 'blur'",
    )
    add_model_options(parser)
    parser.add_argument("--bits", type=int, default=8, choices=[8, 16], help="bit depth of alpha and cut-out PNGs")
    parser.add_argument("-r", "--recursive", action="store_true", help="descend into subfolders of folder inputs")
    parser.set_defaults(func=run)


def parse_outputs(text: str) -> list[str]:
    kinds = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [kind for kind in kinds if kind not in OUTPUTS]
    if unknown or not kinds:
        raise CLIError(f"--output takes a comma-separated list of {', '.join(OUTPUTS)}; got {text!r}")
    return list(dict.fromkeys(kinds))


def _is_our_output(path: Path) -> bool:
    """Outputs of an earlier run in a scanned folder must not be matted again."""
    return any(path.stem.endswith(f".{kind}") for kind in OUTPUTS)


def _is_image_name(path: Path) -> bool:
    """An image by its suffix, not hidden (our temporary files are), not one of our outputs."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and not _is_our_output(path)


def _scan(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(path for path in pattern if path.is_file() and _is_image_name(path))


def _jobs_for_path(path: Path, out_dir: Path | None, recursive: bool) -> list[Job]:
    if path.is_dir():
        jobs = []
        for file in _scan(path, recursive):
            target = file.parent if out_dir is None else out_dir / file.parent.relative_to(path)
            jobs.append(Job(file, target, file.stem, str(file)))
        return jobs
    return [Job(path, path.parent if out_dir is None else out_dir, path.stem, str(path))]


def collect_jobs(inputs: list[str], out_dir: Path | None, recursive: bool) -> tuple[list[Job], list[tuple[str, str]]]:
    """Expand arguments into jobs; arguments that match nothing become failures."""
    jobs: list[Job] = []
    failures: list[tuple[str, str]] = []
    for text in inputs:
        if text == STDIN:
            jobs.append(Job(None, out_dir, "stdin", "stdin"))
            continue
        path = Path(text).expanduser()
        if path.exists():
            found = _jobs_for_path(path, out_dir, recursive)
            if not found:
                failures.append((text, "no images in this folder"))
            jobs.extend(found)
        elif any(char in text for char in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            matches = [m for m in matches if m.is_dir() or _is_image_name(m)]
            if not matches:
                failures.append((text, "no files match this pattern"))
            for match in matches:
                jobs.extend(_jobs_for_path(match, out_dir, recursive))
        else:
            failures.append((text, "no such file or folder"))
    return _dedupe(jobs), failures


def _dedupe(jobs: list[Job]) -> list[Job]:
    """Drop repeated inputs; give ``a.jpg`` and ``a.png`` in one folder distinct output names."""
    unique: dict[object, Job] = {}
    for job in jobs:
        key = job.source.resolve() if job.source is not None else STDIN
        unique.setdefault(key, job)
    jobs = list(unique.values())
    clashes = Counter((job.out_dir, job.stem) for job in jobs)
    return [
        replace(job, stem=job.source.name) if job.source is not None and clashes[(job.out_dir, job.stem)] > 1 else job
        for job in jobs
    ]


def render(kind: str, rgb: np.ndarray, alpha: np.ndarray, fg: np.ndarray | None, args: argparse.Namespace):
    """The array for one output kind."""
    from .. import compose

    if kind == "alpha":
        return alpha_to_uint(alpha, args.bits)
    if kind == "cutout":
        return compose.cutout(rgb, alpha, fg, bits=args.bits)
    if kind == "composite":
        return compose.composite(rgb, alpha, args.background_spec.render(rgb, alpha), fg)
    return compose.preview(rgb, alpha, fg)


def process(job: Job, kinds: list[str], predictor, args: argparse.Namespace, protected: set[Path]) -> None:
    """Matte one image and write its outputs (atomically), or its first output to stdout."""
    from ..compose import estimate_foreground

    if job.out_dir is not None:
        for kind in kinds:
            if job.target(kind).resolve() in protected:
                raise ValueError(f"refusing to overwrite the input {job.target(kind)}")
    if job.source is None:
        rgb = read_image(sys.stdin.buffer.read(), name="stdin")
    else:
        rgb = read_image(job.source)
    alpha = predictor.predict_rgb([rgb])[0]
    fg = estimate_foreground(rgb, alpha) if set(kinds) - {"alpha"} else None
    if job.out_dir is None:
        sys.stdout.buffer.write(encode_png(render(kinds[0], rgb, alpha, fg, args)))
        sys.stdout.buffer.flush()
        return
    for kind in kinds:
        save_image(job.target(kind), render(kind, rgb, alpha, fg, args))


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..compose import parse_background

    kinds = parse_outputs(args.output)
    if args.out_dir is not None and args.out_dir.exists() and not args.out_dir.is_dir():
        raise CLIError(f"-o {args.out_dir} exists and is not a folder")
    if args.inputs.count(STDIN) > 1:
        raise CLIError("stdin (-) can be given only once")
    if STDIN in args.inputs and args.out_dir is None and sys.stdout.isatty():
        raise CLIError("refusing to write a PNG to the terminal: redirect stdout or pass -o DIR")
    try:
        args.background_spec = parse_background(args.background) if "composite" in kinds else None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    jobs, failures = collect_jobs(args.inputs, args.out_dir, args.recursive)
    if not jobs:
        raise CLIError("no images to matte: " + "; ".join(f"{name}: {why}" for name, why in failures))
    for name, why in failures:
        print(f"modnet: skipped {name}: {why}", file=sys.stderr)
    predictor = load_predictor(args)
    protected = {job.source.resolve() for job in jobs if job.source is not None}
    done = 0
    bar = tqdm(jobs, unit="image", disable=len(jobs) <= 1, file=sys.stderr)
    for job in bar:
        try:
            process(job, kinds, predictor, args, protected)
            done += 1
        except (ImageReadError, OSError, ValueError, cv2.error, MemoryError) as exc:
            failures.append((job.label, str(exc)))
            about = "" if job.label in str(exc) else f" {job.label}"
            tqdm.write(f"modnet: skipped{about}: {exc}", file=sys.stderr)
    total = done + len(failures)
    if total > 1 or failures:
        where = "" if args.out_dir is None else f" into {args.out_dir}"
        print(f"modnet: matted {done} of {total} input(s){where}", file=sys.stderr)
        if failures:
            print("modnet: failed: " + ", ".join(name for name, _ in failures), file=sys.stderr)
    return 1 if failures else 0

"""``modnet matte``: alpha mattes, cut-outs, new backgrounds and previews for photos.

Inputs are files, folders (``--recursive`` for subfolders), globs, or ``-`` for
stdin. Outputs go next to each input, or under ``-o DIR`` (keeping a folder
input's subfolders), named ``<stem>.alpha.png``, ``<stem>.cutout.png``,
``<stem>.composite.jpg|png`` and ``<stem>.preview.jpg``; same-named inputs from
several folders keep their folders' layout under ``-o``. Inputs are never
overwritten, nor files modnet did not write (unless ``--overwrite``). A bad file
is reported and skipped, every file passed over is listed, and the exit code is
1 if any failed.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .main import CLIError
from .options import add_model_options, announce, load_predictor

if TYPE_CHECKING:  # numpy, OpenCV and the image helpers load when a command runs, not for --help
    import numpy as np

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
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files at output names that modnet did not write (inputs are never replaced)",
    )
    parser.set_defaults(func=run)


def parse_outputs(text: str) -> list[str]:
    kinds = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [kind for kind in kinds if kind not in OUTPUTS]
    if unknown or not kinds:
        raise CLIError(f"--output takes a comma-separated list of {', '.join(OUTPUTS)}; got {text!r}")
    return list(dict.fromkeys(kinds))


def _is_our_output(path: Path) -> bool:
    """An earlier run's output (named like one and carrying our marker) is not matted again.

    A user's photo that only happens to be named ``x.alpha.jpg`` has no marker and is matted.
    """
    from ..io import is_marked_output

    return any(path.stem.endswith(f".{kind}") for kind in OUTPUTS) and is_marked_output(path)


@dataclass
class Scan:
    """What the arguments expand to: jobs, failures, and files passed over with the reason."""

    jobs: list[Job] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    not_images: int = 0

    def consider(self, file: Path, out_dir: Path | None) -> None:
        """A file met while scanning a folder or glob: a job, a listed skip, or a non-image."""
        from ..io import IMAGE_SUFFIXES

        if file.name.startswith("."):
            if file.suffix.lower() in IMAGE_SUFFIXES:  # our temporary files end in .part: not listed
                self.skipped.append((str(file), "hidden file (its name starts with a dot); name it to matte it"))
            return
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            self.not_images += 1
        elif _is_our_output(file):
            self.skipped.append((str(file), "output of an earlier run"))
        else:
            self.jobs.append(Job(file, file.parent if out_dir is None else out_dir, file.stem, str(file)))


def _scan_folder(scan: Scan, folder: Path, out_dir: Path | None, recursive: bool) -> bool:
    """Add a folder's images to ``scan``; False if it held none to matte."""
    before = len(scan.jobs)
    for file in sorted(folder.rglob("*") if recursive else folder.glob("*")):
        if file.is_file():
            target = None if out_dir is None else out_dir / file.parent.relative_to(folder)
            scan.consider(file, target)
        elif file.is_symlink() and not file.exists():
            scan.skipped.append((str(file), "broken symbolic link"))
    return len(scan.jobs) > before


def collect_jobs(inputs: list[str], out_dir: Path | None, recursive: bool) -> Scan:
    """Expand arguments into jobs with unique outputs; arguments that match nothing become failures."""
    scan = Scan()
    for text in inputs:
        if text == STDIN:
            scan.jobs.append(Job(None, out_dir, "stdin", "stdin"))
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            if not _scan_folder(scan, path, out_dir, recursive):
                scan.failures.append((text, "no images to matte in this folder"))
        elif path.exists():  # named explicitly: matted whatever its name or suffix
            scan.jobs.append(Job(path, path.parent if out_dir is None else out_dir, path.stem, str(path)))
        elif any(char in text for char in "*?["):
            before = len(scan.jobs)
            for match in sorted(Path(m) for m in glob.glob(text, recursive=True)):
                if match.is_dir():
                    _scan_folder(scan, match, out_dir, recursive)
                elif match.is_file():
                    scan.consider(match, out_dir)
            if len(scan.jobs) == before:
                scan.failures.append((text, "no images to matte match this pattern"))
        else:
            scan.failures.append((text, "no such file or folder"))
    scan.jobs = unique_outputs(scan.jobs)
    return scan


def unique_outputs(jobs: list[Job]) -> list[Job]:
    """Drop repeated inputs and give every remaining input its own output names.

    Same-named inputs from different folders keep those folders' layout under the output
    folder (``a/x/p.jpg`` and ``a/y/p.jpg`` -> ``out/x/p.alpha.png``, ``out/y/p.alpha.png``);
    ``p.jpg`` and ``p.png`` in one folder become ``p.jpg.alpha.png`` and ``p.png.alpha.png``.
    """
    unique: dict[object, Job] = {}
    for job in jobs:
        unique.setdefault(job.source.resolve() if job.source is not None else STDIN, job)
    jobs = list(unique.values())
    groups: dict[tuple[Path | None, str], list[int]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault((job.out_dir, job.stem), []).append(index)
    for members in groups.values():
        parents = {jobs[i].source.resolve().parent for i in members if jobs[i].source is not None}
        if len(parents) > 1:
            common = Path(os.path.commonpath(parents))
            for i in members:
                job = jobs[i]
                if job.source is not None and job.out_dir is not None:
                    jobs[i] = replace(job, out_dir=job.out_dir / job.source.resolve().parent.relative_to(common))
    clashes = Counter((job.out_dir, job.stem) for job in jobs)
    jobs = [
        replace(job, stem=job.source.name) if job.source is not None and clashes[(job.out_dir, job.stem)] > 1 else job
        for job in jobs
    ]
    left = [key for key, count in Counter((job.out_dir, job.stem) for job in jobs).items() if count > 1]
    if left:
        out_dir, stem = left[0]
        raise CLIError(f"several inputs would write {out_dir}/{stem}.*: matte them into different -o folders")
    return jobs


def render(kind: str, rgb: np.ndarray, alpha: np.ndarray, fg: np.ndarray | None, args: argparse.Namespace):
    """The array for one output kind."""
    from .. import compose
    from ..io import alpha_to_uint

    if kind == "alpha":
        return alpha_to_uint(alpha, args.bits)
    if kind == "cutout":
        return compose.cutout(rgb, alpha, fg, bits=args.bits)
    if kind == "composite":
        return compose.composite(rgb, alpha, args.background_spec.render(rgb, alpha), fg)
    return compose.preview(rgb, alpha, fg)


def check_writable(folders: set[Path]) -> None:
    """Fail now, in one line, on an output folder that cannot be written (not after every image has run)."""
    for folder in sorted(folders):
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent  # a folder to be created: its nearest existing parent decides
        if not os.access(existing, os.W_OK | os.X_OK):
            raise CLIError(f"cannot write into {folder}: permission denied (choose another -o folder)")


def check_targets(job: Job, kinds: list[str], protected: set[Path], overwrite: bool) -> None:
    """Inputs are never overwritten; a file that an earlier run did not write only with ``--overwrite``."""
    from ..io import check_replaceable

    if job.out_dir is None:
        return
    for kind in kinds:
        target = job.target(kind)
        if target.resolve() in protected:
            raise ValueError(f"refusing to overwrite the input {target}")
        check_replaceable(target, overwrite)


def process(job: Job, kinds: list[str], predictor, args: argparse.Namespace, protected: set[Path]) -> None:
    """Matte one image and write its outputs (atomically), or its first output to stdout."""
    from ..compose import estimate_foreground
    from ..io import encode_png, read_image, save_image

    check_targets(job, kinds, protected, args.overwrite)
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
    import cv2
    from tqdm import tqdm

    from ..compose import parse_background
    from ..io import IMAGE_SUFFIXES, ImageReadError

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
    scan = collect_jobs(args.inputs, args.out_dir, args.recursive)
    jobs, failures = scan.jobs, scan.failures
    for name, why in scan.skipped:
        print(f"modnet: skipped {name}: {why}", file=sys.stderr)
    if scan.not_images:
        print(f"modnet: ignored {scan.not_images} file(s) whose suffix is not an image's "
              f"({', '.join(sorted(IMAGE_SUFFIXES))})", file=sys.stderr)
    if not jobs:
        raise CLIError("no images to matte: " + "; ".join(f"{name}: {why}" for name, why in failures))
    for name, why in failures:
        print(f"modnet: skipped {name}: {why}", file=sys.stderr)
    check_writable({job.out_dir for job in jobs if job.out_dir is not None})
    predictor = load_predictor(args)
    announce(predictor, args)
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

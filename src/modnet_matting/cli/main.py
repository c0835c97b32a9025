"""``modnet``: dispatches to one module per subcommand.

Each subcommand module defines ``register(subparsers)`` (adds its parser and
sets ``func`` to a callable taking the parsed args and returning an exit
code). Errors a user can cause become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .. import __version__

SUBCOMMANDS = (
    "matte",
    "video",
    "webcam",
    "serve",
    "export",
    "weights",
    "eval",
    "bench",
    "train",
    "adapt",
    "backbone",
    "labels",
)


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modnet", description="Trimap-free portrait matting with MODNet.")
    parser.add_argument("--version", action="version", version=f"modnet-matting {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{name}":
                continue  # subcommand not part of this build
            raise
        module.register(subparsers)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from ..io import ImageReadError
    from ..weights import CheckpointError

    return (CLIError, CheckpointError, ImageReadError, FileNotFoundError, NotADirectoryError, PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from ..allocator import tune_allocator

    tune_allocator()  # frame-sized arrays reused from the heap: fewer page faults per frame
    try:
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        print(f"modnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("modnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `modnet weights list | head -1`: the reader left, which is no error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit would fail on the closed pipe again
        return 141


if __name__ == "__main__":
    # Run the package's copy of this module: under `python -m` this file is also `__main__`, whose
    # CLIError is another class than the one the subcommands raise, and would go uncaught.
    from modnet_matting.cli.main import main as package_main

    sys.exit(package_main())

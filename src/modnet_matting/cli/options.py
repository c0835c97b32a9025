"""The model options every subcommand that runs the network shares, and how they load.

One definition keeps ``matte``, ``video``, ``webcam`` and ``serve`` agreeing on the
defaults: ``auto`` backend and precision, the fastest path on this machine that
stays within the accuracy bound of fp32 (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from .main import CLIError

if TYPE_CHECKING:
    from ..inference import Predictor

# The same lists as ``inference.PRECISIONS`` / ``BACKENDS`` (a test keeps them equal); not imported
# from there because that module imports torch, which would make every ``--help`` slow.
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
BACKENDS = ("auto", "torch", "compile", "onnx", "openvino", "litert")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--weights, --device, --precision, --backend, --refine and -q."""
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no start-up line (what runs) and no progress output")
    parser.add_argument("--weights", default=None,
                        help="registry name or weights file (.safetensors/.ckpt/.onnx/.xml/.tflite; "
                             "default: modnet-people)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 or mps (default: auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto (default): the fastest within the accuracy bound of fp32 (see docs/performance.md)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="auto (default): the fastest available here; torch fp32 is the authors' way")
    parser.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                        help="enlarge the matte along the image's edges (guided filter) instead of resizing it, "
                             "where the network ran at under two thirds of the image's size (default: on; about "
                             "10 ms a 720p frame; docs/performance.md has what it changes)")


def load_predictor(args: argparse.Namespace) -> Predictor:
    """The predictor the options ask for; a bad device or precision choice is a one-line CLI error.

    Checkpoint problems (missing or corrupt weights) keep their own message.
    """
    from ..inference import load_model
    from ..weights import CheckpointError, cache_dir

    if args.backend == "compile":
        # inductor keeps compiled kernels on disk; under MODNET_HOME they outlive /tmp clean-ups
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "torchinductor"))
        print("modnet: --backend compile: torch.compile builds the network for each new input size on first use "
              "(minutes on a CPU; later runs reuse the kernels cached in "
              f"{os.environ['TORCHINDUCTOR_CACHE_DIR']})", file=sys.stderr)
    try:
        return load_model(args.weights, device=args.device, precision=args.precision, backend=args.backend,
                          refine=args.refine)
    except CheckpointError:
        raise
    except (ValueError, RuntimeError) as exc:
        raise CLIError(str(exc).splitlines()[0]) from None


def describe_run(predictor: Predictor, weights: str | None) -> str:
    """One line on what runs: weights, device, backend and precision, and the network's input size rule.

    What users of every matting tool ask first when it is slow ("is the GPU used?").
    """
    from pathlib import Path

    from ..weights import DEFAULT_WEIGHTS

    backend = predictor.backend
    device = getattr(backend, "device", "cpu")
    pre = predictor.preprocess
    rule = "short side" if pre.resize_mode == "short_side" else "reference size"
    name = Path(str(weights)).name if weights else DEFAULT_WEIGHTS
    return (f"modnet: {name} on {device}, {backend.name} {backend.precision}, network input at {rule} "
            f"{pre.reference_size} (-q hides this line)")


def announce(predictor: Predictor, args: argparse.Namespace) -> None:
    """Print ``describe_run`` to stderr unless ``-q``."""
    if not getattr(args, "quiet", False):
        print(describe_run(predictor, args.weights), file=sys.stderr)

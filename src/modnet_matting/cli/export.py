"""``modnet export``: the inference path as ONNX (dynamic batch/height/width) or TorchScript.

Input ``input`` [B, 3, H, W] RGB in [-1, 1] (H, W multiples of 32), output
``output`` [B, 1, H, W] alpha. After writing, the file is run once next to eager
PyTorch and the largest difference is printed.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from .main import CLIError

#: fp32 agreement required between the export and eager PyTorch.
PARITY_TOLERANCE = 1e-4
_CHECK_SIZE = (64, 96)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export to ONNX or TorchScript", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    parser.add_argument("--weights", default=None, help="registry name or checkpoint file (default: modnet-people)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="file to write")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, at least 17 (default 17)")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check against PyTorch")
    parser.set_defaults(func=run)


def _run_exported(fmt: str, path: Path, batch: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["output"], {"input": batch})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated but still loads
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(torch.from_numpy(batch)).numpy()


def run(args: argparse.Namespace) -> int:
    from ..export import MIN_OPSET, export_onnx, export_torchscript, max_difference
    from ..weights import load_weights, resolve

    if args.opset < MIN_OPSET:
        raise CLIError(f"--opset must be at least {MIN_OPSET}")
    if args.out.exists() and args.out.is_dir():
        raise CLIError(f"-o {args.out} is a folder; give a file name")
    source, _ = resolve(args.weights)
    if args.out.resolve() == source.resolve():
        raise CLIError(f"refusing to overwrite the weights file {source}")
    model, config = load_weights(args.weights)
    if args.format == "onnx":
        export_onnx(model, args.out, opset=args.opset, config=config)
    else:
        export_torchscript(model, args.out, config=config)
    print(f"wrote {args.out} ({args.format})", file=sys.stderr)
    if args.no_check:
        return 0
    batch = np.random.default_rng(0).uniform(-1, 1, (1, 3, *_CHECK_SIZE)).astype(np.float32)
    with torch.no_grad():
        expected = model.eval().forward_matte(torch.from_numpy(batch)).numpy()
    diff = max_difference(_run_exported(args.format, args.out, batch), expected)
    print(f"max |export - pytorch| at {_CHECK_SIZE[0]}x{_CHECK_SIZE[1]}: {diff:.2e}", file=sys.stderr)
    if diff > PARITY_TOLERANCE:
        print(f"modnet: error: the export differs from PyTorch by more than {PARITY_TOLERANCE}", file=sys.stderr)
        return 1
    return 0

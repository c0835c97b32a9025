"""``modnet export``: the inference path as ONNX, TorchScript, OpenVINO IR, Core ML, TFLite, or a web page.

Input ``input`` [B, 3, H, W] RGB in [-1, 1] (H, W multiples of 32), output
``output`` [B, 1, H, W] alpha. After writing, the file is run once next to eager
PyTorch and the largest difference is printed. ``openvino`` writes an fp32 IR
(.xml + .bin) of the BatchNorm-folded network; ``openvino-int8`` quantises it
with NNCF, calibrated on the photos under ``--calibration DIR`` and measured
against fp32 on held-out ones (``--cache`` lets ``--backend auto`` use it).
``coreml`` writes an ``.mlpackage`` at a fixed ``--size`` (image in, alpha out, fp16),
``tflite`` a ``.tflite`` at a fixed ``--size`` (NHWC or NCHW; ``--precision`` fp32, fp16,
or int8 calibrated on ``--calibration DIR``);
``web`` writes a folder that mattes photos and the camera in the browser
(onnxruntime-web; docs/deploy.md).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .main import CLIError

if TYPE_CHECKING:
    import numpy as np

#: fp32 agreement required between the export and eager PyTorch.
PARITY_TOLERANCE = 1e-4
_CHECK_SIZE = (64, 96)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export to ONNX, TorchScript, OpenVINO, Core ML, TFLite or a web page",
        description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument("--format", required=True,
                        choices=["onnx", "torchscript", "openvino", "openvino-int8", "coreml", "tflite", "web"])
    parser.add_argument("--weights", default=None, help="registry name or checkpoint file (default: modnet-people)")
    parser.add_argument("-o", "--out", type=Path, help="file to write (.xml for openvino formats, .mlpackage for "
                        "coreml, a folder for web; optional with --cache)")
    parser.add_argument("--size", metavar="WxH", help="coreml, tflite: the fixed input size, width x height, "
                        "multiples of 32 (default 320x448, a portrait frame)")
    parser.add_argument("--layout", choices=["nhwc", "nchw"], default=None,
                        help="tflite: tensor layout (default nhwc, TFLite's own)")
    parser.add_argument("--precision", choices=["fp32", "fp16", "int8"], default=None,
                        help="tflite: fp32 (default), fp16 weights, or int8 (needs --calibration)")
    parser.add_argument("--runtime", type=Path, metavar="PATH",
                        help="web: onnxruntime-web's npm package (.tgz) or its unpacked folder (default: the "
                             "cached copy, downloaded once from the npm registry with its SHA-256 checked)")
    parser.add_argument("--calibration", type=Path, action="append", metavar="DIR",
                        help="openvino-int8, tflite int8/fp16: folder of real photos (searched recursively; "
                             "repeatable); fp16 is measured on it")
    parser.add_argument("--calibration-size", type=int, default=160, metavar="N",
                        help="openvino-int8, tflite int8: photos to calibrate on (default 160)")
    parser.add_argument("--holdout", type=int, default=40, metavar="N",
                        help="openvino-int8, tflite: other photos to measure against fp32 on (default 40)")
    parser.add_argument("--cache", action="store_true",
                        help="openvino-int8: also store it in the cache, where --backend auto finds it "
                             "for these weights")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, at least 17 (default 17)")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check against PyTorch")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing -o file that modnet did not write (its own exports are replaced)")
    parser.set_defaults(func=run)


def _run_exported(fmt: str, path: Path, batch: np.ndarray) -> np.ndarray:
    import torch

    if fmt.startswith("openvino"):
        from ..inference import OpenVinoBackend

        return OpenVinoBackend(path, "fp32").run(batch)
    if fmt == "tflite":
        from ..inference.backends.litert import LiteRTBackend

        return LiteRTBackend(path).run(batch)
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["output"], {"input": batch})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated but still loads
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(torch.from_numpy(batch)).numpy()


def _check_args(args: argparse.Namespace) -> None:
    from ..export import MIN_OPSET

    if args.opset < MIN_OPSET:
        raise CLIError(f"--opset must be at least {MIN_OPSET}")
    int8 = args.format == "openvino-int8"
    lossy_tflite = args.format == "tflite" and args.precision in ("fp16", "int8")
    if args.out is None and not (int8 and args.cache):
        raise CLIError("-o FILE is required (openvino-int8 may use --cache instead)")
    if args.out is not None and args.out.is_dir() and args.format not in ("web", "coreml"):
        raise CLIError(f"-o {args.out} is a folder; give a file name")
    if args.format.startswith("openvino") and args.out is not None and args.out.suffix.lower() != ".xml":
        raise CLIError("an OpenVINO model is written as FILE.xml (with FILE.bin beside it): give -o FILE.xml")
    if int8 and not args.calibration:
        raise CLIError("openvino-int8 needs --calibration DIR: a folder of real photos to set the int8 ranges")
    if args.precision is not None and args.format != "tflite":
        raise CLIError("--precision is for --format tflite (openvino-int8 is a format of its own)")
    if args.format == "tflite" and args.precision == "int8" and not args.calibration:
        raise CLIError("tflite int8 needs --calibration DIR: a folder of real photos to set the int8 ranges")
    if args.cache and not int8:
        raise CLIError("--cache is for --format openvino-int8")
    if args.calibration and not (int8 or lossy_tflite):
        raise CLIError("--calibration is for --format openvino-int8 and tflite --precision int8/fp16")
    if args.size is not None and args.format not in ("coreml", "tflite"):
        raise CLIError("--size is for --format coreml and tflite (the other formats take any size)")
    if args.layout is not None and args.format != "tflite":
        raise CLIError("--layout is for --format tflite")
    if args.format == "tflite" and args.out is not None and args.out.suffix.lower() != ".tflite":
        raise CLIError("a TFLite model is written as NAME.tflite: give -o NAME.tflite")
    if args.runtime is not None and args.format != "web":
        raise CLIError("--runtime is for --format web")
    if args.format == "coreml" and args.out is not None and args.out.suffix.lower() != ".mlpackage":
        raise CLIError("a Core ML model is written as NAME.mlpackage: give -o NAME.mlpackage")
    if args.format == "web" and args.out is not None and args.out.exists() and not args.out.is_dir():
        raise CLIError(f"-o {args.out} is a file; --format web writes a folder")
    if (int8 or lossy_tflite) and (args.calibration_size < 1 or args.holdout < 0):
        raise CLIError("--calibration-size must be at least 1 and --holdout at least 0")


def _export_openvino(args: argparse.Namespace, model, config) -> list[Path]:  # noqa: ANN001
    """Write the fp32 or int8 IR; returns the written .xml paths."""
    from ..export import cached_onnx
    from ..inference import OPENVINO_HALF_NORM, int8_cache_path, openvino_available
    from ..model.fuse import fuse_modnet

    if not openvino_available():
        raise CLIError("OpenVINO export needs the openvino package: pip install 'modnet-matting[openvino]'")
    if args.format == "openvino":
        import openvino as ov

        from ..inference.backends.openvino import save_ir

        onnx_path = cached_onnx(fuse_modnet(model, OPENVINO_HALF_NORM), config)
        return [save_ir(ov.Core().read_model(str(onnx_path)), args.out, config)]
    try:
        import nncf  # noqa: F401
    except ImportError:
        raise CLIError("int8 calibration needs NNCF: pip install 'modnet-matting[openvino]'") from None
    from ..export import fingerprint
    from ..inference.int8 import calibrate_int8
    from ..weights import resolve, sha256_of

    log = lambda message: print(f"modnet: {message}", file=sys.stderr)  # noqa: E731
    first = args.out if args.out is not None else int8_cache_path(fingerprint(model)[:20])
    try:
        written, _ = calibrate_int8(model, config, args.calibration, first, args.calibration_size, args.holdout,
                                    log=log, weights_sha256=sha256_of(resolve(args.weights)[0]))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    paths = [written]
    if args.cache and args.out is not None:
        import openvino as ov

        from ..inference.backends.openvino import save_ir

        paths.append(save_ir(ov.Core().read_model(str(written)), int8_cache_path(fingerprint(model)[:20]), config))
    return paths


def _parse_size(text: str | None) -> tuple[int, int]:
    """``WxH`` -> (height, width); the default is the fixed-size exports' own."""
    from ..deploy import DEFAULT_SIZE

    if text is None:
        return DEFAULT_SIZE
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise CLIError(f"--size takes WIDTHxHEIGHT, e.g. 320x448, not {text!r}") from None
    return height, width


def _export_deploy(args: argparse.Namespace, model, config) -> list[Path]:  # noqa: ANN001
    """Core ML, TFLite or the web folder; their converters' errors are one line."""
    try:
        if args.format == "coreml":
            from ..deploy.coreml import export_coreml

            return [export_coreml(model, args.out, config, _parse_size(args.size))]
        if args.format == "tflite":
            return [_export_tflite(args, model, config)]
        from ..deploy.web import RUNTIME_URL, cached_runtime, export_web

        if args.runtime is None and not cached_runtime().is_file():
            print(f"modnet: fetching onnxruntime-web for the page (35 MB, once) from {RUNTIME_URL}", file=sys.stderr)
        return [export_web(model, args.out, config, args.runtime)]  # reads the runtime before exporting the model
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None


def _export_tflite(args: argparse.Namespace, model, config) -> Path:  # noqa: ANN001
    """fp32 as it is; fp16/int8 calibrated and measured on the photos under --calibration."""
    from ..deploy.tflite import export_tflite
    from ..inference.int8 import calibration_photos, network_inputs, split_images

    calibration, held = [], []
    if args.calibration:
        calib_paths, held_paths = split_images(calibration_photos(args.calibration), args.calibration_size,
                                               args.holdout)
        calibration = [x[0] for x in network_inputs(calib_paths, config)] if args.precision == "int8" else []
        held = [x[0] for x in network_inputs(held_paths, config)]
        print(f"modnet: {len(calibration)} photos to calibrate on, {len(held)} held out", file=sys.stderr)

    def log(line: str) -> None:
        print(f"modnet: {line}", file=sys.stderr)

    return export_tflite(model, args.out, config, _parse_size(args.size), args.layout or "nhwc",
                         args.precision or "fp32", calibration, held, log=log)


def _report_deploy(args: argparse.Namespace, path: Path) -> None:
    """The size, and how to use or check what was written (Core ML cannot run here)."""
    from ..deploy.web import folder_size

    size = folder_size(path) if path.is_dir() else path.stat().st_size
    print(f"wrote {path} ({args.format}, {size / 1e6:.1f} MB)", file=sys.stderr)
    if args.format == "coreml":
        print("modnet: Core ML predicts only on macOS: docs/deploy.md has the one-liner that checks it there "
              "against PyTorch", file=sys.stderr)
    elif args.format == "web":
        print(f"modnet: serve it with: python -m http.server -d {path} 8000, then open http://localhost:8000",
              file=sys.stderr)


def _export_from_file(args: argparse.Namespace, source: Path) -> list[Path]:
    """An ONNX file becomes an OpenVINO IR; every other conversion needs the weights it came from."""
    if source.suffix.lower() == ".xml" or args.format != "openvino":
        raise CLIError(f"{source.name} is an export: it converts only from .onnx to --format openvino; for "
                       f"{args.format} pass the .safetensors or .ckpt it came from")
    from ..export import read_onnx_config
    from ..inference import openvino_available
    from ..inference.backends.openvino import save_ir

    if not openvino_available():
        raise CLIError("OpenVINO export needs the openvino package: pip install 'modnet-matting[openvino]'")
    import openvino as ov

    try:
        config = read_onnx_config(source)
        model = ov.Core().read_model(str(source))
    except Exception as exc:  # noqa: BLE001 - protobuf and OpenVINO parse errors have many types
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CLIError(f"{source} is not a usable ONNX model: {reason}") from None
    return [save_ir(model, args.out, config)]


def _check_replaceable(args: argparse.Namespace) -> None:
    """An existing -o file (and an IR's .bin) is replaced only if modnet wrote it, or with --overwrite."""
    from ..io import OverwriteRefused, check_replaceable

    if args.out is None or args.format in ("web", "coreml"):  # folders: the web export keeps its own marker file
        return
    targets = [args.out, args.out.with_suffix(".bin")] if args.format.startswith("openvino") else [args.out]
    try:
        for target in targets:
            check_replaceable(target, args.overwrite)
    except OverwriteRefused as exc:
        raise CLIError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..export import export_onnx, export_torchscript, max_difference
    from ..weights import load_weights, resolve

    _check_args(args)
    _check_replaceable(args)
    given = Path(str(args.weights)) if args.weights is not None else None
    if given is not None and given.suffix.lower() in (".onnx", ".xml"):
        if not given.is_file():
            raise CLIError(f"weights file not found: {given}")
        if args.out is not None and args.out.resolve() == given.resolve():
            raise CLIError(f"refusing to overwrite the weights file {given}")
        written = _export_from_file(args, given)
        print(f"wrote {written[0]} ({args.format}, from {given.name})", file=sys.stderr)
        if args.no_check:
            return 0
        batch = np.random.default_rng(0).uniform(-1, 1, (1, 3, *_CHECK_SIZE)).astype(np.float32)
        diff = max_difference(_run_exported("openvino", written[0], batch), _run_exported("onnx", given, batch))
        print(f"max |openvino - onnxruntime| at {_CHECK_SIZE[0]}x{_CHECK_SIZE[1]}: {diff:.2e}", file=sys.stderr)
        return 0 if diff <= PARITY_TOLERANCE else 1
    source, _ = resolve(args.weights)
    if args.out is not None and args.out.resolve() == source.resolve():
        raise CLIError(f"refusing to overwrite the weights file {source}")
    model, config = load_weights(args.weights)
    if args.format == "onnx":
        written = [export_onnx(model, args.out, opset=args.opset, config=config)]
    elif args.format == "torchscript":
        written = [export_torchscript(model, args.out, config=config)]
    elif args.format in ("coreml", "tflite", "web"):
        written = _export_deploy(args, model, config)
        _report_deploy(args, written[0])
    else:
        written = _export_openvino(args, model, config)
    if args.format not in ("coreml", "tflite", "web"):
        for path in written:
            print(f"wrote {path} ({args.format})", file=sys.stderr)
    if args.no_check or args.format in ("openvino-int8", "coreml") or args.precision in ("fp16", "int8"):
        return 0  # lossy ones are judged on real photos (the held-out MAD printed above); Core ML runs on macOS
    checked, runtime = (written[0] / "model.onnx", "onnx") if args.format == "web" else (written[0], args.format)
    size = _parse_size(args.size) if args.format == "tflite" else _CHECK_SIZE  # a TFLite model has one size
    batch = np.random.default_rng(0).uniform(-1, 1, (1, 3, *size)).astype(np.float32)
    with torch.no_grad():
        expected = model.eval().forward_matte(torch.from_numpy(batch)).numpy()
    diff = max_difference(_run_exported(runtime, checked, batch), expected)
    print(f"max |export - pytorch| at {size[0]}x{size[1]}: {diff:.2e}", file=sys.stderr)
    if diff > PARITY_TOLERANCE:
        print(f"modnet: error: the export differs from PyTorch by more than {PARITY_TOLERANCE}", file=sys.stderr)
        return 1
    return 0

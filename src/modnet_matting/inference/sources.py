"""What the weights are, and how each runtime gets them.

A ``Source`` is one of four kinds: our network in PyTorch (a registry name,
``.safetensors`` or ``.ckpt``), a given ONNX file, a given OpenVINO IR, or a given
TFLite file (fixed size, run by LiteRT as it is). It knows
which runtimes can run it, says so in one line when asked for another, and
becomes the file a runtime needs on demand: the network is exported to ONNX once
per weights and graph form (cached by fingerprint, ``export.cached_onnx``), and its
int8 IR is looked up in the cache where ``modnet export --cache`` wrote it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..weights import (
    CheckpointError,
    WeightsConfig,
    WeightsNotFoundError,
    export_kind,
    load_weights,
    packaged_int8,
    resolve,
    sha256_of,
)
from .backends.litert import CONFIG_KEY as TFLITE_CONFIG_KEY
from .backends.litert import IO_KEY as TFLITE_IO_KEY
from .backends.litert import read_tflite_metadata
from .backends.onnx import ONNXRUNTIME_HALF_NORM, OnnxBackend
from .backends.openvino import (
    OpenVinoBackend,
    check_ir_files,
    int8_cache_path,
    is_quantized,
    made_from,
    read_ir,
    read_ir_config,
)
from .backends.torch import TorchBackend
from .hardware import need_openvino

if TYPE_CHECKING:
    from torch import nn

    from .backends import Backend

#: The runtimes each kind of source can feed.
RUNTIMES = {"network": ("torch", "compile", "onnx", "openvino"), "onnx": ("onnx", "openvino"), "ir": ("openvino",),
            "tflite": ("litert",)}
_DESCRIPTION = {"onnx": "ONNX", "ir": "OpenVINO", "tflite": "TFLite"}


@dataclass
class Source:
    """What a backend is built from; make one with ``open_source`` or ``Source.network``."""

    kind: str  # "network", "onnx", "ir" or "tflite"
    config: WeightsConfig
    model: nn.Module | None = None  # kind "network"
    path: Path | None = None  # kinds "onnx", "ir" and "tflite": the given file, run as it is
    ir_model: object | None = None  # kind "ir": the file as OpenVINO read it
    file_precision: str | None = None  # kind "tflite": fp32, fp16 or int8, fixed at export
    weights_file: Path | None = None  # kind "network": the file the weights came from, where known
    shipped_int8: Path | None = None  # kind "network": the int8 IR shipped with registry weights
    _key: str | None = None
    _exports: dict[str, Path] = dataclasses.field(default_factory=dict)

    @classmethod
    def network(cls, model: nn.Module, config: WeightsConfig | None = None) -> Source:
        return cls("network", config or WeightsConfig(), model=model)

    @classmethod
    def onnx_file(cls, path: Path) -> Source:
        from ..export import read_onnx_config

        _must_exist(path)
        try:
            config = read_onnx_config(path)
        except Exception as exc:  # onnx raises its own types on a file that is not a model
            raise CheckpointError(f"{path} is not a usable ONNX model ({type(exc).__name__}: {exc})") from None
        return cls("onnx", config, path=path)

    @classmethod
    def ir_file(cls, path: Path) -> Source:
        _must_exist(path)
        check_ir_files(path)
        need_openvino()
        ir_model = read_ir(path)
        return cls("ir", read_ir_config(ir_model), path=path, ir_model=ir_model)

    @classmethod
    def tflite_file(cls, path: Path) -> Source:
        _must_exist(path)
        try:
            import ai_edge_litert  # noqa: F401
        except ImportError:
            raise ValueError("a .tflite model runs on LiteRT: pip install 'modnet-matting[litert]'") from None
        try:
            metadata = read_tflite_metadata(path)
            config = WeightsConfig.from_json(metadata[TFLITE_CONFIG_KEY]) if TFLITE_CONFIG_KEY in metadata \
                else WeightsConfig()
            precision = json.loads(metadata.get(TFLITE_IO_KEY, "{}")).get("precision", "fp32")
        except Exception as exc:  # flatbuffers raises its own types on a file that is not a model
            raise CheckpointError(f"{path} is not a usable TFLite model ({type(exc).__name__}: {exc})") from None
        return cls("tflite", config, path=path, file_precision=precision)

    @property
    def quantized(self) -> bool:
        """An int8 IR given as it is: int8 is what the user chose, not a lossy path ``auto`` picks."""
        return self.kind == "ir" and is_quantized(self.ir_model)

    @property
    def key(self) -> str:
        """Fingerprint of the weights: names cached exports and accuracy checks."""
        if self._key is None:
            if self.model is not None:
                from ..export import fingerprint

                self._key = fingerprint(self.model)[:20]
            else:
                weights = self.path.with_suffix(".bin") if self.kind == "ir" else self.path
                self._key = sha256_of(weights)[:20]  # type: ignore[arg-type]
        return self._key

    def check(self, backend: str, precision: str) -> None:
        """The user's backend and precision against what this kind of source runs: one-line errors."""
        if self.kind == "onnx":
            if backend not in ("auto", *RUNTIMES["onnx"]):
                raise ValueError(f"an .onnx model runs on the onnx or openvino backend, not {backend}")
            if backend == "onnx" and precision not in ("fp32", "auto"):
                raise ValueError(f"an .onnx model runs in fp32 only on the onnx backend, not {precision}")
        elif self.kind == "ir":
            if backend not in ("auto", "openvino"):
                raise ValueError(f"an OpenVINO IR (.xml) runs on the openvino backend, not {backend}: pass the "
                                 ".safetensors or .ckpt it came from for that backend")
            if precision not in ("auto", "fp32", "bf16", "int8"):
                raise ValueError(f"an OpenVINO model runs in fp32, bf16 or int8, not {precision}")
            if precision == "int8" and not self.quantized:
                raise ValueError(f"{self.path} is not an int8 model; export one with --format openvino-int8")
            if self.quantized and precision not in ("auto", "int8"):
                raise ValueError(f"{self.path} is an int8 model: it runs in int8 only (--precision int8 or auto); "
                                 "for fp32 or bf16 pass the weights it came from")
        elif self.kind == "tflite":
            if backend not in ("auto", "litert"):
                raise ValueError(f"a .tflite model runs on the litert backend, not {backend}: pass the "
                                 ".safetensors or .ckpt it came from for that backend")
            if precision not in ("auto", self.file_precision):
                raise ValueError(f"{self.path} is a {self.file_precision} model, not {precision}: its precision "
                                 "was chosen at export (--precision)")
        elif backend == "litert":
            raise ValueError("the litert backend runs .tflite files: export one with --format tflite")

    def torch_model(self, backend: str) -> nn.Module:
        if self.model is None:
            raise ValueError(f"the {backend} backend needs PyTorch weights, not an {_DESCRIPTION[self.kind]} file")
        return self.model

    def onnx(self, half_norm: str | None) -> Path:
        """The ONNX graph; exported from our network BatchNorm-folded (``model.fuse``) in ``half_norm`` form,
        or as it is (None)."""
        if self.kind in ("ir", "tflite"):
            raise ValueError(f"an {_DESCRIPTION[self.kind]} file runs as it is, on its own runtime only")
        if self.kind == "onnx":
            return self.path  # type: ignore[return-value]
        form = half_norm or "unfolded"
        if form not in self._exports:
            from ..export import cached_onnx
            from ..model.fuse import fuse_modnet

            network = self.model if half_norm is None else fuse_modnet(self.model, half_norm)  # type: ignore[arg-type]
            self._exports[form] = cached_onnx(network, self.config)  # type: ignore[arg-type]
        return self._exports[form]

    def openvino_input(self, half_norm: str) -> Path:
        """What OpenVINO reads for fp32/bf16: the given IR, else the ONNX graph."""
        return self.path if self.kind == "ir" else self.onnx(half_norm)  # type: ignore[return-value]

    def int8_ir(self) -> Path:
        """The int8 IR: the given one, or the one calibrated for these weights into the cache."""
        if self.kind == "ir":
            if not self.quantized:
                raise ValueError(f"{self.path} is not an int8 model; export one with --format openvino-int8")
            return self.path  # type: ignore[return-value]
        if self.kind == "onnx":
            raise ValueError("an ONNX file has no int8 model: export one with --format openvino-int8 and pass "
                             "its .xml")
        path = int8_cache_path(self.key)
        if path.is_file():
            return path
        if self._shipped_int8_matches():
            return self.shipped_int8  # type: ignore[return-value]
        raise ValueError("no int8 model calibrated for these weights yet: run "
                         "`modnet export --format openvino-int8 --calibration DIR --cache` first")

    def _shipped_int8_matches(self) -> bool:
        """Whether the shipped int8 IR was calibrated on this very weights file (by the SHA-256 it records)."""
        if self.shipped_int8 is None or self.weights_file is None:
            return False
        try:
            return made_from(read_ir(self.shipped_int8), self.weights_file)
        except CheckpointError:
            return False

    def reference(self) -> Backend:
        """The exact fp32 path lossy candidates are checked against."""
        if self.kind == "network":
            return TorchBackend(self.model, "cpu", "fp32")  # type: ignore[arg-type]
        if self.kind == "onnx":
            return OnnxBackend(self.onnx(ONNXRUNTIME_HALF_NORM), "cpu")
        if self.kind == "tflite":
            raise ValueError("a .tflite file runs at the precision it was exported in; there is no fp32 path in it")
        return OpenVinoBackend(self.path, "fp32", model=self.ir_model)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def file_errors(self) -> Iterator[None]:
        """A given file that no runtime can run is the file's fault: a ``CheckpointError`` naming it.

        The user's own choices (a precision or device this kind cannot run) stay ``ValueError``s.
        """
        if self.kind == "network":
            yield
            return
        what = f"{self.path} is not a usable {_DESCRIPTION[self.kind]} model"
        try:
            yield
        except ValueError as exc:
            if not str(exc).startswith("no backend can run here"):
                raise
            raise CheckpointError(f"{what} ({exc})") from None
        except (CheckpointError, WeightsNotFoundError):
            raise
        except Exception as exc:  # the runtimes raise their own exception types on a bad file
            raise CheckpointError(f"{what} ({type(exc).__name__}: {exc})") from None


def open_source(name_or_path: str | os.PathLike[str] | None) -> Source:
    """A registry name, weights file (``.safetensors``, ``.ckpt``), ``.onnx``, OpenVINO ``.xml`` or ``.tflite``."""
    kind = export_kind(name_or_path)
    if kind is None:
        source = Source.network(*load_weights(name_or_path))
        source.weights_file, source.shipped_int8 = resolve(name_or_path)[0], packaged_int8(name_or_path)
        return source
    opener = {"onnx": Source.onnx_file, "ir": Source.ir_file, "tflite": Source.tflite_file}[kind]
    return opener(Path(name_or_path).expanduser())  # type: ignore[arg-type]


def _must_exist(path: Path) -> None:
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")

"""The warm start: what ``auto`` chose for a weights file, remembered, so the next process skips PyTorch.

On a CPU a single photo's time is mostly start-up: importing PyTorch alone took 1.6 of the 2.3 s of
``modnet matte photo.jpg`` on the project's 2-core machine (docs/performance.md), and building the
network to find its cached graph costs more. Once ``auto`` (or a named ``openvino`` backend) has
settled on an OpenVINO graph for a weights file, ``remember`` writes the graph's path and precision
down; ``recall`` builds that backend from the graph alone when the same file (path, size and
modification time) is asked for the same way again, on the same CPU, OpenVINO and package version.
Registry weights shipped with an int8 model need no earlier run: ``shipped_int8`` is the choice
``auto`` makes for them (the model records that it was calibrated on this very file and its
held-out error, within ``ACCURACY_BOUND``), so even a first run skips PyTorch.
Anything else takes the full path: another device, a machine where PyTorch might find a GPU, a
backend that is not OpenVINO, a graph that has gone from the cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..io import atomic_write, read_json_object
from ..weights import CheckpointError, WeightsConfig, cache_dir, export_kind, packaged_int8, resolve
from .hardware import cpu_name, openvino_available, openvino_version

if TYPE_CHECKING:
    from .backends import Backend
    from .backends.openvino import OpenVinoBackend

#: At most this many remembered choices (one per weights file, request and machine); the oldest go first.
MAX_CHOICES = 64
#: Device files of the GPUs PyTorch can use on Linux (NVIDIA, AMD ROCm, WSL's GPU bridge).
_GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def choices_file() -> Path:
    return cache_dir() / "auto" / "choices.json"


def gpu_possible() -> bool:
    """Whether PyTorch might find a GPU here; then "auto" needs PyTorch itself to pick the device."""
    return sys.platform == "darwin" or any(Path(p).exists() for p in _GPU_DEVICE_FILES)


def _key(name_or_path: str | os.PathLike[str] | None, backend: str, precision: str, device: str | None) -> str | None:
    """What a choice depends on, or None where no choice is remembered (not our weights, not the CPU)."""
    if backend not in ("auto", "openvino") or export_kind(name_or_path) is not None:
        return None
    if device not in (None, "auto", "cpu") or (device != "cpu" and gpu_possible()) or not openvino_available():
        return None
    try:
        path = resolve(name_or_path)[0].resolve()
        stat = path.stat()
    except (OSError, ValueError):
        return None
    return json.dumps([str(path), stat.st_size, stat.st_mtime_ns, backend, precision, cpu_name(),
                       openvino_version(), __version__])


def recall(name_or_path: str | os.PathLike[str] | None, backend: str, precision: str, device: str | None,
           threads: int | None) -> tuple[OpenVinoBackend, WeightsConfig] | None:
    """The remembered OpenVINO backend and weights config for this request, or None (take the full path)."""
    key = _key(name_or_path, backend, precision, device)
    if key is None:
        return None
    entry = read_json_object(choices_file()).get(key)
    if not isinstance(entry, dict):
        return shipped_int8(name_or_path, precision, threads)
    from .backends.openvino import OpenVinoBackend

    try:
        graph = Path(entry["graph"])
        if not graph.is_file():
            return None
        return OpenVinoBackend(graph, entry["precision"], threads), WeightsConfig.from_json(entry["config"])
    except Exception:  # noqa: BLE001 - a stale or damaged record only costs the full path
        return None


def shipped_int8(name_or_path: str | os.PathLike[str] | None, precision: str,
                 threads: int | None) -> tuple[OpenVinoBackend, WeightsConfig] | None:
    """The int8 model shipped with registry weights, where ``auto`` (or int8 asked for) would take it:
    calibrated on this very weights file and, for "auto", recorded within ``ACCURACY_BOUND``."""
    model_path = packaged_int8(name_or_path) if precision in ("auto", "int8") else None
    if model_path is None:
        return None
    from .backends.openvino import (
        ACCURACY_BOUND,
        OpenVinoBackend,
        int8_rest_precision,
        made_from,
        read_ir,
        read_ir_accuracy,
        read_ir_config,
    )

    try:
        model = read_ir(model_path)
        accuracy = read_ir_accuracy(model)
        if not made_from(model, resolve(name_or_path)[0]):
            return None
        if precision == "auto" and (accuracy is None or accuracy.mad > ACCURACY_BOUND):
            return None
        return OpenVinoBackend(model_path, int8_rest_precision(), threads, model=model), read_ir_config(model)
    except (CheckpointError, OSError, ValueError, RuntimeError):
        return None


def remember(name_or_path: str | os.PathLike[str] | None, backend: str, precision: str, device: str | None,
             chosen: Backend, config: WeightsConfig) -> None:
    """Write down an OpenVINO choice for ``recall``; other backends, and a read-only cache, are left alone."""
    from .backends.openvino import OpenVinoBackend

    if not isinstance(chosen, OpenVinoBackend):
        return
    key = _key(name_or_path, backend, precision, device)
    if key is None:
        return
    store = choices_file()
    known = read_json_object(store)
    known.pop(key, None)
    known[key] = {"graph": str(chosen.model_path), "precision": chosen.compute_precision, "config": config.to_json()}
    kept = dict(list(known.items())[-MAX_CHOICES:])
    with contextlib.suppress(OSError):
        atomic_write(store, (json.dumps(kept, indent=1) + "\n").encode())

"""Matting in the browser: a static folder with the page, the model as ONNX and onnxruntime-web.

``export_web`` writes everything a web server needs to offer portrait matting with no
server doing the work: ``index.html`` with ``browser.js`` (photo or camera in; alpha,
cut-out or a new background out; one-frame-delay smoothing for the camera; a PNG
download), ``model.onnx`` (the same graph ``modnet export --format onnx`` writes),
``modnet.json`` (preprocessing, tensor names) and ``ort/`` with onnxruntime-web's
WASM bundle and, for browsers with a GPU adapter, its WebGPU bundle. The runtime comes from
its npm package: a file or folder the user gives, or downloaded once from the npm
registry (explicit URL, SHA-256 checked) into the cache.

Browsers do not let a page read files next to it over ``file://``: serve the folder
(``python -m http.server -d DIR``, one WASM thread; ``modnet serve`` offers the same page
at ``/browser/`` with the cross-origin isolation headers that allow more threads).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from importlib import resources
from pathlib import Path

from torch import nn

from ..export import INPUT_NAME, OUTPUT_NAME, onnx_bytes
from ..inference.preprocess import DEFAULT_MAX_PIXELS
from ..io import scratch_folder
from ..weights import CheckpointError, WeightsConfig, cache_dir, download_verified

RUNTIME_VERSION = "1.31.1"
RUNTIME_URL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{RUNTIME_VERSION}.tgz"
RUNTIME_SHA256 = "bdccdb9fbb9ab537247c0c734e9b1d2b1b338b4f2a09faa58f0dc1cfa27c312c"
#: What the page loads from the package's dist/: the WASM bundle and its module (used without a GPU: 1.5 s
#: a photo where the WebGPU bundle's module took 4.9 s, headless Chromium, 2026-12-03), and the WebGPU bundle.
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
                 "ort.webgpu.min.js", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
PAGE_FILES = ("index.html", "browser.js", "browser.css")
MODEL_FILE = "model.onnx"
MARKER = ".modnet-web"


def page_config(config: WeightsConfig) -> dict:
    """``modnet.json``: what the page needs to prepare images as Python does."""
    pre = config.preprocess
    return {
        "model": MODEL_FILE, "input": INPUT_NAME, "output": OUTPUT_NAME, "max_pixels": DEFAULT_MAX_PIXELS,
        "preprocess": {"mean": list(pre.mean), "std": list(pre.std), "reference_size": pre.reference_size,
                       "size_divisor": pre.size_divisor, "resize_mode": pre.resize_mode},
        "runtime": f"onnxruntime-web {RUNTIME_VERSION}",
    }


def page_asset(name: str) -> bytes:
    """One of the page's own files (index.html, browser.js, browser.css)."""
    return (resources.files("modnet_matting") / "deploy" / "web_static" / name).read_bytes()


def cached_runtime() -> Path:
    """Where the downloaded onnxruntime-web package is kept."""
    return cache_dir() / "web" / f"onnxruntime-web-{RUNTIME_VERSION}.tgz"


def runtime_files(source: str | os.PathLike[str] | None = None, download: bool = True) -> dict[str, bytes]:
    """The runtime files from an npm package (.tgz), a folder holding them, or the cache (downloading once).

    A folder may be the unpacked package or its ``dist/``. Raises ``CheckpointError`` in one
    line when a file is missing or the package is not the pinned one.
    """
    if source is None:
        path = cached_runtime()
        if not path.is_file():
            if not download:
                raise CheckpointError(f"onnxruntime-web {RUNTIME_VERSION} is not in the cache ({path}): run "
                                      "`modnet export --format web -o DIR` once to fetch it")
            download_verified(RUNTIME_URL, RUNTIME_SHA256, path, f"onnxruntime-web {RUNTIME_VERSION}")
        source = path
    source = Path(source).expanduser()
    if source.is_dir():
        folder = source / "dist" if (source / "dist").is_dir() else source
        missing = [name for name in RUNTIME_FILES if not (folder / name).is_file()]
        if missing:
            raise CheckpointError(f"{source} lacks {', '.join(missing)} (onnxruntime-web {RUNTIME_VERSION}'s dist/)")
        return {name: (folder / name).read_bytes() for name in RUNTIME_FILES} | {"NOTICE.txt": _notice()}
    return _from_package(source) | {"NOTICE.txt": _notice()}


def _notice() -> bytes:
    """Where the vendored runtime came from and its licence (the npm package carries no LICENSE file)."""
    return (f"onnxruntime-web {RUNTIME_VERSION} (the files in this folder), from its npm package\n"
            f"{RUNTIME_URL}\nsha256 {RUNTIME_SHA256}\n"
            "Copyright (c) Microsoft Corporation. MIT licence (package.json), full text:\n"
            "https://github.com/microsoft/onnxruntime/blob/main/LICENSE\n").encode()


def _from_package(path: Path) -> dict[str, bytes]:
    if not path.is_file():
        raise CheckpointError(f"runtime not found: {path}")
    wanted = {f"package/dist/{name}": name for name in RUNTIME_FILES}
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if member.name in wanted and member.isfile():
                    files[wanted[member.name]] = archive.extractfile(member).read()  # type: ignore[union-attr]
                elif member.name == "package/package.json":
                    version = json.loads(archive.extractfile(member).read()).get("version")  # type: ignore[union-attr]
                    if version != RUNTIME_VERSION:
                        raise CheckpointError(f"{path} is onnxruntime-web {version}; the page is made for "
                                              f"{RUNTIME_VERSION}")
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not an onnxruntime-web package ({exc})") from None
    missing = [name for name in RUNTIME_FILES if name not in files]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: not onnxruntime-web {RUNTIME_VERSION}")
    return files


def export_web(model: nn.Module, out: str | os.PathLike[str], config: WeightsConfig | None = None,
               runtime: str | os.PathLike[str] | None = None) -> Path:
    """Write the static page folder ``out``; returns it.

    Built in a temporary folder beside ``out`` and renamed into place. An existing
    ``out`` is replaced only if an earlier export made it (it holds ``.modnet-web``)
    or it is empty, so a user's folder is never overwritten.
    """
    config = config or WeightsConfig()
    target = Path(out).expanduser()
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / MARKER).is_file())):
        raise ValueError(f"{target} exists and is not an earlier web export: give a new folder")
    files = runtime_files(runtime)
    scratch = scratch_folder(target)
    try:
        for name in PAGE_FILES:
            (scratch / name).write_bytes(page_asset(name))
        (scratch / "ort").mkdir()
        for name, data in files.items():
            (scratch / "ort" / name).write_bytes(data)
        (scratch / MODEL_FILE).write_bytes(onnx_bytes(model, config=config))
        (scratch / "modnet.json").write_text(json.dumps(page_config(config), indent=1) + "\n")
        (scratch / MARKER).write_text("written by modnet export --format web; replaced by the next export\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def folder_size(path: Path) -> int:
    """Bytes on disk under ``path`` (the export's size, for the docs and the CLI's report)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

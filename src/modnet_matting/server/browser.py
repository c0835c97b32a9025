"""``/browser/``: the in-browser matting page of ``modnet export --format web``, served live.

The same files as the exported folder, made from what this server runs: the page, its
``modnet.json`` from the predictor's config, ``model.onnx`` (the graph the server's
backend runs, or an export of its PyTorch network) and onnxruntime-web from the cache
(``modnet export --format web`` fetches it once; nothing is downloaded here). Every
response carries the cross-origin isolation headers that let the page use several
WASM threads, which a plain static server does not send.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response

from ..deploy.web import MODEL_FILE, PAGE_FILES, page_asset, page_config, runtime_files
from ..inference import Predictor
from ..weights import CheckpointError

ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
_TYPES = {".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
          ".wasm": "application/wasm", ".json": "application/json", ".onnx": "application/octet-stream",
          ".txt": "text/plain"}


def model_onnx(predictor: Predictor) -> Path:
    """The ONNX graph for the page: the file the backend reads, else an export of its PyTorch network."""
    backend = predictor.backend
    path = getattr(backend, "model_path", None)
    if path is not None and Path(path).suffix.lower() == ".onnx":
        return Path(path)
    model = getattr(backend, "model", None)
    if model is not None and hasattr(model, "forward_matte"):
        from ..export import cached_onnx

        return cached_onnx(model, predictor.config)
    raise CheckpointError("this server's weights have no ONNX form for the browser (an OpenVINO IR); "
                          "serve the .safetensors or .onnx they came from")


def install(app: FastAPI, predictor: Predictor) -> None:
    """Add the page's routes; a missing runtime or model is a 503 that says what to run."""
    runtime = functools.cache(lambda: runtime_files(download=False))
    onnx = functools.cache(lambda: model_onnx(predictor))

    def reply(name: str, body: bytes) -> Response:
        return Response(body, media_type=_TYPES.get(Path(name).suffix.lower(), "application/octet-stream"),
                        headers=ISOLATION)

    def unavailable(exc: Exception) -> Response:
        return Response(f"The in-browser page is not available on this server: {exc}\n", status_code=503,
                        media_type="text/plain", headers=ISOLATION)

    @app.get("/browser/", include_in_schema=False)
    async def page() -> Response:
        try:
            runtime()
        except CheckpointError as exc:
            return unavailable(exc)
        return reply("index.html", page_asset("index.html"))

    @app.get("/browser/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name in PAGE_FILES:
            return reply(name, page_asset(name))
        if name == "modnet.json":
            return reply(name, (json.dumps(page_config(predictor.config)) + "\n").encode())
        if name == MODEL_FILE:
            try:
                return reply(name, onnx().read_bytes())
            except (CheckpointError, OSError) as exc:
                return unavailable(exc)
        return Response(status_code=404, headers=ISOLATION)

    @app.get("/browser/ort/{name}", include_in_schema=False)
    async def ort_file(name: str) -> Response:
        try:
            files = runtime()
        except CheckpointError as exc:
            return unavailable(exc)
        if name not in files:
            return Response(status_code=404, headers=ISOLATION)
        return reply(name, files[name])

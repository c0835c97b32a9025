"""``/browser/``: the in-browser matting page of ``modnet export --format web``, served live.

The same files as the exported folder, made from what this server runs: the page, its
``modnet.json`` from the predictor's config, ``model.onnx`` (the graph the server's
backend runs, or an export of its PyTorch network) and onnxruntime-web from the cache
(``modnet export --format web`` fetches it once; nothing is downloaded here). Every
response carries the cross-origin isolation headers that let the page use several
WASM threads, which a plain static server does not send.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, Response

from ..deploy.web import MODEL_FILE, PAGE_FILES, page_asset, page_config, runtime_files
from ..inference import Predictor
from ..weights import CheckpointError
from . import security

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


def install(app: FastAPI, predictor: Predictor, api_key: str | None = None) -> None:
    """Add the page's routes; a missing runtime or model is a 503 that says what to run.

    ``model.onnx`` (26 MB) is streamed from its file with caching headers, never read into memory per
    request, and needs the API key when the server has one (the page sends the key given after ``#key=``).
    """
    runtime = functools.cache(lambda: runtime_files(download=False))
    onnx = functools.cache(lambda: model_onnx(predictor))
    key_needed = [Depends(security.key_check(api_key))] if api_key is not None else []

    def reply(name: str, body: bytes) -> Response:
        return Response(body, media_type=_TYPES.get(Path(name).suffix.lower(), "application/octet-stream"),
                        headers=ISOLATION)

    def unavailable(what: str) -> Response:
        return Response(f"The in-browser page is not available on this server: {what}\n", status_code=503,
                        media_type="text/plain", headers=ISOLATION)

    def runtime_or_503() -> dict[str, bytes] | Response:
        try:
            return runtime()
        except CheckpointError:  # its message names the cache folder: the server's filesystem is not the client's
            return unavailable("onnxruntime-web is not in this server's cache; on the server run "
                               "`modnet export --format web` once (it downloads and checks the runtime)")

    @app.get("/browser/", include_in_schema=False)
    async def page() -> Response:
        files = runtime_or_503()
        return files if isinstance(files, Response) else reply("index.html", page_asset("index.html"))

    @app.get(f"/browser/{MODEL_FILE}", include_in_schema=False, dependencies=key_needed)
    async def model(request: Request) -> Response:
        try:
            path = await asyncio.get_running_loop().run_in_executor(None, onnx)  # a first export takes seconds
            stat = os.stat(path)
        except (CheckpointError, OSError):
            return unavailable("this server's weights have no ONNX form for the browser")
        headers = {**ISOLATION, "Cache-Control": "private, max-age=86400"}
        response = FileResponse(path, media_type=_TYPES[".onnx"], headers=headers, stat_result=stat)
        if request.headers.get("if-none-match") == response.headers["etag"]:  # the browser has it already
            return Response(status_code=304, headers={**headers, "ETag": response.headers["etag"]})
        return response

    @app.get("/browser/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name in PAGE_FILES:
            files = runtime_or_503() if name == "index.html" else {}
            return files if isinstance(files, Response) else reply(name, page_asset(name))
        if name == "modnet.json":
            return reply(name, (json.dumps(page_config(predictor.config)) + "\n").encode())
        return Response(status_code=404, headers=ISOLATION)

    @app.get("/browser/ort/{name}", include_in_schema=False)
    async def ort_file(name: str) -> Response:
        files = runtime_or_503()
        if isinstance(files, Response):
            return files
        if name not in files:
            return Response(status_code=404, headers=ISOLATION)
        return reply(name, files[name])

"""The FastAPI application: ``POST /v1/matte``, ``GET /healthz``, the web page at ``/``.

The model is loaded once per process. Each request is read with a byte limit,
decoded in a worker thread, queued for the micro-batcher (which runs the
network off the event loop) and rendered in a worker thread, all under one
timeout, so a slow or hostile request never stalls the others.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..inference import Predictor, load_model
from ..weights import DEFAULT_WEIGHTS
from . import browser, protocol, security
from .admission import ClientGone, PixelBudget, Stages, unless_disconnected
from .batcher import MicroBatcher, QueueFullError
from .errors import ApiError, error_response
from .render import choose_background, render
from .uploads import SUPPORTED, Upload, decode, probe_size, read_body, split_upload

DEFAULT_MAX_UPLOAD_BYTES = 20_000_000
#: The largest photo (or background) a request may send, from its header; not the network's input
#: size, which ``inference`` caps separately.
DEFAULT_MAX_IMAGE_PIXELS = 25_000_000
#: Peak memory of a request per photo pixel, by output: measured on a 12-MP photo (2026-12-08, the
#: project's CPU; ru_maxrss above the idle server process): alpha 15.8 bytes, cut-out 76.8, composite
#: 75.9, JSON 79.0 (the foreground estimation dominates every output but the alpha).
BYTES_PER_PIXEL = {"alpha": 16, "cutout": 80, "composite": 80, "json": 80}
#: A background image's own pixels: decoded, then fitted to the photo (RGB uint8 both).
BACKGROUND_BYTES_PER_PIXEL = 16
#: All requests being worked on at once, in pixels counted at a cut-out's cost (80 bytes): ~1.6 GB.
DEFAULT_MAX_PIXELS_IN_FLIGHT = 20_000_000
DEFAULT_TIMEOUT_S = 60.0

Output = Literal["alpha", "cutout", "composite", "json"]
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """What one request may cost."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_pixels_in_flight: int = DEFAULT_MAX_PIXELS_IN_FLIGHT


class MatteResult(BaseModel):
    """``output=json``: every image as a base64-encoded PNG."""

    width: int
    height: int
    background: Literal["none", "color", "image", "blur"]
    alpha: str
    cutout: str
    composite: str | None


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    weights: str
    backend: str
    precision: str
    device: str
    queued: int
    batches_run: int
    images_run: int
    api_key_required: bool


_PNG = {"image/png": {"schema": {"type": "string", "format": "binary"}}}
_IMAGE_SCHEMA = {"type": "string", "format": "binary"}
_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "description": f"The photo ({SUPPORTED}): as multipart field `file` (with an optional background image "
        "in field `background`), or as the raw request body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": _IMAGE_SCHEMA, "background": _IMAGE_SCHEMA},
                },
                "encoding": {"file": {"contentType": "image/*"}, "background": {"contentType": "image/*"}},
            },
            "image/png": {"schema": _IMAGE_SCHEMA},
            "image/jpeg": {"schema": _IMAGE_SCHEMA},
            "application/octet-stream": {"schema": _IMAGE_SCHEMA},
        },
    }
}
_RESPONSES: dict[int | str, dict] = {
    200: {
        "description": "PNG for output=alpha (grey), cutout (RGBA) or composite (RGB); JSON for output=json.",
        "content": {**_PNG, "application/json": {"schema": {"$ref": "#/components/schemas/MatteResult"}}},
    },
    400: error_response("Malformed or truncated multipart body."),
    401: error_response("The server has an API key and the request's X-API-Key header is missing or wrong."),
    403: error_response("Sent by a web page of another origin (not the server's own page or a --cors-origin)."),
    413: error_response("Upload larger than the byte limit, or an image with more pixels than allowed."),
    415: error_response("The upload is not an image."),
    422: error_response(
        "Invalid parameter, missing image, a damaged image, an unknown or repeated form field, "
        "or a background with an output that has none."
    ),
    408: error_response("The request body did not arrive within the server's timeout."),
    500: error_response("Unexpected server error (logged); the server keeps serving."),
    503: error_response("Too many requests queued or in progress; retry after Retry-After seconds.", retry_after=True),
    504: error_response("The request took longer than the server's timeout."),
}


def _static_dir() -> str:
    return str(resources.files("modnet_matting") / "server" / "static")


def create_app(
    predictor: Predictor | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    backend: str = "auto",
    precision: str = "auto",
    refine: bool = True,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_pixels_in_flight: int = DEFAULT_MAX_PIXELS_IN_FLIGHT,
    max_batch: int | None = None,
    max_wait_ms: float = 10.0,
    queue_size: int = 64,
    allowed_hosts: Sequence[str] | None = None,
    cors_origins: Sequence[str] = (),
    api_key: str | None = None,
) -> FastAPI:
    """Build the app around ``predictor`` (or load ``weights`` now, so bad weights fail before serving).

    ``device``, ``backend``, ``precision`` and ``refine`` are ``load_model``'s. ``max_batch``
    None picks 8 on a GPU and 1 elsewhere: on a 2-core CPU batching gave the same
    throughput with a longer tail (docs/server.md), and OpenVINO compiles once
    per input shape, batch size included. ``allowed_hosts`` None accepts any Host
    header (``modnet serve`` passes the bound address's names); ``cors_origins``
    empty sends no CORS headers; ``api_key`` set makes ``/v1/matte`` require it.
    """
    if predictor is None:
        predictor = load_model(weights, device=device, precision=precision, backend=backend, refine=refine)
        weights_label = Path(str(weights or DEFAULT_WEIGHTS)).name  # a file's name, not where it lives
        max_batch = max_batch or default_max_batch(predictor)
        predictor.batch_size = max(predictor.batch_size, max_batch)  # a micro-batch is one network call
    else:
        weights_label = _weights_label(predictor)
        max_batch = max_batch or default_max_batch(predictor)
    limits = Limits(max_upload_bytes, max_pixels, timeout_s, max_pixels_in_flight)
    batcher = MicroBatcher(
        predictor.predict_rgb, max_batch=max_batch, max_wait_s=max_wait_ms / 1000, queue_size=queue_size
    )
    # Decoding and compositing a large photo takes seconds and hundreds of MB: at most one per core at a time.
    cpu_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="modnet-cpu")

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # noqa: ANN202 - FastAPI's lifespan protocol
        yield
        for request in list(app.state.uploading):  # cut by --shutdown-timeout; uvicorn drops their tasks unrun
            client_gone(request)
        await batcher.stop()
        batcher.close()
        cpu_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="MODNet matting",
        version=__version__,
        description="Trimap-free portrait matting: upload a photo, get its alpha matte, cut-out or a new background.",
        lifespan=lifespan,
    )
    app.state.predictor = predictor
    app.state.batcher = batcher
    app.state.limits = limits
    app.state.uploading = set()  # requests whose body is still arriving
    _install_error_handlers(app)
    security.install(app, allowed_hosts, cors_origins)
    _add_routes(app, predictor, batcher, cpu_pool, limits, weights_label, api_key, cors_origins)
    _document_result_schema(app)
    browser.install(app, predictor, api_key)
    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")
    return app


def _document_result_schema(app: FastAPI) -> None:
    """Add ``MatteResult`` to the spec's components.

    ``/v1/matte`` returns a plain ``Response`` (PNG or JSON by ``output``), so FastAPI never
    sees the model and would leave the ``$ref`` in the 200 response dangling.
    """
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = generate()
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas["MatteResult"] = MatteResult.model_json_schema(ref_template="#/components/schemas/{model}")
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": exc.detail}, exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        return JSONResponse({"error": "invalid_parameter", "detail": problems}, 422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Logged by the server; the client gets the same JSON shape as every other error.
        return JSONResponse({"error": "internal_error", "detail": f"internal error ({type(exc).__name__})"}, 500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {"error": f"http_{exc.status_code}", "detail": str(exc.detail)}
        return JSONResponse(body, exc.status_code, headers=exc.headers)  # keeps 405's Allow header


def device_of(backend: object) -> str:
    """Where a backend runs: torch's device, ONNX Runtime's first provider, else the CPU."""
    device = getattr(backend, "device", None)
    if device is not None:
        return str(device)
    session = getattr(backend, "session", None)
    if session is not None and session.get_providers()[0] == "CUDAExecutionProvider":
        return "cuda"
    return "cpu"


def default_max_batch(predictor: Predictor) -> int:
    """8 when the predictor runs on a GPU, else 1."""
    return 8 if device_of(predictor.backend).startswith("cuda") else 1


def _weights_label(predictor: Predictor) -> str:
    card = getattr(getattr(predictor, "config", None), "card", None) or {}
    return str(card.get("name") or card.get("source") or "custom predictor")


#: The query parameters of POST /v1/matte; any other name (a typo like ``outptu``) or a repeat is a 422.
MATTE_QUERY = ("output", "color", "blur")


def client_gone(request: Request) -> Response:
    """499 (nginx's "client closed request") and its access-log line, which uvicorn skips for a gone client."""
    import logging

    client = request.client
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', f"{client.host}:{client.port}" if client else "-", request.method,
        request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        request.scope.get("http_version", "1.1"), 499)
    return Response(status_code=499)


def only_query(names: Sequence[str]) -> Callable[[Request], None]:
    """A route dependency: 422 for an unknown or repeated query parameter (it would be silently ignored)."""

    def check(request: Request) -> None:
        given = [key for key, _ in request.query_params.multi_items()]
        unknown = sorted(set(given) - set(names))
        repeated = sorted({key for key in given if given.count(key) > 1})
        if unknown or repeated:
            problem = (f"unknown query parameter(s): {', '.join(k[:40] for k in unknown[:5])}" if unknown
                       else f"repeated query parameter(s): {', '.join(repeated)}")
            raise ApiError(422, "invalid_parameter", f"{problem}; this endpoint takes {', '.join(names)}")

    return check


def _add_routes(
    app: FastAPI,
    predictor: Predictor,
    batcher: MicroBatcher,
    cpu_pool: Executor,
    limits: Limits,
    weights: str,
    api_key: str | None,
    cors_origins: Sequence[str] = (),
) -> None:
    budget = PixelBudget(limits.max_pixels_in_flight)

    async def in_pool(fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(cpu_pool, fn, *args)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(os.path.join(_static_dir(), "index.html"), media_type="text/html")

    @app.get("/healthz", response_model=Health, summary="Liveness and queue state")
    async def healthz() -> Health:
        return Health(
            status="ok",
            version=__version__,
            weights=weights,
            backend=str(getattr(predictor.backend, "name", "custom")),
            precision=str(getattr(predictor.backend, "precision", "fp32")),
            device=device_of(predictor.backend),
            queued=batcher.pending,
            batches_run=batcher.batches_run,
            images_run=batcher.images_run,
            api_key_required=api_key is not None,
        )

    @app.post(
        "/v1/matte",
        summary="Matte a photo",
        response_class=Response,
        responses=_RESPONSES,
        openapi_extra=_REQUEST_BODY,
        dependencies=[Depends(security.origin_check(cors_origins)), Depends(only_query(MATTE_QUERY)),
                      *([Depends(security.key_check(api_key))] if api_key is not None else [])],  # key: spec if set
    )
    async def matte(
        request: Request,
        output: Output = Query("cutout", description="alpha PNG, RGBA cut-out PNG, composite PNG, or JSON (base64)."),
        color: str | None = Query(
            None, max_length=64, description="Background colour: a name (white), #rrggbb, #rgb or r,g,b."
        ),
        blur: bool = Query(False, description="Background: the photo's own background, heavily blurred."),
    ) -> Response:
        uploading = request.app.state.uploading
        uploading.add(request)
        try:
            body = await asyncio.wait_for(read_body(request, limits.max_upload_bytes), limits.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(408, "body_timeout", f"the body did not arrive within {limits.timeout_s:g} s",
                           headers={"Connection": "close"}) from None  # the rest of it will not be read
        except ClientGone:
            return client_gone(request)  # an aborted upload: one log line, no traceback
        finally:
            uploading.discard(request)
        upload = await in_pool(split_upload, request.headers.get("content-type", ""), body)
        del body
        try:
            work = unless_disconnected(request.receive, _process(upload, output, color, blur))
            result = await asyncio.wait_for(work, limits.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"the request took longer than {limits.timeout_s:g} s") from None
        except ClientGone:
            return client_gone(request)  # nobody reads it; nginx's code for "client closed request"
        if isinstance(result, dict):
            return JSONResponse(result)
        headers = {"Content-Disposition": f'inline; filename="{output}.png"'}
        return Response(result, media_type="image/png", headers=headers)

    async def _process(upload: Upload, output: str, color: str | None, blur: bool) -> bytes | dict:
        if output in ("alpha", "cutout") and (color is not None or blur or upload.background is not None):
            raise ApiError(422, "unused_background", f"output={output} has no background: "
                           "a colour, blur or background image is for output=composite or json")
        pixels = request_cost(output, *await in_pool(_pixels_of, upload, limits.max_pixels))  # headers only
        stages = Stages(cpu_pool)  # a timeout or a gone client stops the next stage; the budget waits for it
        async with budget.hold(pixels, stages):
            rgb = await stages.run(decode, upload.photo, "the photo", limits.max_pixels)
            image = None
            if upload.background is not None:
                image = await stages.run(decode, upload.background, "the background image", limits.max_pixels)
            background = choose_background(color, blur, image)
            try:
                alpha = await batcher.submit(rgb)
            except QueueFullError as exc:
                raise ApiError(503, "busy", str(exc), headers={"Retry-After": "1"}) from None
            return await stages.run(render, rgb, alpha, output, background, stages.check)


def _pixels_of(upload: Upload, max_pixels: int) -> tuple[int, int]:
    """Pixels of the photo and of the background image the request will decode, from the image headers
    (415/413 for non-images and bombs)."""
    width, height = probe_size(upload.photo, "the photo", max_pixels)
    if upload.background is None:
        return width * height, 0
    bg_width, bg_height = probe_size(upload.background, "the background image", max_pixels)
    return width * height, bg_width * bg_height


def request_cost(output: str, photo_pixels: int, background_pixels: int = 0) -> int:
    """What a request holds of the pixel budget: its memory in pixels at a cut-out's cost (an alpha-only
    request holds a fifth of its pixels), so the budget bounds the memory actually used."""
    unit = BYTES_PER_PIXEL["cutout"]
    need = photo_pixels * BYTES_PER_PIXEL[output] + background_pixels * BACKGROUND_BYTES_PER_PIXEL
    return max(1, -(-need // unit))


def app_from_env() -> FastAPI:
    """uvicorn factory for ``modnet serve --workers N``: options come from ``MODNET_SERVE_OPTIONS`` (JSON).

    ``threads`` splits the CPU cores between the worker processes, which
    would otherwise each start one thread per core and fight over them.
    """
    options = json.loads(os.environ.get("MODNET_SERVE_OPTIONS", "{}"))
    threads = options.pop("threads", None)
    protocol.configure(options.pop("header_timeout_s", protocol.HEADER_TIMEOUT_S),
                       options.pop("max_connections", protocol.MAX_CONNECTIONS))
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    return create_app(**options)

"""``modnet serve``: the HTTP API and web page under uvicorn.

With one worker the model is loaded here before the port is opened, so bad
weights or a busy port end with a one-line error. With several workers each
process loads its own copy through ``server.app.app_from_env``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

from .main import CLIError
from .options import add_model_options, announce

ENV_OPTIONS = "MODNET_SERVE_OPTIONS"
ENV_API_KEY = "MODNET_API_KEY"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the HTTP API and web page",
        description="Serve POST /v1/matte, GET /healthz, the OpenAPI docs at /docs and a web page at /.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    parser.add_argument("--workers", type=int, default=1, help="processes, each with its own model (default: 1)")
    add_model_options(parser)
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body in MB (default: 20)")
    parser.add_argument("--max-pixels", type=int, default=25_000_000, help="largest image in pixels (default: 25e6)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a request gets 504 (default: 60)")
    parser.add_argument(
        "--max-batch", type=int, default=None, help="images batched into one network call (default: 8 on a GPU, else 1)"
    )
    parser.add_argument("--queue-size", type=int, default=64, help="queued images before 503 (default: 64)")
    parser.add_argument(
        "--max-pixels-in-flight", type=int, default=20_000_000,
        help="pixels of all requests worked on at once, counted at a cut-out's cost (about 80 bytes; an "
             "alpha-only request counts a fifth); more wait (default: 2e7, about 1.6 GB)",
    )
    parser.add_argument(
        "--max-connections", type=int, default=256, help="open connections per worker before 503 (default: 256)"
    )
    parser.add_argument(
        "--keep-alive", type=float, default=5.0, help="seconds an idle connection stays open (default: 5)"
    )
    parser.add_argument(
        "--header-timeout", type=float, default=10.0,
        help="seconds a connection has to send a whole request head before a 408 closes it (default: 10)",
    )
    parser.add_argument(
        "--allowed-host", action="append", metavar="NAME",
        help="a Host header name clients may use (repeatable; '*' for any). Default: the names of --host "
        "(127.0.0.1, localhost, ::1 for loopback), which stops DNS rebinding",
    )
    parser.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN",
        help="a web origin allowed to call the API from a browser, e.g. https://app.example (repeatable; default none)",
    )
    parser.add_argument(
        "--api-key", default=None,
        help=f"require this key in the X-API-Key header of /v1/matte (or set {ENV_API_KEY}; the variable keeps it "
        "out of the process list)",
    )
    parser.add_argument(
        "--shutdown-timeout", type=float, default=10.0,
        help="seconds SIGTERM waits for requests in flight before closing them (default: 10)",
    )
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace) -> dict:
    from ..server.security import default_allowed_hosts

    for name in ("workers", "max_pixels", "max_batch", "queue_size", "max_pixels_in_flight", "max_connections"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("max_upload_mb", "timeout", "keep_alive", "shutdown_timeout", "header_timeout"):
        if getattr(args, name) <= 0:
            raise CLIError(f"--{name.replace('_', '-')} must be positive")
    return {
        "weights": args.weights,
        "device": args.device,
        "backend": args.backend,
        "precision": args.precision,
        "refine": args.refine,
        "max_upload_bytes": int(args.max_upload_mb * 1_000_000),
        "max_pixels": args.max_pixels,
        "timeout_s": args.timeout,
        "max_batch": args.max_batch,
        "queue_size": args.queue_size,
        "max_pixels_in_flight": args.max_pixels_in_flight,
        "allowed_hosts": args.allowed_host or default_allowed_hosts(args.host),
        "cors_origins": [_origin(origin) for origin in args.cors_origin],
        "api_key": _api_key(args),
    }


def _origin(origin: str) -> str:
    from ..server.security import check_origin_form

    try:
        return check_origin_form(origin)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _api_key(args: argparse.Namespace) -> str | None:
    key = args.api_key if args.api_key is not None else os.environ.get(ENV_API_KEY)
    if key is not None and len(key) < 16:
        raise CLIError("--api-key must be at least 16 characters (e.g. python -c 'import secrets; "
                       "print(secrets.token_urlsafe())')")
    return key


def _uvicorn_limits(args: argparse.Namespace) -> dict:
    """Connections, idle keep-alive and shutdown are uvicorn's to bound; its access log gets short lines."""
    from ..server.logs import log_config
    from ..server.protocol import GuardedH11Protocol, configure

    configure(args.header_timeout, args.max_connections)  # this process; workers read it from their options
    return {
        "log_config": log_config(),
        "http": GuardedH11Protocol,
        "limit_concurrency": None,  # GuardedH11Protocol limits requests in progress, and idle connections apart
        "timeout_keep_alive": args.keep_alive,
        "timeout_graceful_shutdown": args.shutdown_timeout,
    }


def _check_port(host: str, port: int) -> None:
    """Fail with one line now rather than with uvicorn's log after the model has loaded."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CLIError(f"cannot resolve --host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _describe_loaded(options: dict, weights: str | None) -> str:
    """Load the model as a worker will and describe it (runs in a child process)."""
    from ..inference import load_model
    from .options import describe_run

    predictor = load_model(options["weights"], device=options["device"], precision=options["precision"],
                           backend=options["backend"], refine=options["refine"])
    return describe_run(predictor, weights)


def _check_in_child(options: dict, weights: str | None) -> str:
    """Fail here, once, if the weights or the device are bad, and fill the export cache for the workers.

    In a child process: a model loaded here would stay in the parent, which only supervises the
    workers, for the server's whole life (373 MB for the bundled weights).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(_describe_loaded, options, weights).result()
        except CLIError:
            raise
        except Exception as exc:  # the worker's own one-line errors keep their text
            raise CLIError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401 - only checked here; the app imports it
        import uvicorn
    except ModuleNotFoundError as exc:
        raise CLIError(
            f"the server needs the 'server' extra ({exc.name} is missing): pip install 'modnet-matting[server]'"
        ) from None
    options = _options(args)
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be 0..65535, not {args.port}")
    _check_port(args.host, args.port)
    if args.workers == 1:
        from ..server.app import create_app

        app = create_app(**options)
        announce(app.state.predictor, args)
        uvicorn.run(app, host=args.host, port=args.port, log_level="info", **_uvicorn_limits(args))
        return 0
    line = _check_in_child(options, args.weights)
    if not args.quiet:
        print(line, file=sys.stderr)
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    os.environ[ENV_OPTIONS] = json.dumps({**options, "threads": threads, "header_timeout_s": args.header_timeout,
                                          "max_connections": args.max_connections})
    uvicorn.run(
        "modnet_matting.server.app:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers,
        **_uvicorn_limits(args),
    )
    return 0

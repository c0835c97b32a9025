"""Who may use the server: the Host allow-list, the CORS policy and the optional API key.

Without a Host check, a web page on any site can reach a server on the visitor's
loopback through DNS rebinding; without a CORS policy browsers already refuse to
hand such a page the answer, so CORS is off unless origins are named; the API key
is for servers reachable by others. Every refusal is in the API's JSON error shape.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from fastapi import FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ApiError

#: Host names that reach a loopback address, for the default allow-list of a loopback server.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
API_KEY_HEADER = "X-API-Key"


def default_allowed_hosts(bound_host: str) -> list[str]:
    """The names a client may use for ``bound_host``: loopback names, or that address; any for a wildcard."""
    if bound_host in ("0.0.0.0", "::", ""):
        return ["*"]  # every interface: the names are not known here; --allowed-host narrows it
    if bound_host in LOOPBACK_NAMES:
        return list(LOOPBACK_NAMES)
    return [bound_host]


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the API's JSON error shape."""

    def preflight_response(self, request_headers):  # noqa: ANN001, ANN201 - Starlette's signature
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return JSONResponse({"error": "cors_refused", "detail": bytes(response.body).decode()}, 400, headers=headers)


class HostCheck:
    """400 (JSON) for a Host header not in the list: exact names, or ``*.example.org`` for its subdomains."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app, self.allowed = app, list(allowed_hosts)

    def allows(self, host: str) -> bool:
        return any(host == name or (name.startswith("*.") and host.endswith(name[1:])) for name in self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host", "")
            name = host.rpartition("]")[0] + "]" if host.startswith("[") else host.split(":")[0]
            if not self.allows(name):
                detail = f"this server does not answer to the host name {name[:100]!r}"
                await JSONResponse({"error": "invalid_host", "detail": detail}, 400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI, allowed_hosts: Sequence[str] | None, cors_origins: Sequence[str]) -> None:
    """Host check (400 for another name) and, when origins are named, CORS for them."""
    if cors_origins:
        app.add_middleware(
            JsonCORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", API_KEY_HEADER],
            max_age=600,
        )
    if allowed_hosts is not None and "*" not in allowed_hosts:
        app.add_middleware(HostCheck, allowed_hosts=list(allowed_hosts))


def key_check(api_key: str) -> Callable[..., None]:
    """A route dependency: 401 unless the request's ``X-API-Key`` equals ``api_key`` (constant-time)."""
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="Required when the server has one.")
    expected = api_key.encode()

    def check(given: str | None = Security(header)) -> None:
        if given is None or not hmac.compare_digest(given.encode(), expected):
            raise ApiError(401, "unauthorized", f"this server needs its API key in the {API_KEY_HEADER} header",
                           headers={"WWW-Authenticate": API_KEY_HEADER})

    return check


def origin_check(cors_origins: Sequence[str]) -> Callable[..., None]:
    """A route dependency: 403 for a request sent by a web page of another origin, before its body is read.

    CORS only stops such a page from reading the answer: a form or text/plain POST is a "simple
    request" that browsers send without asking, so the server would do the work for any site the
    user visits. Requests without an Origin header (curl, scripts) and from the server's own page
    or a ``--cors-origin`` pass.
    """
    allowed = set(cors_origins)

    def check(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is None or origin in allowed or origin == f"{request.url.scheme}://{request.headers.get('host')}":
            return
        raise ApiError(403, "origin_not_allowed",
                       f"requests from web pages at {origin[:100]} are not allowed here (modnet serve --cors-origin)")

    return check


def check_origin_form(origin: str) -> str:
    """``scheme://host[:port]`` as browsers send it, or ValueError: a trailing slash or path never matches."""
    from urllib.parse import urlsplit

    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query or parts.fragment:
        raise ValueError(f"--cors-origin {origin}: give an origin as a browser sends it, scheme://host[:port] "
                         "with no path or trailing slash (e.g. https://app.example)")
    return origin

"""Who may use the server: the Host allow-list, the CORS policy and the optional API key.

Without a Host check, a web page on any site can reach a server on the visitor's
loopback through DNS rebinding; without a CORS policy browsers already refuse to
hand such a page the answer, so CORS is off unless origins are named; the API key
is for servers reachable by others. Starlette's middlewares do the first two.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from fastapi import FastAPI, Request, Security
from fastapi.security import APIKeyHeader
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

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


def install(app: FastAPI, allowed_hosts: Sequence[str] | None, cors_origins: Sequence[str]) -> None:
    """Host check (400 for another name) and, when origins are named, CORS for them."""
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", API_KEY_HEADER],
            max_age=600,
        )
    if allowed_hosts is not None and "*" not in allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts), www_redirect=False)


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

"""uvicorn's HTTP/1.1 protocol (h11) with the guards a public port needs and uvicorn lacks.

* **A request head must arrive within ``HEADER_TIMEOUT_S``.** uvicorn arms no timer until a
  first response is sent, so a connection that sends nothing, or one header line every few
  seconds, is held for ever; 256 of them shut everyone out. Such a connection gets a 408 (JSON,
  ``Connection: close``) and is closed.
* **Idle connections cannot crowd out requests.** At most ``max_connections`` connections may
  wait for a request head (new or kept alive); one more closes the longest waiting. uvicorn's own
  limit counted idle connections with working ones and answered 503 to everyone, /healthz too.
  Requests in progress are limited to ``max_connections`` as well, with a JSON 503 and Retry-After.
* **Content-Length with Transfer-Encoding closes the connection** after the answer (RFC 9112 6.3),
  so no request can be smuggled behind such a body.

``configure`` sets the limits for this process (``modnet serve`` calls it, and each worker process
from its options); ``uvicorn.run(..., http=GuardedH11Protocol, limit_concurrency=None)`` uses it.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 256
RETRY_AFTER_S = 1

#: Connections waiting for a request head, oldest first (one event loop per process).
_waiting: OrderedDict[GuardedH11Protocol, None] = OrderedDict()


def configure(header_timeout_s: float = HEADER_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS) -> None:
    """The limits of this process's server (module state: uvicorn builds protocols from a class)."""
    global HEADER_TIMEOUT_S, MAX_CONNECTIONS
    HEADER_TIMEOUT_S, MAX_CONNECTIONS = header_timeout_s, max_connections


def json_response(status: int, reason: str, code: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 response with our JSON error body and ``Connection: close``, as raw bytes.

    Written straight to the socket: before a request head has arrived h11 has nothing to answer.
    """
    body = json.dumps({"error": code, "detail": message}).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}",
             "connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _busy(scope: dict, receive: Any, send: Any) -> None:  # noqa: ARG001 - ASGI signature
    """Too many requests in progress: JSON 503 with Retry-After, and the connection closes."""
    body = json.dumps({"error": "busy", "detail": "too many requests in progress; retry shortly"}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", str(RETRY_AFTER_S).encode()),
                            (b"connection", b"close"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class GuardedH11Protocol(H11Protocol):
    """H11Protocol with a request-head deadline, an idle-connection cap and CL+TE closing (module docstring)."""

    _head_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------- waiting for a head
    def _await_head(self) -> None:
        """From now on this connection owes a request head within the deadline."""
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timed_out)
        _waiting[self] = None
        while len(_waiting) > MAX_CONNECTIONS:
            oldest = next(iter(_waiting))
            oldest._give_up(408, "Request Timeout", "idle_timeout", "closed to make room for other clients")

    def _head_arrived(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        _waiting.pop(self, None)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._give_up(408, "Request Timeout", "header_timeout",
                      f"no complete request head within {HEADER_TIMEOUT_S:g} s")

    def _give_up(self, status: int, reason: str, code: str, message: str) -> None:
        self._head_arrived()
        if not self.transport.is_closing():
            self.transport.write(json_response(status, reason, code, message))  # the API's error shape
            self.transport.close()

    # --------------------------------------------------------- protocol events
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        between_requests = self.cycle is None or self.cycle.response_complete
        if between_requests:
            self._await_head()  # a kept-alive connection that starts a new head: the same deadline
            self.app = _busy if len(self.tasks) >= MAX_CONNECTIONS else self.config.loaded_app
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete and between_requests:
            self._head_arrived()
            names = {name for name, _ in self.headers}
            if b"content-length" in names and b"transfer-encoding" in names:
                self.cycle.keep_alive = False  # RFC 9112 6.3: answer this one, then close

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start a pipelined request at once
        if not self.transport.is_closing() and self.cycle is not None and self.cycle.response_complete:
            _waiting[self] = None  # idle between requests: counts against the cap (keep-alive closes it)

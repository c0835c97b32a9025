"""HTTP API and web page (``modnet serve``); needs the ``server`` extra (FastAPI, uvicorn).

``create_app`` is imported on first use: the supervising process of ``modnet serve --workers N``
reads the protocol and log modules only, and should not carry PyTorch for the server's life.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""HTTP API and web page (``modnet serve``); needs the ``server`` extra (FastAPI, uvicorn)."""

from .app import create_app

__all__ = ["create_app"]

"""uvicorn's logging, with request lines cut short and query values other than the API's own hidden.

A 100 KB query string is not logged whole, and a key or token a client put in the query
(``?api_key=...``) does not end up in the log.
"""

from __future__ import annotations

import copy
import logging
import re

#: Characters of a request's path and query kept in the access log.
MAX_LOGGED_PATH = 200
#: Query parameters whose values are logged (the API's own, which are never secret).
LOGGED_QUERY = ("output", "color", "blur")
_QUERY_VALUE = re.compile(r"([?&])([^=&#]*)=([^&#]*)")


def redact_query(path: str) -> str:
    """``path`` with each query value not in ``LOGGED_QUERY`` replaced by ``***``."""
    if "?" not in path:
        return path
    head, _, query = path.partition("?")
    masked = _QUERY_VALUE.sub(lambda m: m.group(0) if m.group(2) in LOGGED_QUERY else f"{m.group(1)}{m.group(2)}=***",
                              "?" + query)
    return head + masked


class ShortRequestLines(logging.Filter):
    """Redacts and truncates the path argument of uvicorn's access records (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path = redact_query(args[2])
            if len(path) > MAX_LOGGED_PATH:
                path = f"{path[:MAX_LOGGED_PATH]}...[{len(path)} chars]"
            record.args = (*args[:2], path, *args[3:])
        return True


def log_config() -> dict:
    """uvicorn's default logging configuration plus ``ShortRequestLines`` on the access log."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["short_request_lines"] = {"()": ShortRequestLines}
    config["handlers"]["access"]["filters"] = ["short_request_lines"]
    return config

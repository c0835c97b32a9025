"""uvicorn's logging, with request lines cut short: a 100 KB query string is not logged whole."""

from __future__ import annotations

import copy
import logging

#: Characters of a request's path and query kept in the access log.
MAX_LOGGED_PATH = 200


class ShortRequestLines(logging.Filter):
    """Truncates the path argument of uvicorn's access records (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and len(args[2]) > MAX_LOGGED_PATH:
            path = args[2]
            record.args = (*args[:2], f"{path[:MAX_LOGGED_PATH]}...[{len(path)} chars]", *args[3:])
        return True


def log_config() -> dict:
    """uvicorn's default logging configuration plus ``ShortRequestLines`` on the access log."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["short_request_lines"] = {"()": ShortRequestLines}
    config["handlers"]["access"]["filters"] = ["short_request_lines"]
    return config

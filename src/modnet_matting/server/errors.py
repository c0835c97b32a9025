"""The API's one error shape: ``{"error": code, "detail": message}`` with a status."""

from __future__ import annotations

from pydantic import BaseModel


class ApiError(Exception):
    """A request the server refuses; becomes a JSON error response."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers


class ErrorBody(BaseModel):
    """Every error response of the API has this body."""

    error: str
    detail: str


def error_response(description: str, retry_after: bool = False) -> dict:
    """OpenAPI ``responses`` entry for an error status (with its Retry-After header where it has one)."""
    entry: dict = {"model": ErrorBody, "description": description}
    if retry_after:
        entry["headers"] = {"Retry-After": {"description": "seconds to wait before trying again",
                                            "schema": {"type": "integer", "minimum": 0}}}
    return entry

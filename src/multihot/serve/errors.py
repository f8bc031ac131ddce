"""The API's answers other than 200: :class:`ApiError` and its JSON body,
``{"error": {"code", "message", "limit"?}, "model_id"}``."""

from __future__ import annotations

from fastapi.responses import JSONResponse

RETRY_AFTER = {"Retry-After": "1"}
"""The header of every 503: try again in a second."""
CLOSE = {"Connection": "close"}
"""The header of an answer sent before the body was read: the connection cannot be reused."""


class ApiError(Exception):
    """An answer other than 200 that the request earned: status, a code and a message."""

    def __init__(
        self, status: int, code: str, message: str, limit: int | None = None, headers=None
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.limit = status, code, message, limit
        self.headers = headers or {}


def error_response(err: ApiError, model_id: str) -> JSONResponse:
    """The JSON answer of an :class:`ApiError`."""
    body: dict[str, str | int] = {"code": err.code, "message": err.message}
    if err.limit is not None:
        body["limit"] = err.limit
    return JSONResponse({"error": body, "model_id": model_id}, err.status, headers=err.headers)

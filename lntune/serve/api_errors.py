"""Errors a request gets back as OpenAI-style error objects: `{"error": {"message", "type", "param", "code"}}`.

    raise ApiError(400, "messages must be a non-empty list", param="messages", code="invalid_messages")
"""

from __future__ import annotations

TYPES = {400: "invalid_request_error", 403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
         413: "invalid_request_error", 429: "rate_limit_error", 503: "server_overloaded"}


class ApiError(Exception):
    """A request that cannot be answered: its HTTP status and the error object's fields."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        kind = TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")
        return error_body(self.message, kind, self.param, self.code)


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}

"""The API's errors as the API server sends them (`Status` objects). Import-light: the CLI and
the embedded agent use them without loading the HTTP server."""

from __future__ import annotations

REASONS = {400: "BadRequest", 404: "NotFound", 409: "AlreadyExists", 410: "Gone", 422: "Invalid", 500: "InternalError",
           503: "ServiceUnavailable"}


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.details = code, reason or REASONS.get(code, "Unknown"), details


def status_body(code: int, message: str, reason: str, details: dict | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body

"""Domain errors raised by services, and their mapping to problem details (RFC 9457).

Services raise these without knowing about HTTP; app.py turns them into responses:
JSON problem details under /api, a readable page elsewhere.
"""

from __future__ import annotations

import re
from typing import Any


class DomainError(Exception):
    status_code = 400
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers = headers

    def errors(self) -> list[dict[str, str]]:
        return [{"field": self.field, "message": self.detail}] if self.field else []


class NotFound(DomainError):
    """Also what a foreign community's id answers: never reveal it exists."""

    status_code = 404
    title = "Not found"


class Invalid(DomainError):
    status_code = 422
    title = "Invalid input"


class Conflict(DomainError):
    status_code = 409
    title = "Conflict"


class Forbidden(DomainError):
    status_code = 403
    title = "Forbidden"


class NotAuthenticated(DomainError):
    status_code = 401
    title = "Not authenticated"


class TooManyRequests(DomainError):
    status_code = 429
    title = "Too many requests"


_MSGSPEC_FIELD = re.compile(r"at `\$\.?([^`]*)`")


def field_errors_from_validation(extra: Any, message: str) -> list[dict[str, str]]:
    """Litestar's ValidationException carries msgspec messages like "Expected `int`, got `str` - at `$.amount`"."""
    errors: list[dict[str, str]] = []
    items = extra if isinstance(extra, list) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        text = str(item.get("message", ""))
        key = item.get("key")
        match = _MSGSPEC_FIELD.search(text)
        field = match.group(1) if match else key
        if field:
            field = re.sub(r"\[(\d+)\]", r".\1", str(field)).lstrip(".")
            errors.append({"field": field, "message": _MSGSPEC_FIELD.sub("", text).rstrip(" -") or message})
    if not errors:
        match = _MSGSPEC_FIELD.search(message)
        if match and match.group(1):
            errors.append({"field": match.group(1), "message": _MSGSPEC_FIELD.sub("", message).rstrip(" -")})
    return errors

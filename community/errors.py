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
# msgspec names the culprit inside the message for these, not in the error's location.
_NAMED_IN_MESSAGE = re.compile(r"(?:unknown|missing required) field `([^`]*)`")
# Litestar reports errors about the request body under the handler's `data` argument; a body
# that is missing altogether comes as the KeyError's text, "'data'", an internal name.
_BODY_KWARG = "data"
BODY_MISSING = "the request body is missing"


def _message(item: dict[str, Any]) -> str:
    text = str(item.get("message", ""))
    if item.get("source") == "body" and item.get("key") == _BODY_KWARG and text == repr(_BODY_KWARG):
        return BODY_MISSING
    return text


class NotYetKnown(RuntimeError):
    """A job met a reference to a record not committed yet (a webhook racing the request that
    creates what it names): the job fails this try and is retried later."""


def field_errors_from_validation(extra: Any, message: str) -> list[dict[str, str]]:
    """Field errors from Litestar's ValidationException.

    Litestar gives items like {"message": "Expected `int`, got `str`", "key": "x.amount",
    "source": "body"} (the body itself is the key "data"); older messages carry the location
    as "... - at `$.amount`". An unknown or missing field is named in the message:
    "Object contains unknown field `foo`" at the body's top level is the field `foo`.
    """
    errors: list[dict[str, str]] = []
    items = extra if isinstance(extra, list) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        text = _message(item)
        key = str(item.get("key") or "")
        located = _MSGSPEC_FIELD.search(text)
        if located:
            key = located.group(1)
            text = _MSGSPEC_FIELD.sub("", text).rstrip(" -")
        elif item.get("source") == "body" and key == _BODY_KWARG:
            key = ""  # the body as a whole
        named = _NAMED_IN_MESSAGE.search(text)
        if named:
            key = f"{key}.{named.group(1)}" if key else named.group(1)
        field = re.sub(r"\[(\d+)\]", r".\1", key).strip(".")
        if field:
            errors.append({"field": field, "message": text or message})
    if not errors:
        match = _MSGSPEC_FIELD.search(message)
        if match and match.group(1):
            errors.append({"field": match.group(1), "message": _MSGSPEC_FIELD.sub("", message).rstrip(" -")})
    return errors


def validation_messages(extra: Any) -> list[str]:
    """The plain messages of a ValidationException (for a body that is wrong as a whole)."""
    items = extra if isinstance(extra, list) else []
    return [_message(item) for item in items if isinstance(item, dict) and item.get("message")]


def check_storable(value: str, field: str) -> str:
    """PostgreSQL text cannot hold the NUL character: refuse it as the field's error (422),
    before the database refuses it as a 500."""
    if "\x00" in value:
        raise Invalid("must not contain the NUL character", field=field)
    return value

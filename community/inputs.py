"""What a client may send, checked once for every route: instants in a range every layer can
hold, and no NUL character anywhere it could reach PostgreSQL.

- `Instant`: the date-time type of every request schema. It needs a time zone, is converted to
  UTC at the edge, and must fall within INSTANT_RANGE; anything else is a 422 naming the field.
  (Python cannot convert `9999-12-31T23:59:59-14:00` to UTC at all, and `0001-01-01T00:00:00+14:00`
  lands before year 1: both used to reach the database driver and fail there as a 500.)
- `RefuseUnstorable`: PostgreSQL text cannot hold NUL, nor bigint a larger number. A path
  carrying a NUL, or an integer that cannot be a row id, names nothing (404); a form
  field carrying one is a 422 naming it. JSON bodies are checked by the services that store
  their strings (`errors.check_storable`); query parameters are typed (ids, enums) or, where
  free text (`?ref=`), checked by their handler, which ignores what cannot be a code.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import NotFoundException, ValidationException
from litestar.middleware import ASGIMiddleware
from litestar.openapi.spec import Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.typing import FieldDefinition

from community.web import MAX_ID

# From the Unix epoch (Stripe's timestamps cannot go earlier) to a year before Python's last, so
# that adding a grace period or a billing interval to an instant never overflows.
INSTANT_MIN = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
INSTANT_MAX = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
INSTANT_RULE = "an ISO 8601 date-time with a time zone, e.g. 2026-01-31T00:00:00Z"
NUL_RULE = "must not contain the NUL character"


class Instant(dt.datetime):
    """A moment a client sent: time-zone aware, in UTC, within [INSTANT_MIN, INSTANT_MAX)."""

    @classmethod
    def parse(cls, value: Any) -> Instant:
        """msgspec's decoder hook: the error it raises is reported at the field's location."""
        if not isinstance(value, str):
            raise TypeError(f"Expected {INSTANT_RULE}, got `{type(value).__name__}`")
        try:
            parsed = msgspec.convert(value, dt.datetime)
        except msgspec.ValidationError:
            raise ValueError(f"Expected {INSTANT_RULE}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"give a time zone: expected {INSTANT_RULE}")
        try:
            utc = parsed.astimezone(dt.UTC)
        except OverflowError:
            utc = None  # beyond year 9999 (or before year 1) once in UTC
        if utc is None or not INSTANT_MIN <= utc < INSTANT_MAX:
            raise ValueError(f"must be from {INSTANT_MIN:%Y-%m-%dT%H:%M:%SZ} to before {INSTANT_MAX:%Y-%m-%dT%H:%M:%SZ}")
        return cls(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=dt.UTC)


    def plain(self) -> dt.datetime:
        """As a plain datetime: how responses show it (the same way as one read from the database)."""
        return dt.datetime(self.year, self.month, self.day, self.hour, self.minute, self.second, self.microsecond, tzinfo=dt.UTC)


def _is_instant(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Instant)


# For Litestar's `type_decoders` and `type_encoders`: request data to an Instant, and back out.
INSTANT_DECODER = (_is_instant, lambda _type, value: Instant.parse(value))
INSTANT_ENCODER = {Instant: Instant.plain}


class InstantSchema(OpenAPISchemaPlugin):
    """Instants are date-time strings in the OpenAPI document, with their range."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return _is_instant(field_definition.annotation)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        return Schema(
            type="string",  # type: ignore[arg-type]  # OpenAPIType is a str enum
            format="date-time",  # type: ignore[arg-type]
            description=f"{INSTANT_RULE}; from {INSTANT_MIN:%Y-%m-%d} to before {INSTANT_MAX:%Y-%m-%d} (UTC)",
        )


# ---------------------------------------------------------------- paths and forms, at the edge



def _nul_errors(items: Any, source: str) -> list[dict[str, str]]:
    return [
        {"key": name or "(unnamed)", "source": source, "message": NUL_RULE}
        for name, value in items
        if "\x00" in name or (isinstance(value, str) and "\x00" in value)
    ]


BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


class RefuseUnstorable(ASGIMiddleware):
    """Before any handler: a path with a NUL, or a whole number in it that no row id can be
    (below 1, beyond bigint), names nothing (404); a form field with a NUL is a 422 naming it."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if "\x00" in scope["path"] or any(
            isinstance(value, int) and not 1 <= value <= MAX_ID for value in scope["path_params"].values()
        ):
            raise NotFoundException()
        if scope["method"] in BODILESS:  # type: ignore[typeddict-item]  # HTTP scopes only (scopes above)
            await next_app(scope, receive, send)  # the hot paths (access checks, affiliate links) stop here
            return
        request: Request[Any, Any, Any] = Request(scope, receive)
        if request.content_type[0] == RequestEncodingType.URL_ENCODED:
            # Read once here; the handler (and the CSRF check) get the same parsed form.
            errors = _nul_errors((await request.form()).multi_items(), "body")
            if errors:
                raise ValidationException(detail="; ".join(f"{e['key']}: {NUL_RULE}" for e in errors), extra=errors)
        await next_app(scope, receive, send)

"""HTML forms of the pages: what a browser posted, read into the same input the JSON API takes,
and refusals kept per field so a page shows each next to its input, in the API's words.

A page handler reads its form with `Posted`, builds the API's input struct with `read_input`
(the same bounds and messages as the API), calls the same service function, and on a
`DomainError` renders the form again with `refusal(exc)`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, TypeVar

import msgspec
from litestar.enums import RequestEncodingType
from litestar.params import Body

from community.errors import DomainError, Invalid

FormBody = Annotated[dict[str, str | list[str]], Body(media_type=RequestEncodingType.URL_ENCODED)]
"""A posted form: a name sent once is a string, a name sent more than once (checkboxes) a list."""

FORM = "_form"
"""The key of a refusal that names no field: shown above the form."""

T = TypeVar("T")


class Posted:
    """One posted form, read the way pages need it (a missing field is empty, never an error)."""

    def __init__(self, data: dict[str, str | list[str]] | None = None) -> None:
        self.data = {k: v for k, v in (data or {}).items() if k != "_csrf_token"}

    def text(self, name: str) -> str:
        value = self.data.get(name, "")
        return value[-1] if isinstance(value, list) else value

    def texts(self, name: str) -> list[str]:
        value = self.data.get(name, [])
        return value if isinstance(value, list) else [value]

    def optional(self, name: str) -> str | None:
        """The trimmed text, or None when left blank."""
        return self.text(name).strip() or None

    def checked(self, name: str) -> bool:
        return name in self.data

    def __getitem__(self, name: str) -> str:  # templates: value="{{ form['name'] }}"
        return self.text(name)


def read_input(values: dict[str, Any], input_type: type[T]) -> T:
    """The API's input struct from form values (numbers and booleans as text are read as such),
    refused with the same message the API gives for the same value, naming the field."""
    try:
        return msgspec.convert(values, input_type, strict=False, dec_hook=_parsed)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = None
        if " - at `$." in message:
            message, _, where = message.rpartition(" - at `$.")
            field = where.rstrip("`").split(".")[0].split("[")[0]
        elif "field `" in message:
            field = message.split("field `", 1)[1].rstrip("`")
        raise Invalid(message, field=field) from None


def _parsed(kind: type, value: Any) -> Any:
    """A type of the API's own in an input struct (one with a `parse` classmethod, such as a
    request date-time type) reads a form's text the way the API's decoder reads JSON."""
    parse = getattr(kind, "parse", None)
    if parse is None:
        raise NotImplementedError(f"no form reading for {kind.__name__}")
    return parse(value)


def refusal(exc: DomainError) -> dict[str, str]:
    """What a page shows for a refusal: the message under its field (or above the form)."""
    return {exc.field or FORM: exc.detail}


_DATETIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def utc_datetime(text: str, field: str) -> str | None:
    """A date and time typed in a form (a datetime-local input; a date alone is midnight), read
    as UTC (communities have no time zone of their own, and the pages say so) and given back as
    the ISO 8601 text the API takes, for `read_input`. Blank is None."""
    text = text.strip()
    if not text:
        return None
    for pattern in _DATETIME_FORMATS:
        try:
            return dt.datetime.strptime(text, pattern).replace(tzinfo=dt.UTC).isoformat()
        except ValueError:
            continue
    raise Invalid("must be a date and time in UTC, like 2026-12-31 18:00", field=field)

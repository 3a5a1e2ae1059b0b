"""Reading Stripe objects, whether the SDK's or an event's JSON."""

from __future__ import annotations

import datetime as dt
from typing import Any


def field(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a Stripe object or of an event's JSON (absent fields read as `default`)."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    try:
        return getattr(obj, name)
    except AttributeError:
        return default


def id_of(value: Any) -> str | None:
    """The id of a Stripe object, expanded or not (a reference is the id itself)."""
    return value if value is None or isinstance(value, str) else field(value, "id")


def metadata_id(value: Any) -> int | None:
    """One of our row ids as written in a Stripe object's metadata; anything else (typed by
    hand in the dashboard, too long for a bigint) names no row of ours."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18 else None


def from_stamp(stamp: int | None) -> dt.datetime | None:
    """A Stripe timestamp (seconds, UTC); unset reads as None."""
    return dt.datetime.fromtimestamp(stamp, dt.UTC) if stamp else None

"""What the members console screens share: the editor rule, UTC dates, amounts in major units,
and the directory's view (its filters as the console's links carry them) turned into the API's
filters.

The console's links carry what an owner typed: dates as UTC dates and "spent above" in major
units of the community's currency. `api_filters` turns them into the text the API's query takes
(ISO 8601 instants, minor units), so the directory, its count, the CSV, saved segments and bulk
tags all read them through directory.parse_filters, as the API does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from litestar.response import Template

from community.errors import Forbidden, Invalid
from community.forms import utc_datetime
from community.hubs.frame import Frame, console_page
from community.members import directory
from community.money import format_amount, parse_amount

SECTION = "members"
PAGE_SIZE = 50
# The directory's filters as the console's links carry them (the API's names).
FILTERS = ("q", "offer", "status", "tag", "segment", "joined_from", "joined_to", "spent_above")
VIEW = ("sort", "order", *FILTERS)  # what a link to a view of the directory keeps
PARAMS = (*VIEW, "after")
LABELS = {
    "active": "Active", "trialing": "Trialing", "past_due": "Past due",
    "cancelled": "Cancelled (access to period end)", "ended": "Ended", "none": "No membership",
}


def require_editor(frame: Frame) -> None:
    if not frame.can_edit:
        raise Forbidden("only owners and admins change members")


def utc(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%d %b %Y, %H:%M UTC") if moment else ""


def day(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%d %b %Y") if moment else ""


def amounts(totals: Mapping[str, int]) -> list[str]:
    """Totals per currency (minor units) as major units: ["50.00 USD", "20.00 EUR"]."""
    return [format_amount(int(v), k) for k, v in totals.items()]


def currency_of(frame: Frame) -> str:
    return (frame.community.default_currency or "USD").upper()


def page(template: str, frame: Frame, **context: Any) -> Template:
    return console_page(
        template, frame, SECTION, utc=utc, day=day, amounts=amounts, money=format_amount, labels=LABELS,
        currency=currency_of(frame), **context,
    )


def view_of(values: Mapping[str, Any]) -> dict[str, str]:
    """The non-blank view values (sort, order, filters) of a query or a posted form."""
    out = {}
    for name in VIEW:
        value = values.get(name)
        if isinstance(value, list):
            value = value[-1] if value else None
        if value is not None and str(value).strip():
            out[name] = str(value).strip()
    return out


def view_url(frame: Frame, view: Mapping[str, str], **changes: str | None) -> str:
    """A link to the directory with this view (and these changes; None drops one)."""
    merged = {**view, **changes}
    query = urlencode({k: v for k, v in merged.items() if v})
    return f"{frame.base}/members" + (f"?{query}" if query else "")


def api_filters(view: Mapping[str, str], currency: str) -> dict[str, str]:
    """The view's filters as the API's query takes them; a bad value is refused naming its field."""
    out = {k: view[k] for k in FILTERS if view.get(k)}
    for name in ("joined_from", "joined_to"):
        if name in out:
            out[name] = utc_datetime(out[name], name) or ""
    if "spent_above" in out:
        out["spent_above"] = str(parse_amount(out["spent_above"], currency, "spent_above", maximum=directory.MAX_MINOR))
    return out


def parsed_filters(view: Mapping[str, str], currency: str) -> directory.Filters:
    return directory.parse_filters(api_filters(view, currency))


def check_known(names: set[str]) -> None:
    """An unknown parameter is refused naming it, as the API does, never ignored."""
    unknown = sorted(names - set(PARAMS))
    if unknown:
        raise Invalid(f"unknown parameter {unknown[0]!r}", field=unknown[0])

"""The directory as CSV: the same statement as its pages (filters, sort), streamed by
community.exports (a server-side cursor, a batch at a time: memory flat however many rows).
Amounts leave in major units with their currency, as every CSV of the project."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from community.hubs.models import Community
from community.members import directory
from community.money import decimal_amount

HEADER = (
    "user_id", "name", "email", "status", "offers", "total_spent", "currency", "other_totals",
    "joined_at", "last_payment_at", "tags",
)


@dataclass(frozen=True)
class Plan:
    statement: Select[Any]
    to_row: Callable[[Any], Sequence[object]]


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


async def plan(session: AsyncSession, community_id: int, f: directory.Filters, sort: directory.Sort) -> Plan:
    """The statement and how each row becomes a line; the filters are checked here (a bad
    segment is a 422 before any byte is sent)."""
    await directory.recount_due(session, community_id)
    statement = await directory.statement(session, community_id, f, sort)
    titles = await directory.offer_titles(session, community_id)
    currency = ((await session.get_one(Community, community_id)).default_currency or "USD").upper()

    def to_row(r: Any) -> Sequence[object]:
        totals = r.totals or {}
        others = "; ".join(
            f"{decimal_amount(int(v), k)} {k}" for k, v in sorted(totals.items()) if k != currency
        )
        return (
            r.user_id, r.name, r.email, r.status,
            "; ".join(titles.get(i, str(i)) for i in r.offer_ids or []),
            decimal_amount(int(totals.get(currency, 0)), currency), currency, others,
            _when(r.joined_at), _when(r.last_payment_at), "; ".join(r.tags or []),
        )

    return Plan(statement, to_row)

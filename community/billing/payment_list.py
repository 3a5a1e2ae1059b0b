"""The payments list staff read, in the console and through the API, and its CSV download:
newest first, in keyset pages, narrowed by offer, member, status, when it was paid and the
buyer's email. One filter, read once (`read_filter`, refusing a bad value with a 422 naming its
parameter), serves the page, the API and the CSV, so a download holds exactly the rows shown.

- status: the payment's (succeeded, partially_refunded, refunded), or `disputed` (a chargeback
  holds part of it now).
- paid_from / paid_to: UTC instants, paid_from included, paid_to excluded.
- email: part of the buyer's address, ignoring case ("gmail.com", "Bea@").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import User
from community.billing.models import Dispute, Payment, PaymentStatus
from community.errors import Invalid
from community.inputs import Instant
from community.money import decimal_amount
from community.offers.models import Offer

DISPUTED = "disputed"
STATUSES = tuple(s.value for s in PaymentStatus) + (DISPUTED,)
MAX_EMAIL_FILTER = 320


@dataclass(frozen=True)
class PaymentFilter:
    offer_id: int | None = None
    user_id: int | None = None
    status: str | None = None
    paid_from: dt.datetime | None = None  # included
    paid_to: dt.datetime | None = None  # excluded
    email: str | None = None  # part of the buyer's address, any case

    def query(self) -> dict[str, str]:
        """The filter as query parameters (the API's names), for links that keep it."""
        values = {
            "offer_id": self.offer_id,
            "user_id": self.user_id,
            "status": self.status,
            "paid_from": self.paid_from.isoformat() if self.paid_from else None,
            "paid_to": self.paid_to.isoformat() if self.paid_to else None,
            "email": self.email,
        }
        return {k: str(v) for k, v in values.items() if v is not None}


def _instant(text: str | None, field: str) -> dt.datetime | None:
    if text is None or not text.strip():
        return None
    try:
        return Instant.parse(text.strip())
    except (TypeError, ValueError) as exc:
        raise Invalid(str(exc), field=field) from None


def read_filter(
    *,
    offer_id: int | None = None,
    user_id: int | None = None,
    status: str | None = None,
    paid_from: str | dt.datetime | None = None,
    paid_to: str | dt.datetime | None = None,
    email: str | None = None,
) -> PaymentFilter:
    """The filter from what a request gave, or a 422 naming the parameter at fault."""
    status = (status or "").strip() or None
    if status is not None and status not in STATUSES:
        raise Invalid(f"must be one of {', '.join(STATUSES)}", field="status")
    start = paid_from if isinstance(paid_from, dt.datetime) or paid_from is None else _instant(paid_from, "paid_from")
    end = paid_to if isinstance(paid_to, dt.datetime) or paid_to is None else _instant(paid_to, "paid_to")
    if start is not None and end is not None and end <= start:
        raise Invalid("must be after paid_from", field="paid_to")
    email = (email or "").strip() or None
    if email is not None and (len(email) > MAX_EMAIL_FILTER or "\x00" in email):
        raise Invalid(f"may be at most {MAX_EMAIL_FILTER} characters", field="email")
    return PaymentFilter(offer_id, user_id, status, start, end, email)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(community_id: int, f: PaymentFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Payment.community_id == community_id]
    if f.offer_id is not None:
        where.append(Payment.offer_id == f.offer_id)
    if f.user_id is not None:
        where.append(Payment.user_id == f.user_id)
    if f.status == DISPUTED:
        where.append(Payment.disputed_amount > 0)
    elif f.status is not None:
        where.append(Payment.status == PaymentStatus(f.status))
    if f.paid_from is not None:
        where.append(Payment.paid_at >= f.paid_from)
    if f.paid_to is not None:
        where.append(Payment.paid_at < f.paid_to)
    if f.email is not None:
        where.append(User.email.ilike(_like(f.email), escape="\\"))
    return where


def _rows(community_id: int, f: PaymentFilter) -> Select[Any]:
    """Payment, buyer and offer, newest first (by id: the order payments were recorded in)."""
    return (
        select(Payment, User.email, User.name, Offer.title)
        .join(User, User.id == Payment.user_id)
        .join(Offer, Offer.id == Payment.offer_id)
        .where(*_where(community_id, f))
        .order_by(Payment.id.desc())
    )


@dataclass(frozen=True)
class PaymentRow:
    payment: Payment
    email: str
    name: str
    offer_title: str


async def list_payments(
    session: AsyncSession, community_id: int, f: PaymentFilter, *, after: int | None, limit: int
) -> list[PaymentRow]:
    """A keyset page of the community's payments matching `f`, newest first, after `after`."""
    query = _rows(community_id, f).limit(limit)
    if after is not None:
        query = query.where(Payment.id < after)
    return [PaymentRow(p, email, name or "", title) for p, email, name, title in await session.execute(query)]


# ---------------------------------------------------------------- the CSV

CSV_HEADER = (
    "payment_id", "paid_at_utc", "buyer_name", "buyer_email", "offer", "kind", "currency",
    "amount", "discount", "refunded", "disputed", "net", "status",
)


def csv_statement(community_id: int, f: PaymentFilter) -> Select[Any]:
    """The same rows as `list_payments`, every page of them, as plain columns for a CSV."""
    return (
        select(
            Payment.id, Payment.paid_at, User.name, User.email, Offer.title, Payment.kind, Payment.currency,
            Payment.amount, Payment.discount_amount, Payment.refunded_amount, Payment.disputed_amount, Payment.status,
        )
        .join(User, User.id == Payment.user_id)
        .join(Offer, Offer.id == Payment.offer_id)
        .where(*_where(community_id, f))
        .order_by(Payment.id.desc())
    )


def csv_row(row: Sequence[Any]) -> list[object]:
    pid, paid_at, name, email, title, kind, currency, amount, discount, refunded, disputed, status = row

    def money(minor: int) -> str:
        return decimal_amount(minor, currency)

    return [
        pid, paid_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"), name or "", email, title, kind.value, currency,
        money(amount), money(discount), money(refunded), money(disputed), money(amount - refunded - disputed), status.value,
    ]


def csv_filename(community_id: int) -> str:
    return f"payments-{community_id}.csv"


# ---------------------------------------------------------------- one payment's disputes


async def disputes_of(session: AsyncSession, community_id: int, payment_id: int) -> list[Dispute]:
    return list(
        (
            await session.scalars(
                select(Dispute)
                .where(Dispute.community_id == community_id, Dispute.payment_id == payment_id)
                .order_by(Dispute.id)
            )
        ).all()
    )

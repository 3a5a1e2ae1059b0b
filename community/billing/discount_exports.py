"""Discount codes as CSV, for the API and the console alike: the community's codes (with their
uses and state now) and one code's redemptions. Streamed through community.exports; amounts
leave as decimals of the currency's major unit with the currency beside them, percents as
percents, times as ISO 8601 in UTC."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import Select, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from community.billing.discounts import Counts, code_state
from community.billing.models import (
    AppliesTo,
    DiscountCode,
    DiscountCodeOffer,
    DiscountRedemption,
    RedemptionState,
)
from community.db import utcnow
from community.exports import stream_csv
from community.money import decimal_amount, percent_text
from community.offers.models import Offer

CODE_HEADER = (
    "id", "code", "kind", "percent_off", "amount_off", "currency", "offers", "starts_at_utc", "ends_at_utc",
    "max_uses", "per_customer_limit", "duration", "duration_months", "redeemed", "reserved", "uses", "state",
    "created_at_utc",
)  # fmt: skip
REDEMPTION_HEADER = (
    "id", "code", "checkout_id", "email", "user_id", "state", "amount_off", "currency", "created_at_utc",
    "redeemed_at_utc", "checkout_expires_at_utc",
)  # fmt: skip


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).isoformat() if moment else ""


def _count(state: RedemptionState):
    return (
        select(func.count())
        .where(DiscountRedemption.code_id == DiscountCode.id, DiscountRedemption.state == state)
        .correlate(DiscountCode)
        .scalar_subquery()
    )


def codes_statement(community_id: int) -> Select[Any]:
    """The community's codes, oldest first (as the list), each with its counts and its offers' titles."""
    titles = (
        select(func.string_agg(Offer.title, aggregate_order_by(literal("; "), Offer.id)))
        .select_from(DiscountCodeOffer)
        .join(Offer, Offer.id == DiscountCodeOffer.offer_id)
        .where(DiscountCodeOffer.code_id == DiscountCode.id)
        .correlate(DiscountCode)
        .scalar_subquery()
    )
    return (
        select(
            DiscountCode.id, DiscountCode.code, DiscountCode.kind, DiscountCode.percent_bps, DiscountCode.amount_off,
            DiscountCode.currency, DiscountCode.applies_to, titles.label("offers"), DiscountCode.starts_at,
            DiscountCode.ends_at, DiscountCode.max_redemptions, DiscountCode.per_customer_limit, DiscountCode.duration,
            DiscountCode.duration_months, DiscountCode.active, DiscountCode.created_at,
            _count(RedemptionState.redeemed).label("redeemed"), _count(RedemptionState.reserved).label("reserved"),
        )
        .where(DiscountCode.community_id == community_id)
        .order_by(DiscountCode.id)
    )


def code_row(row: Any, now: dt.datetime) -> Sequence[object]:
    counts = Counts(redeemed=row.redeemed, reserved=row.reserved)
    return (
        row.id, row.code, row.kind.value,
        percent_text(row.percent_bps) if row.percent_bps is not None else "",
        decimal_amount(row.amount_off, row.currency) if row.amount_off is not None else "",
        row.currency or "",
        "all" if row.applies_to == AppliesTo.all else (row.offers or ""),
        _when(row.starts_at), _when(row.ends_at),
        "" if row.max_redemptions is None else row.max_redemptions,
        "" if row.per_customer_limit is None else row.per_customer_limit,
        row.duration.value, "" if row.duration_months is None else row.duration_months,
        counts.redeemed, counts.reserved, counts.used, code_state(row, counts, now).value, _when(row.created_at),
    )  # fmt: skip


def codes_csv(sessions: async_sessionmaker[AsyncSession], community_id: int) -> AsyncIterator[bytes]:
    now = utcnow()
    return stream_csv(sessions, CODE_HEADER, codes_statement(community_id), lambda row: code_row(row, now))


def redemptions_statement(community_id: int, code_id: int) -> Select[Any]:
    """A code's redemptions and reservations, newest first (as the code's page)."""
    return (
        select(
            DiscountRedemption.id, DiscountCode.code, DiscountRedemption.checkout_id,
            DiscountRedemption.email_normalized, DiscountRedemption.user_id, DiscountRedemption.state,
            DiscountRedemption.amount_off, DiscountRedemption.currency, DiscountRedemption.created_at,
            DiscountRedemption.redeemed_at, DiscountRedemption.expires_at,
        )
        .join(DiscountCode, DiscountCode.id == DiscountRedemption.code_id)
        .where(DiscountRedemption.community_id == community_id, DiscountRedemption.code_id == code_id)
        .order_by(DiscountRedemption.id.desc())
    )  # fmt: skip


def redemption_row(row: Any) -> Sequence[object]:
    return (
        row.id, row.code, row.checkout_id, row.email_normalized, "" if row.user_id is None else row.user_id,
        row.state.value, decimal_amount(row.amount_off, row.currency), row.currency, _when(row.created_at),
        _when(row.redeemed_at), _when(row.expires_at),
    )  # fmt: skip


def redemptions_csv(sessions: async_sessionmaker[AsyncSession], community_id: int, code_id: int) -> AsyncIterator[bytes]:
    """The caller has checked the code is this community's (discounts.get_code: 404 otherwise)."""
    return stream_csv(sessions, REDEMPTION_HEADER, redemptions_statement(community_id, code_id), redemption_row)

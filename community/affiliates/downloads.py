"""The resell lists as CSV, for the API and the console alike (the same filters as their lists):
affiliates (with their earnings, `reports.affiliates_statement`), commissions, payouts and one
payout's lines, each streamed from a statement through community.exports; the report (a few
summed lines) is built in memory by `reports.report_csv`.
Amounts leave as decimals of the major unit with their currency beside them; times in UTC."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar.response import Stream
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from community.accounts.models import User
from community.affiliates import reports
from community.affiliates.models import (
    Affiliate,
    AffiliateStatus,
    Commission,
    CommissionState,
    LedgerEntry,
    Payout,
    PayoutState,
)
from community.exports import csv_download, stream_csv
from community.money import decimal_amount

Sessions = async_sessionmaker[AsyncSession]


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).isoformat() if moment else ""


def _only(**filters: Any) -> list:
    """Equality conditions for the filters given (None: not filtered)."""
    columns = {
        "c_affiliate_id": Commission.affiliate_id,
        "c_offer_id": Commission.offer_id, "c_state": Commission.state, "p_state": Payout.state,
        "p_affiliate_id": Payout.affiliate_id,
    }
    return [columns[name] == value for name, value in filters.items() if value is not None]


AFFILIATES_HEADER = [
    "affiliate_id", "email", "name", "offer_id", "offer", "code", "status", "clicks", "currency", "sales", "pending",
    "approved", "paid", "reversed", "created_at", "suspended_at",
]


def affiliates_csv(
    sessions: Sessions, community_id: int, *, offer_id: int | None = None, status: AffiliateStatus | None = None
) -> Stream:
    """The affiliates list (oldest first) with their clicks, and their sales and earnings by
    ledger state: one row per currency they earned in (the report's sums)."""
    statement = reports.affiliates_statement(community_id, offer_id=offer_id, status=status)

    def row(r: Any) -> list[object]:
        currency = r[8]
        money = [decimal_amount(int(v), currency) if currency else "0" for v in r[10:14]]
        return [*r[:6], r[6].value, r[7], currency or "", r[9], *money, _when(r[14]), _when(r[15])]

    return csv_download("affiliates.csv", stream_csv(sessions, AFFILIATES_HEADER, statement, row))


COMMISSIONS_HEADER = [
    "commission_id", "affiliate_id", "email", "offer_id", "payment_id", "paid_amount", "commission", "reversed", "currency",
    "state", "reason", "hold_until", "approved_at", "created_at",
]


def commissions_csv(
    sessions: Sessions, community_id: int, *, affiliate_id: int | None = None, offer_id: int | None = None,
    state: CommissionState | None = None,
) -> Stream:
    """Commissions, newest first, as the commissions list filters them."""
    statement = (
        select(Commission, User.email)
        .join(Affiliate, Affiliate.id == Commission.affiliate_id)
        .join(User, User.id == Affiliate.user_id)
        .where(
            Commission.community_id == community_id,
            *_only(c_affiliate_id=affiliate_id, c_offer_id=offer_id, c_state=state),
        )
        .order_by(Commission.id.desc())
    )

    def row(r: Any) -> list[object]:
        c: Commission = r[0]
        return [
            c.id, c.affiliate_id, r[1], c.offer_id, c.payment_id, decimal_amount(c.base_amount, c.currency),
            decimal_amount(c.amount, c.currency), decimal_amount(c.reversed_amount, c.currency), c.currency, c.state.value,
            c.reason, _when(c.hold_until), _when(c.approved_at), _when(c.created_at),
        ]

    return csv_download("commissions.csv", stream_csv(sessions, COMMISSIONS_HEADER, statement, row))


PAYOUTS_HEADER = ["payout_id", "affiliate_id", "email", "name", "amount", "currency", "state", "reference", "created_at", "paid_at"]


def payouts_csv(
    sessions: Sessions, community_id: int, *, state: PayoutState | None = None, affiliate_id: int | None = None
) -> Stream:
    """The owner's payment list, newest first: who gets how much."""
    statement = (
        select(Payout, User.email, User.name)
        .join(Affiliate, Affiliate.id == Payout.affiliate_id)
        .join(User, User.id == Affiliate.user_id)
        .where(Payout.community_id == community_id, *_only(p_state=state, p_affiliate_id=affiliate_id))
        .order_by(Payout.id.desc())
    )

    def row(r: Any) -> list[object]:
        p: Payout = r[0]
        return [
            p.id, p.affiliate_id, r[1], r[2], decimal_amount(p.amount, p.currency), p.currency, p.state.value, p.reference,
            _when(p.created_at), _when(p.paid_at),
        ]

    return csv_download("payouts.csv", stream_csv(sessions, PAYOUTS_HEADER, statement, row))


LINES_HEADER = [
    "payout_id", "affiliate_id", "email", "name", "entry_id", "kind", "commission_id", "payment_id", "offer_id", "amount",
    "currency", "created_at",
]


def payout_lines_csv(sessions: Sessions, payout: Payout) -> Stream:
    """One payout (already found in its community), line by line: each entry with the payment
    behind it; the lines sum to the payout."""
    statement = (
        select(LedgerEntry, Commission.payment_id, Commission.offer_id, User.email, User.name)
        .join(Commission, Commission.id == LedgerEntry.commission_id)
        .join(Affiliate, Affiliate.id == LedgerEntry.affiliate_id)
        .join(User, User.id == Affiliate.user_id)
        .where(LedgerEntry.community_id == payout.community_id, LedgerEntry.payout_id == payout.id)
        .order_by(LedgerEntry.id)
    )

    def row(r: Any) -> list[object]:
        e: LedgerEntry = r[0]
        return [
            payout.id, payout.affiliate_id, r[3], r[4], e.id, e.kind.value, e.commission_id, r[1], r[2],
            decimal_amount(e.amount, e.currency), e.currency, _when(e.created_at),
        ]

    return csv_download(f"payout-{payout.id}.csv", stream_csv(sessions, LINES_HEADER, statement, row))


async def report_csv(session: AsyncSession, community_id: int, *, per: str, period: reports.Period, offer_id: int | None = None) -> Stream:
    lines = await (reports.by_affiliate if per == "affiliate" else reports.by_offer)(session, community_id, period, offer_id=offer_id)
    return csv_download(f"affiliates-by-{per}.csv", reports.report_csv(lines, per=per))

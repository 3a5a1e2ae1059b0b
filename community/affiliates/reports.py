"""What affiliates earned, summed from the ledger: the affiliate's dashboard and the owner's
report (per affiliate and per offer, with CSV). Every amount here is a sum of entries, so it
reconciles with the ledger: pending + approved + paid = all entries (a reversed commission's
entries sum to zero).

- pending: entries of commissions still in their hold;
- approved: owed and not yet paid (payable, or in an open payout);
- paid: in paid payouts (clawbacks after payout included, once paid out).
Sales count the payments that earned and still do (`is_sale`: not rejected, not fully reversed).

The report can be limited to a `Period` of UTC days: then it counts the sales whose payment was
made in those days (with everything that happened to their commissions since: reversals, payouts)
and the clicks made in them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import Date, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import User
from community.affiliates.models import (
    Affiliate,
    AffiliateStatus,
    Click,
    Commission,
    CommissionState,
    LedgerEntry,
    Payout,
    PayoutState,
)
from community.affiliates.payouts import PAYABLE_STATES
from community.billing.models import Payment
from community.db import newest_first
from community.errors import Invalid
from community.exports import to_csv
from community.money import decimal_amount
from community.offers.models import Offer

EARNING_STATES = (CommissionState.pending, CommissionState.approved, CommissionState.paid)


def is_sale():
    """A sale, the one definition for the affiliate's dashboard, its chart and the owner's
    report: a payment whose commission earned and still does. Not rejected (self-referral,
    suspended: kept, earning nothing) and not fully taken back by refunds or disputes (before
    or after payout); a partly refunded payment is still a sale."""
    return Commission.state.in_(EARNING_STATES) & (Commission.reversed_amount < Commission.amount)


@dataclass(frozen=True)
class Period:
    """UTC days, both ends included; an open end is unbounded."""

    since: dt.date | None = None
    until: dt.date | None = None

    @classmethod
    def read(cls, since: str | None, until: str | None) -> Period:
        """The range as a request gives it: `from` and `to`, each a day (YYYY-MM-DD) or blank."""
        return cls(_day(since, "from"), _day(until, "to"))

    def __post_init__(self) -> None:
        if self.since and self.until and self.until < self.since:
            raise Invalid("must not be before `from`", field="to")

    @property
    def start(self) -> dt.datetime | None:
        return dt.datetime.combine(self.since, dt.time(), dt.UTC) if self.since else None

    @property
    def end(self) -> dt.datetime | None:  # exclusive: the start of the day after `until`
        return dt.datetime.combine(self.until + dt.timedelta(days=1), dt.time(), dt.UTC) if self.until else None

    def within(self, column) -> list:
        """Conditions keeping `column` (a timestamp) inside the period."""
        return [c for c in (column >= self.start if self.start else None, column < self.end if self.end else None) if c is not None]

    def sales(self, community_id: int) -> list:
        """Conditions keeping commissions whose payment was made inside the period."""
        if not (self.since or self.until):
            return []
        paid = select(Payment.id).where(Payment.community_id == community_id, *self.within(Payment.paid_at))
        return [Commission.payment_id.in_(paid)]


ALL_TIME = Period()


def _day(text: str | None, field: str) -> dt.date | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise Invalid("must be a day like 2026-12-31 (UTC)", field=field) from None


@dataclass
class Totals:
    """One currency's numbers, in minor units."""

    currency: str
    pending: int = 0
    approved: int = 0
    paid: int = 0
    reversed: int = 0  # taken back by refunds and disputes
    sales: int = 0
    revenue: int = 0  # what those sales paid, after discounts
    rejected: int = 0  # payments that earned nothing (self-referral, suspended)


@dataclass
class Row:
    key: int  # affiliate or offer id
    totals: dict[str, Totals] = field(default_factory=dict)

    def of(self, currency: str) -> Totals:
        return self.totals.setdefault(currency, Totals(currency))


def _per_currency(rows: dict[int, Row], key: int, currency: str | None = None) -> list[Totals]:
    """The key's totals, one per currency in currency order; for a key with nothing yet, zeros
    in `currency` (or nothing)."""
    row = rows.get(key)
    if row is None:
        return [Totals(currency)] if currency else []
    return sorted(row.totals.values(), key=lambda t: t.currency)


def _counted():
    """Entries in a bucket: those of rejected and reversed commissions (outside paid payouts)
    are in none (they sum to zero). Needs the entry's Commission and Payout (outer) joined."""
    return (Payout.state == PayoutState.paid) | Commission.state.in_(EARNING_STATES)


def _bucket():
    """The bucket of an entry: paid (in a paid payout), approved (payable or in an open payout), pending."""
    return case(
        (Payout.state == PayoutState.paid, "paid"), (Commission.state.in_(PAYABLE_STATES), "approved"), else_="pending"
    )


async def _totals(session: AsyncSession, community_id: int, key, where) -> dict[int, Row]:
    """Ledger buckets and sales per `key` (a Commission column) and currency."""
    rows: dict[int, Row] = {}
    counted, bucket = _counted(), _bucket()
    ledger = await session.execute(
        select(key, LedgerEntry.currency, bucket, func.sum(LedgerEntry.amount))
        .join(Commission, Commission.id == LedgerEntry.commission_id)
        .outerjoin(Payout, Payout.id == LedgerEntry.payout_id)
        .where(LedgerEntry.community_id == community_id, counted, *where)
        .group_by(key, LedgerEntry.currency, bucket)
    )
    for key_value, currency, name, total in ledger:
        totals = rows.setdefault(key_value, Row(key_value)).of(currency)
        setattr(totals, name, int(total))
    earning = is_sale()
    sales = await session.execute(
        select(
            key,
            Commission.currency,
            func.count().filter(earning),
            func.coalesce(func.sum(Commission.base_amount).filter(earning), 0),
            func.sum(Commission.reversed_amount),
            func.count().filter(Commission.state == CommissionState.rejected),
        )
        .where(Commission.community_id == community_id, *where)
        .group_by(key, Commission.currency)
    )
    for key_value, currency, count, revenue, reversed_, rejected in sales:
        totals = rows.setdefault(key_value, Row(key_value)).of(currency)
        totals.sales, totals.revenue, totals.reversed, totals.rejected = count, int(revenue), int(reversed_), rejected
    return rows


async def earnings(session: AsyncSession, community_id: int, affiliate_id: int) -> list[Totals]:
    """The affiliate's dashboard numbers, one entry per currency they earned in."""
    rows = await _totals(session, community_id, Commission.affiliate_id, [Commission.affiliate_id == affiliate_id])
    return _per_currency(rows, affiliate_id)


async def sales_per_day(session: AsyncSession, community_id: int, affiliate_id: int, since: dt.date) -> dict[dt.date, int]:
    """The affiliate's sales (`is_sale`) by the UTC day their payment was made, from `since`:
    the chart's counts, which add up to `earnings(...)` sales over the days shown."""
    day = cast(func.timezone("UTC", Payment.paid_at), Date)
    start = dt.datetime.combine(since, dt.time(), dt.UTC)
    rows = await session.execute(
        select(day, func.count())
        .select_from(Commission)
        .join(Payment, Payment.id == Commission.payment_id)
        .where(
            Commission.community_id == community_id, Commission.affiliate_id == affiliate_id, is_sale(),
            Payment.paid_at >= start,
        )
        .group_by(day)
    )
    return {d: n for d, n in rows.all()}


async def _clicks(session: AsyncSession, community_id: int, key, period: Period = ALL_TIME) -> dict[int, int]:
    rows = await session.execute(
        select(key, func.count()).where(Click.community_id == community_id, *period.within(Click.at)).group_by(key)
    )
    return dict(rows.all())


@dataclass
class ReportLine:
    id: int
    label: str  # the affiliate's email, or the offer's title
    clicks: int
    totals: Totals
    offer_id: int | None = None  # per affiliate: their offer
    status: str | None = None  # per affiliate: active or suspended


async def by_affiliate(
    session: AsyncSession, community_id: int, period: Period = ALL_TIME, *, offer_id: int | None = None
) -> list[ReportLine]:
    """Every affiliate (those with nothing yet too; of one offer, if given), one line per
    currency they earned in."""
    one_offer = [Commission.offer_id == offer_id] if offer_id else []
    rows = await _totals(session, community_id, Commission.affiliate_id, [*period.sales(community_id), *one_offer])
    clicks = await _clicks(session, community_id, Click.affiliate_id, period)
    affiliates = await session.execute(
        select(Affiliate.id, Affiliate.offer_id, Affiliate.status, User.email, Offer.currency)
        .join(User, User.id == Affiliate.user_id)
        .join(Offer, Offer.id == Affiliate.offer_id)
        .where(Affiliate.community_id == community_id, *([Affiliate.offer_id == offer_id] if offer_id else []))
        .order_by(Affiliate.id)
    )
    return [
        ReportLine(affiliate_id, email, clicks.get(affiliate_id, 0), totals, offer_id, status.value)
        for affiliate_id, offer_id, status, email, currency in affiliates
        for totals in _per_currency(rows, affiliate_id, currency)
    ]


async def by_offer(
    session: AsyncSession, community_id: int, period: Period = ALL_TIME, *, offer_id: int | None = None
) -> list[ReportLine]:
    """Every offer with a program or affiliates (or the one given), one line per currency."""
    rows = await _totals(session, community_id, Commission.offer_id, period.sales(community_id))
    clicks = await _clicks(session, community_id, Click.offer_id, period)
    with_affiliates = select(Affiliate.offer_id).where(Affiliate.community_id == community_id)
    offers = await session.execute(
        select(Offer.id, Offer.title, Offer.currency)
        .where(Offer.community_id == community_id, Offer.resell_enabled | Offer.id.in_(with_affiliates))
        .where(*([Offer.id == offer_id] if offer_id else []))
        .order_by(Offer.id)
    )
    return [
        ReportLine(offer_id, title, clicks.get(offer_id, 0), totals, offer_id)
        for offer_id, title, currency in offers
        for totals in _per_currency(rows, offer_id, currency)
    ]


def affiliates_statement(community_id: int, *, offer_id: int | None = None, status: AffiliateStatus | None = None):
    """The affiliates list as rows for a download, oldest first, one per affiliate and currency
    they earned in (one with no currency for those with nothing yet): id, email, name, offer id,
    offer title, code, status, clicks, currency, sales, pending, approved, paid, reversed,
    created_at, suspended_at. The same sums as `by_affiliate` (all time)."""
    sales = (
        select(
            Commission.affiliate_id.label("affiliate_id"), Commission.currency.label("currency"),
            func.count().filter(is_sale()).label("sales"), func.sum(Commission.reversed_amount).label("reversed"),
        )
        .where(Commission.community_id == community_id)
        .group_by(Commission.affiliate_id, Commission.currency)
        .subquery()
    )
    bucket = _bucket()
    ledger = (
        select(
            LedgerEntry.affiliate_id.label("affiliate_id"), LedgerEntry.currency.label("currency"),
            *(func.coalesce(func.sum(LedgerEntry.amount).filter(bucket == name), 0).label(name) for name in ("pending", "approved", "paid")),
        )
        .join(Commission, Commission.id == LedgerEntry.commission_id)
        .outerjoin(Payout, Payout.id == LedgerEntry.payout_id)
        .where(LedgerEntry.community_id == community_id, _counted())
        .group_by(LedgerEntry.affiliate_id, LedgerEntry.currency)
        .subquery()
    )
    clicks = select(func.count()).where(Click.affiliate_id == Affiliate.id).scalar_subquery()
    zero = func.coalesce
    query = (
        select(
            Affiliate.id, User.email, User.name, Affiliate.offer_id, Offer.title, Affiliate.code, Affiliate.status, clicks,
            sales.c.currency, zero(sales.c.sales, 0), zero(ledger.c.pending, 0), zero(ledger.c.approved, 0),
            zero(ledger.c.paid, 0), zero(sales.c.reversed, 0), Affiliate.created_at, Affiliate.suspended_at,
        )
        .join(User, User.id == Affiliate.user_id)
        .join(Offer, Offer.id == Affiliate.offer_id)
        .outerjoin(sales, sales.c.affiliate_id == Affiliate.id)
        .outerjoin(ledger, (ledger.c.affiliate_id == Affiliate.id) & (ledger.c.currency == sales.c.currency))
        .where(Affiliate.community_id == community_id)
        .order_by(Affiliate.id, sales.c.currency)
    )
    if offer_id is not None:
        query = query.where(Affiliate.offer_id == offer_id)
    if status is not None:
        query = query.where(Affiliate.status == status)
    return query


async def of_affiliates(
    session: AsyncSession, community_id: int, affiliate_ids: list[int]
) -> dict[int, tuple[int, list[Totals]]]:
    """A page of affiliates' figures: affiliate id -> (clicks, totals per currency), as the
    report has them (all time)."""
    if not affiliate_ids:
        return {}
    rows = await _totals(session, community_id, Commission.affiliate_id, [Commission.affiliate_id.in_(affiliate_ids)])
    clicks = dict(
        (
            await session.execute(
                select(Click.affiliate_id, func.count())
                .where(Click.community_id == community_id, Click.affiliate_id.in_(affiliate_ids))
                .group_by(Click.affiliate_id)
            )
        ).all()
    )
    return {a: (clicks.get(a, 0), _per_currency(rows, a)) for a in affiliate_ids}


async def program_offers(session: AsyncSession, community_id: int) -> list[tuple[int, str]]:
    """(id, title) of the offers with a program or affiliates: the report's and the lists' offer filter."""
    with_affiliates = select(Affiliate.offer_id).where(Affiliate.community_id == community_id)
    rows = await session.execute(
        select(Offer.id, Offer.title)
        .where(Offer.community_id == community_id, Offer.resell_enabled | Offer.id.in_(with_affiliates))
        .order_by(Offer.id)
    )
    return [(i, t) for i, t in rows.all()]


MONEY = ("revenue", "pending", "approved", "paid", "reversed")


def report_csv(lines: list[ReportLine], *, per: str) -> str:
    """Decimal amounts with their currency, for spreadsheets."""
    first = ["affiliate_id", "email", "offer_id", "status"] if per == "affiliate" else ["offer_id", "title"]
    header = [*first, "clicks", "sales", "rejected", *MONEY, "currency"]
    rows = []
    for line in lines:
        lead = [line.id, line.label, line.offer_id, line.status] if per == "affiliate" else [line.id, line.label]
        money = [decimal_amount(getattr(line.totals, name), line.totals.currency) for name in MONEY]
        rows.append([*lead, line.clicks, line.totals.sales, line.totals.rejected, *money, line.totals.currency])
    return to_csv(header, rows)


async def list_commissions(
    session: AsyncSession,
    community_id: int,
    *,
    after: int | None,
    limit: int,
    affiliate_id: int | None = None,
    offer_id: int | None = None,
    state: CommissionState | None = None,
) -> list[Commission]:
    """Commissions, newest first."""
    return await newest_first(
        session, Commission, community_id, after=after, limit=limit, affiliate_id=affiliate_id, offer_id=offer_id, state=state
    )

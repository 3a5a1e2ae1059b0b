"""A community's money figures, from the payments ledger and the subscriptions as Stripe last
told us (the rows the payments API reads), each in one set-based statement, per currency,
in minor units.

- **Revenue** in a window: payments made in it (`paid_at`), less what was refunded of them
  (refunds pending or succeeded at Stripe: the payment's `refunded_amount`) and what open or
  lost chargebacks hold (`disputed_amount`), so far. The same net as /payments/revenue and a
  member's total spent: the revenue of every day ever adds up to the API's net per currency.
- **Monthly recurring revenue**: subscriptions Stripe calls `active` (paying now, including
  those set to end at the period's end), each at its price per period divided by its offer's
  interval in months (a 3-month price counts a third), summed and rounded to the minor unit.
  Prices are list prices: a discount code's reduction is not taken off. Trialing subscriptions
  are not counted; they are given apart (how many, and what they would add). Past-due ones
  are not counted either: they are the payments failing now.
- **Payments failing now**: subscriptions Stripe calls `past_due` (a renewal failed and is being
  retried); access lasts until their grace end.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Date, Numeric, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import User
from community.billing.models import Payment, Subscription
from community.offers.models import Offer

PAYING = "active"
TRIALING = "trialing"
FAILING = "past_due"


@dataclass(frozen=True)
class Takings:
    """One currency's payments in a window."""

    currency: str
    payments: int
    paid: int
    refunded: int
    disputed: int

    @property
    def net(self) -> int:
        return self.paid - self.refunded - self.disputed


def _net():
    return func.sum(Payment.amount - Payment.refunded_amount - Payment.disputed_amount)


async def revenue(session: AsyncSession, community_id: int, *, since: dt.datetime, until: dt.datetime) -> list[Takings]:
    """Payments made in [since, until), per currency (those with none are absent)."""
    rows = await session.execute(
        select(
            Payment.currency,
            func.count(),
            func.sum(Payment.amount),
            func.sum(Payment.refunded_amount),
            func.sum(Payment.disputed_amount),
        )
        .where(Payment.community_id == community_id, Payment.paid_at >= since, Payment.paid_at < until)
        .group_by(Payment.currency)
        .order_by(Payment.currency)
    )
    return [Takings(c, int(n), int(paid), int(refunded), int(disputed)) for c, n, paid, refunded, disputed in rows.all()]


async def revenue_per_day(
    session: AsyncSession, community_id: int, *, since: dt.datetime, until: dt.datetime
) -> dict[tuple[dt.date, str], int]:
    """Net revenue (as `revenue` counts it) by the UTC day the payment was made and currency."""
    day = cast(func.timezone("UTC", Payment.paid_at), Date)
    rows = await session.execute(
        select(day, Payment.currency, _net())
        .where(Payment.community_id == community_id, Payment.paid_at >= since, Payment.paid_at < until)
        .group_by(day, Payment.currency)
    )
    return {(d, currency): int(net) for d, currency, net in rows.all()}


@dataclass(frozen=True)
class Recurring:
    currency: str
    monthly: int  # minor units a month, from paying subscriptions
    subscriptions: int
    trialing: int
    trialing_monthly: int  # what the trialing ones would add once they pay


async def recurring(session: AsyncSession, community_id: int) -> list[Recurring]:
    """Monthly recurring revenue per currency (currencies without a paying or trialing
    subscription are absent)."""
    monthly = cast(Subscription.amount, Numeric) / Offer.interval_months
    paying, trialing = Subscription.status == PAYING, Subscription.status == TRIALING
    rows = await session.execute(
        select(
            Subscription.currency,
            func.coalesce(func.round(func.sum(monthly).filter(paying)), 0),
            func.count().filter(paying),
            func.count().filter(trialing),
            func.coalesce(func.round(func.sum(monthly).filter(trialing)), 0),
        )
        .join(Offer, Offer.id == Subscription.offer_id)
        .where(Subscription.community_id == community_id, Subscription.status.in_((PAYING, TRIALING)))
        .group_by(Subscription.currency)
        .order_by(Subscription.currency)
    )
    return [Recurring(c, int(m), n, t, int(tm)) for c, m, n, t, tm in rows.all()]


@dataclass(frozen=True)
class Failing:
    entitlement_id: int
    user_id: int
    email: str
    name: str
    offer_id: int
    offer_title: str
    amount: int  # the price per period
    currency: str
    grace_ends_at: dt.datetime | None


async def failing_payments(session: AsyncSession, community_id: int, *, limit: int) -> tuple[int, list[Failing]]:
    """How many subscriptions are past due, and the first `limit` of them, soonest grace end first."""
    mine = [Subscription.community_id == community_id, Subscription.status == FAILING]
    total = await session.scalar(select(func.count()).select_from(Subscription).where(*mine))
    rows = await session.execute(
        select(
            Subscription.entitlement_id, Subscription.user_id, User.email, User.name, Subscription.offer_id, Offer.title,
            Subscription.amount, Subscription.currency, Subscription.grace_ends_at,
        )
        .join(User, User.id == Subscription.user_id)
        .join(Offer, Offer.id == Subscription.offer_id)
        .where(*mine)
        .order_by(Subscription.grace_ends_at.asc().nulls_last(), Subscription.id)
        .limit(limit)
    )
    return total or 0, [Failing(*row) for row in rows.all()]

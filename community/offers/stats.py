"""A community's member counts, from the entitlements ledger (the rows the access query reads).

- **Active members**: people holding at least one entitlement whose access runs now (`ends_at`
  null or ahead): buyers, free claims and comps alike, one however many offers they hold. The
  offer list's `holders` counts the same way, per offer.
- **New members** in a window: people whose *first* entitlement in this community started in
  it (`starts_at`); someone who buys a second offer, or comes back, is not new again.
- **Cancellations** in a window: memberships (entitlements, not people) whose access ended in
  it because they were cancelled (status `cancelled`, `ends_at` in the window): by the member
  (at the period's end), by staff (now or at a date), or at Stripe. Passes that ran out, lapses
  after failed payments and refunds that ended access are not cancellations.
- **Set to end**: memberships cancelled whose access still runs (a cancel at the period's
  end): they become cancellations when `ends_at` passes.

Windows are half-open, [since, until). Every count is one set-based statement.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Date, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from community.offers.models import Entitlement, EntitlementStatus


@dataclass(frozen=True)
class MemberCounts:
    active: int
    new: int
    cancelled: int
    set_to_end: int


def _first_starts(community_id: int):
    """Each person's first entitlement start in the community."""
    return (
        select(Entitlement.user_id, func.min(Entitlement.starts_at).label("first"))
        .where(Entitlement.community_id == community_id)
        .group_by(Entitlement.user_id)
        .subquery()
    )


async def member_counts(
    session: AsyncSession, community_id: int, *, since: dt.datetime, until: dt.datetime, now: dt.datetime
) -> MemberCounts:
    live = or_(Entitlement.ends_at.is_(None), Entitlement.ends_at > now)
    cancelled = Entitlement.status == EntitlementStatus.cancelled
    active, ended, set_to_end = (
        await session.execute(
            select(
                func.count(func.distinct(Entitlement.user_id)).filter(live),
                func.count().filter(cancelled, Entitlement.ends_at >= since, Entitlement.ends_at < until, Entitlement.ends_at <= now),
                func.count().filter(cancelled, Entitlement.ends_at > now),
            ).where(Entitlement.community_id == community_id)
        )
    ).one()
    first = _first_starts(community_id)
    new = await session.scalar(select(func.count()).select_from(first).where(first.c.first >= since, first.c.first < until))
    return MemberCounts(active=active, new=new or 0, cancelled=ended, set_to_end=set_to_end)


async def new_members_per_day(
    session: AsyncSession, community_id: int, *, since: dt.datetime, until: dt.datetime
) -> dict[dt.date, int]:
    """New members (as `member_counts` counts them) by the UTC day of their first start; days
    without any are absent."""
    first = _first_starts(community_id)
    day = cast(func.timezone("UTC", first.c.first), Date)
    rows = await session.execute(
        select(day, func.count()).where(first.c.first >= since, first.c.first < until).group_by(day)
    )
    return {d: n for d, n in rows.all()}

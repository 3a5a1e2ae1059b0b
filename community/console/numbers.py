"""The community's numbers at a glance (the console's home and GET .../numbers), gathered from
each floor's own ledger queries: members from the entitlements (`offers/stats.py`), money from
the payments and subscriptions (`billing/stats.py`), failed background jobs from the outbox
(`jobs.py`). What each number counts is written there, on the home page and in docs/DESIGN.md.

Windows are whole UTC days: "the last 30 days" are today and the 29 days before it (from
00:00 UTC 29 days ago to 00:00 UTC tomorrow), so the last 30 rows of the 90-day series add up
exactly to the 30-day figures (new members, net revenue per currency).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from community import jobs
from community.billing import stats as money
from community.db import utcnow
from community.errors import NotFound
from community.offers import stats as members

WINDOW_DAYS = 30
SERIES_DAYS = 90
FAILING_SHOWN = 50
JOBS_SHOWN = 20


@dataclass(frozen=True)
class Day:
    date: dt.date
    new_members: int
    revenue: dict[str, int] = field(default_factory=dict)  # net per currency, minor units


@dataclass(frozen=True)
class Numbers:
    as_of: dt.datetime
    since: dt.datetime  # the 30-day window, [since, until)
    until: dt.datetime
    members: members.MemberCounts
    revenue: list[money.Takings]
    recurring: list[money.Recurring]
    failing_count: int
    failing: list[money.Failing]  # the first FAILING_SHOWN, soonest grace end first
    days: list[Day]  # SERIES_DAYS of them, oldest first, ending today
    currencies: list[str]  # those with a payment in the series, in order
    failed_jobs_count: int | None = None  # None: not asked for (managers do not see jobs)
    failed_jobs: list[jobs.OutboxJob] | None = None


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


async def numbers(session: AsyncSession, community_id: int, *, with_jobs: bool, now: dt.datetime | None = None) -> Numbers:
    now = now or utcnow()
    today = now.astimezone(dt.UTC).date()
    until = _midnight(today + dt.timedelta(days=1))
    since = _midnight(today - dt.timedelta(days=WINDOW_DAYS - 1))
    series_since = _midnight(today - dt.timedelta(days=SERIES_DAYS - 1))
    new_per_day = await members.new_members_per_day(session, community_id, since=series_since, until=until)
    net_per_day = await money.revenue_per_day(session, community_id, since=series_since, until=until)
    net_by_day: dict[dt.date, dict[str, int]] = {}
    for (day, currency), net in sorted(net_per_day.items()):  # one row per day and currency, not per payment
        net_by_day.setdefault(day, {})[currency] = net
    first_day = series_since.date()
    days = [
        Day(day, new_per_day.get(day, 0), net_by_day.get(day, {}))
        for day in (first_day + dt.timedelta(days=n) for n in range(SERIES_DAYS))
    ]
    failing_count, failing = await money.failing_payments(session, community_id, limit=FAILING_SHOWN)
    result = Numbers(
        as_of=now,
        since=since,
        until=until,
        members=await members.member_counts(session, community_id, since=since, until=until, now=now),
        revenue=await money.revenue(session, community_id, since=since, until=until),
        recurring=await money.recurring(session, community_id),
        failing_count=failing_count,
        failing=failing,
        days=days,
        currencies=sorted({currency for _, currency in net_per_day}),
    )
    if not with_jobs:
        return result
    return replace(
        result,
        failed_jobs_count=await jobs.count_jobs(session, community_id=community_id, state=jobs.JobState.failed),
        failed_jobs=await jobs.list_jobs(session, community_id=community_id, state=jobs.JobState.failed, limit=JOBS_SHOWN),
    )


async def retry_job(session: AsyncSession, community_id: int, job_id: int) -> jobs.OutboxJob | None:
    """Put the community's failed job back in line (jobs.retry_failed, as the API's retry).
    None when the job is this community's but not failed (already retried: a second click);
    a job of another community, or none, is NotFound."""
    row = await jobs.retry_failed(session, job_id=job_id, community_id=community_id)
    if row is not None:
        return row
    known = await session.scalar(
        select(jobs.OutboxJob.id).where(jobs.OutboxJob.id == job_id, jobs.OutboxJob.community_id == community_id)
    )
    if known is None:
        raise NotFound("no such job in this community")
    return None

"""The console home's numbers through the API: GET /communities/{id}/numbers, for staff (managers
too), the same figures as the page (console/numbers.py says what each counts). Failed jobs are
listed for owners and admins only, as the jobs API does (null for managers); retrying one is the
jobs API's POST .../jobs/{id}/retry."""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import Controller, get

from community.accounts import service as accounts
from community.accounts.guards import StaffMember
from community.billing.api import GUARDS
from community.console import numbers
from community.jobs_api import JobOut, job_out
from community.web import Db


class MembersOut(msgspec.Struct):
    active: int  # people holding at least one entitlement whose access runs now
    new: int  # people whose first entitlement here started in the window
    cancelled: int  # memberships whose access ended in the window as cancelled
    set_to_end: int  # memberships cancelled whose access still runs (to the period's end)


class TakingsOut(msgspec.Struct):
    currency: str
    payments: int
    paid_amount: int
    refunded_amount: int
    disputed_amount: int
    net_amount: int


class RecurringOut(msgspec.Struct):
    currency: str
    monthly_amount: int  # paying (Stripe: active) subscriptions, per month
    subscriptions: int
    trialing: int  # not counted in monthly_amount
    trialing_monthly_amount: int


class FailingOut(msgspec.Struct):
    entitlement_id: int
    user_id: int
    email: str
    name: str
    offer_id: int
    offer_title: str
    amount: int
    currency: str
    grace_ends_at: dt.datetime | None


class FailingPaymentsOut(msgspec.Struct):
    count: int
    items: list[FailingOut]  # at most 50, soonest grace end first


class FailedJobsOut(msgspec.Struct):
    count: int
    items: list[JobOut]  # the newest 20


class DayOut(msgspec.Struct):
    date: dt.date
    new_members: int
    revenue: dict[str, int]  # net per currency, minor units; currencies with nothing that day absent


class NumbersOut(msgspec.Struct):
    as_of: dt.datetime
    window_start: dt.datetime  # the last 30 days: today and the 29 before it, UTC, [start, end)
    window_end: dt.datetime
    members: MembersOut
    revenue: list[TakingsOut]  # payments made in the window, net of their refunds and disputes
    recurring: list[RecurringOut]
    failing_payments: FailingPaymentsOut
    failed_jobs: FailedJobsOut | None  # owners and admins only
    days: list[DayOut]  # the last 90 UTC days, oldest first


def numbers_out(n: numbers.Numbers) -> NumbersOut:
    m = n.members
    return NumbersOut(
        as_of=n.as_of,
        window_start=n.since,
        window_end=n.until,
        members=MembersOut(active=m.active, new=m.new, cancelled=m.cancelled, set_to_end=m.set_to_end),
        revenue=[
            TakingsOut(t.currency, t.payments, t.paid, t.refunded, t.disputed, t.net) for t in n.revenue
        ],
        recurring=[
            RecurringOut(r.currency, r.monthly, r.subscriptions, r.trialing, r.trialing_monthly) for r in n.recurring
        ],
        failing_payments=FailingPaymentsOut(
            n.failing_count,
            [
                FailingOut(f.entitlement_id, f.user_id, f.email, f.name, f.offer_id, f.offer_title, f.amount, f.currency, f.grace_ends_at)
                for f in n.failing
            ],
        ),
        failed_jobs=None if n.failed_jobs is None else FailedJobsOut(n.failed_jobs_count or 0, [job_out(j) for j in n.failed_jobs]),
        days=[DayOut(d.date, d.new_members, d.revenue) for d in n.days],
    )


class NumbersController(Controller):
    path = "/communities/{community_id:int}/numbers"
    tags = ["numbers"]
    dependencies = GUARDS

    @get(
        "/",
        summary="The community's numbers: members, 30-day revenue net of refunds and disputes, monthly recurring revenue, "
        "failing payments, failed jobs, and 90 days per day",
    )
    async def read_numbers(self, member: StaffMember, db: Db) -> NumbersOut:
        found = await numbers.numbers(db, member.community_id, with_jobs=member.role in accounts.EDITORS)
        return numbers_out(found)

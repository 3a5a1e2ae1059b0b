"""A member's whole story in one read: the directory row, every membership with its history,
payments with their refunds, the access log, resell-rights enrolments, notes and tags.
A fixed number of indexed queries whatever the member's history (bench/members.py measures it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from community.affiliates.models import Affiliate
from community.billing.models import Payment, Refund, Subscription
from community.errors import NotFound
from community.members import directory, service
from community.members.models import MemberNote
from community.offers.models import AccessLogEntry, Entitlement, EntitlementEvent, Offer

ACCESS_LOG_MAX = 200  # the newest entries; the rest stay in the log


@dataclass(frozen=True)
class Membership:
    entitlement: Entitlement
    offer_title: str
    subscription: Subscription | None
    events: list[EntitlementEvent]


@dataclass(frozen=True)
class PaymentLine:
    payment: Payment
    offer_title: str
    refunds: list[Refund]


@dataclass(frozen=True)
class Enrolment:
    affiliate: Affiliate
    offer_title: str


@dataclass(frozen=True)
class Profile:
    row: directory.Row
    memberships: list[Membership]
    payments: list[PaymentLine]
    access_log: list[AccessLogEntry]
    enrolments: list[Enrolment]
    notes: list[MemberNote]
    note_authors: dict[int, str]
    tags: list[service.Tag]
    now: dt.datetime


async def profile(session: AsyncSession, community_id: int, user_id: int) -> Profile:
    row = await directory.member_row(session, community_id, user_id)
    if row is None:
        raise NotFound("member not found")
    held = list(
        (
            await session.scalars(
                select(Entitlement)
                .where(Entitlement.community_id == community_id, Entitlement.user_id == user_id)
                .order_by(Entitlement.id.desc())
            )
        ).all()
    )
    ids = [e.id for e in held]
    subs = {
        s.entitlement_id: s
        for s in await session.scalars(select(Subscription).where(Subscription.community_id == community_id, Subscription.user_id == user_id))
    }
    events: dict[int, list[EntitlementEvent]] = {}
    if ids:
        for ev in await session.scalars(
            select(EntitlementEvent)
            .where(EntitlementEvent.community_id == community_id, EntitlementEvent.entitlement_id.in_(ids))
            .order_by(EntitlementEvent.id)
        ):
            events.setdefault(ev.entitlement_id, []).append(ev)
    payments = list(
        (
            await session.scalars(
                select(Payment).where(Payment.community_id == community_id, Payment.user_id == user_id).order_by(Payment.id.desc())
            )
        ).all()
    )
    refunds: dict[int, list[Refund]] = {}
    if payments:
        for refund in await session.scalars(
            select(Refund)
            .where(Refund.community_id == community_id, Refund.payment_id.in_([p.id for p in payments]))
            .order_by(Refund.id)
        ):
            refunds.setdefault(refund.payment_id, []).append(refund)
    enrolled = list(
        (
            await session.scalars(
                select(Affiliate).where(Affiliate.community_id == community_id, Affiliate.user_id == user_id).order_by(Affiliate.id)
            )
        ).all()
    )
    offer_ids = {e.offer_id for e in held} | {p.offer_id for p in payments} | {a.offer_id for a in enrolled}
    titles = await directory.offer_titles(session, community_id, offer_ids)
    log = list(
        (
            await session.scalars(
                select(AccessLogEntry)
                .where(AccessLogEntry.community_id == community_id, AccessLogEntry.user_id == user_id)
                .order_by(AccessLogEntry.id.desc())
                .limit(ACCESS_LOG_MAX)
            )
        ).all()
    )
    notes = list(
        (
            await session.scalars(
                select(MemberNote)
                .where(MemberNote.community_id == community_id, MemberNote.user_id == user_id)
                .order_by(MemberNote.id.desc())
            )
        ).all()
    )
    authors = await service.author_names(
        session, {n.author_id for n in notes if n.author_id} | {n.edited_by_id for n in notes if n.edited_by_id}
    )
    auto = await service.auto_tags(session, community_id, user_id)
    return Profile(
        row=row,
        memberships=[Membership(e, titles.get(e.offer_id, ""), subs.get(e.id), events.get(e.id, [])) for e in held],
        payments=[PaymentLine(p, titles.get(p.offer_id, ""), refunds.get(p.id, [])) for p in payments],
        access_log=log,
        enrolments=[Enrolment(a, titles.get(a.offer_id, "")) for a in enrolled],
        notes=notes,
        note_authors=authors,
        tags=[service.Tag(t, t.casefold() in auto) for t in row.tags],
        now=dt.datetime.now(dt.UTC),
    )


# Offers are imported for type checkers reading `titles`.
__all__ = ["Offer", "Profile", "profile"]

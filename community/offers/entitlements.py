"""Entitlements: one buyer's holding of one offer. Every transition sets or clears `ends_at`
(the only thing access looks at), records an event, and starts an access-change run."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts import service as accounts
from community.accounts.models import User
from community.db import get_in_community, utcnow
from community.errors import Conflict, Invalid, NotFound, check_storable
from community.offers import runs
from community.offers.models import (
    Entitlement,
    EntitlementEvent,
    EntitlementSource,
    EntitlementStatus,
    Offer,
    OfferGroup,
    OfferStatus,
    Pricing,
)
from community.offers.service import get_offer

ENDED = (EntitlementStatus.cancelled, EntitlementStatus.refunded, EntitlementStatus.expired)
EXPIRY_BATCH = 1000


async def offer_group_ids(session: AsyncSession, offer_id: int) -> list[int]:
    """Every group the offer links, for any entitlement range: the candidates of a run.
    FOR SHARE on the offer: a concurrent group edit (FOR UPDATE) either commits first and is
    seen here, or waits for this transaction, so its run sees this change committed. The lock
    loads the offer too, so naming it in the run's cause (_record) asks nothing more."""
    await session.get(Offer, offer_id, with_for_update={"read": True})
    return list((await session.scalars(select(OfferGroup.group_id).where(OfferGroup.offer_id == offer_id))).all())


def is_live(entitlement: Entitlement, now: dt.datetime | None = None) -> bool:
    return entitlement.ends_at is None or entitlement.ends_at > (now or utcnow())


async def _record(
    session: AsyncSession, entitlement: Entitlement, *, reason: str, actor_id: int | None, change: str
) -> None:
    """After every transition: the history event, and the access run (cause "<offer>: <change>")."""
    session.add(
        EntitlementEvent(
            community_id=entitlement.community_id,
            entitlement_id=entitlement.id,
            status=entitlement.status,
            ends_at=entitlement.ends_at,
            reason=reason[:200],
            actor_id=actor_id,
        )
    )
    if entitlement.ends_at is not None and entitlement.ends_at <= utcnow():
        entitlement.expiry_processed_at = utcnow()  # this transition's run covers it; the sweep need not
    groups = await offer_group_ids(session, entitlement.offer_id)
    if groups:
        offer = await session.get(Offer, entitlement.offer_id)
        await runs.start_run(
            session,
            community_id=entitlement.community_id,
            cause=f"{offer.title}: {change}",
            scope={"entitlement_ids": [entitlement.id], "group_ids": groups},
        )
    await session.flush()


async def grant(
    session: AsyncSession,
    *,
    community_id: int,
    offer: Offer,
    user_id: int,
    source: EntitlementSource,
    ends_at: dt.datetime | None = None,
    actor_id: int | None = None,
    note: str = "",
) -> Entitlement:
    """Start an entitlement (a purchase, a free claim or an owner's comp). A one-time offer
    with an access duration (the annual pass) ends that many days from now unless told."""
    check_storable(note, "note")
    now = utcnow()
    if ends_at is None and offer.pricing is Pricing.one_time and offer.access_days:
        ends_at = now + dt.timedelta(days=offer.access_days)
    if ends_at is not None and ends_at <= now:
        raise Invalid("must be in the future", field="ends_at")
    await accounts.join(session, community_id=community_id, user_id=user_id)
    entitlement = Entitlement(
        community_id=community_id,
        offer_id=offer.id,
        user_id=user_id,
        source=source,
        status=EntitlementStatus.active,
        starts_at=now,
        ends_at=ends_at,
        note=note,
    )
    session.add(entitlement)
    await session.flush()
    await _record(session, entitlement, reason=f"started ({source.value})", actor_id=actor_id, change="started")
    return entitlement


async def comp(
    session: AsyncSession,
    *,
    community_id: int,
    offer_id: int,
    email: str,
    ends_at: dt.datetime | None = None,
    actor_id: int | None = None,
    note: str = "",
) -> Entitlement:
    """An owner gives someone the offer for free, by email (an account is made for an address
    we do not know yet: they log in with a login link), optionally until a date."""
    offer = await get_offer(session, community_id, offer_id)
    if ends_at is not None and ends_at.tzinfo is None:
        raise Invalid("give a time zone (e.g. 2026-01-31T00:00:00Z)", field="ends_at")
    user, _ = await accounts.ensure_user(session, email)
    return await grant(
        session, community_id=community_id, offer=offer, user_id=user.id, source=EntitlementSource.comp,
        ends_at=ends_at, actor_id=actor_id, note=note,
    )


async def claim_free(session: AsyncSession, *, offer_id: int, user_id: int) -> Entitlement:
    """Public: an unpublished offer is simply not found."""
    # FOR SHARE: an unpublish or delete (FOR UPDATE on the offer) waits for this claim, then sees it.
    offer = await session.scalar(
        select(Offer).where(Offer.id == offer_id, Offer.status == OfferStatus.published).with_for_update(read=True)
    )
    if offer is None:
        raise NotFound("offer not found")
    if offer.pricing is not Pricing.free:
        raise Conflict("this offer is paid: buy it through its checkout page")
    held = await live_entitlement(session, community_id=offer.community_id, offer_id=offer.id, user_id=user_id)
    if held is not None:
        raise Conflict("you already hold this offer")
    return await grant(session, community_id=offer.community_id, offer=offer, user_id=user_id, source=EntitlementSource.free)


async def live_entitlement(session: AsyncSession, *, community_id: int, offer_id: int, user_id: int) -> Entitlement | None:
    now = utcnow()
    return await session.scalar(
        select(Entitlement)
        .where(
            Entitlement.community_id == community_id,
            Entitlement.offer_id == offer_id,
            Entitlement.user_id == user_id,
            (Entitlement.ends_at.is_(None)) | (Entitlement.ends_at > now),
        )
        .limit(1)
    )


async def get_entitlement(session: AsyncSession, community_id: int, entitlement_id: int, *, lock: bool = False) -> Entitlement:
    return await get_in_community(session, Entitlement, community_id, entitlement_id, what="entitlement", lock=lock)


async def end(
    session: AsyncSession,
    *,
    community_id: int,
    entitlement_id: int,
    status: EntitlementStatus,
    at: dt.datetime | None = None,
    actor_id: int | None = None,
    reason: str = "",
) -> Entitlement:
    """Cancel, refund or expire: access stops at `at` (now unless given; a cancel at period
    end passes the period's end). An ended entitlement never grants again unless reopened."""
    if status not in ENDED:
        raise Invalid("must be cancelled, refunded or expired", field="status")
    check_storable(reason, "reason")
    entitlement = await get_entitlement(session, community_id, entitlement_id, lock=True)
    now = utcnow()
    stop = at or now
    if entitlement.ends_at is not None and entitlement.ends_at <= now:
        raise Conflict("this entitlement has already ended")
    entitlement.status = status
    entitlement.ends_at = stop if entitlement.ends_at is None else min(stop, entitlement.ends_at)
    entitlement.expiry_processed_at = None
    await _record(session, entitlement, reason=reason or status.value, actor_id=actor_id, change=status.value)
    return entitlement


async def reopen(
    session: AsyncSession,
    *,
    community_id: int,
    entitlement_id: int,
    ends_at: dt.datetime | None,
    actor_id: int | None = None,
    reason: str = "reopened",
) -> Entitlement:
    """The one transition that makes an ended entitlement grant again (a renewal, a payment
    after a failed one, an owner's extension)."""
    check_storable(reason, "reason")
    if ends_at is not None and ends_at.tzinfo is None:
        raise Invalid("give a time zone (e.g. 2026-01-31T00:00:00Z)", field="ends_at")
    entitlement = await get_entitlement(session, community_id, entitlement_id, lock=True)
    if ends_at is not None and ends_at <= utcnow():
        raise Invalid("must be in the future", field="ends_at")
    entitlement.status = EntitlementStatus.active
    entitlement.ends_at = ends_at
    entitlement.expiry_processed_at = None
    await _record(session, entitlement, reason=reason, actor_id=actor_id, change="reopened")
    return entitlement


async def past_due_until(
    session: AsyncSession,
    *,
    community_id: int,
    entitlement_id: int,
    until: dt.datetime,
    actor_id: int | None = None,
    reason: str = "payment failed",
) -> Entitlement:
    """A renewal failed: access goes on until the grace period ends (`until`), when the expiry
    sweep ends it unless a payment reopens it first."""
    check_storable(reason, "reason")
    entitlement = await get_entitlement(session, community_id, entitlement_id, lock=True)
    if until <= utcnow():
        raise Invalid("must be in the future", field="ends_at")
    entitlement.status = EntitlementStatus.past_due
    entitlement.ends_at = until
    entitlement.expiry_processed_at = None
    await _record(session, entitlement, reason=reason, actor_id=actor_id, change="payment past due")
    return entitlement


async def history(session: AsyncSession, community_id: int, entitlement_id: int) -> list[EntitlementEvent]:
    await get_entitlement(session, community_id, entitlement_id)
    return list(
        (
            await session.scalars(
                select(EntitlementEvent).where(EntitlementEvent.entitlement_id == entitlement_id).order_by(EntitlementEvent.id)
            )
        ).all()
    )


async def of_member(session: AsyncSession, community_id: int, user_id: int) -> list[Entitlement]:
    return list(
        (
            await session.scalars(
                select(Entitlement)
                .where(Entitlement.community_id == community_id, Entitlement.user_id == user_id)
                .order_by(Entitlement.id)
            )
        ).all()
    )


@dataclass(frozen=True)
class Holder:
    entitlement: Entitlement
    email: str
    name: str


async def holders_of_offer(
    session: AsyncSession,
    community_id: int,
    offer_id: int,
    *,
    after: int | None,
    limit: int,
    live: bool | None = None,
) -> list[Holder]:
    """An offer's entitlements with who holds them, newest first (keyset on the entitlement id,
    through ix_entitlements_offer); `live` keeps those granting access now (true) or ended (false)."""
    await get_offer(session, community_id, offer_id)
    now = utcnow()
    query = (
        select(Entitlement, User.email, User.name)
        .join(User, User.id == Entitlement.user_id)
        .where(Entitlement.community_id == community_id, Entitlement.offer_id == offer_id)
        .order_by(Entitlement.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(Entitlement.id < after)
    running = Entitlement.ends_at.is_(None) | (Entitlement.ends_at > now)
    if live is not None:
        query = query.where(running if live else ~running)
    return [Holder(e, email, name) for e, email, name in (await session.execute(query)).all()]


async def has_entitlements(session: AsyncSession, offer_id: int) -> bool:
    return await session.scalar(select(Entitlement.id).where(Entitlement.offer_id == offer_id).limit(1)) is not None


async def start_expiry_runs(session: AsyncSession) -> int:
    """For entitlements whose ends_at went by and that no run has covered yet (a pass
    expiring, a cancel at period end reaching it): one run per offer. Marked covered in the
    same transaction, so the sweep is idempotent; running sweeps skip each other's rows."""
    now = utcnow()
    due = (
        await session.scalars(
            select(Entitlement)
            .where(Entitlement.ends_at <= now, Entitlement.expiry_processed_at.is_(None))
            .order_by(Entitlement.ends_at)
            .limit(EXPIRY_BATCH)
            .with_for_update(skip_locked=True)
        )
    ).all()
    by_offer: dict[tuple[int, int], list[int]] = {}
    for entitlement in due:
        entitlement.expiry_processed_at = now
        if entitlement.status in (EntitlementStatus.active, EntitlementStatus.past_due):
            entitlement.status = EntitlementStatus.expired
            session.add(
                EntitlementEvent(
                    community_id=entitlement.community_id,
                    entitlement_id=entitlement.id,
                    status=entitlement.status,
                    ends_at=entitlement.ends_at,
                    reason="access period ended",
                )
            )
        by_offer.setdefault((entitlement.community_id, entitlement.offer_id), []).append(entitlement.id)
    for (community_id, offer_id), ids in by_offer.items():
        groups = await offer_group_ids(session, offer_id)
        if groups:
            await runs.start_run(
                session, community_id=community_id, cause="access period ended", scope={"entitlement_ids": ids, "group_ids": groups}
            )
    await session.flush()
    return len(due)

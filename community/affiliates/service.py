"""Resell programs: buyers opt in (enrolment), owners suspend and reinstate, checkouts carry
the attribution, affiliates see their figures."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import Date, cast, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import Member, User
from community.accounts.service import STAFF
from community.affiliates import reports
from community.affiliates.links import Attribution
from community.affiliates.models import Affiliate, AffiliateStatus, Click
from community.db import get_in_community, utcnow
from community.errors import Conflict, NotFound
from community.hubs.models import Community
from community.offers import entitlements
from community.offers.models import Entitlement, Offer, OfferStatus
from community.settings import Settings

CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud and typed by hand
CODE_LENGTH = 8
CLOCK_SKEW = dt.timedelta(minutes=5)
CHART_DAYS = 30


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


async def link_url(session: AsyncSession, settings: Settings, affiliate: Affiliate) -> str:
    """The affiliate's link, on its community's own origin (where checkout reads its cookie)."""
    slug = (await session.execute(select(Community.slug).where(Community.id == affiliate.community_id))).scalar_one()
    return f"{settings.pages_origin(slug)}/r/{affiliate.code}"


# ---------------------------------------------------------------- enrolment


async def enrol(session: AsyncSession, *, user_id: int, offer_id: int) -> Affiliate:
    """The buyer opts in to the offer's program (again: the same enrolment). Only holders of a
    live entitlement of a published offer whose program is on may."""
    offer = await session.get(Offer, offer_id)
    if offer is None or offer.status is not OfferStatus.published:
        raise NotFound("offer not found", field="offer_id")
    held = await entitlements.live_entitlement(session, community_id=offer.community_id, offer_id=offer.id, user_id=user_id)
    if held is None:
        raise NotFound("offer not found", field="offer_id")  # as for outsiders: nothing to learn here
    existing = await _enrolment(session, offer.id, user_id)
    if existing is not None:
        return existing
    if not offer.resell_enabled:
        raise Conflict("this offer has no resell program", field="offer_id")
    for _ in range(5):  # a code already taken (one in 8e11 per try) is drawn again
        affiliate = Affiliate(community_id=offer.community_id, offer_id=offer.id, user_id=user_id, code=new_code())
        try:
            async with session.begin_nested():
                session.add(affiliate)
                await session.flush()
            return affiliate
        except IntegrityError:
            existing = await _enrolment(session, offer.id, user_id)
            if existing is not None:  # the same buyer, twice at once
                return existing
    raise Conflict("could not make a link code; try again")


async def _enrolment(session: AsyncSession, offer_id: int, user_id: int) -> Affiliate | None:
    return await session.scalar(select(Affiliate).where(Affiliate.offer_id == offer_id, Affiliate.user_id == user_id))


async def my_affiliate(session: AsyncSession, user_id: int, affiliate_id: int) -> Affiliate:
    affiliate = await session.get(Affiliate, affiliate_id)
    if affiliate is None or affiliate.user_id != user_id:
        raise NotFound("affiliate not found")
    return affiliate


async def my_programs(session: AsyncSession, user_id: int) -> list[tuple[Affiliate, Offer, Community]]:
    rows = await session.execute(
        select(Affiliate, Offer, Community)
        .join(Offer, Offer.id == Affiliate.offer_id)
        .join(Community, Community.id == Affiliate.community_id)
        .where(Affiliate.user_id == user_id)
        .order_by(Affiliate.id)
    )
    return [(a, o, c) for a, o, c in rows.all()]


async def open_programs(
    session: AsyncSession, user_id: int, *, community_id: int | None = None
) -> list[tuple[Offer, Community]]:
    """Published offers with a program that the user holds and has not joined yet (in one
    community, if given)."""
    now = utcnow()
    held = select(Entitlement.offer_id).where(
        Entitlement.user_id == user_id,
        Entitlement.ends_at.is_(None) | (Entitlement.ends_at > now),
    )
    joined = select(Affiliate.offer_id).where(Affiliate.user_id == user_id)
    query = (
        select(Offer, Community)
        .join(Community, Community.id == Offer.community_id)
        .where(
            Offer.id.in_(held), Offer.id.not_in(joined),
            Offer.resell_enabled.is_(True), Offer.status == OfferStatus.published,
        )
        .order_by(Offer.id)
    )
    if community_id is not None:
        query = query.where(Offer.community_id == community_id)
    return [(o, c) for o, c in (await session.execute(query)).all()]


async def has_program_in(session: AsyncSession, user_id: int, community_id: int) -> bool:
    """Whether the user has a link in this community or can get one (the community page
    links to /affiliates then)."""
    joined = await session.scalar(
        select(Affiliate.id).where(Affiliate.user_id == user_id, Affiliate.community_id == community_id).limit(1)
    )
    return joined is not None or bool(await open_programs(session, user_id, community_id=community_id))


# ---------------------------------------------------------------- owners


async def list_affiliates(
    session: AsyncSession,
    community_id: int,
    *,
    offer_id: int | None = None,
    status: AffiliateStatus | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[tuple[Affiliate, User]]:
    query = (
        select(Affiliate, User)
        .join(User, User.id == Affiliate.user_id)
        .where(Affiliate.community_id == community_id)
        .order_by(Affiliate.id)
        .limit(limit)
    )
    if offer_id is not None:
        query = query.where(Affiliate.offer_id == offer_id)
    if status is not None:
        query = query.where(Affiliate.status == status)
    if after is not None:
        query = query.where(Affiliate.id > after)
    return [(a, u) for a, u in (await session.execute(query)).all()]


async def set_status(session: AsyncSession, community_id: int, affiliate_id: int, status: AffiliateStatus) -> tuple[Affiliate, User]:
    """Suspend (the link still leads to the offer; it earns nothing) or reinstate; idempotent."""
    affiliate = await get_in_community(session, Affiliate, community_id, affiliate_id, what="affiliate", lock=True)
    if affiliate.status is not status:
        affiliate.status = status
        affiliate.suspended_at = utcnow() if status is AffiliateStatus.suspended else None
        await session.flush()
    return affiliate, await session.get_one(User, affiliate.user_id)


async def visible_affiliates(session: AsyncSession, member: Member, affiliate_id: int | None) -> list[Affiliate]:
    """The member's own enrolments in their community, or the one affiliate asked for: staff
    may ask for anyone's, others only for their own (anyone else's is not found)."""
    if affiliate_id is None:
        mine = await session.scalars(
            select(Affiliate)
            .where(Affiliate.community_id == member.community_id, Affiliate.user_id == member.user_id)
            .order_by(Affiliate.id)
        )
        return list(mine.all())
    affiliate = await get_in_community(session, Affiliate, member.community_id, affiliate_id, what="affiliate")
    if affiliate.user_id != member.user_id and member.role not in STAFF:
        raise NotFound("affiliate not found")
    return [affiliate]


# ---------------------------------------------------------------- attribution


async def checked_attribution(session: AsyncSession, offer: Offer, attribution: Attribution | None) -> Attribution | None:
    """The cookie's attribution if it still holds for this offer: its affiliate exists in the
    offer's program (active or suspended: whether it earns is decided at payment) and the
    click is inside the offer's window as it is now."""
    if attribution is None or attribution.offer_id != offer.id:
        return None
    now = utcnow()
    if not (now - dt.timedelta(days=offer.resell_window_days) <= attribution.clicked_at <= now + CLOCK_SKEW):
        return None
    status = await session.scalar(
        select(Affiliate.status).where(
            Affiliate.id == attribution.affiliate_id, Affiliate.offer_id == offer.id, Affiliate.community_id == offer.community_id
        )
    )
    return attribution if status in (AffiliateStatus.active, AffiliateStatus.suspended) else None


# ---------------------------------------------------------------- the affiliate's figures


@dataclass(frozen=True)
class Day:
    date: dt.date
    clicks: int
    sales: int


@dataclass(frozen=True)
class Figures:
    """The affiliate's dashboard. Sales and money come from the ledger through `reports` (the
    owner's report sums the same way), never counted here a second time."""

    clicks: int
    sales: int  # reports.is_sale, all currencies
    conversion_bps: int  # sales per click, in basis points
    earnings: list[reports.Totals]  # per currency: pending / approved / paid, sales, revenue
    days: list[Day]  # the last CHART_DAYS days, oldest first


async def figures(session: AsyncSession, affiliate: Affiliate, offer: Offer, *, today: dt.date | None = None) -> Figures:
    """Clicks from the click log; sales and earnings from `reports` (a link with nothing yet
    shows zeros in the offer's currency)."""
    today = today or utcnow().date()
    first_day = today - dt.timedelta(days=CHART_DAYS - 1)
    clicks = await session.scalar(select(func.count()).where(Click.affiliate_id == affiliate.id)) or 0
    earnings = await reports.earnings(session, affiliate.community_id, affiliate.id) or [reports.Totals(offer.currency)]
    sales = sum(totals.sales for totals in earnings)
    click_days = await _clicks_per_day(session, affiliate.id, first_day)
    sale_days = await reports.sales_per_day(session, affiliate.community_id, affiliate.id, first_day)
    days = [
        Day(day, click_days.get(day, 0), sale_days.get(day, 0))
        for day in (first_day + dt.timedelta(days=n) for n in range(CHART_DAYS))
    ]
    return Figures(
        clicks=clicks, sales=sales, conversion_bps=sales * 10_000 // clicks if clicks else 0, earnings=earnings, days=days
    )


async def _clicks_per_day(session: AsyncSession, affiliate_id: int, first_day: dt.date) -> dict[dt.date, int]:
    day = cast(func.timezone("UTC", Click.at), Date)
    start = dt.datetime.combine(first_day, dt.time(), dt.UTC)
    rows = await session.execute(
        select(day, func.count()).where(Click.affiliate_id == affiliate_id, Click.at >= start).group_by(day)
    )
    return {d: n for d, n in rows.all()}

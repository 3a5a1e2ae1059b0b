"""Affiliates in and out of the API."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated

import msgspec

from community.accounts.models import User
from community.affiliates import reports
from community.affiliates.models import Affiliate
from community.affiliates.service import Figures
from community.offers.models import Offer
from community.web import MAX_ID

Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]


class Enrol(msgspec.Struct, forbid_unknown_fields=True):
    """Opt in to an offer's resell program (you must hold the offer)."""

    offer_id: Id


class AffiliateOut(msgspec.Struct):
    """An affiliate as the community's staff see them."""

    id: int
    offer_id: int
    user_id: int
    email: str
    name: str
    code: str
    status: str
    created_at: dt.datetime
    suspended_at: dt.datetime | None


class TotalsOut(msgspec.Struct):
    """One currency's sales and money from the ledger (reports.Totals), in minor units."""

    currency: str
    sales: int
    rejected: int
    revenue: int
    pending: int
    approved: int
    paid: int
    reversed: int


def totals_out(totals: reports.Totals) -> TotalsOut:
    return TotalsOut(**dataclasses.asdict(totals))  # the same fields


class DayOut(msgspec.Struct):
    date: dt.date
    clicks: int
    sales: int


class ProgramOut(msgspec.Struct):
    """Your enrolment in one offer's program: your link and how it does."""

    id: int
    community_id: int
    offer_id: int
    offer_title: str
    code: str
    link: str
    status: str
    program_description: str
    commission_bps: int | None
    commission_flat: int | None
    currency: str  # the offer's
    clicks: int
    sales: int  # payments that earned and still do (all currencies), as in the owner's report
    conversion_rate: float  # sales per click
    earnings: list[TotalsOut]  # per currency: pending / approved / paid, as the owner's report has them
    days: list[DayOut]  # the last 30 days, oldest first; sales by the day they were paid


def affiliate_out(affiliate: Affiliate, user: User) -> AffiliateOut:
    return AffiliateOut(
        id=affiliate.id, offer_id=affiliate.offer_id, user_id=affiliate.user_id, email=user.email, name=user.name,
        code=affiliate.code, status=affiliate.status.value, created_at=affiliate.created_at, suspended_at=affiliate.suspended_at,
    )


def program_out(affiliate: Affiliate, offer: Offer, link: str, figures: Figures) -> ProgramOut:
    return ProgramOut(
        id=affiliate.id, community_id=affiliate.community_id, offer_id=offer.id, offer_title=offer.title,
        code=affiliate.code, link=link, status=affiliate.status.value, program_description=offer.resell_description,
        commission_bps=offer.resell_commission_bps, commission_flat=offer.resell_commission_flat, currency=offer.currency,
        clicks=figures.clicks, sales=figures.sales, conversion_rate=figures.conversion_bps / 10_000,
        earnings=[totals_out(t) for t in figures.earnings], days=[DayOut(d.date, d.clicks, d.sales) for d in figures.days],
    )

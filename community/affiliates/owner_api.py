"""Commissions, payouts and the affiliate report through the API: owners and admins pay, staff
(managers too) read; an affiliate reads their own earnings. Money in minor units; the CSV
exports give decimal amounts with their currency."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.openapi.spec import OpenAPIFormat
from litestar.params import JSONBody, QueryParameter
from litestar.response import Stream

from community.accounts.guards import COMMUNITY_GUARDS, StaffMember
from community.affiliates import downloads, payouts, reports, service
from community.affiliates.models import (
    AffiliateStatus,
    Commission,
    CommissionState,
    Payout,
    PayoutState,
)
from community.affiliates.schemas import TotalsOut, totals_out
from community.web import MAX_ID, Cursor, Db, ObjectId, Page, PageLimit, page_of

AffiliateFilter = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID, description="Only this affiliate's.")]
OfferFilter = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID, description="Only this offer's.")]
CommissionStateFilter = Annotated[
    CommissionState | None, QueryParameter(name="state", description="Only commissions in this state.")
]
PayoutStateFilter = Annotated[PayoutState | None, QueryParameter(name="state", description="Only payouts in this state.")]
AffiliateStatusFilter = Annotated[
    AffiliateStatus | None, QueryParameter(name="status", description="Only affiliates in this status.")
]
# Read by reports.Period.read, so that a bad day is refused naming `from` or `to` (the framework
# would name the handler's argument).
Since = Annotated[
    str | None,
    QueryParameter(
        name="from", format=OpenAPIFormat.DATE, description="First UTC day (YYYY-MM-DD) of sales and clicks counted."
    ),
]
Until = Annotated[
    str | None,
    QueryParameter(
        name="to", format=OpenAPIFormat.DATE, description="Last UTC day (YYYY-MM-DD, included) of sales and clicks counted."
    ),
]
Per = Annotated[Literal["affiliate", "offer"], QueryParameter(description="One line per affiliate or per offer.")]


class ReportLineOut(msgspec.Struct):
    id: int  # the affiliate's or the offer's
    label: str  # the affiliate's email or the offer's title
    offer_id: int | None
    status: str | None
    clicks: int
    totals: TotalsOut


class AffiliateEarningsOut(msgspec.Struct):
    affiliate_id: int
    offer_id: int
    totals: list[TotalsOut]  # one per currency earned in


class ReportOut(msgspec.Struct):
    per_affiliate: list[ReportLineOut]
    per_offer: list[ReportLineOut]


class CommissionOut(msgspec.Struct):
    id: int
    affiliate_id: int
    offer_id: int
    payment_id: int
    buyer_user_id: int | None
    currency: str
    base_amount: int
    amount: int
    reversed_amount: int
    state: str
    reason: str
    hold_until: dt.datetime
    approved_at: dt.datetime | None
    created_at: dt.datetime


class BalanceOut(msgspec.Struct):
    affiliate_id: int
    currency: str
    amount: int
    minimum: int


class PayoutOut(msgspec.Struct):
    id: int
    affiliate_id: int
    currency: str
    amount: int
    state: str
    reference: str
    created_at: dt.datetime
    paid_at: dt.datetime | None


class PayoutPaid(msgspec.Struct, forbid_unknown_fields=True):
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="How it was paid (a transfer id).")]


def _line(line: reports.ReportLine) -> ReportLineOut:
    return ReportLineOut(line.id, line.label, line.offer_id, line.status, line.clicks, totals_out(line.totals))


def _commission(c: Commission) -> CommissionOut:
    return CommissionOut(
        c.id, c.affiliate_id, c.offer_id, c.payment_id, c.buyer_user_id, c.currency, c.base_amount, c.amount,
        c.reversed_amount, c.state.value, c.reason, c.hold_until, c.approved_at, c.created_at,
    )


def _payout(p: Payout) -> PayoutOut:
    return PayoutOut(p.id, p.affiliate_id, p.currency, p.amount, p.state.value, p.reference, p.created_at, p.paid_at)


class AffiliateReportController(Controller):
    path = "/communities/{community_id:int}/affiliates"
    tags = ["affiliates"]
    dependencies = COMMUNITY_GUARDS

    @get(
        "/report",
        summary="What affiliates sold and earned, per affiliate and per offer, per currency; from/to: sales made in those UTC days",
    )
    async def report(
        self, member: StaffMember, db: Db, since: Since = None, until: Until = None, offer_id: OfferFilter = None
    ) -> ReportOut:
        period = reports.Period.read(since, until)
        per_affiliate = await reports.by_affiliate(db, member.community_id, period, offer_id=offer_id)
        per_offer = await reports.by_offer(db, member.community_id, period, offer_id=offer_id)
        return ReportOut([_line(x) for x in per_affiliate], [_line(x) for x in per_offer])

    @get("/report.csv", summary="The report as CSV (decimal amounts), per affiliate or per offer, with its date range")
    async def report_csv(
        self, member: StaffMember, db: Db, per: Per = "affiliate", since: Since = None, until: Until = None,
        offer_id: OfferFilter = None,
    ) -> Stream:
        period = reports.Period.read(since, until)
        return await downloads.report_csv(db, member.community_id, per=per, period=period, offer_id=offer_id)

    @get("/list.csv", summary="The affiliates list as CSV (clicks, and sales and earnings by ledger state per currency), by offer and status")
    async def affiliates_csv(
        self, member: StaffMember, state: State, offer_id: OfferFilter = None, status: AffiliateStatusFilter = None
    ) -> Stream:
        return downloads.affiliates_csv(state.sessions, member.community_id, offer_id=offer_id, status=status)

    @get("/earnings", summary="Affiliates' earnings per currency: the caller's own enrolments, or (staff) any affiliate's")
    async def earnings(
        self, participant: StaffMember, db: Db, affiliate_id: AffiliateFilter = None
    ) -> list[AffiliateEarningsOut]:
        return [
            AffiliateEarningsOut(a.id, a.offer_id, [totals_out(t) for t in await reports.earnings(db, a.community_id, a.id)])
            for a in await service.visible_affiliates(db, participant, affiliate_id)
        ]

    @get("/commissions", summary="Commissions, newest first (keyset pages), by affiliate, offer or state")
    async def commissions(
        self,
        member: StaffMember,
        db: Db,
        after: Cursor = None,
        limit: PageLimit = 50,
        affiliate_id: AffiliateFilter = None,
        offer_id: OfferFilter = None,
        in_state: CommissionStateFilter = None,
    ) -> Page[CommissionOut]:
        rows = await reports.list_commissions(
            db, member.community_id, after=after, limit=limit, affiliate_id=affiliate_id, offer_id=offer_id, state=in_state
        )
        return page_of([_commission(c) for c in rows], limit, lambda item: item.id)

    @get("/commissions.csv", summary="Commissions as CSV (decimal amounts), newest first, by affiliate, offer or state")
    async def commissions_csv(
        self, member: StaffMember, state: State, affiliate_id: AffiliateFilter = None, offer_id: OfferFilter = None,
        in_state: CommissionStateFilter = None,
    ) -> Stream:
        return downloads.commissions_csv(
            state.sessions, member.community_id, affiliate_id=affiliate_id, offer_id=offer_id, state=in_state
        )

    @get("/balances", summary="What is payable now per affiliate and currency, with the offer's minimum payout")
    async def balances(self, member: StaffMember, db: Db) -> list[BalanceOut]:
        return [BalanceOut(b.affiliate_id, b.currency, b.amount, b.minimum) for b in await payouts.balances(db, member.community_id)]

    @post("/payouts", status_code=201, summary="Create a payout for every affiliate whose payable balance reaches the minimum")
    async def create_payouts(self, editor: StaffMember, db: Db) -> list[PayoutOut]:
        return [_payout(p) for p in await payouts.create_payouts(db, editor.community_id)]

    @get("/payouts", summary="Payouts, newest first (keyset pages), by state or affiliate")
    async def list_payouts(
        self,
        member: StaffMember,
        db: Db,
        after: Cursor = None,
        limit: PageLimit = 50,
        in_state: PayoutStateFilter = None,
        affiliate_id: AffiliateFilter = None,
    ) -> Page[PayoutOut]:
        rows = await payouts.list_payouts(
            db, member.community_id, after=after, limit=limit, state=in_state, affiliate_id=affiliate_id
        )
        return page_of([_payout(p) for p in rows], limit, lambda item: item.id)

    @get("/payouts.csv", summary="Payouts as CSV (who to pay, how much), newest first, by state or affiliate")
    async def payouts_csv(
        self, member: StaffMember, state: State, in_state: PayoutStateFilter = None, affiliate_id: AffiliateFilter = None
    ) -> Stream:
        return downloads.payouts_csv(state.sessions, member.community_id, state=in_state, affiliate_id=affiliate_id)

    @get("/payouts/{payout_id:int}", summary="One payout")
    async def read_payout(self, payout_id: ObjectId, member: StaffMember, db: Db) -> PayoutOut:
        return _payout(await payouts.get_payout(db, member.community_id, payout_id))

    @get("/payouts/{payout_id:int}/lines.csv", summary="One payout's lines as CSV (each commission entry it pays)")
    async def payout_csv(self, payout_id: ObjectId, member: StaffMember, db: Db, state: State) -> Stream:
        return downloads.payout_lines_csv(state.sessions, await payouts.get_payout(db, member.community_id, payout_id))

    @post("/payouts/{payout_id:int}/paid", status_code=200, summary="Mark a payout paid, with the transfer reference")
    async def mark_paid(self, payout_id: ObjectId, data: JSONBody[PayoutPaid], editor: StaffMember, db: Db) -> PayoutOut:
        return _payout(await payouts.mark_paid(db, editor.community_id, payout_id, data.reference))

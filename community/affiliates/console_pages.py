"""Resell rights in the owner's console: the affiliates of each offer with their clicks, sales
and earnings by ledger state, suspending and reinstating them (each behind a page saying what
happens), their commissions, and the report per affiliate and per offer over a range of UTC
days; every list downloads as CSV with the filters it shows. Payouts: payout_pages.py.

The same service calls as the JSON API (api.py, owner_api.py): service.list_affiliates and
set_status, reports.by_affiliate / by_offer / list_commissions, downloads.*. Managers read and
download; owners and admins suspend and reinstate.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter
from litestar.plugins.flash import flash
from litestar.response import Redirect, Stream, Template

from community.accounts.models import User
from community.affiliates import downloads, reports, service
from community.affiliates.models import Affiliate, AffiliateStatus, CommissionState
from community.affiliates.owner_api import Since, Until
from community.affiliates.payouts import payees
from community.db import get_in_community
from community.errors import DomainError, Forbidden, Invalid, NotFound
from community.forms import FormBody, refusal
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame, console_page
from community.money import format_amount
from community.offers.models import Offer
from community.web import MAX_ID, Cursor, Db, ObjectId

PAGE_SIZE = 50
# The lists' filters come from GET forms whose "All" option sends a blank value: read as text
# here (`chosen_id`, `chosen`), blank meaning not filtered, anything else checked as the API does.
OfferFilter = Annotated[str | None, QueryParameter(description="Only this offer's.")]
AffiliateFilter = Annotated[str | None, QueryParameter(description="Only this affiliate's.")]
StatusFilter = Annotated[str | None, QueryParameter(description="Only affiliates in this status.")]
StateFilter = Annotated[str | None, QueryParameter(name="state", description="Only this state.")]
Per = Annotated[Literal["affiliate", "offer"], QueryParameter(description="One line per affiliate or per offer.")]
E = TypeVar("E", bound=enum.Enum)


def chosen_id(text: str | None, field: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ID:
        raise Invalid(f"must be a whole number from 1 to {MAX_ID}", field=field)
    return int(text)


def chosen(text: str | None, kind: type[E], field: str) -> E | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise Invalid(f"must be one of: {', '.join(str(k.value) for k in kind)}", field=field) from None


# The ledger's states as the pages name them (reports.Totals fields), in the order money moves.
BUCKETS = (
    ("pending", "In hold"),
    ("approved", "Approved, owed"),
    ("paid", "Paid"),
    ("reversed", "Reversed"),
)


def utc(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%d %b %Y, %H:%M UTC") if moment else ""


def editor(frame: Frame) -> None:
    if not frame.can_edit:
        raise Forbidden("only owners and admins suspend, reinstate and pay affiliates")


def query(**params: Any) -> str:
    """A link's query string with the filters that are set (a CSV link carries the list's)."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


def resell_page(template: str, frame: Frame, tab: str, **context: Any) -> Template:
    """Every resell screen: the Resell rights section, its tabs, amounts in major units, UTC."""
    return console_page(
        template, frame, "resell", tab=tab, money=format_amount, utc=utc, buckets=BUCKETS, query=query, **context
    )


class ResellPages(Controller):
    path = "/dashboard/communities/{community_id:int}/resell"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    # ------------------------------------------------------------ affiliates

    @get("/")
    async def affiliates(
        self, frame: CurrentFrame, db: Db, after: Cursor = None, offer_id: OfferFilter = None, status: StatusFilter = None
    ) -> Template:
        cid = frame.community.id
        offer, status_ = chosen_id(offer_id, "offer_id"), chosen(status, AffiliateStatus, "status")
        rows = await service.list_affiliates(db, cid, offer_id=offer, status=status_, after=after, limit=PAGE_SIZE)
        offers = await reports.program_offers(db, cid)
        return resell_page(
            "affiliates/console_affiliates.html", frame, "affiliates", rows=rows, offers=offers,
            titles=dict(offers), figures=await reports.of_affiliates(db, cid, [a.id for a, _ in rows]),
            offer_id=offer, status=status_.value if status_ else None, after=after,
            next=rows[-1][0].id if len(rows) == PAGE_SIZE else None,
        )

    @get("/affiliates.csv")
    async def affiliates_csv(
        self, frame: CurrentFrame, state: State, offer_id: OfferFilter = None, status: StatusFilter = None
    ) -> Stream:
        return downloads.affiliates_csv(
            state.sessions, frame.community.id, offer_id=chosen_id(offer_id, "offer_id"),
            status=chosen(status, AffiliateStatus, "status"),
        )

    @get("/affiliates/{affiliate_id:int}/{action:str}")
    async def status_form(self, affiliate_id: ObjectId, action: FromPath[str], frame: CurrentFrame, db: Db) -> Template:
        editor(frame)
        return await self._status_page(db, frame, affiliate_id, _target(action))

    @post("/affiliates/{affiliate_id:int}/{action:str}")
    async def set_status(
        self, affiliate_id: ObjectId, action: FromPath[str], data: FormBody, request: Request, frame: CurrentFrame, db: Db
    ) -> Template | Redirect:
        editor(frame)
        target = _target(action)
        try:
            async with db.begin_nested():
                affiliate, user = await service.set_status(db, frame.community.id, affiliate_id, target)
        except DomainError as exc:
            return await self._status_page(db, frame, affiliate_id, target, refusal(exc), exc.status_code)
        if target is AffiliateStatus.suspended:
            flash(request, f"{user.email} is suspended: their link still leads to the offer and earns nothing.", "success")
        else:
            flash(request, f"{user.email} is reinstated: purchases through their link earn again.", "success")
        return Redirect(f"{frame.base}/resell{query(offer_id=affiliate.offer_id)}", status_code=303)

    async def _status_page(
        self, db: Db, frame: Frame, affiliate_id: int, target: AffiliateStatus, errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        affiliate = await get_in_community(db, Affiliate, frame.community.id, affiliate_id, what="affiliate")
        user = await db.get_one(User, affiliate.user_id)
        offer = await db.get_one(Offer, affiliate.offer_id)
        return resell_page(
            "affiliates/console_status.html", frame, "affiliates", affiliate=affiliate, person=user, offer=offer,
            target=target.value, errors=errors or {}, status_code=status_code,
        )

    # ------------------------------------------------------------ commissions

    @get("/commissions")
    async def commissions(
        self, frame: CurrentFrame, db: Db, after: Cursor = None, affiliate_id: AffiliateFilter = None,
        offer_id: OfferFilter = None, in_state: StateFilter = None,
    ) -> Template:
        cid = frame.community.id
        affiliate_id_, offer_id_ = chosen_id(affiliate_id, "affiliate_id"), chosen_id(offer_id, "offer_id")
        state_ = chosen(in_state, CommissionState, "state")
        rows = await reports.list_commissions(
            db, cid, after=after, limit=PAGE_SIZE, affiliate_id=affiliate_id_, offer_id=offer_id_, state=state_
        )
        people = await payees(db, cid, {c.affiliate_id for c in rows} | ({affiliate_id_} if affiliate_id_ else set()))
        offers = await reports.program_offers(db, cid)
        return resell_page(
            "affiliates/console_commissions.html", frame, "commissions", rows=rows, people=people, offers=offers,
            titles=dict(offers), affiliate_id=affiliate_id_, offer_id=offer_id_, state=state_.value if state_ else None,
            states=[s.value for s in CommissionState], after=after,
            next=rows[-1].id if len(rows) == PAGE_SIZE else None,
        )

    @get("/commissions.csv")
    async def commissions_csv(
        self, frame: CurrentFrame, state: State, affiliate_id: AffiliateFilter = None, offer_id: OfferFilter = None,
        in_state: StateFilter = None,
    ) -> Stream:
        return downloads.commissions_csv(
            state.sessions, frame.community.id, affiliate_id=chosen_id(affiliate_id, "affiliate_id"),
            offer_id=chosen_id(offer_id, "offer_id"), state=chosen(in_state, CommissionState, "state"),
        )

    # ------------------------------------------------------------ the report

    @get("/report")
    async def report(
        self, frame: CurrentFrame, db: Db, since: Since = None, until: Until = None, offer_id: OfferFilter = None,
    ) -> Template:
        cid = frame.community.id
        form = {"from": since or "", "to": until or ""}
        offers = await reports.program_offers(db, cid)
        context: dict[str, Any] = {"form": form, "offers": offers, "offer_id": offer_id, "errors": {}}
        try:
            period = reports.Period.read(since, until)
            context["offer_id"] = offer_id = chosen_id(offer_id, "offer_id")
        except DomainError as exc:
            return resell_page(
                "affiliates/console_report.html", frame, "report", per_affiliate=[], per_offer=[], period=None,
                status_code=exc.status_code, **{**context, "errors": refusal(exc)},
            )
        return resell_page(
            "affiliates/console_report.html", frame, "report", period=period,
            per_affiliate=await reports.by_affiliate(db, cid, period, offer_id=offer_id),
            per_offer=await reports.by_offer(db, cid, period, offer_id=offer_id), **context,
        )

    @get("/report.csv")
    async def report_csv(
        self, frame: CurrentFrame, db: Db, per: Per = "affiliate",
        since: Since = None, until: Until = None, offer_id: OfferFilter = None,
    ) -> Stream:
        period = reports.Period.read(since, until)
        return await downloads.report_csv(
            db, frame.community.id, per=per, period=period, offer_id=chosen_id(offer_id, "offer_id")
        )


def _target(action: str) -> AffiliateStatus:
    """suspend -> suspended, reinstate -> active; any other word is no page."""
    targets = {"suspend": AffiliateStatus.suspended, "reinstate": AffiliateStatus.active}
    if action not in targets:
        raise NotFound("no such page")
    return targets[action]

"""Giving access by hand, in the console: an offer's holders, comping the offer to someone by
email (optionally until a date), an entitlement's page with its history, ending one now or at a
date, and reopening an ended one.

The same service calls as the API: entitlements.comp (POST .../entitlements), memberships.end_now
(POST .../entitlements/{id}/end, which also cancels a running Stripe subscription: hence this
module lives on the billing floor), entitlements.reopen (POST .../reopen), and the offer's
holders (GET .../offers/{id}/entitlements). Dates are read and shown in UTC: communities have no
time zone of their own, and the pages say so. Managers read; owners and admins change.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import QueryParameter
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community.accounts import service as accounts
from community.billing import memberships
from community.db import utcnow
from community.errors import DomainError, Forbidden, Invalid
from community.forms import FORM, FormBody, Posted, read_input, refusal, utc_datetime
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame, console_page
from community.offers import entitlements, grants
from community.offers import service as offers
from community.offers.access_api import Comp, End, Reopen
from community.offers.models import EntitlementStatus
from community.web import Cursor, Db, ObjectId

PAGE_SIZE = 50
LiveFilter = Annotated[bool | None, QueryParameter(description="true: current holders; false: ended")]
WhenChoice = Annotated[str | None, QueryParameter(description="date: the form opens on \"At a date\"")]


def _editor(frame: Frame) -> None:
    if not frame.can_edit:
        raise Forbidden("only owners and admins give, end or reopen access")


def utc(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%d %b %Y, %H:%M UTC") if moment else ""


def _page(template: str, frame: Frame, **context: Any) -> Template:
    """Every screen here: the offers section, UTC dates, the moment it is now."""
    return console_page(template, frame, "offers", utc=utc, now=utcnow(), **context)


def _entitlement_url(frame: Frame, entitlement_id: int) -> str:
    return f"{frame.base}/entitlements/{entitlement_id}"


def _form_errors(exc: DomainError, fields: tuple[str, ...]) -> dict[str, str]:
    """A refusal under its input, or above the form when it names no input on the page."""
    errors = refusal(exc)
    return {(k if k in fields else FORM): v for k, v in errors.items()}


class EntitlementPages(Controller):
    path = "/dashboard/communities/{community_id:int}"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    # ------------------------------------------------------------ an offer's holders

    @get("/offers/{offer_id:int}/holders")
    async def holders(
        self, offer_id: ObjectId, frame: CurrentFrame, db: Db, after: Cursor = None, live: LiveFilter = None
    ) -> Template:
        offer = await offers.get_offer(db, frame.community.id, offer_id)
        rows = await entitlements.holders_of_offer(db, frame.community.id, offer.id, after=after, limit=PAGE_SIZE, live=live)
        return _page(
            "billing/holders.html", frame, offer=offer, editor_section="holders", holders=rows, after=after, live=live,
            next=rows[-1].entitlement.id if len(rows) == PAGE_SIZE else None,
            current=await grants.count_holders(db, frame.community.id, offer.id),
            is_live=entitlements.is_live,
        )

    @get("/offers/{offer_id:int}/holders/give")
    async def give_form(self, offer_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame)
        offer = await offers.get_offer(db, frame.community.id, offer_id)
        return _page("billing/give.html", frame, offer=offer, editor_section="holders", form=Posted(), errors={})

    @post("/offers/{offer_id:int}/holders/give")
    async def give(self, offer_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        _editor(frame)
        offer = await offers.get_offer(db, frame.community.id, offer_id)
        form = Posted(data)
        try:
            given = read_input(
                {
                    "email": form.text("email").strip(),
                    "offer_id": offer.id,
                    "ends_at": utc_datetime(form.text("ends_at"), "ends_at"),
                    "note": form.text("note"),
                },
                Comp,
            )
            async with db.begin_nested():
                entitlement = await entitlements.comp(
                    db, community_id=frame.community.id, offer_id=offer.id, email=given.email, ends_at=given.ends_at,
                    actor_id=frame.user.id, note=given.note,
                )
        except DomainError as exc:
            return _page(
                "billing/give.html", frame, offer=offer, editor_section="holders", form=form,
                errors=_form_errors(exc, ("email", "ends_at", "note")), status_code=exc.status_code,
            )
        until = f" until {utc(entitlement.ends_at)}" if entitlement.ends_at else ""
        flash(request, f"{given.email} now holds {offer.title}{until}.", "success")
        return Redirect(_entitlement_url(frame, entitlement.id), status_code=303)

    # ------------------------------------------------------------ one entitlement

    @get("/entitlements/{entitlement_id:int}")
    async def entitlement(self, entitlement_id: ObjectId, frame: CurrentFrame, db: Db, state: State) -> Template:
        context = await self._context(db, state, frame, entitlement_id)
        return _page(
            "billing/entitlement.html", frame, **context,
            history=await entitlements.history(db, frame.community.id, entitlement_id),
        )

    @get("/entitlements/{entitlement_id:int}/end")
    async def end_form(
        self, entitlement_id: ObjectId, frame: CurrentFrame, db: Db, state: State, when: WhenChoice = None
    ) -> Template:
        _editor(frame)
        chosen = "date" if when == "date" else "now"
        return await self._end_page(db, state, frame, entitlement_id, Posted({"when": chosen, "status": "cancelled"}), {})

    @get("/entitlements/{entitlement_id:int}/cancel-now")
    async def cancel_now_form(self, entitlement_id: ObjectId, frame: CurrentFrame, db: Db, state: State) -> Template:
        _editor(frame)
        context = await self._context(db, state, frame, entitlement_id)
        return _page("billing/entitlement_cancel_now.html", frame, errors={}, **context)

    @post("/entitlements/{entitlement_id:int}/cancel-now")
    async def cancel_now(
        self, entitlement_id: ObjectId, request: Request, frame: CurrentFrame, db: Db, state: State
    ) -> Template | Redirect:
        """The API's POST .../entitlements/{id}/cancel-now: Stripe stops charging, access ends now."""
        _editor(frame)
        try:
            async with db.begin_nested():
                await memberships.end_now(
                    db, state.settings, community_id=frame.community.id, entitlement_id=entitlement_id,
                    status=EntitlementStatus.cancelled, actor_id=frame.user.id, reason="cancelled now by staff",
                    notify=True,
                )
        except DomainError as exc:
            context = await self._context(db, state, frame, entitlement_id)
            return _page(
                "billing/entitlement_cancel_now.html", frame, errors={FORM: exc.detail}, status_code=exc.status_code,
                **context,
            )
        flash(request, "Cancelled: access ended now and nothing more is charged.", "success")
        return Redirect(_entitlement_url(frame, entitlement_id), status_code=303)

    @post("/entitlements/{entitlement_id:int}/end")
    async def end(
        self, entitlement_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db, state: State
    ) -> Template | Redirect:
        _editor(frame)
        form = Posted(data)
        try:
            at = utc_datetime(form.text("at"), "at") if form.text("when") == "date" else None
            if form.text("when") == "date" and at is None:
                raise Invalid("give the date and time (UTC) access ends", field="at")
            given = read_input({"status": form.text("status"), "at": at, "reason": form.text("reason").strip()}, End)
            async with db.begin_nested():
                ended = await memberships.end_now(
                    db, state.settings, community_id=frame.community.id, entitlement_id=entitlement_id,
                    status=EntitlementStatus(given.status), at=given.at, actor_id=frame.user.id, reason=given.reason,
                    notify=given.status == "cancelled",
                )
        except DomainError as exc:
            errors = _form_errors(exc, ("at", "status", "reason"))
            return await self._end_page(db, state, frame, entitlement_id, form, errors, exc.status_code)
        if ended.ends_at and ended.ends_at > utcnow():
            flash(request, f"Access ends on {utc(ended.ends_at)}.", "success")
        else:
            flash(request, "Access ended now.", "success")
        return Redirect(_entitlement_url(frame, entitlement_id), status_code=303)

    @get("/entitlements/{entitlement_id:int}/reopen")
    async def reopen_form(self, entitlement_id: ObjectId, frame: CurrentFrame, db: Db, state: State) -> Template:
        _editor(frame)
        return await self._reopen_page(db, state, frame, entitlement_id, Posted(), {})

    @post("/entitlements/{entitlement_id:int}/reopen")
    async def reopen(
        self, entitlement_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db, state: State
    ) -> Template | Redirect:
        _editor(frame)
        form = Posted(data)
        try:
            values: dict[str, Any] = {"ends_at": utc_datetime(form.text("ends_at"), "ends_at")}
            if form.text("reason").strip():  # else the API's default reason
                values["reason"] = form.text("reason").strip()
            given = read_input(values, Reopen)
            async with db.begin_nested():
                reopened = await entitlements.reopen(
                    db, community_id=frame.community.id, entitlement_id=entitlement_id, ends_at=given.ends_at,
                    actor_id=frame.user.id, reason=given.reason,
                )
        except DomainError as exc:
            errors = _form_errors(exc, ("ends_at", "reason"))
            return await self._reopen_page(db, state, frame, entitlement_id, form, errors, exc.status_code)
        until = f" until {utc(reopened.ends_at)}" if reopened.ends_at else ", with no end date"
        flash(request, f"Reopened: access runs again{until}.", "success")
        return Redirect(_entitlement_url(frame, entitlement_id), status_code=303)

    # ------------------------------------------------------------ helpers

    async def _context(self, db: Db, state: State, frame: Frame, entitlement_id: int) -> dict[str, Any]:
        """The entitlement, its offer and holder, its Stripe subscription if any, what the offer
        grants, and the holder's other memberships here (as the member's own billing page reads them)."""
        entitlement = await entitlements.get_entitlement(db, frame.community.id, entitlement_id)
        held = await memberships.my_memberships(db, state.settings, frame.community.id, entitlement.user_id)
        this = next(m for m in held if m.entitlement.id == entitlement.id)
        return {
            "entitlement": entitlement, "offer": this.offer, "subscription": this.subscription,
            "subscribed": memberships.subscription_is_live(this.subscription),
            "person": await accounts.get_user(db, entitlement.user_id),
            "granted": await grants.granted_groups(db, frame.community.id, this.offer.id),
            "live": entitlements.is_live(entitlement), "is_live": entitlements.is_live,
            "others": [m for m in held if m.entitlement.id != entitlement.id],
        }

    async def _end_page(
        self, db: Db, state: State, frame: Frame, entitlement_id: int, form: Posted, errors: dict[str, str],
        status_code: int = 200,
    ) -> Template:
        context = await self._context(db, state, frame, entitlement_id)
        return _page("billing/entitlement_end.html", frame, form=form, errors=errors, status_code=status_code, **context)

    async def _reopen_page(
        self, db: Db, state: State, frame: Frame, entitlement_id: int, form: Posted, errors: dict[str, str],
        status_code: int = 200,
    ) -> Template:
        context = await self._context(db, state, frame, entitlement_id)
        return _page("billing/entitlement_reopen.html", frame, form=form, errors=errors, status_code=status_code, **context)

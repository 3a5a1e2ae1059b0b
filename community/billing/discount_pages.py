"""Discount codes in the console: the list (uses / limit, state, valid dates), creating and
editing a code, disabling and enabling it, deleting one nobody used, a code's redemptions,
and both lists as CSV.

The same calls as the API (billing/api.py DiscountCodesController): a posted form is read into
the API's own input struct (DiscountCodeCreate / DiscountCodeUpdate) and goes to
discounts.create_code / update_code / delete_code, which say what is wrong, in their words,
next to the field. What the page adds is how people type: an amount in major units of the
code's currency, a percent, dates in UTC; inputs of the option not chosen (the percent of an
amount code, the offers of a code for all offers, the months of a one-off discount) are
ignored, as the page says. Managers read; owners and admins change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.plugins.flash import flash
from litestar.response import Redirect, Stream, Template

from community.billing import discount_exports, discounts
from community.billing.discounts import MAX_OFFERS, CodeState, Counts, code_state
from community.billing.entitlement_pages import utc
from community.billing.models import (
    DiscountCode,
    DiscountDuration,
    DiscountKind,
    RedemptionState,
)
from community.billing.schemas import DiscountCodeCreate, DiscountCodeUpdate, given
from community.db import utcnow
from community.errors import DomainError, Forbidden
from community.exports import csv_download
from community.forms import FORM, FormBody, Posted, read_input, utc_datetime
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame, console_page
from community.money import (
    decimal_amount,
    format_amount,
    parse_amount,
    parse_percent,
    percent_text,
)
from community.offers import editor_forms
from community.offers import service as offers
from community.offers.models import Pricing
from community.web import Cursor, Db, ObjectId

PAGE_SIZE = 50
FIELDS = (
    "code", "kind", "percent_bps", "amount_off", "applies_to", "offer_ids", "starts_at", "ends_at",
    "max_redemptions", "per_customer_limit", "duration", "duration_months",
)  # fmt: skip
INPUT_OF = {"currency": "amount_off"}  # the amount's currency has no input of its own: its refusal shows by the amount

STATE_LABELS = {
    CodeState.active: "active",
    CodeState.scheduled: "scheduled",
    CodeState.expired: "expired",
    CodeState.used_up: "used up",
    CodeState.disabled: "disabled",
}
STATE_TAGS = {CodeState.active: "ok", CodeState.scheduled: "", CodeState.expired: "warn", CodeState.used_up: "warn", CodeState.disabled: "warn"}
KIND_CHOICES = [("percent", "Percent"), ("amount", "Fixed amount")]
APPLIES_CHOICES = [("all", "All offers"), ("offers", "Only the offers ticked below")]
DURATION_CHOICES = [
    ("once", "Once: the first payment only"),
    ("forever", "Forever: every payment while the subscription runs"),
    ("repeating", "For a number of months"),
]
REDEMPTION_LABELS = {
    RedemptionState.reserved: "held at checkout",
    RedemptionState.redeemed: "paid",
    RedemptionState.released: "released (not paid)",
}


def _editor(frame: Frame) -> None:
    if not frame.can_edit:
        raise Forbidden("only owners and admins create, change, disable or delete discount codes")


def _shown_errors(exc: DomainError) -> dict[str, str]:
    """The refusal next to its input, or above the form when it names none on the page."""
    field = INPUT_OF.get(exc.field or "", exc.field)
    if field in FIELDS:
        return {field: exc.detail}
    return {FORM: f"{exc.field}: {exc.detail}" if exc.field else exc.detail}


def discount_label(code: Any) -> str:
    """"10% off", "5.00 USD off"."""
    if code.kind == DiscountKind.percent:
        return f"{percent_text(code.percent_bps)}% off"
    return f"{format_amount(code.amount_off, code.currency)} off"


def duration_label(code: Any) -> str:
    if code.duration == DiscountDuration.forever:
        return "every payment"
    if code.duration == DiscountDuration.repeating:
        months = code.duration_months
        return f"payments in the first {months} month{'s' if months != 1 else ''}"
    return "the first payment"


def _local(moment: dt.datetime | None) -> str:
    """A moment as a datetime-local input shows it, in UTC."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M") if moment else ""


# ---------------------------------------------------------------- the form


def code_form(code: DiscountCode, offer_ids: list[int]) -> Posted:
    """A saved code as its edit form shows it (major units, percents, UTC)."""
    return Posted({
        "code": code.code,
        "kind": code.kind.value,
        "percent_bps": percent_text(code.percent_bps) if code.percent_bps is not None else "",
        "amount_off": decimal_amount(code.amount_off, code.currency) if code.amount_off is not None and code.currency else "",
        "applies_to": code.applies_to.value,
        "offer_ids": [str(i) for i in offer_ids],
        "starts_at": _local(code.starts_at),
        "ends_at": _local(code.ends_at),
        "max_redemptions": "" if code.max_redemptions is None else str(code.max_redemptions),
        "per_customer_limit": "" if code.per_customer_limit is None else str(code.per_customer_limit),
        "duration": code.duration.value,
        "duration_months": "" if code.duration_months is None else str(code.duration_months),
    })  # fmt: skip


def code_fields(form: Posted, currency: str, *, editing: bool) -> dict[str, Any]:
    """A posted form as the API's fields (for read_input). Every field is sent, so an edit sets
    the code to what the form shows (blank: no limit, no end); a blank start keeps the code's
    start when editing (and means "now" when creating)."""
    kind = form.text("kind")
    values: dict[str, Any] = {"code": form.text("code").strip(), "kind": kind}
    percent, amount = form.text("percent_bps").strip(), form.text("amount_off").strip()
    if kind == "amount":
        values["amount_off"] = parse_amount(amount, currency, "amount_off", minimum=1) if amount else None
        values["currency"] = currency
        values["percent_bps"] = None
    else:
        values["percent_bps"] = parse_percent(percent, "percent_bps") if percent else None
        values["amount_off"] = values["currency"] = None
    applies_to = form.text("applies_to")
    values["applies_to"] = applies_to
    values["offer_ids"] = form.texts("offer_ids") if applies_to == "offers" else []
    starts_at = utc_datetime(form.text("starts_at"), "starts_at")
    if starts_at is not None or not editing:
        values["starts_at"] = starts_at
    values["ends_at"] = utc_datetime(form.text("ends_at"), "ends_at")
    for name in ("max_redemptions", "per_customer_limit"):
        values[name] = form.optional(name)
    duration = form.text("duration")
    values["duration"] = duration
    values["duration_months"] = form.optional("duration_months") if duration == "repeating" else None
    return values


class DiscountPages(Controller):
    path = "/dashboard/communities/{community_id:int}/discounts"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    # ------------------------------------------------------------ reading

    @get("/")
    async def list_codes(self, frame: CurrentFrame, db: Db, after: Cursor = None) -> Template:
        codes = await discounts.list_codes(db, frame.community.id, after=after, limit=PAGE_SIZE)
        ids = [c.id for c in codes]
        offer_ids = await discounts.offer_ids_of(db, ids)
        counts = await discounts.counts_of(db, ids)
        titles = await discounts.offer_titles(db, frame.community.id, [o for i in ids for o in offer_ids[i]])
        now = utcnow()
        rows = [
            {
                "code": c, "counts": counts[c.id], "state": code_state(c, counts[c.id], now),
                "offers": [titles[o] for o in offer_ids[c.id] if o in titles],
            }
            for c in codes
        ]
        return self._page(
            "billing/discounts.html", frame, rows=rows, after=after, next=codes[-1].id if len(codes) == PAGE_SIZE else None
        )

    @get("/codes.csv")
    async def codes_csv(self, frame: CurrentFrame, state: State) -> Stream:
        return csv_download("discount-codes.csv", discount_exports.codes_csv(state.sessions, frame.community.id))

    @get("/{code_id:int}")
    async def code_page(self, code_id: ObjectId, frame: CurrentFrame, db: Db, after: Cursor = None) -> Template:
        context = await self._code_context(db, frame, code_id)
        rows = await discounts.list_redemptions(db, frame.community.id, code_id, after=after, limit=PAGE_SIZE)
        return self._page(
            "billing/discount.html", frame, **context, redemptions=rows, after=after,
            next=rows[-1].id if len(rows) == PAGE_SIZE else None,
        )

    @get("/{code_id:int}/redemptions.csv")
    async def redemptions_csv(self, code_id: ObjectId, frame: CurrentFrame, db: Db, state: State) -> Stream:
        code = await discounts.get_code(db, frame.community.id, code_id)
        chunks = discount_exports.redemptions_csv(state.sessions, frame.community.id, code.id)
        return csv_download(f"discount-code-{code.id}-redemptions.csv", chunks)

    # ------------------------------------------------------------ creating and editing

    @get("/new")
    async def new(self, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame)
        form = Posted({"kind": "percent", "applies_to": "all", "duration": "once"})
        return await self._form_page(db, frame, None, form, {})

    @post("/new")
    async def create(self, frame: CurrentFrame, data: FormBody, request: Request, db: Db) -> Template | Redirect:
        _editor(frame)
        form = Posted(data)
        try:
            fields = code_fields(form, frame.community.default_currency, editing=False)
            values = given(read_input({k: v for k, v in fields.items() if v is not None}, DiscountCodeCreate))
            async with db.begin_nested():  # a refusal leaves nothing half-written
                code = await discounts.create_code(db, frame.community.id, values)
        except DomainError as exc:
            return await self._form_page(db, frame, None, form, _shown_errors(exc), exc.status_code)
        flash(request, f"Discount code {code.code} is created.", "success")
        return Redirect(f"{frame.base}/discounts/{code.id}", status_code=303)

    @get("/{code_id:int}/edit")
    async def edit(self, code_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame)
        code = await discounts.get_code(db, frame.community.id, code_id)
        offer_ids = (await discounts.offer_ids_of(db, [code.id]))[code.id]
        return await self._form_page(db, frame, code, code_form(code, offer_ids), {})

    @post("/{code_id:int}/edit")
    async def save(self, code_id: ObjectId, frame: CurrentFrame, data: FormBody, request: Request, db: Db) -> Template | Redirect:
        _editor(frame)
        code = await discounts.get_code(db, frame.community.id, code_id)
        form = Posted(data)
        try:
            currency = code.currency or frame.community.default_currency
            values = given(read_input(code_fields(form, currency, editing=True), DiscountCodeUpdate))
            async with db.begin_nested():
                await discounts.update_code(db, frame.community.id, code.id, values)
        except DomainError as exc:
            await db.refresh(code)  # the page shows the code as saved, the form as typed
            return await self._form_page(db, frame, code, form, _shown_errors(exc), exc.status_code)
        flash(request, f"Discount code {code.code} is saved. Checkouts from now on use it as it is now.", "success")
        return Redirect(f"{frame.base}/discounts/{code.id}", status_code=303)

    # ------------------------------------------------------------ disabling, enabling, deleting

    @get("/{code_id:int}/disable")
    async def disable_form(self, code_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame)
        return self._page("billing/discount_active.html", frame, **await self._code_context(db, frame, code_id), turning_on=False)

    @post("/{code_id:int}/disable")
    async def disable(self, code_id: ObjectId, frame: CurrentFrame, request: Request, db: Db) -> Template | Redirect:
        return await self._set_active(code_id, frame, request, db, active=False)

    @get("/{code_id:int}/enable")
    async def enable_form(self, code_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame)
        return self._page("billing/discount_active.html", frame, **await self._code_context(db, frame, code_id), turning_on=True)

    @post("/{code_id:int}/enable")
    async def enable(self, code_id: ObjectId, frame: CurrentFrame, request: Request, db: Db) -> Template | Redirect:
        return await self._set_active(code_id, frame, request, db, active=True)

    async def _set_active(self, code_id: int, frame: Frame, request: Request, db: Db, *, active: bool) -> Redirect:
        _editor(frame)
        code = await discounts.update_code(
            db, frame.community.id, code_id, given(read_input({"active": active}, DiscountCodeUpdate))
        )
        flash(request, f"{code.code} is {'enabled: buyers can use it again' if active else 'disabled: buyers can no longer use it'}.", "success")
        return Redirect(f"{frame.base}/discounts/{code.id}", status_code=303)

    @get("/{code_id:int}/delete")
    async def delete_form(self, code_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame)
        return self._page("billing/discount_delete.html", frame, **await self._code_context(db, frame, code_id), errors={})

    @post("/{code_id:int}/delete")
    async def delete(self, code_id: ObjectId, frame: CurrentFrame, request: Request, db: Db) -> Template | Redirect:
        _editor(frame)
        code = await discounts.get_code(db, frame.community.id, code_id)
        name = code.code
        try:
            async with db.begin_nested():
                await discounts.delete_code(db, frame.community.id, code.id)
        except DomainError as exc:
            context = await self._code_context(db, frame, code_id)
            return self._page(
                "billing/discount_delete.html", frame, **context, errors={FORM: exc.detail}, status_code=exc.status_code
            )
        flash(request, f"Discount code {name} is deleted.", "success")
        return Redirect(f"{frame.base}/discounts", status_code=303)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _page(template: str, frame: Frame, **context: Any) -> Template:
        return console_page(
            template, frame, "discounts", utc=utc, now=utcnow(), discount_label=discount_label,
            duration_label=duration_label, state_labels=STATE_LABELS, state_tags=STATE_TAGS,
            format_amount=format_amount, redemption_labels=REDEMPTION_LABELS, **context,
        )

    async def _code_context(self, db: Db, frame: Frame, code_id: int) -> dict[str, Any]:
        code = await discounts.get_code(db, frame.community.id, code_id)
        offer_ids = (await discounts.offer_ids_of(db, [code.id]))[code.id]
        counts: Counts = (await discounts.counts_of(db, [code.id]))[code.id]
        titles = await discounts.offer_titles(db, frame.community.id, offer_ids)
        return {
            "code": code, "counts": counts, "state": code_state(code, counts, utcnow()),
            "offers": [(o, titles[o]) for o in offer_ids if o in titles],
        }

    async def _form_page(
        self, db: Db, frame: Frame, code: DiscountCode | None, form: Posted, errors: dict[str, str], status_code: int = 200
    ) -> Template:
        chosen = {int(i) for i in form.texts("offer_ids") if i.isdigit()}
        choices = [
            (offer, editor_forms.price_label(offer))
            for offer in await offers.list_offers(db, frame.community.id, after=None, limit=MAX_OFFERS)
            if offer.pricing is not Pricing.free or offer.id in chosen
        ]
        currency = (code.currency if code is not None and code.currency else None) or frame.community.default_currency
        return self._page(
            "billing/discount_form.html", frame, code=code, form=form, errors=errors, status_code=status_code,
            offer_choices=choices, chosen=chosen, currency=currency, kind_choices=KIND_CHOICES,
            applies_choices=APPLIES_CHOICES, duration_choices=DURATION_CHOICES,
            has_recurring=any(o.pricing is Pricing.recurring for o, _ in choices),
        )


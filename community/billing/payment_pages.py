"""Payments in the console: the list (newest first, keyset pages, filtered by offer, status,
the dates paid between (UTC) and the buyer's email, all GET parameters so a filtered view is a
link), its CSV download with the same filters, one payment's page (amounts, refunds and disputes
with their states, the receipt, the buyer, the membership it paid for) and its refund form.

The same service calls as the API: payment_list.read_filter / list_payments / csv_statement
(GET .../payments and .../payments.csv), refunds.list_refunds, payment_list.disputes_of and
refunds.refund_payment (POST .../payments/{id}/refunds): the form carries an idempotency key made
when it was rendered and passes it as the API's Idempotency-Key header does, so a double click or
a resubmitted form makes one refund. Managers read; owners and admins refund.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from sqlalchemy import select

from community.accounts import service as accounts
from community.accounts.models import User
from community.billing import memberships, payment_list, refunds
from community.billing import service as billing
from community.billing.api import payments_csv_response
from community.billing.disputes import CLOSED, HOLDING, INQUIRY
from community.billing.entitlement_pages import utc
from community.billing.models import Payment, RefundState
from community.billing.schemas import RefundCreate
from community.db import utcnow
from community.errors import DomainError, Forbidden, Invalid
from community.forms import FORM, FormBody, Posted, read_input, refusal
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame, console_page
from community.money import decimal_amount, format_amount, parse_amount
from community.offers import entitlements
from community.offers import service as offers
from community.web import MAX_ID, Db, ObjectId

PAGE_SIZE = 50
STATUS_LABELS = {
    "succeeded": "Paid",
    "partially_refunded": "Partly refunded",
    "refunded": "Refunded",
    "disputed": "Disputed (a chargeback holds part of it)",
}
REFUND_FIELDS = ("amount", "reason", "revoke_access")


def _editor(frame: Frame) -> None:
    if not frame.can_edit:
        raise Forbidden("only owners and admins refund payments")


def _page(template: str, frame: Frame, **context: Any) -> Template:
    return console_page(
        template, frame, "payments", utc=utc, money=format_amount, status_labels=STATUS_LABELS, now=utcnow(), **context
    )


def _day(text: str, field: str) -> dt.datetime | None:
    """A date typed in the filter (YYYY-MM-DD), as its first instant in UTC."""
    text = text.strip()
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise Invalid("must be a date, like 2026-12-31", field=field) from None


def _id(text: str, field: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise Invalid("must be a positive whole number", field=field)
    return int(text)


def _filter(query: dict[str, str]) -> payment_list.PaymentFilter:
    """The page's GET parameters as the API's filter: dates are whole UTC days, both included."""
    to_day = _day(query.get("paid_to", ""), "paid_to")
    return payment_list.read_filter(
        offer_id=_id(query.get("offer_id", ""), "offer_id"),
        user_id=_id(query.get("user_id", ""), "user_id"),
        status=query.get("status"),
        paid_from=_day(query.get("paid_from", ""), "paid_from"),
        paid_to=to_day + dt.timedelta(days=1) if to_day else None,
        email=query.get("email"),
    )


def _query(request: Request) -> dict[str, str]:
    keys = ("offer_id", "user_id", "status", "paid_from", "paid_to", "email")
    return {k: str(request.query_params.get(k, "")) for k in keys}


def _link(query: dict[str, str], **extra: object) -> str:
    """A query string keeping the filters (only those set)."""
    values = {k: v for k, v in query.items() if v} | {k: str(v) for k, v in extra.items() if v is not None}
    return urlencode(values)


class PaymentPages(Controller):
    path = "/dashboard/communities/{community_id:int}"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    @get("/payments")
    async def payments(self, request: Request, frame: CurrentFrame, db: Db) -> Template:
        query = _query(request)
        errors: dict[str, str] = {}
        after_text = str(request.query_params.get("after", ""))
        try:
            wanted = _filter(query)
            after = _id(after_text, "after")
        except Invalid as exc:
            errors, wanted, after = refusal(exc), None, None
        rows = (
            await payment_list.list_payments(db, frame.community.id, wanted, after=after, limit=PAGE_SIZE)
            if wanted is not None
            else []
        )
        buyer = None
        if wanted is not None and wanted.user_id is not None:
            buyer = await db.get(User, wanted.user_id)
        return _page(
            "billing/payments.html", frame, rows=rows, query=query, errors=errors, after=after,
            next=rows[-1].payment.id if len(rows) == PAGE_SIZE else None, link=lambda **extra: _link(query, **extra),
            offers=await offers.list_offers(db, frame.community.id, after=None, limit=200),
            statuses=payment_list.STATUSES, buyer=buyer, filtered=any(query.values()),
            status_code=422 if errors else 200,
        )

    @get("/payments.csv")
    async def payments_csv(self, request: Request, frame: CurrentFrame, state: State) -> Response:
        return payments_csv_response(state, frame.community.id, _filter(_query(request)))

    @get("/payments/{payment_id:int}")
    async def payment(self, payment_id: ObjectId, frame: CurrentFrame, db: Db, state: State) -> Template:
        context = await self._context(db, state, frame, payment_id)
        return await self._payment_page(db, frame, context, Posted(), {})

    @post("/payments/{payment_id:int}/refund")
    async def refund(
        self, payment_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db, state: State
    ) -> Template | Redirect:
        _editor(frame)
        payment = await billing.get_payment(db, frame.community.id, payment_id)
        form = Posted(data)
        try:
            amount = parse_amount(form.text("amount"), payment.currency, "amount", minimum=1)
            given = read_input(
                {"amount": amount, "reason": form.text("reason").strip(), "revoke_access": form.checked("revoke_access")},
                RefundCreate,
            )
            key = form.optional("idempotency_key")
            made = await refunds.refund_payment(
                db, state.settings, community_id=frame.community.id, payment_id=payment_id,
                request=refunds.RefundRequest(given.amount, given.reason, given.revoke_access, frame.user.id, key),
            )
        except DomainError as exc:
            # Nothing is left to undo: a refusal before the Stripe call wrote nothing, and what
            # Stripe said (failed, or succeeded without the revoke) is committed by refund_payment.
            errors = {(k if k in REFUND_FIELDS else FORM): v for k, v in refusal(exc).items()}
            context = await self._context(db, state, frame, payment_id)
            return await self._payment_page(db, frame, context, form, errors, status_code=exc.status_code)
        said = {
            RefundState.succeeded: "refunded",
            RefundState.pending: "asked for: Stripe holds it pending"
            if made.stripe_refund_id
            else "asked for: waiting for Stripe's answer (it is asked again every few minutes)",
            RefundState.failed: "failed",
            RefundState.canceled: "canceled",
        }[made.state]
        flash(request, f"Refund of {format_amount(made.amount, made.currency)} {said}.", "success")
        return Redirect(f"{frame.base}/payments/{payment_id}", status_code=303)

    # ------------------------------------------------------------ helpers

    async def _context(self, db: Db, state: State, frame: Frame, payment_id: int) -> dict[str, Any]:
        payment = await billing.get_payment(db, frame.community.id, payment_id)
        made = await refunds.list_refunds(db, frame.community.id, payment.id)
        actors = {r.actor_id for r in made if r.actor_id is not None}
        who = {u.id: u for u in await db.scalars(select(User).where(User.id.in_(actors)))} if actors else {}
        membership = None
        if payment.entitlement_id is not None:
            held = await memberships.my_memberships(db, state.settings, frame.community.id, payment.user_id)
            membership = next((m for m in held if m.entitlement.id == payment.entitlement_id), None)
        return {
            "payment": payment,
            "buyer": await accounts.get_user(db, payment.user_id),
            "offer": await offers.get_offer(db, frame.community.id, payment.offer_id),
            "refunds": made,
            "refund_actors": who,
            "disputes": await payment_list.disputes_of(db, frame.community.id, payment.id),
            "refundable": await refunds.refundable(db, payment),
            "membership": membership,
            "live": membership is not None and entitlements.is_live(membership.entitlement),
            "subscribed": membership is not None and memberships.subscription_is_live(membership.subscription),
        }

    async def _payment_page(
        self, db: Db, frame: Frame, context: dict[str, Any], form: Posted, errors: dict[str, str], status_code: int = 200
    ) -> Template:
        payment: Payment = context["payment"]
        left = context["refundable"]
        values = {
            "amount": form["amount"] if form.data else (decimal_amount(left, payment.currency) if left else ""),
            "reason": form["reason"],
            "revoke_access": form.checked("revoke_access"),
            # A new key for a new form; a form shown again after a refusal keeps its own.
            "idempotency_key": form.optional("idempotency_key") or secrets.token_urlsafe(24),
        }
        return _page(
            "billing/payment.html", frame, form=values, errors=errors, status_code=status_code,
            net=payment.amount - payment.refunded_amount - payment.disputed_amount,
            holding=HOLDING, inquiry=INQUIRY, closed=CLOSED, **context,
        )

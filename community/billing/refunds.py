"""Refunds, ours and the Stripe dashboard's (disputes are disputes.py's).

An owner's refund goes through three steps, so that nothing is refunded twice and no total moves
on a refund Stripe did not make:
1. `start_refund`: under the payment's row lock, check the amount against what is left (refunds
   not yet answered count as taken) and write the Refund row, pending. The caller commits it.
2. `send_refund`: ask Stripe, with an idempotency key made from the row (a retried call returns
   the same Stripe refund) and the row's id in the refund's metadata.
3. `settle`: the row follows the refund's Stripe status, forwards only: pending (Stripe may hold
   it for days), succeeded, failed or canceled; a succeeded one can still fail.

What each state means (docs/DESIGN.md section 12): from the moment Stripe holds a refund (pending
or succeeded) its amount is refunded: out of the member's total spent and of the affiliate's
commission (billing.payment_adjusted), and no longer refundable. Failed or canceled, it is put
back. The member hears of a refund when it succeeds (never while pending), and of its failure only
if they had heard of its success; owners and admins hear of every failure. A `revoke_access`
refund ends the membership when it succeeds; if it fails afterwards the membership stays ended
(staff are told, to pay back another way or give access back).

Every refund event (`charge.refunded`, `refund.created` / `updated` / `failed`,
`charge.refund.updated`) re-reads the refunds from Stripe and settles them the same way: a refund
made in the dashboard gets its own row; one of ours that the request could not finish (a crash
after the Stripe call) is found by the metadata. A row Stripe never answered (a timeout, a 5xx,
or a process that died before asking) is asked for again by `retry_pending` (a cron) with the
same idempotency key; past 23 hours, first looked for among the payment's refunds.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from community.billing import invoices, memberships, notices
from community.billing import service as billing
from community.billing.memberships import CancelFailed
from community.billing.models import Payment, Refund, RefundState, StripeEvent
from community.billing.stripe_objects import id_of, metadata_id
from community.db import utcnow
from community.errors import Conflict, DomainError, Invalid, NotYetKnown, check_storable
from community.money import format_amount
from community.offers.models import EntitlementStatus
from community.settings import Settings
from community.stripe_client import UNANSWERED, stripe_client

# Stripe's refund statuses, as our states; a later state never goes back to an earlier one.
FROM_STRIPE = {
    "pending": RefundState.pending,
    "requires_action": RefundState.pending,
    "succeeded": RefundState.succeeded,
    "failed": RefundState.failed,
    "canceled": RefundState.canceled,
}
ORDER = {RefundState.pending: 0, RefundState.succeeded: 1, RefundState.failed: 2, RefundState.canceled: 2}
ENDED = (RefundState.failed, RefundState.canceled)
MAX_REASON = 500
CLIENT_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # an Idempotency-Key header: visible ASCII
# A pending row younger than this may still be in its request: the retry leaves it alone.
RETRY_PENDING_AFTER = dt.timedelta(minutes=2)
RETRY_BATCH = 100
# Stripe forgets an idempotency key after 24 hours: an older row is first looked for among the
# charge's refunds (by our metadata), so a key Stripe no longer knows cannot refund twice.
KEY_REMEMBERED = dt.timedelta(hours=23)
ACCESS_KEPT = "access kept: "

log = logging.getLogger(__name__)


class StripeRefused(Conflict):
    """409: Stripe refused the refund (the row is kept as failed, nothing else changed)."""


class StripeUnavailable(DomainError):
    """502: Stripe did not answer; the pending row waits for charge.refunded or the retry."""

    status_code = 502
    title = "Stripe did not answer"


class AccessNotRevoked(DomainError):
    """The refund succeeded (and is recorded) but its revoke_access could not cancel the Stripe
    subscription: 409 when Stripe refused, 502 when it did not answer."""

    def __init__(self, refund: Refund, cancel: CancelFailed):
        self.status_code = cancel.status_code
        super().__init__(
            f"refund {refund.id} of {format_amount(refund.amount, refund.currency)} succeeded at Stripe and is "
            f"recorded, but access was not revoked: {cancel.detail}. The membership keeps running; end it "
            "again once Stripe accepts, or cancel the subscription in Stripe.",
            field="revoke_access",
        )


@dataclass(frozen=True)
class RefundRequest:
    amount: int | None  # None: everything that is left
    reason: str
    revoke_access: bool
    actor_id: int | None
    client_key: str | None = None  # the request's Idempotency-Key: a repeat answers the same refund


def idempotency_key(refund: Refund) -> str:
    # The row's id and creation instant: a rebuilt database reusing the id cannot replay it.
    return f"refund-{refund.id}-{int(refund.created_at.timestamp() * 1_000_000)}"


async def refundable(session: AsyncSession, payment: Payment) -> int:
    """What is left to refund: not refunded (Stripe-held refunds are in refunded_amount), not
    held by a chargeback, not asked for already (rows Stripe has not answered yet)."""
    asked = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment.id, Refund.state == RefundState.pending, Refund.stripe_refund_id.is_(None)
        )
    )
    return max(payment.amount - payment.refunded_amount - payment.disputed_amount - int(asked or 0), 0)


# ---------------------------------------------------------------- an owner's refund


async def refund_payment(
    session: AsyncSession, settings: Settings, *, community_id: int, payment_id: int, request: RefundRequest
) -> Refund:
    """The owner's refund, start to end. Unlike other services this one commits: the pending
    row before Stripe is asked (a concurrent request counts it; a crash leaves a trace that
    charge.refunded settles), and a refusal as failed before StripeRefused is raised."""
    if request.client_key is not None:
        if not CLIENT_KEY.fullmatch(request.client_key):
            raise Invalid("must be 1 to 255 visible ASCII characters", field="Idempotency-Key")
        earlier = await _by_client_key(session, community_id, payment_id, request.client_key)
        if earlier is not None:
            await session.commit()
            return earlier  # a repeated request (a double click, a client's retry): the refund it made, as it stands
    refund = await start_refund(session, settings, community_id=community_id, payment_id=payment_id, request=request)
    await session.commit()
    try:
        return await send_refund(session, settings, refund)
    except (StripeRefused, StripeUnavailable, AccessNotRevoked):
        await session.commit()  # what Stripe said is kept: failed, or succeeded without the revoke
        raise


async def start_refund(
    session: AsyncSession, settings: Settings, *, community_id: int, payment_id: int, request: RefundRequest
) -> Refund:
    """Step 1: the pending row, checked under the payment's lock (the caller commits it before
    `send_refund`, so a concurrent request sees it and a crash leaves a trace)."""
    check_storable(request.reason, "reason")
    if len(request.reason) > MAX_REASON:
        raise Invalid(f"may be at most {MAX_REASON} characters", field="reason")
    payment = await billing.get_payment(session, community_id, payment_id, lock=True)
    if payment.stripe_account_id is None:
        raise Conflict("this payment was not taken through Stripe: there is nothing to refund there", field="payment_id")
    left = await refundable(session, payment)
    if left == 0:
        raise Invalid("nothing is left to refund on this payment", field="amount")
    amount = left if request.amount is None else request.amount
    if not 1 <= amount <= left:
        raise Invalid(f"must be between 1 and what is left, {format_amount(left, payment.currency)}", field="amount")
    await _resolve_stripe_ids(settings, payment)
    refund = Refund(
        community_id=community_id,
        payment_id=payment.id,
        amount=amount,
        currency=payment.currency,
        reason=request.reason,
        revoke_access=request.revoke_access,
        actor_id=request.actor_id,
        state=RefundState.pending,
        client_key=request.client_key,
    )
    session.add(refund)
    await session.flush()
    await session.refresh(refund)  # created_at, for the idempotency key
    return refund


async def _by_client_key(session: AsyncSession, community_id: int, payment_id: int, client_key: str) -> Refund | None:
    """The refund an earlier request with this key made. The payment's lock is taken first (and
    kept for start_refund), so a concurrent repeat waits for the first one's row, then finds it."""
    payment = await billing.get_payment(session, community_id, payment_id, lock=True)
    return await session.scalar(select(Refund).where(Refund.payment_id == payment.id, Refund.client_key == client_key))


def refund_params(payment: Payment, refund: Refund) -> stripe.params.RefundCreateParams:
    """The same parameters on every try (a replayed idempotency key must match them)."""
    params: stripe.params.RefundCreateParams = {
        "amount": refund.amount,
        "metadata": {"refund_id": str(refund.id), "payment_id": str(payment.id)},
    }
    if payment.stripe_payment_intent_id:
        params["payment_intent"] = payment.stripe_payment_intent_id
    else:
        params["charge"] = payment.stripe_charge_id or ""
    return params


async def send_refund(session: AsyncSession, settings: Settings, refund: Refund) -> Refund:
    """Steps 2 and 3: ask Stripe, then settle; the request and the retry of pending rows both
    come here. Stripe may answer a refund it holds pending: the row stays pending with its Stripe
    id, and its refund events settle it later. A refusal leaves the row failed and raises
    StripeRefused; a revoke that could not cancel the subscription raises AccessNotRevoked after
    settling (the caller commits both)."""
    payment = await billing.get_payment(session, refund.community_id, refund.payment_id)
    try:
        created = await stripe_client(settings).v1.refunds.create_async(
            refund_params(payment, refund),
            {"stripe_account": payment.stripe_account_id or "", "idempotency_key": idempotency_key(refund)},
        )
    except UNANSWERED:
        # Stripe may have made it: the row stays pending until its refund events or the retry settle it.
        raise StripeUnavailable(f"Stripe did not answer; refund {refund.id} waits for Stripe's confirmation") from None
    except stripe.StripeError as exc:
        await _lock(session, payment)
        await session.refresh(refund)
        if refund.state is RefundState.pending:
            refund.state, refund.error, refund.completed_at = RefundState.failed, _message(exc), utcnow()
        raise StripeRefused(f"refund {refund.id} failed: {refund.error}", field="amount") from None
    await _lock(session, payment)
    kept: AccessNotRevoked | None = None
    try:
        await settle(session, settings, payment, created.to_dict())
    except AccessNotRevoked as exc:
        kept = exc  # settled all the same: the totals below still follow Stripe
    await _recount(session, payment)
    await session.refresh(refund)
    if kept is not None:
        raise kept
    return refund


async def retry_pending(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    older_than: dt.timedelta = RETRY_PENDING_AFTER,
    now: dt.datetime | None = None,
) -> int:
    """The cron's half of step 2: every refund Stripe has not answered `older_than` after it was
    written (a timeout, a 5xx, or the process died before asking) is sent again with its own
    idempotency key, so Stripe answers the refund it already made or makes it once, and settled
    by `send_refund` as the request would have. (A refund Stripe holds pending is not asked
    again: its refund events settle it.) One transaction per row; returns how many Stripe
    answered. Run twice, or beside the refund events, it changes nothing twice (settling is
    once, under the payment's lock)."""
    now = now or utcnow()
    async with sessions() as session:
        due = list(
            await session.scalars(
                select(Refund.id)
                # Written as the literal of ix_refunds_pending's predicate, so a generic plan uses it.
                .where(
                    text("refunds.state = 'pending'"),
                    Refund.stripe_refund_id.is_(None),
                    Refund.created_at < now - older_than,
                )
                .order_by(Refund.id)
                .limit(RETRY_BATCH)
            )
        )
    settled = 0
    for refund_id in due:
        try:
            settled += await _retry_one(sessions, settings, refund_id, now)
        except Exception:  # one row's trouble must not stop the others; it stays pending
            log.exception("retrying pending refund %s failed", refund_id)
    return settled


async def _retry_one(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, refund_id: int, now: dt.datetime
) -> bool:
    async with sessions() as session, session.begin():
        refund = await session.get(Refund, refund_id)
        if refund is None or refund.state is not RefundState.pending or refund.stripe_refund_id is not None:
            return False
        try:
            if refund.created_at < now - KEY_REMEMBERED and await _found_at_stripe(session, settings, refund):
                return True
            await send_refund(session, settings, refund)
        except UNANSWERED + (StripeUnavailable,):
            return False  # still no answer: the next run asks again
        except (StripeRefused, AccessNotRevoked):
            pass  # settled as failed, or succeeded with access kept: committed as the request would
        return True


async def _found_at_stripe(session: AsyncSession, settings: Settings, refund: Refund) -> bool:
    """Settle every refund Stripe holds for the row's payment, as charge.refunded does; True
    when that found this row's refund (Stripe had made it, whatever its status now)."""
    payment = await billing.get_payment(session, refund.community_id, refund.payment_id, lock=True)
    params = refund_params(payment, refund)
    found: stripe.params.RefundListParams = {"limit": 100}
    if "payment_intent" in params:
        found["payment_intent"] = params["payment_intent"]
    else:
        found["charge"] = params["charge"]
    await _settle_listed(session, settings, payment, found)
    await session.refresh(refund)
    return refund.stripe_refund_id is not None


def _message(exc: stripe.StripeError) -> str:
    return (exc.user_message or str(exc) or type(exc).__name__)[:500]


async def _lock(session: AsyncSession, payment: Payment) -> Payment:
    return await billing.get_payment(session, payment.community_id, payment.id, lock=True)


async def _resolve_stripe_ids(settings: Settings, payment: Payment) -> None:
    """A subscription's first payment is recorded from its checkout, before its invoice says
    what paid it (the invoice.paid job adds that): until then it names no payment intent or
    charge. Read them from the invoice's payments (read-only calls; see invoices.py), so that
    the refund can name them and its charge.refunded finds this payment."""
    if payment.stripe_charge_id or payment.stripe_payment_intent_id:
        return
    account = payment.stripe_account_id or ""
    try:
        invoice_id = payment.stripe_invoice_id
        if invoice_id is None and payment.stripe_subscription_id:
            invoice_id = await invoices.first_invoice(settings, account, payment.stripe_subscription_id)
        invoice = await invoices.retrieve(settings, account, invoice_id) if invoice_id else None
    except UNANSWERED:
        raise StripeUnavailable("Stripe did not answer; nothing was refunded, try again") from None
    paid = invoices.paid_with(invoice) if invoice is not None else invoices.PaidWith(None, None)
    if invoice is None or not (paid.payment_intent or paid.charge):
        raise Conflict("Stripe has no charge for this payment to refund", field="payment_id")
    invoices.fill(payment, invoice, paid)


async def settle(session: AsyncSession, settings: Settings, payment: Payment, stripe_refund: dict[str, Any]) -> Refund | None:
    """Our row for a Stripe refund of this payment (locked by the caller), brought forwards to
    Stripe's status; a refund we did not ask for (the dashboard) gets a row. Each change has its
    side effects once, under the lock: succeeded (the member's email, revoking access if asked),
    failed or canceled (the notices). The caller recounts the payment's refunded total. Raises
    AccessNotRevoked after settling when the revoke could not cancel the subscription."""
    stripe_id = stripe_refund["id"]
    refund = await session.scalar(
        select(Refund)
        .where(Refund.community_id == payment.community_id, Refund.stripe_refund_id == stripe_id)
        .execution_options(populate_existing=True)
    )
    if refund is None:
        refund = await _ours_by_metadata(session, payment, stripe_refund) or await _from_dashboard(
            session, payment, stripe_refund
        )
    if refund is None:
        return None
    refund.stripe_refund_id = stripe_id
    charge_id = id_of(stripe_refund.get("charge"))
    payment.stripe_charge_id = payment.stripe_charge_id or charge_id
    was, now = refund.state, FROM_STRIPE.get(stripe_refund.get("status") or "", RefundState.pending)
    if ORDER[now] <= ORDER[was]:
        return refund  # the same news, or older: nothing changes
    refund.state, refund.completed_at = now, utcnow()
    await session.flush()
    if now is RefundState.succeeded:
        await _after_refund(session, settings, payment, refund)
        return refund
    # A revoke happened with the success, if any (unless Stripe refused to cancel: access kept).
    access_ended = was is RefundState.succeeded and refund.revoke_access and ACCESS_KEPT not in (refund.error or "")
    why = (stripe_refund.get("failure_reason") or stripe_refund.get("status") or "").replace("_", " ")
    refund.error = (f"Stripe: {why}" + (f"; {refund.error}" if refund.error else ""))[:500]
    await notices.refund_failed(
        session, settings, payment, refund, member_told=was is RefundState.succeeded, access_ended=access_ended, why=why
    )
    return refund


async def _ours_by_metadata(session: AsyncSession, payment: Payment, stripe_refund: dict[str, Any]) -> Refund | None:
    refund_id = metadata_id((stripe_refund.get("metadata") or {}).get("refund_id"))
    if refund_id is None:
        return None
    return await session.scalar(
        select(Refund)
        .where(Refund.id == refund_id, Refund.payment_id == payment.id, Refund.stripe_refund_id.is_(None))
        .execution_options(populate_existing=True)
    )


async def _from_dashboard(session: AsyncSession, payment: Payment, stripe_refund: dict[str, Any]) -> Refund | None:
    """A refund made in the Stripe dashboard: written pending here, settled by the caller."""
    amount = int(stripe_refund.get("amount") or 0)
    if amount <= 0:
        return None
    new_id = await session.scalar(
        insert(Refund)
        .values(
            community_id=payment.community_id,
            payment_id=payment.id,
            amount=amount,
            currency=payment.currency,
            reason=f"made in Stripe{': ' + stripe_refund['reason'] if stripe_refund.get('reason') else ''}",
            revoke_access=False,
            state=RefundState.pending,
            stripe_refund_id=stripe_refund["id"],
        )
        .on_conflict_do_nothing()
        .returning(Refund.id)
    )
    return await session.get(Refund, new_id) if new_id is not None else None


async def _recount(session: AsyncSession, payment: Payment) -> None:
    """The payment's refunded total (locked by the caller): its refunds Stripe holds, pending or
    succeeded. A failed or canceled one is not in it any more."""
    held = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment.id,
            or_(
                Refund.state == RefundState.succeeded,
                (Refund.state == RefundState.pending) & Refund.stripe_refund_id.is_not(None),
            ),
        )
    )
    await billing.apply_refund(
        session, community_id=payment.community_id, payment_id=payment.id, amount_refunded=int(held or 0)
    )


async def _after_refund(session: AsyncSession, settings: Settings, payment: Payment, refund: Refund) -> None:
    failed = await _revoke_access(session, settings, payment, refund) if refund.revoke_access else None
    await notices.refund_issued(session, settings, payment, refund, access_revoked=refund.revoke_access and failed is None)
    if failed is not None:
        raise AccessNotRevoked(refund, failed)


async def _revoke_access(session: AsyncSession, settings: Settings, payment: Payment, refund: Refund) -> CancelFailed | None:
    """End the membership, its Stripe subscription included. When Stripe will not cancel the
    subscription, the membership keeps running (the end is rolled back, its savepoint only):
    ending access while Stripe goes on charging would bill the member for nothing, and a
    running membership is the state staff can finish with one more "end" once Stripe accepts.
    The refund stays recorded (Stripe made it) with the reason on the row."""
    if payment.entitlement_id is None:
        return None
    try:
        async with session.begin_nested():
            await memberships.end_now(
                session,
                settings,
                community_id=payment.community_id,
                entitlement_id=payment.entitlement_id,
                status=EntitlementStatus.refunded,
                actor_id=refund.actor_id,
                reason=f"refunded{': ' + refund.reason if refund.reason else ''}",
            )
    except CancelFailed as exc:
        refund.error = f"{ACCESS_KEPT}{exc.detail}"[:500]
        return exc
    except Conflict:
        pass  # already ended (an earlier refund revoked it): nothing left to revoke
    return None


async def list_refunds(session: AsyncSession, community_id: int, payment_id: int) -> list[Refund]:
    await billing.get_payment(session, community_id, payment_id)
    return list(
        (
            await session.scalars(
                select(Refund)
                .where(Refund.community_id == community_id, Refund.payment_id == payment_id)
                .order_by(Refund.id)
            )
        ).all()
    )


# ---------------------------------------------------------------- webhook events


async def _payment_for(
    session: AsyncSession, settings: Settings, row: StripeEvent, charge_id: str | None, intent_id: str | None, metadata: dict[str, Any]
) -> Payment:
    """The payment (locked) this charge's event is about, found through our records on the
    event's account, or through the invoice its payment intent paid (a subscription payment
    whose ids we did not have yet). Not found: ours but not recorded yet (its checkout's
    metadata, or our subscription's invoice) -> retry; otherwise not ours."""
    matches = [column == value for column, value in ((Payment.stripe_charge_id, charge_id), (Payment.stripe_payment_intent_id, intent_id)) if value]
    payment = None
    if matches:
        payment = await session.scalar(
            select(Payment)
            .where(Payment.stripe_account_id.is_not_distinct_from(row.account), or_(*matches))
            .order_by(Payment.id)
            .limit(1)
        )
    if payment is None and intent_id and row.account:
        # An invoice's charge we have no ids for yet: Stripe says which invoice it paid.
        payment = await invoices.payment_for_intent(session, settings, row.account, intent_id, charge_id)
    if payment is None:
        if metadata.get("checkout_id"):
            raise NotYetKnown(f"the payment of charge {charge_id} is not recorded yet")
        raise _NotOurs
    row.community_id = payment.community_id
    return await _lock(session, payment)


class _NotOurs(Exception):
    pass


async def on_charge_refunded(session: AsyncSession, settings: Settings, row: StripeEvent) -> str:
    """charge.refunded: its charge's refunds, listed (the event's charge carries no `refunds` at
    this API version), each settled."""
    obj = (row.payload.get("data") or {}).get("object") or {}
    try:
        payment = await _payment_for(session, settings, row, id_of(obj.get("id")), id_of(obj.get("payment_intent")), obj.get("metadata") or {})
    except _NotOurs:
        return "not ours"
    await _settle_listed(session, settings, payment, {"charge": id_of(obj.get("id")) or "", "limit": 100})
    return f"refunded {payment.refunded_amount} of {payment.amount}"


async def on_refund(session: AsyncSession, settings: Settings, row: StripeEvent) -> str:
    """refund.created / updated / failed and charge.refund.updated: the refund as Stripe holds it
    now (re-read, so an older event cannot undo a newer state), settled."""
    obj = (row.payload.get("data") or {}).get("object") or {}
    refund_id = id_of(obj.get("id"))
    if not refund_id:
        return "not ours"
    try:
        payment = await _payment_for(session, settings, row, id_of(obj.get("charge")), id_of(obj.get("payment_intent")), {})
    except _NotOurs:
        return "not ours"
    current = await stripe_client(settings).v1.refunds.retrieve_async(
        refund_id, options={"stripe_account": payment.stripe_account_id or ""}
    )
    try:
        await settle(session, settings, payment, current.to_dict())
    except AccessNotRevoked:
        pass  # settled; why access was kept is on the refund's row
    await _recount(session, payment)
    return f"refund {current.status}: refunded {payment.refunded_amount} of {payment.amount}"


async def _settle_listed(
    session: AsyncSession, settings: Settings, payment: Payment, filters: stripe.params.RefundListParams
) -> None:
    """Every refund Stripe lists for the payment (locked by the caller; up to 100), settled,
    then the payment's refunded total recounted."""
    listed = await stripe_client(settings).v1.refunds.list_async(
        filters, {"stripe_account": payment.stripe_account_id or ""}
    )
    for stripe_refund in listed.data:
        try:
            await settle(session, settings, payment, stripe_refund.to_dict())
        except AccessNotRevoked:
            pass  # settled; why access was kept is on the refund's row
    await _recount(session, payment)


EVENT_HANDLERS: dict[str, Any] = {
    "charge.refunded": on_charge_refunded,
    "refund.created": on_refund,
    "refund.updated": on_refund,
    "refund.failed": on_refund,
    "charge.refund.updated": on_refund,
}

"""Disputes of a payment: every charge.dispute.* event re-reads the dispute from Stripe and
applies its status now, under the payment's lock, so order and duplicates do not matter.

What each status means (Stripe, API version 2026-10-28; the table in docs/DESIGN.md section 12):
- Inquiries (`warning_needs_response`, `warning_under_review`, `warning_closed`): Stripe has
  withdrawn nothing, so nothing is held: totals and commissions stay as they are.
- A chargeback (`needs_response`, `under_review`): Stripe withdrew the disputed amount when it
  opened (`charge.dispute.funds_withdrawn`); it is held: the payment's `disputed_amount`, out of
  the member's total spent and of the affiliate's commission (billing.payment_adjusted).
- `lost`: the amount stays withdrawn, so it stays held. An appeal of the decision
  (`appeal_needs_response`, `appeal_under_review`) does not return it: held during the appeal.
- `won` (first time or on appeal): the amount is reinstated (`funds_reinstated`): nothing held,
  the commission is restored.
- `prevented`: stopped before it became a chargeback; it withdraws nothing. When Stripe resolved
  it with a refund, that refund arrives as a refund made in Stripe (billing/refunds.py).
- A status Stripe adds later holds nothing until this table knows it (it is stored as it is).
Access is never changed by a dispute: staff are told and decide (ending a membership is one
call), since a chargeback can still be won or appealed, and ending a subscription's access
while Stripe goes on charging would bill the member for nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import stripe
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from community.billing import notices
from community.billing import service as billing
from community.billing.models import Dispute, StripeEvent
from community.billing.refunds import _NotOurs, _payment_for
from community.billing.stripe_objects import from_stamp, id_of
from community.db import utcnow
from community.settings import Settings
from community.stripe_client import stripe_client

INQUIRY = frozenset({"warning_needs_response", "warning_under_review", "warning_closed"})
# Statuses in which Stripe holds the disputed amount withdrawn from the account.
HOLDING = frozenset({"needs_response", "under_review", "lost", "appeal_needs_response", "appeal_under_review"})
# Every other status Stripe publishes for this version: nothing withdrawn, or given back.
HOLDS_NOTHING = frozenset({"warning_needs_response", "warning_under_review", "warning_closed", "won", "prevented"})
# Over (no answer expected); an appeal reopens a lost one.
CLOSED = frozenset({"won", "lost", "warning_closed", "prevented"})


async def on_dispute(session: AsyncSession, settings: Settings, row: StripeEvent) -> str:
    """charge.dispute.created / updated / closed / funds_withdrawn / funds_reinstated."""
    obj = (row.payload.get("data") or {}).get("object") or {}
    dispute_id = id_of(obj.get("id"))
    if not dispute_id:
        return "not ours"
    try:
        payment = await _payment_for(session, settings, row, id_of(obj.get("charge")), id_of(obj.get("payment_intent")), {})
    except _NotOurs:
        return "not ours"
    current = await stripe_client(settings).v1.disputes.retrieve_async(
        dispute_id, options={"stripe_account": payment.stripe_account_id or ""}
    )
    first_sight = await session.scalar(
        insert(Dispute)
        .values(
            community_id=payment.community_id,
            payment_id=payment.id,
            stripe_dispute_id=current.id,
            amount=current.amount,
            currency=payment.currency,
            reason=(current.reason or "")[:100],
            status=current.status,
            evidence_due_by=_respond_by(current),
        )
        .on_conflict_do_nothing(index_elements=[Dispute.stripe_dispute_id])
        .returning(Dispute.id)
    )
    dispute = await session.scalar(
        select(Dispute).where(Dispute.stripe_dispute_id == current.id).execution_options(populate_existing=True)
    )
    assert dispute is not None
    if dispute.payment_id != payment.id:
        return "not ours"  # a dispute id already stored for another payment
    was_closed, was_inquiry = dispute.closed_at is not None, dispute.status in INQUIRY
    dispute.amount, dispute.status = current.amount, current.status
    dispute.evidence_due_by = _respond_by(current)
    closed = current.status in CLOSED
    dispute.closed_at = (dispute.closed_at or utcnow()) if closed else None
    await session.flush()
    # Staff hear of it once when it opens (unless first seen over), once when an inquiry becomes a
    # chargeback, and once each time it closes (again after an appeal): state changes under the
    # payment's lock, whatever events arrive and how often.
    if first_sight is not None and not closed:
        await notices.dispute(session, settings, payment, dispute, opened=True, respond_by=_respond_by(current))
    elif first_sight is None and was_inquiry and current.status in HOLDING:
        await notices.dispute(
            session, settings, payment, dispute, opened=True, respond_by=_respond_by(current), escalated=True
        )
    if closed and not was_closed:
        await notices.dispute(session, settings, payment, dispute, opened=False)
    held = await session.scalar(
        select(func.coalesce(func.sum(Dispute.amount), 0)).where(
            Dispute.payment_id == payment.id, Dispute.status.in_(HOLDING)
        )
    )
    await billing.set_disputed(session, payment, int(held or 0))
    return f"dispute {current.status}"


def _respond_by(current: stripe.Dispute) -> dt.datetime | None:
    return from_stamp(current.evidence_details.due_by if current.evidence_details else None)


EVENT_HANDLERS: dict[str, Any] = {
    "charge.dispute.created": on_dispute,
    "charge.dispute.updated": on_dispute,
    "charge.dispute.closed": on_dispute,
    "charge.dispute.funds_withdrawn": on_dispute,
    "charge.dispute.funds_reinstated": on_dispute,
}

"""Cancellation notices, announced from the one place a cancellation takes effect (the subscription
state change, or staff ending a membership), whoever asked for it: the member here, the member
in Stripe's billing portal, the owner in the Stripe dashboard. Refund notices, announced from the
refund's state change (succeeded; failed or canceled). Dispute notices to staff, announced from the
dispute's state change (first seen, escalated to a chargeback, closed). The notifications
package decides who is told (its catalogue, the community's settings)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts import service as accounts
from community.accounts.models import User
from community.billing.models import Dispute, Payment, Refund
from community.db import utcnow
from community.mail.announce import announce
from community.money import format_amount
from community.offers.models import Entitlement, EntitlementStatus
from community.settings import Settings


def billing_page_url(settings: Settings, community_id: int) -> str:
    return f"{settings.base_url}/communities/{community_id}/billing"


async def editors(session: AsyncSession, community_id: int) -> list[User]:
    """Who hears of the community's billing (cancellations, failed payments, disputes): owners and admins."""
    return [user for staff, user in await accounts.list_staff(session, community_id) if staff.role in accounts.EDITORS]


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%d %B %Y, %H:%M UTC") if value else ""


async def _facts(session: AsyncSession, settings: Settings, entitlement: Entitlement) -> dict[str, Any]:
    ends_at = entitlement.ends_at if entitlement.ends_at and entitlement.ends_at > utcnow() else None
    return {
        "user_id": entitlement.user_id,
        "offer_id": entitlement.offer_id,
        "ends_at": _when(ends_at),
        # Cancelled while a renewal is unpaid: access ends with the grace unless Stripe's retry
        # of that invoice succeeds (then at the period's end); that one charge may still happen.
        "in_grace": entitlement.status is EntitlementStatus.past_due,
        "billing_url": billing_page_url(settings, entitlement.community_id),
    }


async def cancellation(session: AsyncSession, settings: Settings, entitlement: Entitlement, *, by_staff: bool) -> None:
    """Announced: the member's confirmation; when the member cancelled, a notice to staff."""
    await announce(
        session, "cancellation", community_id=entitlement.community_id, by_staff=by_staff,
        **await _facts(session, settings, entitlement),
    )


def _refund_facts(settings: Settings, payment: Payment, refund: Refund) -> dict[str, Any]:
    return {
        "user_id": payment.user_id,
        "offer_id": payment.offer_id,
        "payment_id": payment.id,
        "amount": format_amount(refund.amount, refund.currency),
        "paid": format_amount(payment.amount, payment.currency),
        "billing_url": billing_page_url(settings, payment.community_id),
        "payment_url": f"{settings.base_url}/dashboard/communities/{payment.community_id}/payments/{payment.id}",
    }


async def refund_issued(
    session: AsyncSession, settings: Settings, payment: Payment, refund: Refund, *, access_revoked: bool
) -> None:
    """To the member and to staff, once the refund has succeeded at Stripe (never while it is pending)."""
    await announce(
        session, "refund_issued", community_id=payment.community_id, access_revoked=access_revoked,
        **_refund_facts(settings, payment, refund),
    )


async def refund_failed(
    session: AsyncSession, settings: Settings, payment: Payment, refund: Refund, *, member_told: bool,
    access_ended: bool, why: str,
) -> None:
    """A refund failed or was canceled at Stripe: staff hear of it (the amount counts as paid
    again); the member only if they had been told it succeeded, to correct that."""
    await announce(
        session, "refund_failed", community_id=payment.community_id,
        outcome="was canceled" if refund.state.value == "canceled" else "failed", why=why,
        access_ended=access_ended, revoke_access=refund.revoke_access, member_told=member_told,
        refund_id=refund.id, stripe_refund_id=refund.stripe_refund_id or "",
        **_refund_facts(settings, payment, refund),
    )


OUTCOMES = {
    "won": "won",
    "lost": "lost",
    "warning_closed": "closed without a chargeback",
    "prevented": "prevented before it became a chargeback",
}


async def dispute(
    session: AsyncSession, settings: Settings, payment: Payment, dispute: Dispute, *, opened: bool,
    respond_by: dt.datetime | None = None, escalated: bool = False,
) -> None:
    """To staff: a dispute opened, or an inquiry became a chargeback (what, by whom, why, until
    when to answer), or it closed (its outcome). The caller announces each once."""
    facts: dict[str, Any] = {
        "user_id": payment.user_id,
        "offer_id": payment.offer_id,
        "payment_id": payment.id,
        "paid": format_amount(payment.amount, payment.currency),
        "amount": format_amount(dispute.amount, dispute.currency),
        "dispute_id": dispute.stripe_dispute_id,
    }
    if opened:
        event = "dispute_opened"
        facts.update(
            reason=(dispute.reason or "none given").replace("_", " "),
            respond_by=_when(respond_by),
            inquiry=dispute.status.startswith("warning_"),  # an inquiry holds no money (yet)
            escalated=escalated,
        )
    else:
        event, facts["outcome"] = "dispute_closed", OUTCOMES.get(dispute.status, dispute.status)
        facts["prevented"] = dispute.status == "prevented"
    await announce(session, event, community_id=payment.community_id, **facts)

"""Cancellation emails, sent from the one place a cancellation takes effect (the subscription
state change, or staff ending a membership), whoever asked for it: the member here, the member
in Stripe's billing portal, the owner in the Stripe dashboard. Refund emails, sent from the
refund's state change (succeeded; failed or canceled). Dispute notices to staff, sent from the
dispute's state change (first seen, escalated to a chargeback, closed)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts import service as accounts
from community.accounts.models import User
from community.billing.models import Dispute, Payment, Refund
from community.db import utcnow
from community.hubs.models import Community
from community.money import format_amount
from community.notifications.service import queue_email
from community.offers.models import Entitlement, EntitlementStatus, Offer
from community.settings import Settings


def billing_page_url(settings: Settings, community_id: int) -> str:
    return f"{settings.base_url}/communities/{community_id}/billing"


async def editors(session: AsyncSession, community_id: int) -> list[User]:
    """Who hears of the community's billing (cancellations, failed payments, disputes): owners and admins."""
    return [user for staff, user in await accounts.list_staff(session, community_id) if staff.role in accounts.EDITORS]


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%d %B %Y, %H:%M UTC") if value else ""


async def _context(session: AsyncSession, settings: Settings, entitlement: Entitlement) -> dict[str, Any]:
    offer = await session.get_one(Offer, entitlement.offer_id)
    community = await session.get_one(Community, entitlement.community_id)
    ends_at = entitlement.ends_at if entitlement.ends_at and entitlement.ends_at > utcnow() else None
    return {
        "community_name": community.name,
        "offer_title": offer.title,
        "ends_at": _when(ends_at),
        # Cancelled while a renewal is unpaid: access ends with the grace unless Stripe's retry
        # of that invoice succeeds (then at the period's end); that one charge may still happen.
        "in_grace": entitlement.status is EntitlementStatus.past_due,
        "billing_url": billing_page_url(settings, entitlement.community_id),
        "site_url": settings.base_url,
    }


async def cancellation(session: AsyncSession, settings: Settings, entitlement: Entitlement, *, by_staff: bool) -> None:
    """The member's confirmation; when the member cancelled, a notice to owners and admins."""
    member = await accounts.get_user(session, entitlement.user_id)
    context = await _context(session, settings, entitlement)
    await queue_email(
        session, to=member.email, template="cancellation_confirmed", community_id=entitlement.community_id,
        name=member.name, email=member.email, by_staff=by_staff, **context,
    )
    if by_staff:
        return
    for user in await editors(session, entitlement.community_id):
        await queue_email(
            session, to=user.email, template="member_cancelled", community_id=entitlement.community_id,
            name=user.name, email=user.email, member_name=member.name, member_email=member.email, **context,
        )


async def _refund_context(session: AsyncSession, settings: Settings, payment: Payment, refund: Refund) -> dict[str, Any]:
    offer = await session.get_one(Offer, payment.offer_id)
    community = await session.get_one(Community, payment.community_id)
    return {
        "community_name": community.name,
        "offer_title": offer.title,
        "amount": format_amount(refund.amount, refund.currency),
        "paid": format_amount(payment.amount, payment.currency),
        "billing_url": billing_page_url(settings, payment.community_id),
        "site_url": settings.base_url,
    }


async def refund_issued(
    session: AsyncSession, settings: Settings, payment: Payment, refund: Refund, *, access_revoked: bool
) -> None:
    """To the member, once their refund has succeeded at Stripe (never while it is pending)."""
    member = await accounts.get_user(session, payment.user_id)
    await queue_email(
        session, to=member.email, template="refund_issued", community_id=payment.community_id,
        name=member.name, email=member.email, access_revoked=access_revoked,
        **await _refund_context(session, settings, payment, refund),
    )


async def refund_failed(
    session: AsyncSession, settings: Settings, payment: Payment, refund: Refund, *, member_told: bool,
    access_ended: bool, why: str,
) -> None:
    """A refund failed or was canceled at Stripe: owners and admins hear of it (the amount counts
    as paid again); the member only if they had been told it succeeded, to correct that."""
    member = await accounts.get_user(session, payment.user_id)
    context = await _refund_context(session, settings, payment, refund)
    context.update(
        outcome="was canceled" if refund.state.value == "canceled" else "failed", why=why,
        access_ended=access_ended, revoke_access=refund.revoke_access,
    )
    if member_told:
        await queue_email(
            session, to=member.email, template="refund_failed", community_id=payment.community_id,
            name=member.name, email=member.email, **context,
        )
    for user in await editors(session, payment.community_id):
        await queue_email(
            session, to=user.email, template="refund_failed_staff", community_id=payment.community_id,
            name=user.name, email=user.email, member_name=member.name, member_email=member.email,
            payment_id=payment.id, refund_id=refund.id, stripe_refund_id=refund.stripe_refund_id or "",
            member_told=member_told, **context,
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
    """To owners and admins: a dispute opened, or an inquiry became a chargeback (what, by whom,
    why, until when to answer), or it closed (its outcome). The caller sends each once."""
    member = await accounts.get_user(session, payment.user_id)
    offer = await session.get_one(Offer, payment.offer_id)
    community = await session.get_one(Community, payment.community_id)
    context = {
        "community_name": community.name,
        "offer_title": offer.title,
        "member_name": member.name,
        "member_email": member.email,
        "payment_id": payment.id,
        "paid": format_amount(payment.amount, payment.currency),
        "amount": format_amount(dispute.amount, dispute.currency),
        "dispute_id": dispute.stripe_dispute_id,
        "site_url": settings.base_url,
    }
    if opened:
        template = "dispute_opened"
        context.update(
            reason=(dispute.reason or "none given").replace("_", " "),
            respond_by=_when(respond_by),
            inquiry=dispute.status.startswith("warning_"),  # an inquiry holds no money (yet)
            escalated=escalated,
        )
    else:
        template, context["outcome"] = "dispute_closed", OUTCOMES.get(dispute.status, dispute.status)
        context["prevented"] = dispute.status == "prevented"
    for user in await editors(session, payment.community_id):
        await queue_email(
            session, to=user.email, template=template, community_id=payment.community_id,
            name=user.name, email=user.email, **context,
        )

"""Cancellation emails, sent from the one place a cancellation takes effect (the subscription
state change, or staff ending a membership), whoever asked for it: the member here, the member
in Stripe's billing portal, the owner in the Stripe dashboard. Dispute notices to staff, sent
from the dispute's state change (its first sight, its close)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts import service as accounts
from community.accounts.models import User
from community.billing.models import Dispute, Payment
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


OUTCOMES = {"won": "won", "lost": "lost", "warning_closed": "closed without a chargeback"}


async def dispute(
    session: AsyncSession, settings: Settings, payment: Payment, dispute: Dispute, *, opened: bool,
    respond_by: dt.datetime | None = None,
) -> None:
    """To owners and admins: a dispute opened (what, by whom, why, until when to answer), or
    closed (its outcome). The caller sends each once per dispute."""
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
        )
    else:
        template, context["outcome"] = "dispute_closed", OUTCOMES.get(dispute.status, dispute.status)
    for user in await editors(session, payment.community_id):
        await queue_email(
            session, to=user.email, template=template, community_id=payment.community_id,
            name=user.name, email=user.email, **context,
        )

"""The announce job: for one event, every catalogue message it answers, to every recipient the
settings allow. Each (event, message, recipient) gets one delivery row (unique) and one send job,
both in this job's transaction: a rerun finds the rows and queues nothing twice."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import User
from community.hubs.models import Community
from community.jobs import JobContext
from community.mail import service as mail
from community.mail.models import Delivery
from community.mail.owner_templates import render_confirmation, render_strict
from community.notifications import service
from community.notifications.catalogue import STAFF, Entry, for_event
from community.offers.models import Offer

log = logging.getLogger("community.notifications")

SECRET_FACTS = ("login_link",)  # dropped from the stored payload once the job is done

# Messages an event answers only under a condition of the event itself.
CONDITIONS = {
    "staff_cancellation": lambda facts: not facts.get("by_staff"),  # staff who ended it know
    "refund_failed": lambda facts: bool(facts.get("member_told")),  # a correction only
}


async def handle_announce(
    session: AsyncSession, ctx: JobContext, *, event: str, facts: dict[str, Any]
) -> dict[str, Any]:
    community_id = ctx.community_id
    assert community_id is not None
    community = await session.get_one(Community, community_id)
    offer = await session.get(Offer, facts["offer_id"]) if facts.get("offer_id") else None
    member = await session.get(User, facts["user_id"]) if facts.get("user_id") else None
    base = {
        "community_name": community.name,
        "offer_title": offer.title if offer else "",
        "site_url": ctx.settings.base_url,
        "member_name": member.name if member else "",
        "member_email": member.email if member else "",
        **facts,
        # A domain without the settings announces a console path; the message links to it.
        **{f"{key[:-len('_path')]}_url": ctx.settings.base_url + value for key, value in facts.items() if key.endswith("_path")},
    }
    event_key = f"outbox-{ctx.outbox_id}"
    for item in for_event(event):
        condition = CONDITIONS.get(item.key)
        if condition is not None and not condition(facts):
            continue
        if not await service.enabled_for(session, community_id, item, offer.id if offer else None):
            continue
        if item.audience == STAFF:
            recipients = await service.staff_recipients(session, community_id, item)
        else:
            recipients = [(member.id, member.name or "", member.email)] if member else []
        edited = await service.edited_texts(session, community_id, item)
        for user_id, name, address in recipients:
            subject, text, html = render_message(item, base, edited, offer, name=name, email=address)
            delivery_id = await session.scalar(
                insert(Delivery)
                .values(
                    community_id=community_id,
                    event_key=event_key,
                    message=item.key,
                    user_id=user_id,
                    email=address,
                    subject=subject,
                    state="queued",
                )
                .on_conflict_do_nothing(index_elements=["event_key", "message", "email"])
                .returning(Delivery.id)
            )
            if delivery_id is not None:  # None: already decided (and queued) for this event
                await mail.enqueue_rendered(
                    session,
                    to=address,
                    subject=subject,
                    text=text,
                    html=html,
                    community_id=community_id,
                    delivery_id=delivery_id,
                )
    return {
        "event": event,
        "facts": {k: v for k, v in facts.items() if k not in SECRET_FACTS},
    }


def render_message(
    item: Entry,
    base: dict[str, Any],
    edited: tuple[str | None, str | None],
    offer: Offer | None,
    *,
    name: str,
    email: str,
) -> tuple[str, str, str]:
    context = dict(base)
    if item.key == "staff_payment_failed":  # this template names the member name/email
        context.update(staff_name=name, name=base["member_name"], email=base["member_email"])
    else:
        context.update(name=name, email=email)
    if item.key == "purchase_confirmation":
        return _purchase_confirmation(context, edited, offer)
    subject_source, body_source = edited
    if subject_source is None and body_source is None:
        return mail.render(item.template, **context)
    variables = {name: context.get(name, "") for name in item.variables}
    try:
        subject = " ".join(render_strict(subject_source or item.default_subject(), variables).split())[:200]
        body = render_strict(body_source or item.default_body(), variables)
    except Exception as exc:  # noqa: BLE001 - checked at save; never leave a member untold
        log.warning("edited %s failed to render, sending the default: %s", item.key, exc)
        return mail.render(item.template, **context)
    return (
        subject,
        body,
        mail.render_html("owner_text", body=body, site_url=context["site_url"]),
    )


def _purchase_confirmation(
    context: dict[str, Any], edited: tuple[str | None, str | None], offer: Offer | None
) -> tuple[str, str, str]:
    """The offer's own confirmation texts first, then the community's, then the default."""
    subject_source = (offer.confirmation_subject if offer else "") or edited[0] or ""
    body_source = (offer.confirmation_body if offer else "") or edited[1] or ""
    variables = {
        "buyer_name": context.get("buyer_name") or context.get("name") or "",
        "buyer_email": context["email"],
        "offer_title": context["offer_title"],
        "amount": context.get("amount", "0"),
        "community_name": context["community_name"],
        "access_url": context.get("access_url", ""),
    }
    subject, body = render_confirmation(subject_source, body_source, variables, fallback_subject=context["offer_title"])
    return mail.render(
        "purchase_confirmation",
        subject=subject,
        body=body,
        login_link=context.get("login_link"),
        site_url=context["site_url"],
    )

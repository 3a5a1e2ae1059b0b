"""System mail (login links, email changes, staff invitations) queued through the outbox: rendered
now, delivered by a job after commit. Community lifecycle mail is announced (announce.py) and
decided by the notifications package."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from community import jobs

SEND_EMAIL = "notifications.send_email"

_templates = Environment(
    loader=PackageLoader("community", "templates/notifications"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)


def render(template: str, **context: Any) -> tuple[str, str, str]:
    """A template is a folder of subject.txt, body.txt and body.html."""
    subject = _templates.get_template(f"{template}/subject.txt").render(**context).strip()
    text = _templates.get_template(f"{template}/body.txt").render(**context)
    html = _templates.get_template(f"{template}/body.html").render(**context)
    return subject, text, html


async def queue_email(
    session: AsyncSession, *, to: str, template: str, community_id: int | None = None, **context: Any
) -> jobs.OutboxJob:
    subject, text, html = render(template, **context)
    return await jobs.enqueue(
        session, SEND_EMAIL, community_id=community_id, to=to, subject=subject, text=text, html=html
    )


def render_html(template: str, **context: Any) -> str:
    """One template's HTML part alone (an owner-edited text's HTML twin: templates/notifications/owner_text)."""
    return _templates.get_template(f"{template}/body.html").render(**context)


async def enqueue_rendered(
    session: AsyncSession, *, to: str, subject: str, text: str, html: str | None, community_id: int | None = None,
    delivery_id: int | None = None,
) -> jobs.OutboxJob:
    """An email already rendered (a catalogue message with its delivery row, a test send)."""
    payload = {"delivery_id": delivery_id} if delivery_id is not None else {}
    return await jobs.enqueue(
        session, SEND_EMAIL, community_id=community_id, to=to, subject=subject, text=text, html=html, **payload
    )

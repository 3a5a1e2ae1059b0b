from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from community.jobs import JobContext
from community.notifications.delivery import build_message, deliver


async def send_email(
    session: AsyncSession, ctx: JobContext, *, to: str, subject: str, text: str, html: str | None
) -> dict[str, str]:
    message_id = f"outbox-{ctx.outbox_id}"
    message = build_message(ctx.settings, to=to, subject=subject, text=text, html=html, message_id=message_id)
    await deliver(ctx.settings, message, file_stem=message_id)
    # Bodies may hold one-time login links: keep only who got what once it is sent.
    return {"to": to, "subject": subject}

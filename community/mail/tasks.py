"""The send job: one email, through SMTP or to an .eml file. A catalogue message carries the id
of its delivery row, which records its state: claimed (`sending`, in its own commit) before the
send, so a job that reruns after the mail went (a worker died before its commit) never sends
it twice; then sent, failed with the server's answer, or bounced (a 5xx refusal at RCPT)."""

from __future__ import annotations

import aiosmtplib
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from community.db import utcnow
from community.jobs import MAX_TRIES, JobContext
from community.mail.delivery import build_message, deliver
from community.mail.models import Delivery

INTERRUPTED = "interrupted while sending (the worker stopped): not sent again, to avoid a duplicate"


async def send_email(
    session: AsyncSession, ctx: JobContext, *, to: str, subject: str, text: str, html: str | None,
    delivery_id: int | None = None,
) -> dict[str, str]:
    message_id = f"outbox-{ctx.outbox_id}"
    message = build_message(ctx.settings, to=to, subject=subject, text=text, html=html, message_id=message_id)
    # Bodies may hold one-time login links: keep only who got what once it is sent.
    kept = {"to": to, "subject": subject}
    if delivery_id is None:  # system mail (login links, email changes): no log row
        await deliver(ctx.settings, message, file_stem=message_id)
        return kept
    async with ctx.sessions() as claim, claim.begin():
        row = await claim.get(Delivery, delivery_id, with_for_update=True)
        if row is None or row.state in ("sent", "failed", "bounced"):
            return kept
        if row.state == "sending":
            row.state, row.error = "failed", INTERRUPTED
            return kept
        row.state = "sending"
    try:
        await deliver(ctx.settings, message, file_stem=message_id)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients[0] if exc.recipients else None
        code = refused.code if refused else 0
        answer = f"{code} {refused.message}" if refused else str(exc)
        if 500 <= code < 600:  # the server refuses this address for good
            await _record(ctx, delivery_id, "bounced", answer)
            return kept
        await _record(ctx, delivery_id, _retry_state(ctx), answer)
        raise
    except aiosmtplib.SMTPResponseException as exc:
        answer = f"{exc.code} {exc.message}"
        if exc.code >= 500:
            await _record(ctx, delivery_id, "failed", answer)
            return kept
        await _record(ctx, delivery_id, _retry_state(ctx), answer)
        raise
    except Exception as exc:  # connection refused, timeout: tried again with the job
        await _record(ctx, delivery_id, _retry_state(ctx), f"{type(exc).__name__}: {exc}")
        raise
    await _record(ctx, delivery_id, "sent", None)
    return kept


def _retry_state(ctx: JobContext) -> str:
    return "failed" if ctx.attempt >= MAX_TRIES else "queued"  # queued: the job tries again


async def _record(ctx: JobContext, delivery_id: int, state: str, error: str | None) -> None:
    async with ctx.sessions() as session, session.begin():
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(state=state, error=error[:2000] if error else None, sent_at=utcnow() if state == "sent" else None)
        )

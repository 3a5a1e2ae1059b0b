"""Access gained and access lost: after an access run, each member it changed is told, one
message per kind (switchable per community and per offer, editable like any catalogue message).

The run's access log rows are taken in batches (`FOR UPDATE SKIP LOCKED`). For a batch, the
delivery rows are written as `sending` and the log rows marked notified in one commit, then the
messages go out, then their outcomes are written: a rerun finds nothing left to take, so nobody
is told twice. A worker that dies between the commit and the outcomes leaves those rows
`sending`; the job's next attempt marks them failed (outcome unknown), never sends them again.
A mail server that cannot be reached puts the batch's untried messages back in line (their rows
deleted, their log rows not notified) and fails the job, which the outbox tries again later."""

from __future__ import annotations

from itertools import groupby
from typing import Any

import aiosmtplib
from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import User
from community.db import utcnow
from community.hubs.models import Community
from community.jobs import JobContext
from community.mail.delivery import Mailer, build_message, refusal_outcome
from community.mail.models import Delivery
from community.mail.tasks import INTERRUPTED
from community.notifications import service
from community.notifications.catalogue import BY_KEY
from community.notifications.tasks import render_message
from community.offers.models import AccessChange, AccessLogEntry, AccessRun, Offer

BATCH = 500
KINDS = (("access_gained", AccessChange.gained), ("access_lost", AccessChange.lost))

RECORD = text("""
UPDATE email_deliveries d
SET state = v.state, error = v.error, sent_at = CASE WHEN v.state = 'sent' THEN now() END
FROM unnest(CAST(:ids AS bigint[]), CAST(:states AS text[]), CAST(:errors AS text[])) AS v(id, state, error)
WHERE d.id = v.id AND d.state = 'sending'
""")


async def send_access_emails(session: AsyncSession, ctx: JobContext, *, run_id: int) -> None:
    run = await session.get(AccessRun, run_id)
    if run is None:
        return
    community_id = run.community_id
    event_key = f"access-run-{run_id}"
    if ctx.attempt > 1:  # an earlier attempt may have died between handing mail over and recording it
        await session.execute(
            update(Delivery)
            .where(Delivery.event_key == event_key, Delivery.state == "sending")
            .values(state="failed", error=INTERRUPTED)
        )
    offer_id = run.scope.get("offer_id")
    offer = await session.get(Offer, offer_id) if offer_id else None
    messages = {}
    for key, change in KINDS:
        item = BY_KEY[key]
        if await service.enabled_for(session, community_id, item, offer_id):
            messages[change] = (item, await service.edited_texts(session, community_id, item))
    community = await session.get_one(Community, community_id)
    base = {
        "community_name": community.name,
        "offer_title": offer.title if offer else "",
        "site_url": ctx.settings.base_url,
        "community_url": f"{ctx.settings.base_url}/communities/{community_id}",
    }
    mailer = Mailer(ctx.settings)  # one SMTP connection for the whole run
    try:
        while await _send_batch(ctx, mailer, run_id, community_id, event_key, base, messages, offer):
            pass
    finally:
        await mailer.close()


async def _send_batch(
    ctx: JobContext, mailer: Mailer, run_id: int, community_id: int, event_key: str, base: dict[str, Any],
    messages: dict[AccessChange, Any], offer: Offer | None,
) -> bool:
    """One batch: claimed and committed, then sent, then recorded. False when none was left."""
    async with ctx.sessions() as claim, claim.begin():
        rows = (
            await claim.execute(
                select(AccessLogEntry.id, AccessLogEntry.user_id, AccessLogEntry.group_name, AccessLogEntry.change, User.email, User.name)
                .join(User, User.id == AccessLogEntry.user_id)
                .where(AccessLogEntry.run_id == run_id, AccessLogEntry.notified_at.is_(None))
                .order_by(AccessLogEntry.user_id, AccessLogEntry.id)
                .limit(BATCH)
                .with_for_update(of=AccessLogEntry, skip_locked=True)
            )
        ).all()
        if not rows:
            return False
        outgoing: list[dict[str, Any]] = []
        for user_id, entries in groupby(rows, key=lambda row: row.user_id):
            entries = list(entries)
            for change, (item, edited) in messages.items():
                groups = [e.group_name for e in entries if e.change is change]
                if groups:
                    subject, body, html = render_message(item, base | {"groups": groups}, edited, offer, name=entries[0].name or "", email=entries[0].email)
                    outgoing.append({"message": item.key, "user_id": user_id, "email": entries[0].email, "subject": subject, "text": body, "html": html})
        claimed = {}
        if outgoing:
            inserted = await claim.execute(
                insert(Delivery)
                .values([
                    {"community_id": community_id, "event_key": event_key, "message": m["message"], "user_id": m["user_id"],
                     "email": m["email"], "subject": m["subject"], "state": "sending"}
                    for m in outgoing
                ])
                .on_conflict_do_nothing(index_elements=["event_key", "message", "email"])
                .returning(Delivery.id, Delivery.message, Delivery.email)
            )
            claimed = {(row.message, row.email): row.id for row in inserted}
        await claim.execute(update(AccessLogEntry).where(AccessLogEntry.id.in_([row.id for row in rows])).values(notified_at=utcnow()))
    sendable = [(claimed[m["message"], m["email"]], m) for m in outgoing if (m["message"], m["email"]) in claimed]
    ids, states, errors = [], [], []
    untried: list[tuple[int, dict[str, Any]]] = []
    for n, (delivery_id, m) in enumerate(sendable):
        stem = f"{event_key}-{m['message']}-{m['user_id']}"
        message = build_message(ctx.settings, to=m["email"], subject=m["subject"], text=m["text"], html=m["html"], message_id=stem)
        try:
            await mailer.connect()
        except (aiosmtplib.SMTPException, OSError):  # no server: nothing was handed over; this one and the rest wait
            untried = sendable[n:]
            break
        try:
            await mailer.send_message(message, stem)
            state, error = "sent", None
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as exc:  # refused: recorded, not retried
            state, error = refusal_outcome(exc)
        except (aiosmtplib.SMTPException, OSError) as exc:  # lost mid-message: this one unknown, the rest wait
            state, error = "failed", f"{INTERRUPTED} ({type(exc).__name__}: {exc})"[:2000]
            untried = sendable[n + 1 :]
            await mailer.close()
        ids.append(delivery_id)
        states.append(state)
        errors.append(error)
        if untried:
            break
    async with ctx.sessions() as record, record.begin():
        if ids:
            await record.execute(RECORD, {"ids": ids, "states": states, "errors": errors})
        if untried:  # back in line for the job's next attempt (a message already sent is not redone)
            await record.execute(delete(Delivery).where(Delivery.id.in_([delivery_id for delivery_id, _ in untried])))
            await record.execute(
                update(AccessLogEntry)
                .where(AccessLogEntry.run_id == run_id, AccessLogEntry.user_id.in_({m["user_id"] for _, m in untried}))
                .values(notified_at=None)
            )
    if untried:
        raise RuntimeError(f"the mail server could not be reached; {len(untried)} access messages wait for the next attempt")
    return True

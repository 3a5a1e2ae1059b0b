"""Outbox job name -> handler. A handler is `async def f(session, ctx: JobContext, **payload)`
and runs inside the transaction that marks its outbox row done."""

from __future__ import annotations

from community.jobs import Handler
from community.notifications import service as notifications
from community.notifications import tasks as notification_tasks

HANDLERS: dict[str, Handler] = {
    notifications.SEND_EMAIL: notification_tasks.send_email,
}

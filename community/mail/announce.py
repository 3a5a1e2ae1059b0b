"""How a domain says what happened: one outbox job per event, in the caller's transaction.

The domains stand below `community/notifications/` and never import it: they announce an event
here with plain values (ids, and the facts of the moment such as an amount or an end date), and
the notifications package, on the top floor, handles the job: it decides who is told what,
renders and delivers (docs/DESIGN.md, "Notifications")."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from community import jobs

NOTIFY = "notifications.announce"


async def announce(session: AsyncSession, event: str, *, community_id: int, **facts: Any) -> jobs.OutboxJob:
    """`facts` must be JSON values. `user_id` names the member the event is about."""
    return await jobs.enqueue(session, NOTIFY, community_id=community_id, event=event, facts=facts)

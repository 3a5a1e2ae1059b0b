"""Reading the delivery log (per community, per member): what the notifications API, the
console's log and a member's page show."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from community.errors import Invalid
from community.mail.models import STATES, Delivery


async def deliveries(
    session: AsyncSession, community_id: int, *, user_id: int | None = None, state: str | None = None,
    before_id: int | None = None, limit: int = 50,
) -> list[Delivery]:
    """Newest first; `before_id` pages on; `user_id` for one member's messages."""
    if state is not None and state not in STATES:
        raise Invalid(f"must be one of {', '.join(STATES)}", field="status")
    query = select(Delivery).where(Delivery.community_id == community_id)
    if user_id is not None:
        query = query.where(Delivery.user_id == user_id)
    if state is not None:
        query = query.where(Delivery.state == state)
    if before_id is not None:
        query = query.where(Delivery.id < before_id)
    return list(await session.scalars(query.order_by(Delivery.id.desc()).limit(max(1, min(limit, 200)))))

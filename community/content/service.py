"""Posts inside hub groups. Reading needs access to the group: owners and admins for now;
members reach groups through offers once the access query exists (issue 3)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import Member
from community.accounts.service import EDITORS
from community.content.models import Post
from community.db import utcnow
from community.errors import Forbidden, Invalid, NotFound, check_storable
from community.hubs import service as hubs
from community.offers import access

TITLE_MAX = 200
BODY_MAX = 100_000


def _clean(title: str, body: str) -> tuple[str, str]:
    title = check_storable(title, "title").strip()
    check_storable(body, "body")
    if not title:
        raise Invalid("must not be blank", field="title")
    if not body.strip():
        raise Invalid("must not be blank", field="body")
    return title, body


async def check_can_read(session: AsyncSession, member: Member, group_id: int) -> None:
    """Owners and admins read every group; anyone else needs access through an offer."""
    await hubs.get_group(session, member.community_id, group_id)
    if member.role not in EDITORS and not await access.can_open(session, member.community_id, member.user_id, group_id):
        raise Forbidden("you have no access to this group")


async def list_posts(
    session: AsyncSession, community_id: int, group_id: int, *, before: int | None, limit: int
) -> list[Post]:
    await hubs.get_group(session, community_id, group_id)
    query = (
        select(Post)
        .where(Post.community_id == community_id, Post.group_id == group_id)
        .order_by(Post.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(Post.id < before)
    return list((await session.scalars(query)).all())


async def get_post(session: AsyncSession, community_id: int, post_id: int) -> Post:
    post = await session.scalar(select(Post).where(Post.id == post_id, Post.community_id == community_id))
    if post is None:
        raise NotFound("post not found")
    return post


async def create_post(
    session: AsyncSession, community_id: int, group_id: int, *, author_id: int, title: str, body: str
) -> Post:
    group = await hubs.get_group(session, community_id, group_id)
    title, body = _clean(title, body)
    post = Post(community_id=community_id, group_id=group.id, author_id=author_id, title=title, body=body)
    session.add(post)
    await session.flush()
    return post


async def update_post(
    session: AsyncSession, community_id: int, post_id: int, *, title: str | None, body: str | None
) -> Post:
    post = await get_post(session, community_id, post_id)
    post.title, post.body = _clean(title if title is not None else post.title, body if body is not None else post.body)
    post.updated_at = utcnow()
    await session.flush()
    return post


async def delete_post(session: AsyncSession, community_id: int, post_id: int) -> None:
    post = await get_post(session, community_id, post_id)
    await session.delete(post)
    await session.flush()


async def count_posts(session: AsyncSession, community_id: int, group_ids: list[int]) -> int:
    if not group_ids:
        return 0
    return await session.scalar(
        select(func.count()).where(Post.community_id == community_id, Post.group_id.in_(group_ids))
    ) or 0

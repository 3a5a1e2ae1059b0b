"""What deleting a hub group or a hub takes with it, told before it happens: the members who
lose access, the posts, and the offers that stop granting it.

It lives on the content floor because that is the lowest floor that sees all three: hub groups
(hubs), the access query (offers) and posts (content). The deletion itself stays
hubs.service.delete_group / delete_hub (posts and offer links go by ON DELETE CASCADE, and
the access run is started through the `hubs.group_deleted` job).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from community.content import service as posts
from community.hubs import service as hubs
from community.hubs.models import Hub, HubGroup
from community.offers import access, grants


@dataclass(frozen=True)
class Deletion:
    hub: Hub | None  # the hub being deleted, or None for one group
    groups: list[HubGroup]  # the groups that go
    members_losing_access: int  # people who open one of them through an offer now (not owners, admins)
    posts: int
    offers: list[tuple[int, str]]  # (id, title) of the offers that grant one of them now


async def _of(session: AsyncSession, community_id: int, hub: Hub | None, groups: list[HubGroup]) -> Deletion:
    ids = [g.id for g in groups]
    return Deletion(
        hub=hub,
        groups=groups,
        members_losing_access=await access.count_reaching(session, community_id, ids),
        posts=await posts.count_posts(session, community_id, ids),
        offers=await grants.offers_granting(session, community_id, ids),
    )


async def of_group(session: AsyncSession, community_id: int, group_id: int) -> Deletion:
    group = await hubs.get_group(session, community_id, group_id)
    return await _of(session, community_id, None, [group])


async def of_hub(session: AsyncSession, community_id: int, hub_id: int) -> Deletion:
    hub = await hubs.get_hub(session, community_id, hub_id)
    return await _of(session, community_id, hub, await hubs.hub_groups(session, community_id, hub_id))

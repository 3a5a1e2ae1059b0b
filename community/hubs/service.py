"""Communities, hubs and hub groups. Every function takes the community it acts in."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from community import jobs
from community.accounts import service as accounts
from community.accounts.models import Member, Role, User
from community.db import flush_or_conflict
from community.errors import Invalid, NotFound, check_storable
from community.hubs.models import Community, Hub, HubGroup
from community.money import validate_currency
from community.origins import (  # a community's slug names its pages' host: a DNS label
    SLUG,
    SLUG_MAX,
)

MIN_GRACE_DAYS, MAX_GRACE_DAYS = 0, 60  # days a member keeps access after a failed renewal


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:SLUG_MAX].strip("-")


def clean_slug(slug: str | None, name: str, field: str = "slug") -> str:
    value = slug.strip().lower() if slug else slugify(name)
    if not value:
        raise Invalid("give a slug of letters and digits (the name has none to derive it from)", field=field)
    if len(value) > SLUG_MAX or not SLUG.match(value):
        raise Invalid(f"lowercase letters, digits and single dashes, at most {SLUG_MAX} characters", field=field)
    return value


def clean_name(name: str, field: str = "name") -> str:
    value = check_storable(name, field).strip()
    if not value:
        raise Invalid("must not be blank", field=field)
    return value


def clean_description(description: str, field: str = "description") -> str:
    return check_storable(description, field).strip()


# ---------------------------------------------------------------- communities


async def create_community(
    session: AsyncSession,
    *,
    creator: User,
    name: str,
    slug: str | None,
    default_currency: str,
    support_email: str | None,
) -> Community:
    community = Community(
        name=clean_name(name),
        slug=clean_slug(slug, name),
        default_currency=validate_currency(default_currency, "default_currency"),
        support_email=accounts.normalize_email(support_email, "support_email") if support_email else None,
    )
    session.add(community)
    await flush_or_conflict(session, field="slug", message="this slug is taken")
    await accounts.join(session, community_id=community.id, user_id=creator.id, role=Role.owner)
    return community


async def get_community(session: AsyncSession, community_id: int) -> Community:
    community = await session.get(Community, community_id)
    if community is None:
        raise NotFound("community not found")
    return community


async def communities_of(session: AsyncSession, user_id: int) -> list[tuple[Community, Member]]:
    rows = await session.execute(
        select(Community, Member)
        .join(Member, Member.community_id == Community.id)
        .where(Member.user_id == user_id)
        .order_by(Community.id)
    )
    return [(c, m) for c, m in rows.all()]


async def update_community(
    session: AsyncSession,
    community: Community,
    *,
    name: str | None = None,
    slug: str | None = None,
    default_currency: str | None = None,
    support_email: str | None = None,
    clear_support_email: bool = False,
    grace_days: int | None = None,
) -> Community:
    if name is not None:
        community.name = clean_name(name)
    if slug is not None:
        community.slug = clean_slug(slug, community.name)
    if default_currency is not None:
        community.default_currency = validate_currency(default_currency, "default_currency")
    if support_email is not None:
        community.support_email = accounts.normalize_email(support_email, "support_email")
    elif clear_support_email:
        community.support_email = None
    if grace_days is not None:
        if not MIN_GRACE_DAYS <= grace_days <= MAX_GRACE_DAYS:
            raise Invalid(f"must be between {MIN_GRACE_DAYS} and {MAX_GRACE_DAYS} days", field="grace_days")
        community.grace_days = grace_days
    await flush_or_conflict(session, field="slug", message="this slug is taken")
    return community


# ---------------------------------------------------------------- hubs


async def list_hubs(session: AsyncSession, community_id: int) -> list[tuple[Hub, list[HubGroup]]]:
    hubs = (
        await session.scalars(select(Hub).where(Hub.community_id == community_id).order_by(Hub.position, Hub.id))
    ).all()
    groups = (
        await session.scalars(
            select(HubGroup).where(HubGroup.community_id == community_id).order_by(HubGroup.position, HubGroup.id)
        )
    ).all()
    by_hub: dict[int, list[HubGroup]] = {hub.id: [] for hub in hubs}
    for group in groups:
        by_hub[group.hub_id].append(group)
    return [(hub, by_hub[hub.id]) for hub in hubs]


async def get_hub(session: AsyncSession, community_id: int, hub_id: int) -> Hub:
    hub = await session.scalar(select(Hub).where(Hub.id == hub_id, Hub.community_id == community_id))
    if hub is None:
        raise NotFound("hub not found")
    return hub


async def hub_groups(session: AsyncSession, community_id: int, hub_id: int) -> list[HubGroup]:
    await get_hub(session, community_id, hub_id)
    return list(
        (
            await session.scalars(
                select(HubGroup)
                .where(HubGroup.community_id == community_id, HubGroup.hub_id == hub_id)
                .order_by(HubGroup.position, HubGroup.id)
            )
        ).all()
    )


async def _next_position(session: AsyncSession, column, *where) -> int:
    return (await session.scalar(select(func.coalesce(func.max(column), -1)).where(*where))) + 1


async def create_hub(
    session: AsyncSession, community_id: int, *, name: str, slug: str | None, description: str
) -> Hub:
    hub = Hub(
        community_id=community_id,
        name=clean_name(name),
        slug=clean_slug(slug, name),
        description=clean_description(description),
        position=await _next_position(session, Hub.position, Hub.community_id == community_id),
    )
    session.add(hub)
    await flush_or_conflict(session, field="slug", message="a hub with this slug exists in this community")
    return hub


async def update_hub(
    session: AsyncSession,
    community_id: int,
    hub_id: int,
    *,
    name: str | None = None,
    slug: str | None = None,
    description: str | None = None,
) -> Hub:
    hub = await get_hub(session, community_id, hub_id)
    if name is not None:
        hub.name = clean_name(name)
    if slug is not None:
        hub.slug = clean_slug(slug, hub.name)
    if description is not None:
        hub.description = clean_description(description)
    await flush_or_conflict(session, field="slug", message="a hub with this slug exists in this community")
    return hub


GROUP_DELETED = "hubs.group_deleted"


async def _announce_deleted(session: AsyncSession, community_id: int, groups: list[HubGroup]) -> None:
    """Higher floors (offers: access runs, the log, emails) react through a job: hubs never
    imports them."""
    for group in groups:
        await jobs.enqueue(session, GROUP_DELETED, community_id=community_id, group_id=group.id, group_name=group.name)


async def delete_hub(session: AsyncSession, community_id: int, hub_id: int) -> None:
    hub = await get_hub(session, community_id, hub_id)
    await _announce_deleted(session, community_id, await hub_groups(session, community_id, hub_id))
    await session.delete(hub)  # its groups and their posts go with it (ON DELETE CASCADE)
    await session.flush()


async def _reorder(session: AsyncSession, rows: list, wanted: list[int], what: str) -> None:
    if len(wanted) != len(set(wanted)) or set(wanted) != {row.id for row in rows}:
        raise Invalid(f"must list every {what} of this container exactly once", field="ids")
    by_id = {row.id: row for row in rows}
    for position, row_id in enumerate(wanted):
        by_id[row_id].position = position
    await session.flush()


async def reorder_hubs(session: AsyncSession, community_id: int, hub_ids: list[int]) -> None:
    hubs = list((await session.scalars(select(Hub).where(Hub.community_id == community_id))).all())
    await _reorder(session, hubs, hub_ids, "hub")


# ---------------------------------------------------------------- groups


async def get_group(session: AsyncSession, community_id: int, group_id: int) -> HubGroup:
    group = await session.scalar(
        select(HubGroup).where(HubGroup.id == group_id, HubGroup.community_id == community_id)
    )
    if group is None:
        raise NotFound("group not found")
    return group


GROUP_SLUG_TAKEN = "a group with this slug exists in this community"


async def create_group(
    session: AsyncSession, community_id: int, hub_id: int, *, name: str, slug: str | None, description: str
) -> HubGroup:
    hub = await get_hub(session, community_id, hub_id)
    group = HubGroup(
        community_id=community_id,
        hub_id=hub.id,
        name=clean_name(name),
        slug=clean_slug(slug, name),
        description=clean_description(description),
        position=await _next_position(session, HubGroup.position, HubGroup.hub_id == hub.id),
    )
    session.add(group)
    await flush_or_conflict(session, field="slug", message=GROUP_SLUG_TAKEN)
    return group


async def update_group(
    session: AsyncSession,
    community_id: int,
    group_id: int,
    *,
    name: str | None = None,
    slug: str | None = None,
    description: str | None = None,
    hub_id: int | None = None,
) -> HubGroup:
    group = await get_group(session, community_id, group_id)
    move: tuple[int, int] | None = None  # (hub, position)
    if hub_id is not None and hub_id != group.hub_id:
        # Read before anything changes: a query would autoflush a taken slug as a 500.
        try:
            target = await get_hub(session, community_id, hub_id)
        except NotFound:
            raise Invalid("no such hub in this community", field="hub_id") from None
        move = (target.id, await _next_position(session, HubGroup.position, HubGroup.hub_id == target.id))
    if name is not None:
        group.name = clean_name(name)
    if slug is not None:
        group.slug = clean_slug(slug, group.name)
    if description is not None:
        group.description = clean_description(description)
    if move is not None:
        group.hub_id, group.position = move
    await flush_or_conflict(session, field="slug", message=GROUP_SLUG_TAKEN)
    return group


async def delete_group(session: AsyncSession, community_id: int, group_id: int) -> None:
    deleted = (
        await session.execute(
            delete(HubGroup)
            .where(HubGroup.id == group_id, HubGroup.community_id == community_id)
            .returning(HubGroup.id, HubGroup.name)
        )
    ).first()
    if deleted is None:
        raise NotFound("group not found")
    await jobs.enqueue(session, GROUP_DELETED, community_id=community_id, group_id=deleted.id, group_name=deleted.name)


async def reorder_groups(session: AsyncSession, community_id: int, hub_id: int, group_ids: list[int]) -> None:
    await get_hub(session, community_id, hub_id)
    groups = list(
        (
            await session.scalars(
                select(HubGroup).where(HubGroup.community_id == community_id, HubGroup.hub_id == hub_id)
            )
        ).all()
    )
    await _reorder(session, groups, group_ids, "group")

"""Which hub groups an offer grants, and editing them: the change reaches every holder of the
offer at commit (access is derived); a run then logs and emails the differences.

Grandfathering ("new buyers only") narrows a link to a range of entitlement ids instead of
writing a row per existing buyer: the ids handed out so far are "existing", later ones "new".
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from community.errors import Invalid
from community.hubs.models import HubGroup
from community.offers import runs
from community.offers.access import GRANTS, LIVE
from community.offers.models import AccessRun, Offer, OfferGroup, OfferStatus
from community.offers.service import get_offer
from community.settings import Settings


class EditMode(enum.StrEnum):
    everyone = "everyone"                  # existing buyers too (the default)
    new_buyers_only = "new_buyers_only"    # existing buyers keep exactly what they had


@dataclass(frozen=True)
class GrantedGroup:
    group_id: int
    name: str
    everyone: bool          # false when grandfathering narrowed it
    entitlement_ids: str    # the id ranges it applies to, as PostgreSQL prints them


@dataclass(frozen=True)
class GroupsEdited:
    granted: list[GrantedGroup]  # what the offer grants after the edit
    run: AccessRun | None        # the run telling holders what changed (none when nobody's access did)


async def _first_new_entitlement_id(session: AsyncSession) -> int:
    """Ids up to here are handed out (some maybe still in flight): those are existing buyers."""
    sequence = await session.scalar(text("SELECT pg_get_serial_sequence('entitlements', 'id')"))
    return await session.scalar(text(f"SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM {sequence}"))


async def granted_groups(session: AsyncSession, community_id: int, offer_id: int) -> list[GrantedGroup]:
    await get_offer(session, community_id, offer_id)
    rows = await session.execute(
        text(
            "SELECT og.group_id, hg.name, og.entitlement_ids = '{(,)}'::int8multirange AS everyone, "
            "og.entitlement_ids::text AS ranges FROM offer_groups og JOIN hub_groups hg ON hg.id = og.group_id "
            "WHERE og.offer_id = :offer_id ORDER BY hg.position, hg.id"
        ),
        {"offer_id": offer_id},
    )
    return [GrantedGroup(r.group_id, r.name, r.everyone, r.ranges) for r in rows]


async def offers_granting(session: AsyncSession, community_id: int, group_ids: list[int]) -> list[tuple[int, str]]:
    """(id, title) of the offers that grant any of these groups (to anyone), by title."""
    if not group_ids:
        return []
    rows = await session.execute(
        text(
            "SELECT DISTINCT o.id, o.title FROM offer_groups og JOIN offers o ON o.id = og.offer_id "
            "WHERE og.community_id = :community_id AND o.community_id = :community_id "
            "AND og.group_id = ANY(CAST(:group_ids AS bigint[])) ORDER BY o.title, o.id"
        ),
        {"community_id": community_id, "group_ids": list(group_ids)},
    )
    return [(r.id, r.title) for r in rows]


def landing_url(settings: Settings, community_slug: str, offer_slug: str) -> str:
    """An offer's landing page: on its community's own origin, never the platform's (DESIGN §7)."""
    return f"{settings.pages_origin(community_slug)}/o/{community_slug}/{offer_slug}"


async def offers_opening(session: AsyncSession, community_id: int, group_ids: Sequence[int]) -> dict[int, list[Offer]]:
    """For each group, the published offers that would open it to someone buying now (what a
    member who cannot open it is shown). A link kept for existing buyers only ("new buyers
    only" removed it) opens nothing for a new one: its id range ends."""
    if not group_ids:
        return {}
    rows = await session.execute(
        select(OfferGroup.group_id, Offer)
        .join(Offer, Offer.id == OfferGroup.offer_id)
        .where(
            OfferGroup.community_id == community_id,
            Offer.community_id == community_id,
            OfferGroup.group_id.in_(list(group_ids)),
            Offer.status == OfferStatus.published,
            func.upper_inf(OfferGroup.entitlement_ids),
        )
        .order_by(OfferGroup.group_id, Offer.amount, Offer.id)
    )
    found: dict[int, list[Offer]] = {}
    for group_id, offer in rows.all():
        found.setdefault(group_id, []).append(offer)
    return found


async def edit_groups(
    session: AsyncSession,
    *,
    community_id: int,
    offer_id: int,
    add: list[int],
    remove: list[int],
    mode: EditMode,
) -> GroupsEdited:
    offer = await get_offer(session, community_id, offer_id, lock=True)  # concurrent edits queue up here
    await _check_edit(session, community_id, add, remove)
    cutoff = await _first_new_entitlement_id(session) if mode is EditMode.new_buyers_only else None
    for group_id in add:
        ranges = "'{(,)}'::int8multirange" if cutoff is None else "int8multirange(int8range(:cutoff, NULL))"
        await session.execute(
            text(
                "INSERT INTO offer_groups (offer_id, group_id, community_id, entitlement_ids) "
                f"VALUES (:offer_id, :group_id, :community_id, {ranges}) "
                "ON CONFLICT (offer_id, group_id) DO UPDATE SET entitlement_ids = "
                + ("EXCLUDED.entitlement_ids" if cutoff is None else "offer_groups.entitlement_ids + EXCLUDED.entitlement_ids")
            ),
            {"offer_id": offer.id, "group_id": group_id, "community_id": community_id, "cutoff": cutoff},
        )
    for group_id in remove:
        if cutoff is None:
            await session.execute(
                text("DELETE FROM offer_groups WHERE offer_id = :offer_id AND group_id = :group_id"),
                {"offer_id": offer.id, "group_id": group_id},
            )
        else:
            await session.execute(
                text(
                    "UPDATE offer_groups SET entitlement_ids = entitlement_ids * int8multirange(int8range(NULL, :cutoff)) "
                    "WHERE offer_id = :offer_id AND group_id = :group_id"
                ),
                {"offer_id": offer.id, "group_id": group_id, "cutoff": cutoff},
            )
    await session.execute(
        text("DELETE FROM offer_groups WHERE offer_id = :offer_id AND isempty(entitlement_ids)"), {"offer_id": offer.id}
    )
    changed = sorted(set(add) | set(remove))
    run = None
    # New-buyers-only edits change nobody's access now: no run, nothing to tell.
    if changed and mode is EditMode.everyone:
        run = await runs.start_run(
            session,
            community_id=community_id,
            cause=f"{offer.title}: groups edited",
            scope={"offer_id": offer.id, "group_ids": changed},
        )
    return GroupsEdited(await granted_groups(session, community_id, offer.id), run)


async def _check_edit(session: AsyncSession, community_id: int, add: list[int], remove: list[int]) -> None:
    """The edit's own rules, the same for the change and its preview."""
    if set(add) & set(remove):
        raise Invalid("a group cannot be both added and removed", field="remove")
    if add:
        found = set(
            (
                await session.scalars(
                    select(HubGroup.id).where(HubGroup.id.in_(add), HubGroup.community_id == community_id)
                )
            ).all()
        )
        if missing := [g for g in add if g not in found]:
            raise Invalid(f"no such group in this community: {missing[0]}", field="add")


# ---------------------------------------------------------------- the preview (a dry run)


@dataclass(frozen=True)
class GroupImpact:
    """What an edit would do to one group for the people who hold the offer now, by their
    effective access (through any offer they hold): a holder who keeps the group through
    another offer does not lose it, and one who already opens it does not gain it."""

    group_id: int
    name: str
    change: str    # "add" or "remove"
    gaining: int   # holders who cannot open it now and would
    losing: int    # holders who open it now and would not
    keeping: int   # holders who open it now and still would


@dataclass(frozen=True)
class EditPreview:
    mode: EditMode
    holders: int   # people holding the offer now (a live entitlement)
    groups: list[GroupImpact]


_HOLDERS = f"""
    SELECT DISTINCT e.user_id FROM entitlements e
    WHERE e.community_id = :community_id AND e.offer_id = :offer_id AND {LIVE}
"""

_COUNT_HOLDERS = text(f"SELECT count(*) FROM ({_HOLDERS}) h")

# Per edited group: how many holders open it now (through any live entitlement), and how many
# of those through an entitlement of another offer. The access query's GRANTS, narrowed to the
# edited groups and to holders (a semi-join on ix_entitlements_user), counted per user and group,
# then per group. About a second per 100,000 holders on a development machine.
_HOLDER = """
    SELECT 1 FROM entitlements h WHERE h.community_id = :community_id AND h.offer_id = :offer_id
    AND h.user_id = e.user_id AND (h.ends_at IS NULL OR h.ends_at > now())
"""
_REACH = text(
    f"""
    WITH edited AS (
        SELECT x.group_id, x.adding, hg.name, hg.position
        FROM unnest(CAST(:group_ids AS bigint[]), CAST(:adding AS boolean[])) AS x(group_id, adding)
        JOIN hub_groups hg ON hg.id = x.group_id AND hg.community_id = :community_id
    ),
    reach AS (
        SELECT e.user_id, og.group_id, bool_or(e.offer_id <> :offer_id) AS elsewhere
        FROM {GRANTS} AND e.community_id = :community_id
          AND og.group_id IN (SELECT group_id FROM edited) AND EXISTS ({_HOLDER})
        GROUP BY e.user_id, og.group_id
    ),
    counted AS (
        SELECT group_id, count(*) AS opening, count(*) FILTER (WHERE elsewhere) AS elsewhere FROM reach GROUP BY group_id
    )
    SELECT g.group_id, g.name, g.adding, COALESCE(c.opening, 0) AS opening, COALESCE(c.elsewhere, 0) AS elsewhere
    FROM edited g LEFT JOIN counted c ON c.group_id = g.group_id
    ORDER BY g.position, g.group_id
    """
).bindparams(bindparam("group_ids"), bindparam("adding"))


async def count_holders(session: AsyncSession, community_id: int, offer_id: int) -> int:
    """People holding the offer now (one however many of its entitlements they hold)."""
    return await session.scalar(_COUNT_HOLDERS, {"community_id": community_id, "offer_id": offer_id}) or 0


async def preview_edit(
    session: AsyncSession,
    *,
    community_id: int,
    offer_id: int,
    add: list[int],
    remove: list[int],
    mode: EditMode,
) -> EditPreview:
    """What edit_groups would do to the holders' access, changing nothing: the numbers an owner
    reads before choosing "everyone who holds it" or "new buyers only". Refuses what the edit
    refuses. A removed group the offer does not grant, or an added one it grants to all,
    changes nobody (0 gaining, 0 losing)."""
    offer = await get_offer(session, community_id, offer_id)
    await _check_edit(session, community_id, add, remove)
    holders = await count_holders(session, community_id, offer.id)
    edited = {g: True for g in add} | {g: False for g in remove}
    if not edited:
        return EditPreview(mode, holders, [])
    rows = await session.execute(
        _REACH,
        {
            "community_id": community_id,
            "offer_id": offer.id,
            "group_ids": list(edited),
            "adding": list(edited.values()),
        },
    )
    impacts = []
    for r in rows:
        if mode is EditMode.new_buyers_only:  # existing entitlements keep exactly what they open
            gaining, losing, keeping = 0, 0, r.opening
        elif r.adding:  # the offer grants it to every holder
            gaining, losing, keeping = holders - r.opening, 0, r.opening
        else:  # the offer stops granting it: those who reach it only through this offer lose it
            gaining, losing, keeping = 0, r.opening - r.elsewhere, r.elsewhere
        impacts.append(GroupImpact(r.group_id, r.name, "add" if r.adding else "remove", gaining, losing, keeping))
    return EditPreview(mode, holders, impacts)

"""Which hub groups an offer grants, and editing them: the change reaches every holder of the
offer at commit (access is derived); a run then logs and emails the differences.

Grandfathering ("new buyers only") narrows a link to a range of entitlement ids instead of
writing a row per existing buyer: the ids handed out so far are "existing", later ones "new".
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from community.errors import Invalid
from community.hubs.models import HubGroup
from community.offers import runs
from community.offers.models import Offer, OfferGroup, OfferStatus
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
) -> list[GrantedGroup]:
    offer = await get_offer(session, community_id, offer_id, lock=True)  # concurrent edits queue up here
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
    # New-buyers-only edits change nobody's access now: no run, nothing to tell.
    if changed and mode is EditMode.everyone:
        await runs.start_run(
            session,
            community_id=community_id,
            cause=f"{offer.title}: groups edited",
            scope={"offer_id": offer.id, "group_ids": changed},
        )
    return await granted_groups(session, community_id, offer.id)

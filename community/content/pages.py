"""The member's pages of a community: its page (the groups they can open and, for the others,
the published offers that would open them) and a group's posts, read through the same access
check as the API. Every member page (billing and resell rights too) shares one navigation
(templates/member.html), served by the app-wide `area` dependency provided here."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Template

from community.accounts import service as accounts
from community.accounts.guards import provide_viewer
from community.affiliates import service as affiliates
from community.content import service
from community.errors import Forbidden, NotAuthenticated
from community.hubs import service as hubs
from community.hubs.member_area import MemberArea, MemberAreaOf, member_area
from community.hubs.models import Community
from community.money import format_amount
from community.offers import access, grants
from community.offers.models import Offer, Pricing
from community.settings import Settings
from community.web import Cursor, Db, ObjectId

POSTS_PER_PAGE = 20


async def provide_member_area(community_id: FromPath[int], request: Request, db: Db) -> MemberArea:
    """Log-in required; anyone with a place in the community (else 404, as the API answers)."""
    viewer = await provide_viewer(request, db)
    if viewer is None:
        raise NotAuthenticated("log in to see this page")  # pages: log in, then come back here
    area = await member_area(db, community_id, viewer.user_id, resells=False)
    return dataclasses.replace(area, resells=await affiliates.has_program_in(db, viewer.user_id, community_id))


def price_text(offer: Offer) -> str:
    if offer.pricing is Pricing.free:
        return "Free"
    amount = format_amount(offer.amount, offer.currency)
    if offer.pricing is Pricing.recurring:
        months = offer.interval_months or 1
        return f"{amount} every month" if months == 1 else f"{amount} every {months} months"
    return f"{amount} for {offer.access_days} days" if offer.access_days else f"{amount} once"


def offer_links(settings: Settings, community: Community, offers: list[Offer]) -> list[dict[str, Any]]:
    """Links to the offers' landing pages, on the community's own origin (owner code runs there,
    never on this page)."""
    return [
        {"title": o.title, "price": price_text(o), "url": grants.landing_url(settings, community.slug, o.slug)}
        for o in offers
    ]


class MemberPages(Controller):
    include_in_schema = False

    @get("/communities/{community_id:int}")
    async def community(self, area: MemberAreaOf, db: Db, state: State) -> Template:
        community_id = area.community.id
        everything = area.member.role in accounts.EDITORS  # as the API's access check: they open every group
        open_ids = set() if everything else set(await access.groups_of(db, community_id, area.me.id))
        listed = await hubs.list_hubs(db, community_id)
        locked_ids = [g.id for _, groups in listed for g in groups if not everything and g.id not in open_ids]
        opening = await grants.offers_opening(db, community_id, locked_ids)
        yours, locked = [], []
        for hub, groups in listed:
            if mine := [g for g in groups if everything or g.id in open_ids]:
                yours.append((hub, mine))
            # A locked group no offer opens stays unlisted (an internal group, say).
            if others := [(g, offer_links(state.settings, area.community, opening[g.id])) for g in groups if g.id in opening]:
                locked.append((hub, others))
        return area.page("content/community.html", "groups", yours=yours, locked=locked)

    @get("/communities/{community_id:int}/groups/{group_id:int}")
    async def group(self, group_id: ObjectId, area: MemberAreaOf, db: Db, state: State, before: Cursor = None) -> Template:
        community_id = area.community.id
        group = await hubs.get_group(db, community_id, group_id)
        hub = await hubs.get_hub(db, community_id, group.hub_id)
        try:
            await service.check_can_read(db, area.member, group.id)
        except Forbidden as exc:  # the API's answer, with the offers that would open the group
            offers = (await grants.offers_opening(db, community_id, [group.id])).get(group.id, [])
            return area.page(
                "content/group.html", "groups", group=group, hub=hub, refused=exc.detail,
                offers=offer_links(state.settings, area.community, offers), status_code=exc.status_code,
            )
        posts = await service.list_posts(db, community_id, group.id, before=before, limit=POSTS_PER_PAGE)
        authors = await accounts.names_of(db, {p.author_id for p in posts if p.author_id is not None})
        return area.page(
            "content/group.html", "groups", group=group, hub=hub, refused=None, posts=posts, authors=authors,
            older=posts[-1].id if len(posts) == POSTS_PER_PAGE else None, paged=before is not None,
        )

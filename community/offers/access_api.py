"""Access API: which groups people can open, entitlements (comps, claims, ends), the groups an
offer grants (with grandfathering), and the progress of access-change runs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import ResponseHeader, State
from litestar.di import Provide
from litestar.params import JSONBody, QueryParameter

from community.accounts import service as accounts
from community.accounts.guards import (
    COMMUNITY_GUARDS,
    CurrentPrincipal,
    StaffMember,
    bearer_token,
    provide_principal,
    token_rejected,
)
from community.db import get_in_community
from community.errors import NotFound
from community.hubs import service as hubs
from community.inputs import Instant
from community.offers import access, entitlements, grants, runs
from community.offers.models import AccessRun
from community.web import Cursor, Db, ObjectId, Page, PageLimit, page_of

Ids = Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]], msgspec.Meta(max_length=200)]


class GroupsEdit(msgspec.Struct, forbid_unknown_fields=True):
    add: Ids = []
    remove: Ids = []
    mode: Literal["everyone", "new_buyers_only"] = "everyone"


class GrantedGroupOut(msgspec.Struct):
    group_id: int
    name: str
    everyone: bool
    entitlement_ids: str


class Comp(msgspec.Struct, forbid_unknown_fields=True):
    """Give someone an offer for free, optionally until a date."""

    email: Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
    offer_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    ends_at: Instant | None = None
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class End(msgspec.Struct, forbid_unknown_fields=True):
    """Served by billing (memberships_api), which also cancels a running Stripe subscription."""

    status: Literal["cancelled", "refunded", "expired"]
    at: Instant | None = None
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


class Reopen(msgspec.Struct, forbid_unknown_fields=True):
    ends_at: Instant | None = None
    reason: Annotated[str, msgspec.Meta(max_length=200)] = "reopened"


class EventOut(msgspec.Struct):
    status: str
    ends_at: dt.datetime | None
    reason: str
    at: dt.datetime


class EntitlementOut(msgspec.Struct):
    id: int
    offer_id: int
    user_id: int
    source: str
    status: str
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    live: bool
    history: list[EventOut] = []
    note: str = ""  # staff's note (a comp's reason, say)


class RunOut(msgspec.Struct):
    id: int
    cause: str
    state: str
    total: int
    done: int
    percent_done: float
    errors: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


class GroupImpactOut(msgspec.Struct):
    group_id: int
    name: str
    change: str    # add | remove
    gaining: int   # holders who cannot open it now and would
    losing: int    # holders who open it now and would not (those who keep it through another offer do not count)
    keeping: int   # holders who open it now and still would


class GroupsPreviewOut(msgspec.Struct):
    mode: str
    holders: int   # people holding the offer now
    groups: list[GroupImpactOut]


class HolderOut(msgspec.Struct):
    entitlement_id: int
    user_id: int
    email: str
    name: str
    source: str
    status: str
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    live: bool


ACCESS_RUN_HEADER = "Access-Run-Id"


class GroupIds(msgspec.Struct):
    group_ids: list[int]


class GroupMember(msgspec.Struct):
    user_id: int
    email: str
    name: str


class OpeningOffer(msgspec.Struct):
    """A published offer that would open a group to someone buying now, and its landing page
    (on the community's own origin)."""

    id: int
    title: str
    slug: str
    pricing: str
    amount: int
    currency: str
    interval_months: int | None
    access_days: int | None
    landing_url: str


def entitlement_out(entitlement, events=()) -> EntitlementOut:
    return EntitlementOut(
        id=entitlement.id,
        offer_id=entitlement.offer_id,
        user_id=entitlement.user_id,
        source=entitlement.source.value,
        status=entitlement.status.value,
        starts_at=entitlement.starts_at,
        ends_at=entitlement.ends_at,
        live=entitlements.is_live(entitlement),
        history=[EventOut(e.status.value, e.ends_at, e.reason, e.at) for e in events],
        note=entitlement.note,
    )


def holder_out(holder: entitlements.Holder) -> HolderOut:
    e = holder.entitlement
    return HolderOut(
        entitlement_id=e.id,
        user_id=e.user_id,
        email=holder.email,
        name=holder.name,
        source=e.source.value,
        status=e.status.value,
        starts_at=e.starts_at,
        ends_at=e.ends_at,
        live=entitlements.is_live(e),
    )


def _run_out(run: AccessRun) -> RunOut:
    return RunOut(
        id=run.id,
        cause=run.cause,
        state=run.state.value,
        total=run.total,
        done=run.done,
        percent_done=runs.percent_done(run),
        errors=run.errors,
        created_at=run.created_at,
        finished_at=run.finished_at,
    )


async def _require_member(db, community_id: int, user_id: int) -> None:
    if await accounts.membership(db, community_id, user_id) is None:
        raise NotFound("member not found")


class AccessCheck(msgspec.Struct):
    allowed: bool


class AccessCheckController(Controller):
    """The hot path: one statement on the access check's own connection pool, no ORM session
    (see access.ACCESS_CHECK; the pool is opened in the app's lifespan)."""

    path = "/communities/{community_id:int}/groups/{group_id:int}/access"
    tags = ["access"]

    @get("/", summary="Can I open this group? (owners and admins always can)")
    async def check(self, community_id: ObjectId, group_id: ObjectId, request: Request, state: State) -> AccessCheck:
        token = bearer_token(request)
        row = await access.check(
            state.access_pool, token_hash=accounts.hash_secret(token), community_id=community_id, group_id=group_id
        )
        if row is None:
            raise token_rejected()
        if not row["is_member"] or not row["group_exists"]:
            raise NotFound("group not found")
        return AccessCheck(allowed=row["allowed"])


class AccessController(Controller):
    path = "/communities/{community_id:int}"
    tags = ["access"]
    dependencies = COMMUNITY_GUARDS

    @get("/me/groups", summary="The groups I can open (through my offers; staff open everything)")
    async def my_groups(self, participant: StaffMember, db: Db) -> GroupIds:
        if participant.role in accounts.EDITORS:
            return GroupIds([g.id for _, groups in await hubs.list_hubs(db, participant.community_id) for g in groups])
        return GroupIds(await access.groups_of(db, participant.community_id, participant.user_id))

    @get("/groups/{group_id:int}/offers", summary="The published offers that would open a group to someone buying now")
    async def offers_opening(self, group_id: ObjectId, participant: StaffMember, db: Db, state: State) -> list[OpeningOffer]:
        await hubs.get_group(db, participant.community_id, group_id)
        community = await hubs.get_community(db, participant.community_id)
        found = await grants.offers_opening(db, participant.community_id, [group_id])
        return [
            OpeningOffer(
                id=o.id, title=o.title, slug=o.slug, pricing=o.pricing.value, amount=o.amount, currency=o.currency,
                interval_months=o.interval_months, access_days=o.access_days,
                landing_url=grants.landing_url(state.settings, community.slug, o.slug),
            )
            for o in found.get(group_id, [])
        ]

    @get("/members/{user_id:int}/groups", summary="The groups a member can open through their offers")
    async def member_groups(self, user_id: ObjectId, member: StaffMember, db: Db) -> GroupIds:
        await _require_member(db, member.community_id, user_id)
        return GroupIds(await access.groups_of(db, member.community_id, user_id))

    @get("/groups/{group_id:int}/members", summary="Who can open a group through offers (by user id, keyset pages)")
    async def group_members(
        self, group_id: ObjectId, member: StaffMember, db: Db, after: Cursor = None, limit: PageLimit = 50
    ) -> Page[GroupMember]:
        await hubs.get_group(db, member.community_id, group_id)
        rows = await access.members_of(db, member.community_id, group_id, after=after or 0, limit=limit)
        return page_of([GroupMember(r.user_id, r.email, r.name) for r in rows], limit, lambda m: m.user_id)

    @get("/members/{user_id:int}/entitlements", summary="A member's entitlements")
    async def member_entitlements(self, user_id: ObjectId, member: StaffMember, db: Db) -> list[EntitlementOut]:
        await _require_member(db, member.community_id, user_id)
        return [entitlement_out(e) for e in await entitlements.of_member(db, member.community_id, user_id)]

    @post("/entitlements", status_code=201, summary="Give someone an offer for free (a comp), optionally until a date")
    async def comp(self, data: JSONBody[Comp], editor: StaffMember, db: Db) -> EntitlementOut:
        entitlement = await entitlements.comp(
            db,
            community_id=editor.community_id,
            offer_id=data.offer_id,
            email=data.email,
            ends_at=data.ends_at,
            actor_id=editor.user_id,
            note=data.note,
        )
        return entitlement_out(entitlement)

    @get("/entitlements/{entitlement_id:int}", summary="An entitlement with its history")
    async def read_entitlement(self, entitlement_id: ObjectId, member: StaffMember, db: Db) -> EntitlementOut:
        entitlement = await entitlements.get_entitlement(db, member.community_id, entitlement_id)
        return entitlement_out(entitlement, await entitlements.history(db, member.community_id, entitlement_id))

    @post("/entitlements/{entitlement_id:int}/reopen", status_code=200, summary="Make an ended entitlement grant again")
    async def reopen(self, entitlement_id: ObjectId, data: JSONBody[Reopen], editor: StaffMember, db: Db) -> EntitlementOut:
        entitlement = await entitlements.reopen(
            db,
            community_id=editor.community_id,
            entitlement_id=entitlement_id,
            ends_at=data.ends_at,
            actor_id=editor.user_id,
            reason=data.reason,
        )
        return entitlement_out(entitlement)

    @get("/offers/{offer_id:int}/groups", summary="The groups an offer grants (and to which entitlements)")
    async def offer_groups(self, offer_id: ObjectId, member: StaffMember, db: Db) -> list[GrantedGroupOut]:
        return [GrantedGroupOut(**g.__dict__) for g in await grants.granted_groups(db, member.community_id, offer_id)]

    @put(
        "/offers/{offer_id:int}/groups",
        summary="Add or remove groups: for everyone, or for new buyers only",
        description=f"An edit for everyone starts an access run (its progress: GET access-runs/{{id}}); its id is "
        f"in the {ACCESS_RUN_HEADER} response header. New-buyers-only edits change nobody's access now: no run.",
        response_headers=[ResponseHeader(name=ACCESS_RUN_HEADER, description="The access run's id (edits for everyone)", documentation_only=True)],
    )
    async def edit_offer_groups(
        self, offer_id: ObjectId, data: JSONBody[GroupsEdit], editor: StaffMember, db: Db
    ) -> Response[list[GrantedGroupOut]]:
        edited = await grants.edit_groups(
            db,
            community_id=editor.community_id,
            offer_id=offer_id,
            add=data.add,
            remove=data.remove,
            mode=grants.EditMode(data.mode),
        )
        headers = {ACCESS_RUN_HEADER: str(edited.run.id)} if edited.run else {}
        return Response([GrantedGroupOut(**g.__dict__) for g in edited.granted], headers=headers)

    @post(
        "/offers/{offer_id:int}/groups/preview",
        status_code=200,
        summary="What an edit of the offer's groups would do to its holders, changing nothing",
        description="The same body and refusals as PUT .../groups. Per group: how many people holding the offer now "
        "would gain it, lose it, or keep it, by their effective access (a holder who opens a group through another "
        "offer does not lose it). New buyers only: nobody gains or loses now.",
    )
    async def preview_offer_groups(
        self, offer_id: ObjectId, data: JSONBody[GroupsEdit], member: StaffMember, db: Db
    ) -> GroupsPreviewOut:
        preview = await grants.preview_edit(
            db,
            community_id=member.community_id,
            offer_id=offer_id,
            add=data.add,
            remove=data.remove,
            mode=grants.EditMode(data.mode),
        )
        return GroupsPreviewOut(
            mode=preview.mode.value, holders=preview.holders, groups=[GroupImpactOut(**g.__dict__) for g in preview.groups]
        )

    @get("/offers/{offer_id:int}/entitlements", summary="Who holds an offer: its entitlements, newest first (keyset pages)")
    async def offer_holders(
        self,
        offer_id: ObjectId,
        member: StaffMember,
        db: Db,
        after: Cursor = None,
        limit: PageLimit = 50,
        live: Annotated[
            bool | None, QueryParameter(description="true: access now; false: access over; all when left out")
        ] = None,
    ) -> Page[HolderOut]:
        rows = await entitlements.holders_of_offer(db, member.community_id, offer_id, after=after, limit=limit, live=live)
        return page_of([holder_out(h) for h in rows], limit, lambda h: h.entitlement_id)

    @get("/access-runs/{run_id:int}", summary="An access-change run's progress")
    async def read_run(self, run_id: ObjectId, member: StaffMember, db: Db) -> RunOut:
        return _run_out(await get_in_community(db, AccessRun, member.community_id, run_id, what="access run"))


class ClaimController(Controller):
    """Claiming a free offer is public, like its landing page: any logged-in user may, and it
    makes them a member of the offer's community."""

    path = "/offers/{offer_id:int}/claim"
    tags = ["access"]
    dependencies = {"principal": Provide(provide_principal)}

    @post("/", status_code=201, summary="Claim a published free offer")
    async def claim(self, offer_id: ObjectId, principal: CurrentPrincipal, db: Db) -> EntitlementOut:
        entitlement = await entitlements.claim_free(db, offer_id=offer_id, user_id=principal.user_id)
        return entitlement_out(entitlement)

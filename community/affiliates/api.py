"""Affiliates through the API: buyers opt in and read their figures (/me/affiliates); staff
list affiliates, owners and admins suspend and reinstate them."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import JSONBody, QueryParameter

from community.accounts.guards import (
    COMMUNITY_GUARDS,
    CurrentPrincipal,
    StaffMember,
    provide_principal,
)
from community.affiliates import service
from community.affiliates.models import Affiliate, AffiliateStatus
from community.affiliates.schemas import (
    AffiliateOut,
    Enrol,
    ProgramOut,
    affiliate_out,
    program_out,
)
from community.offers.models import Offer
from community.web import MAX_ID, Cursor, Db, ObjectId, Page, PageLimit, page_of

OfferFilter = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID, description="Only this offer's affiliates.")]
StatusFilter = Annotated[Literal["active", "suspended"] | None, QueryParameter(description="Only affiliates in this status.")]


async def program(db: Db, state: State, affiliate: Affiliate) -> ProgramOut:
    offer = await db.get_one(Offer, affiliate.offer_id)
    figures = await service.figures(db, affiliate, offer)
    return program_out(affiliate, offer, await service.link_url(db, state.settings, affiliate), figures)


class MyAffiliatesController(Controller):
    path = "/me/affiliates"
    tags = ["affiliates"]
    dependencies = {"principal": Provide(provide_principal)}

    @get("/", summary="Your resell programs: links and figures")
    async def list_mine(self, principal: CurrentPrincipal, db: Db, state: State) -> list[ProgramOut]:
        return [await program(db, state, a) for a, _, _ in await service.my_programs(db, principal.user_id)]

    @post("/", status_code=201, summary="Opt in to an offer's resell program (you must hold the offer)")
    async def enrol(self, data: JSONBody[Enrol], principal: CurrentPrincipal, db: Db, state: State) -> ProgramOut:
        affiliate = await service.enrol(db, user_id=principal.user_id, offer_id=data.offer_id)
        return await program(db, state, affiliate)

    @get("/{affiliate_id:int}", summary="One of your programs: link, description, clicks, sales, earnings per day")
    async def read_mine(self, affiliate_id: ObjectId, principal: CurrentPrincipal, db: Db, state: State) -> ProgramOut:
        return await program(db, state, await service.my_affiliate(db, principal.user_id, affiliate_id))


class AffiliatesController(Controller):
    path = "/communities/{community_id:int}/affiliates"
    tags = ["affiliates"]
    dependencies = COMMUNITY_GUARDS

    @get("/", summary="Affiliates, oldest first (keyset pages)")
    async def list_affiliates(
        self, member: StaffMember, db: Db, after: Cursor = None, limit: PageLimit = 50,
        offer_id: OfferFilter = None, status: StatusFilter = None,
    ) -> Page[AffiliateOut]:
        rows = await service.list_affiliates(
            db, member.community_id, offer_id=offer_id, status=AffiliateStatus(status) if status else None, after=after, limit=limit
        )
        return page_of([affiliate_out(a, u) for a, u in rows], limit, lambda item: item.id)

    @post("/{affiliate_id:int}/suspend", status_code=200, summary="Suspend: the link still leads to the offer but earns nothing")
    async def suspend(self, affiliate_id: ObjectId, editor: StaffMember, db: Db) -> AffiliateOut:
        return affiliate_out(*await service.set_status(db, editor.community_id, affiliate_id, AffiliateStatus.suspended))

    @post("/{affiliate_id:int}/reinstate", status_code=200, summary="Reinstate a suspended affiliate")
    async def reinstate(self, affiliate_id: ObjectId, editor: StaffMember, db: Db) -> AffiliateOut:
        return affiliate_out(*await service.set_status(db, editor.community_id, affiliate_id, AffiliateStatus.active))

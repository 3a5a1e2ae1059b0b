from __future__ import annotations

from litestar import Controller, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import JSONBody

from community.accounts import service as accounts
from community.accounts.guards import (
    COMMUNITY_GUARDS,
    CurrentPrincipal,
    StaffMember,
    provide_principal,
)
from community.accounts.models import Role
from community.hubs import service
from community.hubs.schemas import (
    CommunityCreate,
    CommunityOut,
    CommunityUpdate,
    GroupCreate,
    GroupOut,
    GroupUpdate,
    HubCreate,
    HubOut,
    HubUpdate,
    MemberOut,
    Reorder,
    StaffSet,
    community_out,
    group_out,
    hub_out,
    member_out,
)
from community.web import Db, ObjectId


class CommunitiesController(Controller):
    path = "/communities"
    tags = ["communities"]
    dependencies = {"principal": Provide(provide_principal)}

    @post("/", status_code=201, summary="Create a community; the caller becomes its owner")
    async def create(self, data: JSONBody[CommunityCreate], principal: CurrentPrincipal, db: Db) -> CommunityOut:
        user = await accounts.get_user(db, principal.user_id)
        community = await service.create_community(
            db,
            creator=user,
            name=data.name,
            slug=data.slug,
            default_currency=data.default_currency,
            support_email=data.support_email,
        )
        return community_out(community, Role.owner)

    @get("/", summary="Communities I have a place in")
    async def mine(self, principal: CurrentPrincipal, db: Db) -> list[CommunityOut]:
        return [community_out(c, m.role) for c, m in await service.communities_of(db, principal.user_id)]


class CommunityController(Controller):
    """Everything under one community; the path's community_id is the tenant scope."""

    path = "/communities/{community_id:int}"
    tags = ["communities"]
    dependencies = COMMUNITY_GUARDS

    @get("/", summary="A community's settings")
    async def read(self, member: StaffMember, db: Db) -> CommunityOut:
        return community_out(await service.get_community(db, member.community_id), member.role)

    @patch("/", summary="Change a community's settings (owners, admins)")
    async def update(self, data: JSONBody[CommunityUpdate], editor: StaffMember, db: Db) -> CommunityOut:
        community = await service.get_community(db, editor.community_id)
        community = await service.update_community(
            db,
            community,
            name=data.name,
            slug=data.slug,
            default_currency=data.default_currency,
            support_email=data.support_email,
            clear_support_email=data.clear_support_email,
            grace_days=data.grace_days,
        )
        return community_out(community, editor.role)

    @get("/staff", summary="Owners, admins and managers")
    async def staff(self, member: StaffMember, db: Db) -> list[MemberOut]:
        return [member_out(m, u) for m, u in await accounts.list_staff(db, member.community_id)]

    @put("/staff", summary="Give someone a staff role by email (invites them if new)")
    async def set_staff(
        self, data: JSONBody[StaffSet], editor: StaffMember, principal: CurrentPrincipal, db: Db, state: State
    ) -> MemberOut:
        community = await service.get_community(db, editor.community_id)
        actor = await accounts.get_user(db, principal.user_id)
        member, user = await accounts.set_staff_role(
            db,
            community_id=community.id,
            community_name=community.name,
            actor=editor,
            actor_name=actor.name or actor.email,
            email=data.email,
            role=Role(data.role),
            base_url=state.settings.base_url,
        )
        return member_out(member, user)

    @delete("/staff/{member_id:int}", status_code=204, summary="Take a staff role away (the person stays a member)")
    async def remove_staff(self, member_id: ObjectId, editor: StaffMember, db: Db) -> None:
        await accounts.remove_staff(db, community_id=editor.community_id, actor=editor, member_id=member_id)


class HubsController(Controller):
    path = "/communities/{community_id:int}/hubs"
    tags = ["hubs"]
    dependencies = COMMUNITY_GUARDS

    @get("/", summary="Hubs in order, each with its groups in order")
    async def list_hubs(self, member: StaffMember, db: Db) -> list[HubOut]:
        return [hub_out(h, gs) for h, gs in await service.list_hubs(db, member.community_id)]

    @post("/", status_code=201, summary="Create a hub (owners, admins)")
    async def create_hub(self, data: JSONBody[HubCreate], editor: StaffMember, db: Db) -> HubOut:
        hub = await service.create_hub(db, editor.community_id, name=data.name, slug=data.slug, description=data.description)
        return hub_out(hub)

    @put("/order", summary="Reorder hubs: list every hub id in the new order")
    async def reorder_hubs(self, data: JSONBody[Reorder], editor: StaffMember, db: Db) -> list[HubOut]:
        await service.reorder_hubs(db, editor.community_id, data.ids)
        return [hub_out(h, gs) for h, gs in await service.list_hubs(db, editor.community_id)]

    @get("/{hub_id:int}", summary="One hub with its groups")
    async def read_hub(self, hub_id: ObjectId, member: StaffMember, db: Db) -> HubOut:
        hub = await service.get_hub(db, member.community_id, hub_id)
        return hub_out(hub, await service.hub_groups(db, member.community_id, hub_id))

    @patch("/{hub_id:int}", summary="Rename or describe a hub")
    async def update_hub(self, hub_id: ObjectId, data: JSONBody[HubUpdate], editor: StaffMember, db: Db) -> HubOut:
        hub = await service.update_hub(
            db, editor.community_id, hub_id, name=data.name, slug=data.slug, description=data.description
        )
        return hub_out(hub, await service.hub_groups(db, editor.community_id, hub_id))

    @delete("/{hub_id:int}", status_code=204, summary="Delete a hub with its groups and their posts")
    async def delete_hub(self, hub_id: ObjectId, editor: StaffMember, db: Db) -> None:
        await service.delete_hub(db, editor.community_id, hub_id)

    @post("/{hub_id:int}/groups", status_code=201, summary="Create a group in a hub")
    async def create_group(
        self, hub_id: ObjectId, data: JSONBody[GroupCreate], editor: StaffMember, db: Db
    ) -> GroupOut:
        group = await service.create_group(
            db, editor.community_id, hub_id, name=data.name, slug=data.slug, description=data.description
        )
        return group_out(group)

    @put("/{hub_id:int}/groups/order", summary="Reorder a hub's groups: list every group id in the new order")
    async def reorder_groups(
        self, hub_id: ObjectId, data: JSONBody[Reorder], editor: StaffMember, db: Db
    ) -> list[GroupOut]:
        await service.reorder_groups(db, editor.community_id, hub_id, data.ids)
        return [group_out(g) for g in await service.hub_groups(db, editor.community_id, hub_id)]


class GroupsController(Controller):
    path = "/communities/{community_id:int}/groups"
    tags = ["hubs"]
    dependencies = COMMUNITY_GUARDS

    @get("/{group_id:int}", summary="One group")
    async def read_group(self, group_id: ObjectId, member: StaffMember, db: Db) -> GroupOut:
        return group_out(await service.get_group(db, member.community_id, group_id))

    @patch("/{group_id:int}", summary="Rename, describe or move a group to another hub")
    async def update_group(
        self, group_id: ObjectId, data: JSONBody[GroupUpdate], editor: StaffMember, db: Db
    ) -> GroupOut:
        group = await service.update_group(
            db,
            editor.community_id,
            group_id,
            name=data.name,
            slug=data.slug,
            description=data.description,
            hub_id=data.hub_id,
        )
        return group_out(group)

    @delete("/{group_id:int}", status_code=204, summary="Delete a group and its posts")
    async def delete_group(self, group_id: ObjectId, editor: StaffMember, db: Db) -> None:
        await service.delete_group(db, editor.community_id, group_id)

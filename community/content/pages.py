"""The member's page of a community: the groups they can open (through their offers; staff
open everything)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import FromPath
from litestar.response import Redirect, Template

from community.accounts import service as accounts
from community.accounts.guards import Viewer, provide_viewer
from community.affiliates import service as affiliates
from community.errors import NotFound
from community.hubs import service as hubs
from community.offers import access
from community.web import Db


class MemberPages(Controller):
    include_in_schema = False
    dependencies = {"viewer": Provide(provide_viewer)}

    @get("/communities/{community_id:int}")
    async def community(self, community_id: FromPath[int], viewer: Viewer, db: Db) -> Template | Redirect:
        if viewer is None:
            return Redirect("/login")
        member = await accounts.membership(db, community_id, viewer.user_id)
        if member is None:
            raise NotFound("community not found")
        community = await hubs.get_community(db, community_id)
        everything = member.role in accounts.EDITORS
        open_ids = set() if everything else set(await access.groups_of(db, community_id, viewer.user_id))
        listed = []
        for hub, groups in await hubs.list_hubs(db, community_id):
            mine = [g for g in groups if everything or g.id in open_ids]
            if mine:
                listed.append((hub, mine))
        resells = await affiliates.has_program_in(db, viewer.user_id, community_id)
        return Template("content/community.html", context={"community": community, "hubs": listed, "resells": resells})

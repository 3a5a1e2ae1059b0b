"""The home page and the staff dashboard: communities, their hubs and groups."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import FromPath
from litestar.response import Redirect, Template

from community.accounts import service as accounts
from community.accounts.guards import Viewer, provide_viewer
from community.accounts.service import STAFF
from community.hubs import service
from community.web import Db


class HubPages(Controller):
    include_in_schema = False
    dependencies = {"viewer": Provide(provide_viewer)}

    @get("/")
    async def home(self, viewer: Viewer) -> Template:
        return Template("home.html", context={"logged_in": viewer is not None})

    @get("/dashboard")
    async def dashboard(self, viewer: Viewer, db: Db) -> Template | Redirect:
        if viewer is None:
            return Redirect("/login")
        user = await accounts.get_user(db, viewer.user_id)
        communities = await service.communities_of(db, viewer.user_id)
        return Template("hubs/dashboard.html", context={"user": user, "communities": communities})

    @get("/dashboard/communities/{community_id:int}")
    async def community(self, community_id: FromPath[int], viewer: Viewer, db: Db) -> Template | Redirect:
        if viewer is None:
            return Redirect("/login")
        member = await accounts.require_role(db, community_id, viewer.user_id, STAFF)
        community = await service.get_community(db, community_id)
        hubs = await service.list_hubs(db, community_id)
        return Template("hubs/community.html", context={"community": community, "member": member, "hubs": hubs})

"""The console's home screen."""

from __future__ import annotations

from litestar import Controller, get
from litestar.response import Template

from community.console import service
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, console_page
from community.web import Db


class ConsoleHome(Controller):
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    @get("/dashboard/communities/{community_id:int}")
    async def home(self, frame: CurrentFrame, db: Db) -> Template:
        steps = await service.first_steps(db, frame.community.id)
        return console_page("console/home.html", frame, "home", steps=steps)

"""Unsubscribing from a community's campaigns, from the link every campaign message carries.

- `GET /unsubscribe/{token}`: a page with one button (a mail scanner that follows links
  changes nothing).
- `POST /unsubscribe/{token}`: the button, and RFC 8058 one-click (`List-Unsubscribe-Post:
  List-Unsubscribe=One-Click`, posted by the mail provider): no log-in and no CSRF token (the
  signed token is the authority; it can only ever unsubscribe its own member), idempotent.

An unsubscribe is honoured for later campaigns (and the rest of one still sending), never for
transactional mail (receipts, access, log-in links).
"""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Template

from community.campaigns import service
from community.hubs import service as hubs
from community.web import Db

UNSUBSCRIBE_PATH = "^/unsubscribe/"  # CSRF-exempt (RFC 8058): see app.py


class UnsubscribePages(Controller):
    path = "/unsubscribe"
    include_in_schema = False

    @get("/{token:str}")
    async def confirm(self, token: FromPath[str], db: Db, state: State) -> Template:
        community_id, user_id = service.read_token(state.settings, token)
        name = (await hubs.get_community(db, community_id)).name
        done = await service.is_unsubscribed(db, community_id, user_id)
        return Template("campaigns/unsubscribe.html", context={"community_name": name, "token": token, "done": done})

    @post("/{token:str}", status_code=200)
    async def unsubscribe(self, token: FromPath[str], db: Db, state: State) -> Template:
        community_id, user_id = service.read_token(state.settings, token)
        name = (await hubs.get_community(db, community_id)).name
        await service.unsubscribe(db, community_id, user_id)
        return Template("campaigns/unsubscribe.html", context={"community_name": name, "token": token, "done": True})

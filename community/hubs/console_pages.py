"""The console's hubs and groups: create, rename, describe and reorder hubs; create, rename,
describe, reorder groups and move one to another hub. The same service calls as the API's
/communities/{id}/hubs and /groups, read from the API's own input structs.

Reordering needs no script: each "move up" / "move down" button is a small form that posts the
whole new order, as the API's PUT .../order takes it. Deleting (which must say how many members
lose access, an answer of the offers floor) and a group's posts are on the content floor
(content/console_pages.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Controller, Request, get, post
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community.errors import DomainError, Forbidden
from community.forms import FormBody, Posted, read_input, refusal
from community.hubs import service
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame, console_page
from community.hubs.models import Hub, HubGroup
from community.hubs.schemas import (
    GroupCreate,
    GroupUpdate,
    HubCreate,
    HubUpdate,
    Reorder,
)
from community.web import Db, ObjectId


def _editor(frame: Frame) -> None:
    if not frame.can_edit:
        raise Forbidden("only owners and admins change hubs and groups")


@dataclass(frozen=True)
class Moves:
    """The whole order after moving one row up or down (None at either end)."""

    up: list[int] | None
    down: list[int] | None


def moves(ids: list[int]) -> list[Moves]:
    def swapped(i: int, j: int) -> list[int]:
        order = list(ids)
        order[i], order[j] = order[j], order[i]
        return order

    return [Moves(swapped(i, i - 1) if i > 0 else None, swapped(i, i + 1) if i < len(ids) - 1 else None) for i in range(len(ids))]


@dataclass(frozen=True)
class HubRow:
    hub: Hub
    moves: Moves
    groups: list[tuple[HubGroup, Moves]]


async def _rows(db: Db, community_id: int) -> list[HubRow]:
    listed = await service.list_hubs(db, community_id)
    hub_moves = moves([hub.id for hub, _ in listed])
    return [
        HubRow(hub, hub_moves[i], list(zip(groups, moves([g.id for g in groups]), strict=True)))
        for i, (hub, groups) in enumerate(listed)
    ]


def _anchor(kind: str, row_id: str) -> str:
    """Back to the row just moved (a posted value: only an id makes a fragment)."""
    return f"#{kind}-{row_id}" if row_id.isdigit() else ""


def _texts(form: Posted, *names: str) -> dict[str, str | None]:
    """Name and description as typed; a slug left blank is none (made from the name, or kept)."""
    values: dict[str, str | None] = {name: form.text(name) for name in names}
    if "slug" in values:
        values["slug"] = form.optional("slug")
    return values


class HubsConsole(Controller):
    path = "/dashboard/communities/{community_id:int}"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    # ------------------------------------------------------------ hubs

    @get("/hubs")
    async def hubs(self, frame: CurrentFrame, db: Db) -> Template:
        return await self._hubs_page(frame, db, Posted())

    @post("/hubs")
    async def create_hub(self, data: FormBody, frame: CurrentFrame, request: Request, db: Db) -> Template | Redirect:
        _editor(frame)
        form = Posted(data)
        try:
            given = read_input(_texts(form, "name", "slug", "description"), HubCreate)
            async with db.begin_nested():  # a refusal leaves nothing half-written
                hub = await service.create_hub(
                    db, frame.community.id, name=given.name, slug=given.slug, description=given.description
                )
        except DomainError as exc:
            return await self._hubs_page(frame, db, form, refusal(exc), exc.status_code)
        flash(request, f"Hub {hub.name} created. Next: add a group to it.", "success")
        return Redirect(f"{frame.base}/hubs#hub-{hub.id}", status_code=303)

    @post("/hubs/order")
    async def reorder_hubs(self, data: FormBody, frame: CurrentFrame, request: Request, db: Db) -> Redirect:
        _editor(frame)
        form = Posted(data)
        try:
            given = read_input({"ids": form.texts("ids")}, Reorder)
            async with db.begin_nested():
                await service.reorder_hubs(db, frame.community.id, given.ids)
        except DomainError as exc:
            flash(request, f"The order was not saved: {exc.detail} (someone may have changed the hubs; try again).", "error")
            return Redirect(f"{frame.base}/hubs", status_code=303)
        flash(request, "New order saved.", "success")
        return Redirect(f"{frame.base}/hubs{_anchor('hub', form.text('moved'))}", status_code=303)

    @get("/hubs/{hub_id:int}/settings")
    async def hub_settings(self, hub_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame)
        hub = await service.get_hub(db, frame.community.id, hub_id)
        return self._hub_form(frame, hub, Posted({"name": hub.name, "slug": hub.slug, "description": hub.description}))

    @post("/hubs/{hub_id:int}/settings")
    async def update_hub(
        self, hub_id: ObjectId, data: FormBody, frame: CurrentFrame, request: Request, db: Db
    ) -> Template | Redirect:
        _editor(frame)
        hub = await service.get_hub(db, frame.community.id, hub_id)
        form = Posted(data)
        try:
            given = read_input(_texts(form, "name", "slug", "description"), HubUpdate)
            async with db.begin_nested():
                hub = await service.update_hub(
                    db, frame.community.id, hub_id, name=given.name, slug=given.slug, description=given.description
                )
        except DomainError as exc:
            await db.refresh(hub)  # the page names the hub as it is saved, not as refused
            return self._hub_form(frame, hub, form, refusal(exc), exc.status_code)
        flash(request, f"Hub {hub.name} saved.", "success")
        return Redirect(f"{frame.base}/hubs#hub-{hub.id}", status_code=303)

    # ------------------------------------------------------------ groups

    @get("/hubs/{hub_id:int}/groups/new")
    async def new_group(self, hub_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame)
        hub = await service.get_hub(db, frame.community.id, hub_id)
        return self._new_group_form(frame, hub, Posted())

    @post("/hubs/{hub_id:int}/groups/new")
    async def create_group(
        self, hub_id: ObjectId, data: FormBody, frame: CurrentFrame, request: Request, db: Db
    ) -> Template | Redirect:
        _editor(frame)
        hub = await service.get_hub(db, frame.community.id, hub_id)
        form = Posted(data)
        try:
            given = read_input(_texts(form, "name", "slug", "description"), GroupCreate)
            async with db.begin_nested():
                group = await service.create_group(
                    db, frame.community.id, hub.id, name=given.name, slug=given.slug, description=given.description
                )
        except DomainError as exc:
            return self._new_group_form(frame, hub, form, refusal(exc), exc.status_code)
        flash(request, f"Group {group.name} created in {hub.name}. Offers can now open it to their buyers.", "success")
        return Redirect(f"{frame.base}/groups/{group.id}", status_code=303)

    @post("/hubs/{hub_id:int}/groups/order")
    async def reorder_groups(
        self, hub_id: ObjectId, data: FormBody, frame: CurrentFrame, request: Request, db: Db
    ) -> Redirect:
        _editor(frame)
        form = Posted(data)
        try:
            given = read_input({"ids": form.texts("ids")}, Reorder)
            async with db.begin_nested():
                await service.reorder_groups(db, frame.community.id, hub_id, given.ids)
        except DomainError as exc:
            if exc.status_code == 404:
                raise
            flash(request, f"The order was not saved: {exc.detail} (someone may have changed the groups; try again).", "error")
            return Redirect(f"{frame.base}/hubs#hub-{hub_id}", status_code=303)
        flash(request, "New order saved.", "success")
        return Redirect(f"{frame.base}/hubs{_anchor('group', form.text('moved'))}", status_code=303)

    @get("/groups/{group_id:int}/settings")
    async def group_settings(self, group_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame)
        group = await service.get_group(db, frame.community.id, group_id)
        values = {"name": group.name, "slug": group.slug, "description": group.description, "hub_id": str(group.hub_id)}
        return await self._group_form(frame, db, group, Posted(values))

    @post("/groups/{group_id:int}/settings")
    async def update_group(
        self, group_id: ObjectId, data: FormBody, frame: CurrentFrame, request: Request, db: Db
    ) -> Template | Redirect:
        _editor(frame)
        group = await service.get_group(db, frame.community.id, group_id)
        was_in = group.hub_id
        form = Posted(data)
        try:
            values: dict[str, object] = dict(_texts(form, "name", "slug", "description"))
            values["hub_id"] = form.optional("hub_id")
            given = read_input(values, GroupUpdate)
            async with db.begin_nested():
                group = await service.update_group(
                    db, frame.community.id, group_id,
                    name=given.name, slug=given.slug, description=given.description, hub_id=given.hub_id,
                )
        except DomainError as exc:
            await db.refresh(group)
            return await self._group_form(frame, db, group, form, refusal(exc), exc.status_code)
        if group.hub_id != was_in:
            hub = await service.get_hub(db, frame.community.id, group.hub_id)
            flash(request, f"Group {group.name} saved and moved to {hub.name} (last in its list).", "success")
        else:
            flash(request, f"Group {group.name} saved.", "success")
        return Redirect(f"{frame.base}/groups/{group.id}", status_code=303)

    # ------------------------------------------------------------ pages

    async def _hubs_page(
        self, frame: Frame, db: Db, form: Posted, errors: dict[str, str] | None = None, status_code: int = 200
    ) -> Template:
        return console_page(
            "hubs/hubs.html", frame, "hubs", rows=await _rows(db, frame.community.id), form=form,
            errors=errors or {}, status_code=status_code,
        )

    @staticmethod
    def _hub_form(frame: Frame, hub: Hub, form: Posted, errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
        return console_page(
            "hubs/hub_settings.html", frame, "hubs", hub=hub, form=form, errors=errors or {}, status_code=status_code
        )

    @staticmethod
    def _new_group_form(
        frame: Frame, hub: Hub, form: Posted, errors: dict[str, str] | None = None, status_code: int = 200
    ) -> Template:
        return console_page(
            "hubs/group_new.html", frame, "hubs", hub=hub, form=form, errors=errors or {}, status_code=status_code
        )

    @staticmethod
    async def _group_form(
        frame: Frame, db: Db, group: HubGroup, form: Posted, errors: dict[str, str] | None = None, status_code: int = 200
    ) -> Template:
        hubs = [hub for hub, _ in await service.list_hubs(db, frame.community.id)]
        return console_page(
            "hubs/group_settings.html", frame, "hubs", group=group, hubs=[(str(h.id), h.name) for h in hubs],
            current_hub=next((h for h in hubs if h.id == group.hub_id), None),
            form=form, errors=errors or {}, status_code=status_code,
        )

"""The offer editor's community permissions: the hub groups an offer grants, by hub.

Saving a change for an offer nobody holds just saves. For an offer people hold, it asks first
whether the change is for everyone who holds it or for new buyers only, with the numbers of
holders who would gain or lose each group (grants.preview_edit, the API's
POST .../groups/preview), then applies it through grants.edit_groups (the API's PUT .../groups)
and follows the access run it started until it is done (the API's GET .../access-runs/{id}).
Managers read; owners and admins change.
"""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community.db import get_in_community
from community.errors import DomainError, Forbidden, Invalid, NotFound
from community.forms import FORM, FormBody, Posted, read_input, refusal
from community.hubs import service as hubs
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame, console_page
from community.offers import grants
from community.offers import service as offers
from community.offers.access_api import GroupsEdit
from community.offers.models import AccessRun, Offer, RunState
from community.web import Db, ObjectId

REFRESH_SECONDS = 2  # the run page reloads itself this often while the run is working
MODES = (grants.EditMode.everyone.value, grants.EditMode.new_buyers_only.value)


def _editor(frame: Frame) -> None:
    if not frame.can_edit:
        raise Forbidden("only owners and admins change an offer's community permissions")


def _url(frame: Frame, offer: Offer, tail: str = "") -> str:
    return f"{frame.base}/offers/{offer.id}/permissions{tail}"


def _edit_input(add: list[str], remove: list[str], mode: str = "everyone") -> GroupsEdit:
    """The API's own input (same bounds, same messages); ids that name no input on the page are
    refused above the form."""
    try:
        return read_input({"add": add, "remove": remove, "mode": mode}, GroupsEdit)
    except Invalid as exc:
        raise Invalid(exc.detail, field=FORM if exc.field in ("add", "remove") else exc.field) from None


async def _permissions_page(
    db: Db, frame: Frame, offer: Offer, *, chosen: set[int] | None = None, errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    granted = {g.group_id: g for g in await grants.granted_groups(db, frame.community.id, offer.id)}
    return console_page(
        "offers/permissions.html", frame, "offers", status_code=status_code,
        offer=offer, editor_section="permissions",
        hubs=await hubs.list_hubs(db, frame.community.id),
        granted=granted,
        chosen=set(granted) if chosen is None else chosen,
        holders=await grants.count_holders(db, frame.community.id, offer.id),
        errors=errors or {},
    )


async def _confirm_page(
    db: Db, frame: Frame, offer: Offer, edit: GroupsEdit, *, mode: str = "", errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    # The numbers for "everyone"; "new buyers only" changes nobody's access now, by definition.
    preview = await grants.preview_edit(
        db, community_id=frame.community.id, offer_id=offer.id, add=edit.add, remove=edit.remove,
        mode=grants.EditMode.everyone,
    )
    return console_page(
        "offers/permissions_confirm.html", frame, "offers", status_code=status_code,
        offer=offer, editor_section="permissions", edit=edit, preview=preview, mode=mode, errors=errors or {},
    )


class OfferPermissionPages(Controller):
    path = "/dashboard/communities/{community_id:int}/offers/{offer_id:int}/permissions"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    @get("/")
    async def permissions(self, offer_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        return await _permissions_page(db, frame, await offers.get_offer(db, frame.community.id, offer_id))

    @post("/")
    async def save(self, offer_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        """The ticked groups against what the offer grants now: what to add and to remove."""
        _editor(frame)
        offer = await offers.get_offer(db, frame.community.id, offer_id)
        form = Posted(data)
        granted = [g.group_id for g in await grants.granted_groups(db, frame.community.id, offer.id)]
        ticked = form.texts("group")
        try:
            edit = _edit_input([v for v in ticked if v not in {str(g) for g in granted}], [str(g) for g in granted if str(g) not in ticked])
            if not edit.add and not edit.remove:
                flash(request, "Nothing to save: the offer already grants these groups.", "success")
                return Redirect(_url(frame, offer), status_code=303)
            if await grants.count_holders(db, frame.community.id, offer.id):
                # People hold it: they choose who the change is for, seeing the numbers first.
                query = urlencode({"add": edit.add, "remove": edit.remove}, doseq=True)
                return Redirect(_url(frame, offer, f"/confirm?{query}"), status_code=303)
            async with db.begin_nested():  # nobody holds it: it just saves
                await grants.edit_groups(
                    db, community_id=frame.community.id, offer_id=offer.id, add=edit.add, remove=edit.remove,
                    mode=grants.EditMode.everyone,
                )
        except DomainError as exc:
            chosen = {int(v) for v in ticked if v.isdigit()}
            return await _permissions_page(db, frame, offer, chosen=chosen, errors=refusal(exc), status_code=exc.status_code)
        flash(request, "Saved. Nobody holds this offer yet: its buyers will open these groups.", "success")
        return Redirect(_url(frame, offer), status_code=303)

    @get("/confirm")
    async def confirm(self, offer_id: ObjectId, request: Request, frame: CurrentFrame, db: Db) -> Template:
        """Changes nothing: the choice between everyone and new buyers only, with the numbers."""
        _editor(frame)
        offer = await offers.get_offer(db, frame.community.id, offer_id)
        edit = _edit_input(request.query_params.getall("add", []), request.query_params.getall("remove", []))
        return await _confirm_page(db, frame, offer, edit)

    @post("/apply")
    async def apply(self, offer_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        _editor(frame)
        offer = await offers.get_offer(db, frame.community.id, offer_id)
        form = Posted(data)
        mode = form.text("mode")
        edit = _edit_input(form.texts("add"), form.texts("remove"))
        if mode not in MODES:  # the API defaults to everyone; the page asks
            errors = {"mode": "choose who the change is for: everyone who holds the offer, or new buyers only"}
            return await _confirm_page(db, frame, offer, edit, errors=errors, status_code=422)
        try:
            async with db.begin_nested():
                edited = await grants.edit_groups(
                    db, community_id=frame.community.id, offer_id=offer.id, add=edit.add, remove=edit.remove,
                    mode=grants.EditMode(mode),
                )
        except DomainError as exc:
            return await _confirm_page(db, frame, offer, edit, mode=mode, errors=refusal(exc), status_code=exc.status_code)
        if edited.run is None:
            flash(request, "Saved for new buyers only: the people who hold the offer now keep exactly what they had.", "success")
            return Redirect(_url(frame, offer), status_code=303)
        flash(request, "Saved for everyone who holds the offer: their access changed now.", "success")
        return Redirect(_url(frame, offer, f"/runs/{edited.run.id}"), status_code=303)

    @get("/runs/{run_id:int}")
    async def run(self, offer_id: ObjectId, run_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        """The access run's progress; the page reloads itself (no script) until it is done."""
        offer = await offers.get_offer(db, frame.community.id, offer_id)
        run = await get_in_community(db, AccessRun, frame.community.id, run_id, what="access run")
        if run.scope.get("offer_id") != offer.id:
            raise NotFound("access run not found")
        working = run.state in (RunState.pending, RunState.running)
        return console_page(
            "offers/permissions_run.html", frame, "offers", offer=offer, editor_section="permissions", run=run,
            refresh=REFRESH_SECONDS if working else None, working=working,
        )

"""The members directory in the console: sorted, searched and filtered by a GET form (a view is
a link), keyset pages, the count, the CSV of the view, segments (built-in and saved, with their
counts), saving a view as a segment, deleting a saved one, and bulk tags for a view or for ticked
members, each after a confirmation that says how many members it touches.

The same service calls as the JSON API (members/api.py): directory.directory and count,
exports.statement streamed by stream_copy, service.segments, save_segment, delete_segment and
bulk_tag, with the API's own input structs. Managers read; owners and admins change."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.plugins.flash import flash
from litestar.response import Redirect, Stream, Template

from community.errors import DomainError, Invalid, NotFound
from community.exports import csv_download, stream_copy
from community.forms import FORM, FormBody, Posted, read_input, refusal
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame
from community.members import directory, exports, service
from community.members.page_helpers import (
    FILTERS,
    LABELS,
    PAGE_SIZE,
    api_filters,
    check_known,
    currency_of,
    page,
    parsed_filters,
    require_editor,
    view_of,
    view_url,
)
from community.members.schemas import BulkTagIn, SegmentIn
from community.web import Db, ObjectId

# A refusal of a form's own input, under the input the page shows it by.
BULK_FIELDS = {"tag": "bulk_tag", "action": "action", "user_ids": "scope", "scope": "scope"}
SHOWN = (*FILTERS, "bulk_tag", "action", "scope", "segment_name")  # the inputs the directory page shows
SEGMENT_FIELDS = {"name": "segment_name"}


def _mapped(exc: DomainError, fields: dict[str, str]) -> dict[str, str]:
    return {fields.get(k, FORM): v for k, v in refusal(exc).items()}


def _query(request: Request) -> dict[str, Any]:
    return {k: request.query_params.getall(k) for k in request.query_params}


class DirectoryPages(Controller):
    path = "/dashboard/communities/{community_id:int}/members"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    @get("/")
    async def directory_page(self, request: Request, frame: CurrentFrame, db: Db) -> Template:
        query = _query(request)
        after = (query.get("after") or [None])[-1]
        try:
            check_known(set(query))
        except Invalid as exc:
            return await render(db, frame, view_of(query), errors=refusal(exc), status_code=exc.status_code, view_ok=False)
        return await render(db, frame, view_of(query), after=after)

    @get("/export")
    async def export(self, request: Request, frame: CurrentFrame, db: Db, state: State) -> Stream | Template:
        """The view as CSV: the API's export (exports.statement) with the same filters and sort."""
        query = _query(request)
        view = view_of(query)
        try:
            check_known(set(query) - {"after"})
            f = parsed_filters(view, currency_of(frame))
            statement = await exports.statement(db, frame.community.id, f, directory.parse_sort(view.get("sort"), view.get("order")))
        except DomainError as exc:
            return await render(db, frame, view, errors=refusal(exc), status_code=exc.status_code, view_ok=False)
        return csv_download("members.csv", stream_copy(state.sessions, exports.HEADER, statement))

    # ------------------------------------------------------------ saved segments

    @post("/segments")
    async def save_segment(self, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        require_editor(frame)
        form = Posted(data)
        view = view_of(form.data)
        try:
            filters = api_filters(view, currency_of(frame))
        except DomainError as exc:
            return await render(db, frame, view, errors=refusal(exc), status_code=exc.status_code, view_ok=False)
        try:
            given = read_input({"name": form.text("segment_name").strip(), "filters": filters}, SegmentIn)
            async with db.begin_nested():
                segment = await service.save_segment(
                    db, frame.community.id, name=given.name, filters=given.filters.parsed(), author_id=frame.user.id
                )
        except DomainError as exc:
            errors = _mapped(exc, {**SEGMENT_FIELDS, **{k: k for k in FILTERS}})
            return await render(db, frame, view, errors=errors, segment_name=form.text("segment_name"), status_code=exc.status_code)
        flash(request, f"Saved the segment “{segment.name}”.", "success")
        return Redirect(view_url(frame, {"segment": str(segment.id)}), status_code=303)

    @get("/segments/{segment_id:int}/delete")
    async def delete_segment_form(self, segment_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        require_editor(frame)
        segment = await _saved(db, frame, segment_id)
        return page("members/segment_delete.html", frame, segment=segment)

    @post("/segments/{segment_id:int}/delete")
    async def delete_segment(self, segment_id: ObjectId, request: Request, frame: CurrentFrame, db: Db) -> Redirect:
        require_editor(frame)
        segment = await _saved(db, frame, segment_id)
        await service.delete_segment(db, frame.community.id, segment.id)
        flash(request, f"Deleted the segment “{segment.name}”. Its members keep their tags and memberships.", "success")
        return Redirect(f"{frame.base}/members", status_code=303)

    # ------------------------------------------------------------ bulk tags

    @post("/bulk")
    async def bulk_confirm(self, data: FormBody, frame: CurrentFrame, db: Db) -> Template:
        """The confirmation: what will change, for how many members. Nothing changes yet."""
        require_editor(frame)
        form = Posted(data)
        view = view_of(form.data)
        try:
            given, f = await _bulk_input(db, frame, form, view)
            if f is not None:
                touches = await directory.count(db, frame.community.id, f)
            else:
                touches = len(set(given.user_ids or []))
        except DomainError as exc:
            return await render(db, frame, view, errors=_bulk_errors(exc), bulk=form, status_code=exc.status_code)
        return page(
            "members/bulk_confirm.html", frame, given=given, view=view, touches=touches, scope=form.text("scope"),
            user_ids=sorted(set(given.user_ids or [])), back=view_url(frame, view),
        )

    @post("/bulk/apply")
    async def bulk_apply(self, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        require_editor(frame)
        form = Posted(data)
        view = view_of(form.data)
        try:
            given, f = await _bulk_input(db, frame, form, view)
            async with db.begin_nested():
                changed = await service.bulk_tag(
                    db, frame.community.id, tag=given.tag, add=given.action == "add", filters=f,
                    user_ids=given.user_ids if f is None else None,
                )
        except DomainError as exc:
            return await render(db, frame, view, errors=_bulk_errors(exc), bulk=form, status_code=exc.status_code)
        who = "1 member" if changed == 1 else f"{changed} members"
        if given.action == "add":
            flash(request, f"Added the tag “{given.tag}” to {who}.", "success")
        else:
            flash(request, f"Removed the tag “{given.tag}” from {who}.", "success")
        return Redirect(view_url(frame, view), status_code=303)


def _export_url(frame: Frame, view: dict[str, str]) -> str:
    query = view_url(frame, view).partition("?")[2]
    return f"{frame.base}/members/export" + (f"?{query}" if query else "")


async def _saved(db: Db, frame: Frame, segment_id: int) -> Any:
    for segment in await service.saved_segments(db, frame.community.id):
        if segment.id == segment_id:
            return segment
    raise NotFound("segment not found")


def _bulk_errors(exc: DomainError) -> dict[str, str]:
    return _mapped(exc, {**{k: k for k in FILTERS}, **BULK_FIELDS})


async def _bulk_input(db: Db, frame: Frame, form: Posted, view: dict[str, str]) -> tuple[BulkTagIn, directory.Filters | None]:
    """The bulk form read into the API's BulkTagIn: the view's filters, or the ticked members."""
    values: dict[str, Any] = {"tag": form.text("bulk_tag").strip(), "action": form.text("action")}
    scope = form.text("scope")
    if scope == "selected":
        ids = [i for i in form.texts("user_id") if i.strip()]
        if not ids:
            raise Invalid("tick the members first, or choose everyone these filters show", field="user_ids")
        values["user_ids"] = ids
    elif scope == "filter":
        values["filters"] = api_filters(view, currency_of(frame))
    else:
        raise Invalid("choose who: everyone these filters show, or the ticked members", field="scope")
    if values["action"] not in ("add", "remove"):
        raise Invalid("choose add or remove", field="action")
    service.clean_tag(values["tag"])
    given = read_input(values, BulkTagIn)
    f = given.filters.parsed() if given.filters is not None else None
    if f is not None:
        await directory.conditions(db, frame.community.id, f)  # a saved segment gone: 422 before confirming
    return given, f


async def render(
    db: Db, frame: Frame, view: dict[str, str], *, after: str | None = None, errors: dict[str, str] | None = None,
    bulk: Posted | None = None, segment_name: str = "", status_code: int = 200, view_ok: bool = True,
) -> Template:
    """The directory page for a view; a refused view shows the refusal by its field, and no rows."""
    errors = dict(errors or {})
    rows: list[directory.Row] = []
    total = None
    next_token = None
    if view_ok:
        try:
            f = parsed_filters(view, currency_of(frame))
            sort = directory.parse_sort(view.get("sort"), view.get("order"))
            listing = await directory.directory(db, frame.community.id, f, sort, after=after, limit=PAGE_SIZE)
            rows, next_token = listing.rows, listing.next
            total = await directory.count(db, frame.community.id, f)
        except DomainError as exc:
            errors = {**errors, **refusal(exc)}
            status_code = exc.status_code
    # A refusal of an input the page does not show (sort, order, after) goes above the form.
    errors = {(k if k in SHOWN else FORM): v for k, v in errors.items()}
    segments = await service.segments(db, frame.community.id)
    offers = await directory.offer_titles(db, frame.community.id)
    return page(
        "members/directory.html", frame, view=view, rows=rows, total=total, next=next_token, after=after,
        errors=errors, segments=segments, offers=sorted(offers.items(), key=lambda o: o[1].casefold()),
        status_options=[(s, LABELS[s]) for s in directory.STATUSES],
        segment_options=[(s.key, s.name) for s in segments],
        export_url=_export_url(frame, view), bulk=bulk or Posted({"action": "add", "scope": "filter"}),
        segment_name=segment_name, link=lambda **changes: view_url(frame, view, **changes),
        filtered=any(view.get(k) for k in FILTERS), status_code=status_code,
    )

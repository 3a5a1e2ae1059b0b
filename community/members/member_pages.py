"""A member's page in the console: every membership with its history, payments and refunds, the
access log, resell-rights enrolments, notes and tags, their contact, links to the staff actions
that exist (refund on the payment's page, cancel now, end at a date, comp), and the account
rules: removing them from the community, deleting an account that never paid.

The same service calls as the JSON API (members/api.py): profile.profile (shown through the
API's profile_out), service.add_note, edit_note, delete_note, add_tag, remove_tag,
remove_member and delete_account, with the API's input structs. Managers read; owners and
admins change."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community.errors import DomainError, NotFound
from community.forms import FORM, FormBody, Posted, read_input, refusal
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame
from community.mail import log as mail_log
from community.members import profile, service
from community.members.page_helpers import page, require_editor
from community.members.schemas import NoteIn, TagIn, profile_out
from community.web import Db, ObjectId


def _errors(exc: DomainError, fields: dict[str, str]) -> dict[str, str]:
    return {fields.get(k, FORM): v for k, v in refusal(exc).items()}


class MemberProfilePages(Controller):
    path = "/dashboard/communities/{community_id:int}/members/{user_id:int}"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    @get("/")
    async def member(self, user_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        return await render(db, frame, user_id)

    # ------------------------------------------------------------ notes

    @post("/notes")
    async def add_note(self, user_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        require_editor(frame)
        form = Posted(data)
        try:
            given = read_input({"body": form.text("body")}, NoteIn)
            async with db.begin_nested():
                await service.add_note(db, frame.community.id, user_id, author_id=frame.user.id, body=given.body)
        except DomainError as exc:
            return await render(db, frame, user_id, note_form=form, errors=_errors(exc, {"body": "body"}), status_code=exc.status_code)
        flash(request, "Note added.", "success")
        return Redirect(_url(frame, user_id) + "#notes-title", status_code=303)

    @get("/notes/{note_id:int}/edit")
    async def edit_note_form(self, user_id: ObjectId, note_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        require_editor(frame)
        note, person = await _note(db, frame, user_id, note_id)
        return page("members/note_edit.html", frame, note=note, person=person, form=Posted({"body": note.body}), errors={})

    @post("/notes/{note_id:int}/edit")
    async def edit_note(
        self, user_id: ObjectId, note_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db
    ) -> Template | Redirect:
        require_editor(frame)
        note, person = await _note(db, frame, user_id, note_id)
        form = Posted(data)
        try:
            given = read_input({"body": form.text("body")}, NoteIn)
            async with db.begin_nested():
                await service.edit_note(db, frame.community.id, user_id, note_id, editor_id=frame.user.id, body=given.body)
        except DomainError as exc:
            return page(
                "members/note_edit.html", frame, note=note, person=person, form=form,
                errors=_errors(exc, {"body": "body"}), status_code=exc.status_code,
            )
        flash(request, "Note saved.", "success")
        return Redirect(_url(frame, user_id) + "#notes-title", status_code=303)

    @get("/notes/{note_id:int}/delete")
    async def delete_note_form(self, user_id: ObjectId, note_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        require_editor(frame)
        note, person = await _note(db, frame, user_id, note_id)
        return page("members/note_delete.html", frame, note=note, person=person)

    @post("/notes/{note_id:int}/delete")
    async def delete_note(self, user_id: ObjectId, note_id: ObjectId, request: Request, frame: CurrentFrame, db: Db) -> Redirect:
        require_editor(frame)
        await service.delete_note(db, frame.community.id, user_id, note_id)
        flash(request, "Note deleted.", "success")
        return Redirect(_url(frame, user_id) + "#notes-title", status_code=303)

    # ------------------------------------------------------------ tags

    @post("/tags")
    async def add_tag(self, user_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        require_editor(frame)
        form = Posted(data)
        try:
            given = read_input({"tag": form.text("tag").strip()}, TagIn)
            async with db.begin_nested():
                await service.add_tag(db, frame.community.id, user_id, given.tag)
        except DomainError as exc:
            return await render(db, frame, user_id, tag_form=form, errors=_errors(exc, {"tag": "tag"}), status_code=exc.status_code)
        flash(request, f"Tagged “{given.tag}”.", "success")
        return Redirect(_url(frame, user_id) + "#tags-title", status_code=303)

    @post("/tags/remove")
    async def remove_tag(self, user_id: ObjectId, data: FormBody, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        require_editor(frame)
        form = Posted(data)
        try:
            given = read_input({"tag": form.text("tag")}, TagIn)
            async with db.begin_nested():
                await service.remove_tag(db, frame.community.id, user_id, given.tag)
        except DomainError as exc:
            return await render(db, frame, user_id, tag_form=form, errors=_errors(exc, {}), status_code=exc.status_code)
        flash(request, f"Removed the tag “{given.tag}”.", "success")
        return Redirect(_url(frame, user_id) + "#tags-title", status_code=303)

    # ------------------------------------------------------------ account rules

    @get("/remove")
    async def remove_form(self, user_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        require_editor(frame)
        return await _account_page(db, frame, user_id, "members/remove.html")

    @post("/remove")
    async def remove(self, user_id: ObjectId, request: Request, frame: CurrentFrame, db: Db, state: State) -> Template | Redirect:
        require_editor(frame)
        story = profile_out(await profile.profile(db, frame.community.id, user_id))
        try:
            async with db.begin_nested():
                ended = await service.remove_member(db, state.settings, frame.community.id, user_id, actor_id=frame.user.id)
        except DomainError as exc:
            return await _account_page(db, frame, user_id, "members/remove.html", errors={FORM: exc.detail}, status_code=exc.status_code)
        cancelled = "no membership to cancel" if not ended else ("1 membership cancelled" if len(ended) == 1 else f"{len(ended)} memberships cancelled")
        flash(request, f"{story.member.email} was removed from {frame.community.name}: {cancelled}, access gone, history kept.", "success")
        return Redirect(f"{frame.base}/members", status_code=303)

    @get("/delete-account")
    async def delete_account_form(self, user_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        require_editor(frame)
        return await _account_page(db, frame, user_id, "members/delete_account.html")

    @post("/delete-account")
    async def delete_account(self, user_id: ObjectId, request: Request, frame: CurrentFrame, db: Db) -> Template | Redirect:
        require_editor(frame)
        story = profile_out(await profile.profile(db, frame.community.id, user_id))
        try:
            async with db.begin_nested():
                await service.delete_account(db, frame.community.id, user_id)
        except DomainError as exc:
            return await _account_page(db, frame, user_id, "members/delete_account.html", errors={FORM: exc.detail}, status_code=exc.status_code)
        flash(request, f"The account of {story.member.email} was deleted.", "success")
        return Redirect(f"{frame.base}/members", status_code=303)


def _url(frame: Frame, user_id: int) -> str:
    return f"{frame.base}/members/{user_id}"


async def _note(db: Db, frame: Frame, user_id: int, note_id: int) -> tuple[Any, Any]:
    """The note (a NoteOut, with its author's name) and its member's directory row; 404 unless both are here."""
    story = profile_out(await profile.profile(db, frame.community.id, user_id))
    for note in story.notes:
        if note.id == note_id:
            return note, story.member
    raise NotFound("note not found")


async def _account_page(
    db: Db, frame: Frame, user_id: int, template: str, *, errors: dict[str, str] | None = None, status_code: int = 200
) -> Template:
    story = profile_out(await profile.profile(db, frame.community.id, user_id))
    live = [m for m in story.memberships if m.live or (m.subscription and m.subscription.status not in ("canceled", "incomplete_expired"))]
    return page(template, frame, story=story, person=story.member, live=live, errors=errors or {}, status_code=status_code)


async def render(
    db: Db, frame: Frame, user_id: int, *, note_form: Posted | None = None, tag_form: Posted | None = None,
    errors: dict[str, str] | None = None, status_code: int = 200,
) -> Template:
    story = profile_out(await profile.profile(db, frame.community.id, user_id))
    emails = await mail_log.deliveries(db, frame.community.id, user_id=user_id, limit=20)
    return page(
        "members/member.html", frame, story=story, person=story.member, emails=emails, note_form=note_form or Posted(),
        tag_form=tag_form or Posted(), errors=errors or {}, status_code=status_code,
    )

"""The console's screens of a group's posts, and of deleting a group or a hub.

A group's screen lists its posts for whoever the API lets read them (owners and admins; a
manager only through an offer, as content.service.check_can_read says) and lets owners and
admins write, edit and delete posts: the same service calls as the API's /posts.

Deleting lives on this floor, not in hubs/, because its confirmation says how many members lose
access, which only the access query (offers, a floor above hubs) can answer, along with the
posts that go (content). content.deletion gives those numbers (the API's deletion-preview); the
deletion itself is hubs.service.delete_group / delete_hub, as in the API.
"""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community.accounts import service as accounts
from community.content import deletion, service
from community.content.models import Post
from community.content.schemas import PostCreate, PostUpdate
from community.errors import DomainError, Forbidden
from community.forms import FormBody, Posted, read_input, refusal
from community.hubs import service as hubs
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame, console_page
from community.hubs.models import HubGroup
from community.web import Cursor, Db, ObjectId

POSTS_PER_PAGE = 20


def _editor(frame: Frame, what: str) -> None:
    if not frame.can_edit:
        raise Forbidden(f"only owners and admins {what}")


def _post_input(form: Posted, input_type: type):
    return read_input({"title": form.text("title"), "body": form.text("body")}, input_type)


def _people(count: int) -> str:
    return f"{count} member{'s' * (count != 1)}"


class GroupConsole(Controller):
    path = "/dashboard/communities/{community_id:int}"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    # ------------------------------------------------------------ a group and its posts

    @get("/groups/{group_id:int}")
    async def group(self, group_id: ObjectId, frame: CurrentFrame, db: Db, before: Cursor = None) -> Template:
        group = await hubs.get_group(db, frame.community.id, group_id)
        return await self._group_page(frame, db, group, Posted(), before=before)

    @post("/groups/{group_id:int}/posts")
    async def write(
        self, group_id: ObjectId, data: FormBody, frame: CurrentFrame, request: Request, db: Db
    ) -> Template | Redirect:
        _editor(frame, "write posts")
        group = await hubs.get_group(db, frame.community.id, group_id)
        form = Posted(data)
        try:
            given = _post_input(form, PostCreate)
            async with db.begin_nested():  # a refusal leaves nothing half-written
                written = await service.create_post(
                    db, frame.community.id, group.id, author_id=frame.user.id, title=given.title, body=given.body
                )
        except DomainError as exc:
            return await self._group_page(frame, db, group, form, refusal(exc), exc.status_code)
        flash(request, f"Post {written.title} published in {group.name}.", "success")
        return Redirect(f"{frame.base}/groups/{group.id}#post-{written.id}", status_code=303)

    @get("/posts/{post_id:int}/edit")
    async def edit_post(self, post_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame, "edit posts")
        found = await service.get_post(db, frame.community.id, post_id)
        return await self._post_form(frame, db, found, Posted({"title": found.title, "body": found.body}))

    @post("/posts/{post_id:int}/edit")
    async def update_post(
        self, post_id: ObjectId, data: FormBody, frame: CurrentFrame, request: Request, db: Db
    ) -> Template | Redirect:
        _editor(frame, "edit posts")
        found = await service.get_post(db, frame.community.id, post_id)
        form = Posted(data)
        try:
            given = _post_input(form, PostUpdate)
            async with db.begin_nested():
                found = await service.update_post(db, frame.community.id, post_id, title=given.title, body=given.body)
        except DomainError as exc:
            await db.refresh(found)
            return await self._post_form(frame, db, found, form, refusal(exc), exc.status_code)
        flash(request, f"Post {found.title} saved.", "success")
        return Redirect(f"{frame.base}/groups/{found.group_id}#post-{found.id}", status_code=303)

    @get("/posts/{post_id:int}/delete")
    async def confirm_delete_post(self, post_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame, "delete posts")
        found = await service.get_post(db, frame.community.id, post_id)
        group = await hubs.get_group(db, frame.community.id, found.group_id)
        return console_page("content/console_post_delete.html", frame, "hubs", post=found, group=group)

    @post("/posts/{post_id:int}/delete")
    async def delete_post(self, post_id: ObjectId, frame: CurrentFrame, request: Request, db: Db) -> Redirect:
        _editor(frame, "delete posts")
        found = await service.get_post(db, frame.community.id, post_id)
        group_id, title = found.group_id, found.title
        await service.delete_post(db, frame.community.id, post_id)
        flash(request, f"Post {title} deleted.", "success")
        return Redirect(f"{frame.base}/groups/{group_id}", status_code=303)

    # ------------------------------------------------------------ deleting a group or a hub

    @get("/groups/{group_id:int}/delete")
    async def confirm_delete_group(self, group_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame, "delete groups")
        what = await deletion.of_group(db, frame.community.id, group_id)
        hub = await hubs.get_hub(db, frame.community.id, what.groups[0].hub_id)
        return console_page("content/console_delete.html", frame, "hubs", what=what, group=what.groups[0], hub=hub)

    @post("/groups/{group_id:int}/delete")
    async def delete_group(self, group_id: ObjectId, frame: CurrentFrame, request: Request, db: Db) -> Redirect:
        _editor(frame, "delete groups")
        what = await deletion.of_group(db, frame.community.id, group_id)
        await hubs.delete_group(db, frame.community.id, group_id)
        flash(request, f"Group {what.groups[0].name} deleted. {self._told(what.members_losing_access)}", "success")
        return Redirect(f"{frame.base}/hubs", status_code=303)

    @get("/hubs/{hub_id:int}/delete")
    async def confirm_delete_hub(self, hub_id: ObjectId, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame, "delete hubs")
        what = await deletion.of_hub(db, frame.community.id, hub_id)
        return console_page("content/console_delete.html", frame, "hubs", what=what, group=None, hub=what.hub)

    @post("/hubs/{hub_id:int}/delete")
    async def delete_hub(self, hub_id: ObjectId, frame: CurrentFrame, request: Request, db: Db) -> Redirect:
        _editor(frame, "delete hubs")
        what = await deletion.of_hub(db, frame.community.id, hub_id)
        await hubs.delete_hub(db, frame.community.id, hub_id)
        assert what.hub is not None
        flash(request, f"Hub {what.hub.name} deleted with its groups. {self._told(what.members_losing_access)}", "success")
        return Redirect(f"{frame.base}/hubs", status_code=303)

    # ------------------------------------------------------------ pages

    @staticmethod
    def _told(losing: int) -> str:
        if not losing:
            return "Nobody lost access."
        return f"{_people(losing)} lost access; they are told by email once the change is processed."

    async def _group_page(
        self,
        frame: Frame,
        db: Db,
        group: HubGroup,
        form: Posted,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
        *,
        before: int | None = None,
    ) -> Template:
        hub = await hubs.get_hub(db, frame.community.id, group.hub_id)
        refused = None
        posts: list[Post] = []
        try:
            await service.check_can_read(db, frame.member, group.id)
        except Forbidden as exc:
            refused = exc.detail
        else:
            posts = await service.list_posts(db, frame.community.id, group.id, before=before, limit=POSTS_PER_PAGE)
        authors = {}
        for author_id in {p.author_id for p in posts if p.author_id is not None}:
            author = await accounts.get_user(db, author_id)
            authors[author_id] = author.name or author.email
        return console_page(
            "content/console_group.html", frame, "hubs", group=group, hub=hub, posts=posts, authors=authors,
            refused=refused, older=posts[-1].id if len(posts) == POSTS_PER_PAGE else None, paged=before is not None,
            form=form, errors=errors or {}, status_code=status_code,
        )

    @staticmethod
    async def _post_form(
        frame: Frame, db: Db, found: Post, form: Posted, errors: dict[str, str] | None = None, status_code: int = 200
    ) -> Template:
        group = await hubs.get_group(db, frame.community.id, found.group_id)
        return console_page(
            "content/console_post_edit.html", frame, "hubs", post=found, group=group, form=form,
            errors=errors or {}, status_code=status_code,
        )

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.params import JSONBody

from community.accounts.guards import COMMUNITY_GUARDS, StaffMember
from community.content import deletion, service
from community.content.schemas import (
    DeletionPreviewOut,
    PostCreate,
    PostOut,
    PostUpdate,
    deletion_out,
    post_out,
)
from community.web import Cursor, Db, ObjectId, Page, PageLimit, page_of


class PostsController(Controller):
    """Owners and admins write posts; members read the groups their offers give them."""

    path = "/communities/{community_id:int}"
    tags = ["content"]
    dependencies = COMMUNITY_GUARDS

    @get("/groups/{group_id:int}/posts", summary="A group's posts, newest first (keyset pages)")
    async def list_posts(
        self, group_id: ObjectId, participant: StaffMember, db: Db, before: Cursor = None, limit: PageLimit = 50
    ) -> Page[PostOut]:
        await service.check_can_read(db, participant, group_id)
        posts = await service.list_posts(db, participant.community_id, group_id, before=before, limit=limit)
        return page_of([post_out(p) for p in posts], limit, lambda item: item.id)

    @post("/groups/{group_id:int}/posts", status_code=201, summary="Write a post in a group")
    async def create_post(
        self, group_id: ObjectId, data: JSONBody[PostCreate], editor: StaffMember, db: Db
    ) -> PostOut:
        post_row = await service.create_post(
            db, editor.community_id, group_id, author_id=editor.user_id, title=data.title, body=data.body
        )
        return post_out(post_row)

    @get("/posts/{post_id:int}", summary="One post")
    async def read_post(self, post_id: ObjectId, participant: StaffMember, db: Db) -> PostOut:
        post_row = await service.get_post(db, participant.community_id, post_id)
        await service.check_can_read(db, participant, post_row.group_id)
        return post_out(post_row)

    @patch("/posts/{post_id:int}", summary="Edit a post")
    async def update_post(self, post_id: ObjectId, data: JSONBody[PostUpdate], editor: StaffMember, db: Db) -> PostOut:
        return post_out(await service.update_post(db, editor.community_id, post_id, title=data.title, body=data.body))

    @delete("/posts/{post_id:int}", status_code=204, summary="Delete a post")
    async def delete_post(self, post_id: ObjectId, editor: StaffMember, db: Db) -> None:
        await service.delete_post(db, editor.community_id, post_id)


class DeletionPreviewController(Controller):
    """Before deleting a group or a hub: who loses access, and what else goes (staff read it)."""

    path = "/communities/{community_id:int}"
    tags = ["content"]
    dependencies = COMMUNITY_GUARDS

    @get("/groups/{group_id:int}/deletion-preview", summary="What deleting this group would take with it")
    async def group_deletion(self, group_id: ObjectId, member: StaffMember, db: Db) -> DeletionPreviewOut:
        return deletion_out(await deletion.of_group(db, member.community_id, group_id))

    @get("/hubs/{hub_id:int}/deletion-preview", summary="What deleting this hub (with its groups) would take with it")
    async def hub_deletion(self, hub_id: ObjectId, member: StaffMember, db: Db) -> DeletionPreviewOut:
        return deletion_out(await deletion.of_hub(db, member.community_id, hub_id))

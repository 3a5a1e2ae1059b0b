"""The members API: the directory (sorted, searched, filtered, keyset pages, CSV), a member's
whole story, notes, tags, segments, bulk tagging and the account rules. Staff read; owners and
admins change (`editor`)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter
from litestar.response import Stream

from community.accounts.guards import COMMUNITY_GUARDS, StaffMember
from community.errors import Invalid
from community.exports import csv_download, stream_copy
from community.members import directory, exports, profile, service
from community.members.schemas import (
    BulkTagIn,
    BulkTagOut,
    DirectoryPageOut,
    NoteIn,
    NoteOut,
    ProfileOut,
    RemovedOut,
    SegmentIn,
    SegmentOut,
    TagIn,
    TagOut,
    note_out,
    profile_out,
    row_out,
    saved_out,
    tags_out,
)
from community.web import Db, ObjectId, PageLimit, known_query

Text = Annotated[str | None, QueryParameter(max_length=200)]
SortParam = Annotated[
    str | None,
    QueryParameter(max_length=40, description=f"One of {', '.join(directory.SORTS)} (default joined)."),
]
OrderParam = Annotated[str | None, QueryParameter(max_length=10, description="asc (default) or desc.")]
After = Annotated[
    str | None,
    QueryParameter(max_length=1000, description="Keyset cursor: the `next` of the previous page (same sort and order)."),
]
FILTER_DOC = (
    "Filters: q (name or email contains, case-insensitive), offer (an offer id they hold or held), "
    f"status ({', '.join(directory.STATUSES)}), tag, segment ({', '.join(directory.BUILTIN_SEGMENTS)} or a saved "
    "segment's id), joined_from / joined_to (ISO 8601 with a time zone; from inclusive, to exclusive), "
    "spent_above (minor units; net total spent above it, in `currency`, default the community's)."
)
DIRECTORY_PARAMS = ("sort", "order", "after", "limit", *directory.FILTER_NAMES)
EXPORT_PARAMS = ("sort", "order", *directory.FILTER_NAMES)


def _filters(**values: Any) -> directory.Filters:
    return directory.parse_filters({k: v for k, v in values.items() if v is not None})


class MembersController(Controller):
    path = "/communities/{community_id:int}"
    tags = ["members"]
    dependencies = COMMUNITY_GUARDS

    @get(
        "/members",
        summary="The members directory: sorted, searched, filtered, keyset pages",
        description=(
            "Every person who joined. sort: name, email, joined, last_payment, total_spent; order: asc, desc. "
            + FILTER_DOC
            + " Statuses: active, trialing, past_due, cancelled (access to the period end), ended, none. "
            "An unknown parameter, sort, status or segment is a 422 naming it."
        ),
        guards=[known_query(*DIRECTORY_PARAMS)],
    )
    async def list_members(
        self, member: StaffMember, db: Db, sort: SortParam = None, order: OrderParam = None, after: After = None,
        limit: PageLimit = 50, q: Text = None, offer: Text = None, status: Text = None, tag: Text = None,
        segment: Text = None, joined_from: Text = None, joined_to: Text = None, spent_above: Text = None,
        currency: Text = None,
    ) -> DirectoryPageOut:
        f = _filters(
            q=q, offer=offer, status=status, tag=tag, segment=segment, joined_from=joined_from,
            joined_to=joined_to, spent_above=spent_above, currency=currency,
        )
        page = await directory.directory(
            db, member.community_id, f, directory.parse_sort(sort, order), after=after, limit=limit
        )
        return DirectoryPageOut([row_out(r) for r in page.rows], page.next)

    @get(
        "/members/export",
        summary="The filtered directory as CSV, streamed (amounts in major units)",
        description="Takes the directory's sort, order and filters. " + FILTER_DOC,
        guards=[known_query(*EXPORT_PARAMS)],
    )
    async def export(
        self, member: StaffMember, db: Db, state: State, sort: SortParam = None, order: OrderParam = None,
        q: Text = None, offer: Text = None, status: Text = None, tag: Text = None, segment: Text = None,
        joined_from: Text = None, joined_to: Text = None, spent_above: Text = None, currency: Text = None,
    ) -> Stream:
        f = _filters(
            q=q, offer=offer, status=status, tag=tag, segment=segment, joined_from=joined_from,
            joined_to=joined_to, spent_above=spent_above, currency=currency,
        )
        statement = await exports.statement(db, member.community_id, f, directory.parse_sort(sort, order))
        return csv_download("members.csv", stream_copy(state.sessions, exports.HEADER, statement))

    @get("/members/{user_id:int}", summary="A member's whole story: memberships, payments, access log, notes, tags")
    async def read(self, user_id: ObjectId, member: StaffMember, db: Db) -> ProfileOut:
        return profile_out(await profile.profile(db, member.community_id, user_id))

    # ------------------------------------------------------------ notes

    @get("/members/{user_id:int}/notes", summary="Staff notes on a member, newest first")
    async def notes(self, user_id: ObjectId, member: StaffMember, db: Db) -> list[NoteOut]:
        rows = await service.notes(db, member.community_id, user_id)
        names = await service.author_names(db, {n.author_id for n in rows if n.author_id} | {n.edited_by_id for n in rows if n.edited_by_id})
        return [note_out(n, names) for n in rows]

    @post("/members/{user_id:int}/notes", status_code=201, summary="Add a note on a member (owners, admins)")
    async def add_note(self, user_id: ObjectId, data: JSONBody[NoteIn], editor: StaffMember, db: Db) -> NoteOut:
        note = await service.add_note(db, editor.community_id, user_id, author_id=editor.user_id, body=data.body)
        return note_out(note, await service.author_names(db, {editor.user_id}))

    @patch("/members/{user_id:int}/notes/{note_id:int}", summary="Edit a note (owners, admins); the editor and time are kept")
    async def edit_note(self, user_id: ObjectId, note_id: ObjectId, data: JSONBody[NoteIn], editor: StaffMember, db: Db) -> NoteOut:
        note = await service.edit_note(db, editor.community_id, user_id, note_id, editor_id=editor.user_id, body=data.body)
        return note_out(note, await service.author_names(db, {i for i in (note.author_id, note.edited_by_id) if i}))

    @delete("/members/{user_id:int}/notes/{note_id:int}", status_code=204, summary="Delete a note (owners, admins)")
    async def delete_note(self, user_id: ObjectId, note_id: ObjectId, editor: StaffMember, db: Db) -> None:
        await service.delete_note(db, editor.community_id, user_id, note_id)

    # ------------------------------------------------------------ tags

    @get("/members/{user_id:int}/tags", summary="A member's tags; `auto`: from an offer's auto-tags")
    async def member_tags(self, user_id: ObjectId, member: StaffMember, db: Db) -> list[TagOut]:
        return tags_out(await service.tags(db, member.community_id, user_id))

    @post("/members/{user_id:int}/tags", status_code=200, summary="Add a tag to a member (owners, admins)")
    async def add_tag(self, user_id: ObjectId, data: JSONBody[TagIn], editor: StaffMember, db: Db) -> list[TagOut]:
        return tags_out(await service.add_tag(db, editor.community_id, user_id, data.tag))

    @post("/members/{user_id:int}/tags/remove", status_code=200, summary="Remove a tag from a member (owners, admins)")
    async def remove_tag(self, user_id: ObjectId, data: JSONBody[TagIn], editor: StaffMember, db: Db) -> list[TagOut]:
        return tags_out(await service.remove_tag(db, editor.community_id, user_id, data.tag))

    @post("/members/bulk-tags", status_code=200, summary="Add or remove a tag for a segment, filters or a selection (owners, admins)")
    async def bulk_tags(self, data: JSONBody[BulkTagIn], editor: StaffMember, db: Db) -> BulkTagOut:
        given = sum(x is not None for x in (data.segment, data.filters, data.user_ids))
        if given != 1:
            raise Invalid("give exactly one of segment, filters or user_ids", field="segment")
        filters = None
        if data.segment is not None:
            filters = directory.parse_filters({"segment": data.segment})
        elif data.filters is not None:
            filters = data.filters.parsed()
        changed = await service.bulk_tag(
            db, editor.community_id, tag=data.tag, add=data.action == "add", filters=filters, user_ids=data.user_ids
        )
        return BulkTagOut(changed)

    # ------------------------------------------------------------ account rules

    @post(
        "/members/{user_id:int}/remove",
        status_code=200,
        summary="Remove a member: every membership cancelled now (Stripe too), their place taken, history kept",
    )
    async def remove(self, user_id: ObjectId, editor: StaffMember, db: Db, state: State) -> RemovedOut:
        ended = await service.remove_member(db, state.settings, editor.community_id, user_id, actor_id=editor.user_id)
        return RemovedOut(user_id, ended)

    @delete(
        "/members/{user_id:int}/account",
        status_code=204,
        summary="Delete the account of a member who never paid (409 saying why otherwise)",
    )
    async def delete_account(self, user_id: ObjectId, editor: StaffMember, db: Db) -> None:
        await service.delete_account(db, editor.community_id, user_id)

    @post(
        "/entitlements/{entitlement_id:int}/transfer",
        status_code=200,
        summary="Moving a plan to another account: not possible (always 409, with the reason)",
    )
    async def transfer(self, entitlement_id: ObjectId, editor: StaffMember, db: Db) -> None:
        await service.refuse_transfer(db, editor.community_id, entitlement_id)

    # ------------------------------------------------------------ segments

    @get("/segments", summary="Built-in and saved segments, each with how many members it holds")
    async def segments(self, member: StaffMember, db: Db) -> list[SegmentOut]:
        return [
            SegmentOut(key=s.key, name=s.name, builtin=s.builtin, count=s.count, id=s.id, filters=s.filters)
            for s in await service.segments(db, member.community_id)
        ]

    @post("/segments", status_code=201, summary="Save the directory's filters as a segment (owners, admins)")
    async def save_segment(self, data: JSONBody[SegmentIn], editor: StaffMember, db: Db) -> SegmentOut:
        filters = data.filters.parsed()
        segment = await service.save_segment(db, editor.community_id, name=data.name, filters=filters, author_id=editor.user_id)
        return saved_out(segment, await directory.count(db, editor.community_id, directory.Filters(segment=str(segment.id))))

    @delete("/segments/{segment_id:int}", status_code=204, summary="Delete a saved segment (owners, admins)")
    async def delete_segment(self, segment_id: ObjectId, editor: StaffMember, db: Db) -> None:
        await service.delete_segment(db, editor.community_id, segment_id)


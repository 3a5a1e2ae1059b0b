from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]


class PostCreate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    body: Body


class PostUpdate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title | None = None
    body: Body | None = None


class PostOut(msgspec.Struct):
    id: int
    group_id: int
    author_id: int | None
    title: str
    body: str
    created_at: dt.datetime
    updated_at: dt.datetime | None


def post_out(post) -> PostOut:
    return PostOut(
        id=post.id,
        group_id=post.group_id,
        author_id=post.author_id,
        title=post.title,
        body=post.body,
        created_at=post.created_at,
        updated_at=post.updated_at,
    )


class GroupRef(msgspec.Struct):
    id: int
    name: str


class OfferRef(msgspec.Struct):
    id: int
    title: str


class DeletionPreviewOut(msgspec.Struct):
    """What deleting a group or a hub would take with it, as of now."""

    groups: list[GroupRef]
    members_losing_access: Annotated[
        int,
        msgspec.Meta(
            description="People who open at least one of these groups through an offer now and would lose it "
            "(owners and admins open every group and are not counted)."
        ),
    ]
    posts: Annotated[int, msgspec.Meta(description="Posts deleted with the groups.")]
    offers: Annotated[list[OfferRef], msgspec.Meta(description="Offers that grant one of these groups now and stop granting it.")]


def deletion_out(deletion) -> DeletionPreviewOut:
    return DeletionPreviewOut(
        groups=[GroupRef(g.id, g.name) for g in deletion.groups],
        members_losing_access=deletion.members_losing_access,
        posts=deletion.posts,
        offers=[OfferRef(offer_id, title) for offer_id, title in deletion.offers],
    )

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

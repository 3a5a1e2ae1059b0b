from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from community.web import MAX_ID

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=60, description="Lowercase letters, digits, dashes.")]
Description = Annotated[str, msgspec.Meta(max_length=5000)]
Currency = Annotated[str, msgspec.Meta(min_length=3, max_length=3, description="ISO 4217 code.")]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="A row id.")]
Ids = Annotated[list[Id], msgspec.Meta(max_length=1000)]


class CommunityCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    slug: Slug | None = None
    default_currency: Currency = "USD"
    support_email: Email | None = None


class CommunityUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    slug: Slug | None = None
    default_currency: Currency | None = None
    support_email: Email | None = None
    clear_support_email: bool = False
    grace_days: Annotated[int, msgspec.Meta(description="Days a member keeps access after a failed renewal, 0 to 60.")] | None = None


class CommunityOut(msgspec.Struct):
    id: int
    name: str
    slug: str
    default_currency: str
    support_email: str | None
    created_at: dt.datetime
    grace_days: int
    my_role: str | None = None


class StaffSet(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: Literal["owner", "admin", "manager"]


class MemberOut(msgspec.Struct):
    id: int
    user_id: int
    email: str
    name: str
    role: str | None
    joined_at: dt.datetime


class HubCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    slug: Slug | None = None
    description: Description = ""


class HubUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    slug: Slug | None = None
    description: Description | None = None


class GroupCreate(HubCreate, forbid_unknown_fields=True):
    pass


class GroupUpdate(HubUpdate, forbid_unknown_fields=True):
    hub_id: Id | None = None


class Reorder(msgspec.Struct, forbid_unknown_fields=True):
    ids: Ids


class GroupOut(msgspec.Struct):
    id: int
    hub_id: int
    name: str
    slug: str
    description: str
    position: int


class HubOut(msgspec.Struct):
    id: int
    name: str
    slug: str
    description: str
    position: int
    groups: list[GroupOut] = []


def community_out(community, role=None) -> CommunityOut:
    return CommunityOut(
        id=community.id,
        name=community.name,
        slug=community.slug,
        default_currency=community.default_currency,
        support_email=community.support_email,
        created_at=community.created_at,
        grace_days=community.grace_days,
        my_role=role.value if role else None,
    )


def member_out(member, user) -> MemberOut:
    return MemberOut(
        id=member.id,
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=member.role.value if member.role else None,
        joined_at=member.joined_at,
    )


def group_out(group) -> GroupOut:
    return GroupOut(
        id=group.id, hub_id=group.hub_id, name=group.name, slug=group.slug, description=group.description, position=group.position
    )


def hub_out(hub, groups=()) -> HubOut:
    return HubOut(
        id=hub.id,
        name=hub.name,
        slug=hub.slug,
        description=hub.description,
        position=hub.position,
        groups=[group_out(g) for g in groups],
    )

"""The member's side of a community (its page, a group, billing, resell rights): who is looking,
at which community, and what the member navigation links (templates/member.html).

A member page takes `area: MemberAreaOf` (the `area` dependency, provided app-wide: log-in
required, a place in the path's community else 404 like the API) and renders with `area.page`.
The provider lives on the content floor (it asks affiliates whether to link resell rights), so
billing's pages below it can use the same navigation without importing upwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.di import NamedDependency
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts import service as accounts
from community.accounts.models import Member, User
from community.errors import NotFound
from community.hubs import service
from community.hubs.models import Community


@dataclass(frozen=True)
class MemberArea:
    me: User
    community: Community
    member: Member
    resells: bool  # has a resell link here or may get one: the navigation links /affiliates

    @property
    def is_staff(self) -> bool:
        return self.member.role is not None

    def page(
        self, template: str, section: str, *, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any
    ) -> Template:
        """A member page in the shared layout, its navigation entry marked current."""
        return Template(
            template,
            context={"area": self, "section": section, "me": self.me, "community": self.community, **context},
            status_code=status_code,
            headers=headers,
        )


async def member_area(session: AsyncSession, community_id: int, user_id: int, *, resells: bool) -> MemberArea:
    member = await accounts.membership(session, community_id, user_id)
    if member is None:
        raise NotFound("community not found")
    community = await service.get_community(session, community_id)
    return MemberArea(me=await accounts.get_user(session, user_id), community=community, member=member, resells=resells)


MemberAreaOf = NamedDependency[MemberArea]

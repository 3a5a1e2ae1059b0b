"""The owner's console frame, shared by every domain's console screens: who is signed in, which
community, their role in it, the communities to switch to, and the sidebar their role sees.

A console screen takes `frame: Frame` (the `frame` dependency: log-in required, staff of the
community in the path, else 404 like the API) and renders with `console_page`, which wraps the
domain's own template in the one shared layout (templates/console.html).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Template

from community.accounts import service as accounts
from community.accounts.guards import Viewer, provide_viewer
from community.accounts.models import Member, Role, User
from community.accounts.service import Principal
from community.errors import NotAuthenticated
from community.hubs import service
from community.hubs.models import Community
from community.web import Db

SignedIn = NamedDependency[Principal]  # a logged-in page visitor


@dataclass(frozen=True)
class Section:
    key: str
    label: str
    path: str  # under /dashboard/communities/{id}
    editors_only: bool = False


# The sidebar, in the order owners read it. Later screens add their entry here.
SECTIONS = (
    Section("home", "Home", ""),
    Section("offers", "Digital offers", "/offers"),
    Section("hubs", "Hubs and groups", "/hubs"),
    Section("members", "Members", "/members"),
    Section("campaigns", "Campaigns", "/campaigns"),
    Section("payments", "Payments", "/payments"),
    Section("discounts", "Discount codes", "/discounts"),
    Section("resell", "Resell rights", "/resell"),
    Section("emails", "Email settings", "/emails"),
    Section("stripe", "Payments setup", "/stripe"),
)


@dataclass(frozen=True)
class Frame:
    user: User
    community: Community
    member: Member
    switchable: list[Community]  # the other communities this user is staff of

    @property
    def role(self) -> Role:
        assert self.member.role is not None
        return self.member.role

    @property
    def can_edit(self) -> bool:
        """Owners and admins change things; managers read (as in the API)."""
        return self.role in accounts.EDITORS

    @property
    def base(self) -> str:
        return f"/dashboard/communities/{self.community.id}"

    def sections(self) -> list[Section]:
        return [s for s in SECTIONS if self.can_edit or not s.editors_only]


async def signed_in(viewer: Viewer) -> Principal:
    """The page visitor, who must be logged in (the error handler sends others to log in)."""
    if viewer is None:
        raise NotAuthenticated("log in to see this page")
    return viewer


async def staff_frame(db: Db, user_id: int, community_id: int) -> Frame:
    member = await accounts.require_role(db, community_id, user_id, accounts.STAFF)
    community = await service.get_community(db, community_id)
    user = await accounts.get_user(db, user_id)
    others = [c for c, m in await service.communities_of(db, user_id) if m.role is not None and c.id != community_id]
    return Frame(user=user, community=community, member=member, switchable=others)


async def provide_frame(community_id: FromPath[int], signed: SignedIn, db: Db) -> Frame:
    return await staff_frame(db, signed.user_id, community_id)


CurrentFrame = NamedDependency[Frame]

# A console controller's dependencies: `frame` for screens under a community, `signed` for the rest.
CONSOLE_DEPENDENCIES = {
    "viewer": Provide(provide_viewer),
    "signed": Provide(signed_in),
    "frame": Provide(provide_frame),
}


def console_page(
    template: str, frame: Frame, section: str, *, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> Template:
    """A console screen inside the shared layout, its sidebar entry marked current."""
    return Template(
        template, context={"frame": frame, "section": section, "me": frame.user, **context},
        status_code=status_code, headers=headers,
    )

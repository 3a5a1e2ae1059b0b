"""Request dependencies that answer "who is calling" and "what may they do here".

The JSON API authenticates with bearer tokens only and pages with the session cookie only:
a cookie never authorises an API call, which is why /api is exempt from CSRF.
"""

from __future__ import annotations

from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from community.accounts import service
from community.accounts.models import Member, TokenKind
from community.accounts.service import EDITORS, STAFF, Principal
from community.errors import NotAuthenticated, NotFound
from community.web import Db

SESSION_KEY = "sid"
# Set in a session started from a link emailed to the account (its address is proven).
THROUGH_LINK_KEY = "link"


def bearer_token(request: Request) -> str:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise NotAuthenticated("send an API token as 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
    return secret.strip()


def token_rejected() -> NotAuthenticated:
    """The answer to a well-formed bearer token we do not know, or no longer honour."""
    return NotAuthenticated("this API token is invalid, revoked or expired", headers={"WWW-Authenticate": "Bearer"})


async def provide_principal(request: Request, db: Db) -> Principal:
    principal = await service.resolve_token(db, bearer_token(request), TokenKind.api)
    if principal is None:
        raise token_rejected()
    return principal


async def provide_member(community_id: FromPath[int], principal: CurrentPrincipal, db: Db) -> Member:
    """Any staff role in the community named by the path; 404 for outsiders."""
    return await service.require_role(db, community_id, principal.user_id, STAFF)


async def provide_editor(community_id: FromPath[int], principal: CurrentPrincipal, db: Db) -> Member:
    """Owners and admins: they shape the community (settings, hubs, groups, posts, staff)."""
    return await service.require_role(db, community_id, principal.user_id, EDITORS)


async def provide_participant(community_id: FromPath[int], principal: CurrentPrincipal, db: Db) -> Member:
    """Anyone with a place in the community (buyers included); 404 for outsiders."""
    member = await service.membership(db, community_id, principal.user_id)
    if member is None:
        raise NotFound("community not found")
    return member


async def provide_viewer(request: Request, db: Db) -> Principal | None:
    """The logged-in page visitor, if any."""
    secret = request.session.get(SESSION_KEY) if request.session else None
    if not secret:
        return None
    principal = await service.resolve_token(db, secret, TokenKind.session)
    if principal is None:
        request.clear_session()
    return principal


CurrentPrincipal = NamedDependency[Principal]
StaffMember = NamedDependency[Member]  # injected as `member` (any staff role) or `editor` (owner, admin)
Viewer = NamedDependency[Principal | None]


# Every guard of a community-scoped controller (a path with {community_id}): a handler names
# the one it needs (`member`, `editor` or `participant`) and Litestar resolves only that one.
COMMUNITY_GUARDS = {
    "principal": Provide(provide_principal),
    "member": Provide(provide_member),
    "editor": Provide(provide_editor),
    "participant": Provide(provide_participant),
}

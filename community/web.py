"""Shared web plumbing: the per-request database session, pagination, errors, page headers."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template
from litestar.types import Empty
from litestar.utils.scope.state import ScopeState
from sqlalchemy.ext.asyncio import AsyncSession

from community.errors import (
    DomainError,
    Invalid,
    NotAuthenticated,
    field_errors_from_validation,
    validation_messages,
)
from community.origins import is_slug

log = logging.getLogger("community.web")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
# Row ids are PostgreSQL bigints: a larger number names nothing (and must not reach the driver,
# which refuses to encode it).
MAX_ID = 2**63 - 1

ObjectId = Annotated[int, PathParameter(ge=1, le=MAX_ID, description="A row id.")]
"""A row id in the path; one outside the bigint range answers 404 like any id that names nothing."""

PageLimit = Annotated[
    int,
    QueryParameter(ge=1, le=MAX_PAGE_SIZE, description=f"Page size, at most {MAX_PAGE_SIZE}."),
]
Cursor = Annotated[
    int | None,
    QueryParameter(ge=1, le=MAX_ID, description="Keyset cursor: the `next` value of the previous page."),
]

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T]):
    """A keyset page: pass `next` back as the cursor parameter for the following page."""

    items: list[T]
    next: int | None


def page_of(items: list[T], limit: int, key: Any) -> Page[T]:
    return Page(items=items, next=key(items[-1]) if len(items) == limit and items else None)


class RequestTransaction:
    """One request's session and transaction, finished exactly once: committed or rolled back,
    then the connection goes back to the pool."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.finished = False

    async def finish(self, *, commit: bool) -> None:
        if self.finished:
            return
        self.finished = True
        try:
            if commit:
                await self.session.commit()
            else:
                await self.session.rollback()
        finally:
            await self.session.close()


_TRANSACTION_STATE_KEY = "community_db_transaction"


async def provide_db(state: State, request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, rolled back if it
    raises. The commit happens before the response is sent, so a failed commit is an error
    response, never a 2xx for lost work.

    Litestar (2.x) does not clean up generator dependencies it has already started when a
    later dependency raises (a guard's 401/403/404): this generator is then left suspended,
    its connection checked out and its transaction open (with any lock it took) until the
    garbage collector finds it, which for an exception caught in a reference cycle can take
    long enough for the pool to run dry. The error handler below finishes such a transaction,
    so it is registered on the request."""
    transaction = RequestTransaction(state.sessions())
    request.state[_TRANSACTION_STATE_KEY] = transaction
    try:
        yield transaction.session
    except BaseException:
        await transaction.finish(commit=False)
        raise
    await transaction.finish(commit=True)


def _unfinished_transaction(request: Request) -> RequestTransaction | None:
    transaction = request.state.get(_TRANSACTION_STATE_KEY)
    if isinstance(transaction, RequestTransaction) and not transaction.finished:
        return transaction
    return None


def derived_key(secret: str, purpose: str) -> bytes:
    """Independent keys per use, so no two mechanisms share key material."""
    return hashlib.sha256(f"{purpose}:{secret}".encode()).digest()


# ---------------------------------------------------------------- errors

_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
}


def _describe(exc: Exception) -> tuple[int, str, list[dict[str, str]], dict[str, str] | None]:
    if isinstance(exc, DomainError):
        return exc.status_code, exc.detail, exc.errors(), exc.headers
    if isinstance(exc, ValidationException):
        errors = field_errors_from_validation(exc.extra, exc.detail)
        items = exc.extra if isinstance(exc.extra, list) else []
        if items and all(isinstance(item, dict) and item.get("source") == "path" for item in items):
            # A path id that cannot exist (0, negative, beyond bigint) names nothing: 404.
            return 404, "not found", errors, None
        # Well-formed input that breaks a field's rules is 422; unparseable input (or a body
        # of the wrong shape as a whole) is 400.
        status = 422 if errors else 400
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "; ".join(
            validation_messages(exc.extra)
        ) or exc.detail
        return status, detail, errors, None
    if isinstance(exc, HTTPException):
        return exc.status_code, exc.detail, [], exc.headers
    if isinstance(exc, RecursionError) and "deserializing" in str(exc):
        # msgspec gives up on a body nested thousands of levels deep ([[[[...): bad input.
        return 400, "the request body is nested too deeply", [], None
    log.exception("unhandled error", exc_info=exc)
    return 500, "something went wrong on our side; it was logged", [], None


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path.startswith("/schema")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (never //host or /\\host)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")) and "\x00" not in target:
        return target
    return "/dashboard"


def exception_handler(request: Request, exc: Exception) -> Response[Any]:
    # Raised by a dependency after provide_db started (see there): roll back and release the
    # connection as soon as the error response is sent.
    transaction = _unfinished_transaction(request)
    background = BackgroundTask(transaction.finish, commit=False) if transaction else None
    if isinstance(exc, NotAuthenticated) and not wants_json(request):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        # A page that needs a logged-in visitor: log in, then come back here.
        return Redirect(
            f"/login?{urlencode({'next': safe_next(here)})}", status_code=303, headers=SECURITY_HEADERS, background=background
        )
    status, detail, errors, headers = _describe(exc)
    title = _TITLES.get(status, "Error")
    if wants_json(request):
        body: dict[str, Any] = {"status": status, "title": title, "detail": detail}
        if errors:
            body["errors"] = errors
        return Response(
            body, status_code=status, headers=headers, media_type="application/problem+json", background=background
        )
    # Responses made here skip the after_request hook: the page headers are set here too.
    return Template(
        template_name="error.html",
        context={"status": status, "title": title, "detail": detail, "errors": errors},
        status_code=status,
        headers={**SECURITY_HEADERS, "Content-Security-Policy": STRICT_CSP, **(headers or {})},
        background=background,
    )


# ---------------------------------------------------------------- page headers

# Platform pages run no inline script and no third-party code: owner custom code is only ever
# rendered on an offer's own landing and checkout pages, which set their own policy.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

def csp_with_forms_to(origin: str) -> str:
    """The strict policy, with one more place its forms may lead: browsers apply form-action to
    the redirect after a post too (a button that sends the visitor on to Stripe's pages)."""
    return STRICT_CSP.replace("form-action 'self'", f"form-action 'self' {origin}")


# The API docs (/schema) run Swagger UI from our own files and start it inline. They hold no
# session-bearing form (the API takes bearer tokens only), so they get this policy.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _is_html(response: Any) -> bool:
    # A Template's media_type stays None until it is rendered (it is then inferred from the
    # template name), and the static files router's ASGIFileResponse has no media_type at all.
    media_type = getattr(response, "media_type", None)
    if media_type is None and isinstance(response, Template):
        return response.template_name.endswith((".html", ".htm"))
    return str(media_type or "").startswith("text/html")


def _headers_hook(csp: str):
    async def add_headers(response: Any) -> Any:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if _is_html(response):
            response.headers.setdefault("Content-Security-Policy", csp)
        return response

    return add_headers


add_security_headers = _headers_hook(STRICT_CSP)
add_docs_headers = _headers_hook(DOCS_CSP)


Db = NamedDependency[AsyncSession]


# ---------------------------------------------------------------- origins

SESSION_COOKIE = "community_session"
CSRF_COOKIE = "community_csrf"

# An offer page names its community in its path: it belongs on that community's origin.
OFFER_PAGE = re.compile(r"^/o/([^/]+)/[^/]+(?:/checkout|/quote)?/?$")
# These name it only through a lookup (a checkout token, an affiliate code): their handlers move
# a request that came to another host (moved_to_community), once they know where it belongs.
LOOKED_UP_PAGE = re.compile(r"^/(?:checkout/[^/]+/thanks|r/[^/]+)/?$")
PAGES_ORIGIN_ASSETS = re.compile(r"^/(?:static|media)/")


def _requested(scope: Any) -> str:
    """The path and query as the client sent them (still percent-encoded)."""
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


def _host(scope: Any) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return value.decode("latin-1")
    return ""


async def _send_moved(send: Any, location: str) -> None:
    headers = [
        (b"location", location.encode("latin-1")),
        (b"content-length", b"0"),
        (b"cache-control", b"no-store"),  # a changed COMMUNITY_PAGES_URL or slug must not stay cached
        *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()),
    ]
    await send({"type": "http.response.start", "status": 308, "headers": headers})  # 308 keeps a POST a POST
    await send({"type": "http.response.body", "body": b""})


class OriginSplit:
    """The outermost middleware: which origin answers what (docs/DESIGN.md §7).

    An offer page asked for anywhere but on its own community's origin moves there. On a
    community's origin, anything but its offer pages, the looked-up pages, static files and
    media moves back to the platform, so no member page, form or API answers where owners'
    code runs. And the app sees only the cookies those pages use (`pages_cookies`): a session
    cookie that a sibling community's code set for a shared parent domain is never read there,
    nor set back."""

    def __init__(self, app: Any, settings: Any, pages_cookies: re.Pattern[str]) -> None:
        self.app = app
        self.pages = settings.pages
        self.base_url = settings.base_url
        self.pages_cookies = pages_cookies

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        on_pages = self.pages.slug_of(_host(scope))
        path = scope["path"]
        offer = OFFER_PAGE.match(path)
        target = None
        if offer is not None:
            wanted = offer.group(1)
            if wanted != on_pages and is_slug(wanted):  # any other slug names no community: the app says 404
                target = self.pages.origin(wanted)
        elif on_pages is not None and not (LOOKED_UP_PAGE.match(path) or PAGES_ORIGIN_ASSETS.match(path)):
            target = self.base_url
        if target is not None:
            await _send_moved(send, target + _requested(scope))
            return
        if on_pages is not None:
            scope["headers"] = [
                (name, self._only_pages_cookies(value) if name == b"cookie" else value) for name, value in scope["headers"]
            ]
            # Whatever read the headers before (an outer middleware) must not keep the old cookies.
            state = ScopeState.from_scope(scope)
            state.headers = state.cookies = Empty
        await self.app(scope, receive, send)

    def _only_pages_cookies(self, header: bytes) -> bytes:
        kept = [
            pair for pair in header.split(b";")
            if self.pages_cookies.fullmatch(pair.split(b"=", 1)[0].strip().decode("latin-1"))
        ]
        return b";".join(kept)


def moved_to_community(request: Request, settings: Any, community_slug: str) -> str | None:
    """For a looked-up page (thanks, /r/): the same address on its community's origin when the
    request came to another host; None when it is already there."""
    if settings.pages.slug_of(request.headers.get("host", "")) == community_slug:
        return None
    return settings.pages_origin(community_slug) + _requested(request.scope)


# ---------------------------------------------------------------- query parameters


def known_query(*names: str) -> Any:
    """A route guard that refuses a query parameter the route does not know (422 naming it).
    Litestar ignores unknown parameters, so a misspelt filter or sort would silently list
    everyone; routes whose parameters change what they answer (lists, exports) use this."""
    allowed = frozenset(names)

    def guard(connection: Any, _handler: Any) -> None:
        unknown = sorted(set(connection.query_params) - allowed)
        if unknown:
            raise Invalid(f"unknown query parameter {unknown[0]!r}: this route takes {', '.join(sorted(allowed))}", field=unknown[0])

    return guard

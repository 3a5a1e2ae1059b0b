"""Shared web plumbing: the per-request database session, pagination, errors, page headers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar import Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from community.errors import DomainError, field_errors_from_validation

log = logging.getLogger("community.web")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50

PageLimit = Annotated[
    int,
    QueryParameter(ge=1, le=MAX_PAGE_SIZE, description=f"Page size, at most {MAX_PAGE_SIZE}."),
]
Cursor = Annotated[
    int | None,
    QueryParameter(ge=1, description="Keyset cursor: the `next` value of the previous page."),
]

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T]):
    """A keyset page: pass `next` back as the cursor parameter for the following page."""

    items: list[T]
    next: int | None


def page_of(items: list[T], limit: int, key: Any) -> Page[T]:
    return Page(items=items, next=key(items[-1]) if len(items) == limit and items else None)


async def provide_db(state: State) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, rolled back if it
    raises. The commit happens before the response is sent, so a failed commit is an error
    response, never a 2xx for lost work."""
    async with state.sessions() as session, session.begin():
        yield session


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
}


def _describe(exc: Exception) -> tuple[int, str, list[dict[str, str]], dict[str, str] | None]:
    if isinstance(exc, DomainError):
        return exc.status_code, exc.detail, exc.errors(), exc.headers
    if isinstance(exc, ValidationException):
        errors = field_errors_from_validation(exc.extra, exc.detail)
        # Well-formed input that breaks a field's rules is 422; unparseable input stays 400.
        status = 422 if errors else 400
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or exc.detail
        return status, detail, errors, None
    if isinstance(exc, HTTPException):
        return exc.status_code, exc.detail, [], exc.headers
    log.exception("unhandled error", exc_info=exc)
    return 500, "something went wrong on our side; it was logged", [], None


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path.startswith("/schema")


def exception_handler(request: Request, exc: Exception) -> Response[Any]:
    status, detail, errors, headers = _describe(exc)
    title = _TITLES.get(status, "Error")
    if wants_json(request):
        body: dict[str, Any] = {"status": status, "title": title, "detail": detail}
        if errors:
            body["errors"] = errors
        return Response(body, status_code=status, headers=headers, media_type="application/problem+json")
    return Template(
        template_name="error.html",
        context={"status": status, "title": title, "detail": detail, "errors": errors},
        status_code=status,
        headers=headers,
    )


# ---------------------------------------------------------------- page headers

# Platform pages run no inline script and no third-party code: owner custom code is only ever
# rendered on an offer's own landing and checkout pages, which set their own policy.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


async def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.media_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", STRICT_CSP)
    return response


Db = NamedDependency[AsyncSession]

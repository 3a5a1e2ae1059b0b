"""Log-in, sign-up, login-link and log-out pages (cookie session + CSRF)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, QueryParameter
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community import ratelimit
from community.accounts import service
from community.accounts.api import check_login_limits, client_address
from community.accounts.guards import (
    SESSION_KEY,
    THROUGH_LINK_KEY,
    Viewer,
    provide_viewer,
)
from community.accounts.models import TokenKind
from community.accounts.service import SESSION_TTL
from community.errors import DomainError
from community.forms import refusal
from community.web import Db, safe_next

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
NextPath = Annotated[str | None, QueryParameter(name="next", max_length=2000)]  # where to go after logging in


async def start_session(request: Request, db: Db, user_id: int, *, through_link: bool = False) -> None:
    """A fresh session id at every login (no session fixation). `through_link`: the visitor
    opened a link sent to the account's address, which proves the address is theirs (an
    account without a password may then choose one)."""
    old = request.session.get(SESSION_KEY) if request.session else None
    if old:
        principal = await service.resolve_token(db, old, TokenKind.session)
        if principal:
            await service.revoke_token(db, user_id=principal.user_id, token_id=principal.token_id)
    request.clear_session()
    _, secret = await service.create_token(db, user_id=user_id, kind=TokenKind.session, name="browser", ttl=SESSION_TTL)
    request.set_session({SESSION_KEY: secret, **({THROUGH_LINK_KEY: True} if through_link else {})})


def _form_error(template: str, exc: DomainError, **context: Any) -> Template:
    return Template(
        template_name=template,
        context={"error": exc.detail, "field": exc.field, "errors": refusal(exc), **context},
        status_code=exc.status_code,
        headers=exc.headers,
    )


class AccountPages(Controller):
    include_in_schema = False
    dependencies = {"viewer": Provide(provide_viewer)}

    @get("/login")
    async def login_form(self, viewer: Viewer, next_path: NextPath = None) -> Template | Redirect:
        if viewer:
            return Redirect(safe_next(next_path))
        return Template("accounts/login.html", context={"email": "", "next": safe_next(next_path)})

    @post("/login")
    async def login(self, data: Form, request: Request, db: Db, state: State) -> Template | Redirect:
        email, password, next_path = data.get("email", ""), data.get("password", ""), safe_next(data.get("next"))
        try:
            await check_login_limits(state, request, email)
            user = await service.authenticate(db, email=email, password=password)
        except DomainError as exc:
            return _form_error("accounts/login.html", exc, email=email, next=next_path)
        await start_session(request, db, user.id)
        return Redirect(next_path, status_code=303)

    @get("/signup")
    async def signup_form(self, next_path: NextPath = None) -> Template:
        return Template("accounts/signup.html", context={"email": "", "name": "", "next": safe_next(next_path)})

    @post("/signup")
    async def signup(self, data: Form, request: Request, db: Db) -> Template | Redirect:
        email, name, next_path = data.get("email", ""), data.get("name", ""), safe_next(data.get("next"))
        try:
            async with db.begin_nested():
                user = await service.sign_up(db, email=email, password=data.get("password", ""), name=name)
        except DomainError as exc:
            return _form_error("accounts/signup.html", exc, email=email, name=name, next=next_path)
        await start_session(request, db, user.id)
        return Redirect(next_path, status_code=303)

    @get("/login/link")
    async def link_form(self) -> Template:
        return Template("accounts/link_request.html", context={"email": "", "sent": False})

    @post("/login/link")
    async def send_link(self, data: Form, request: Request, db: Db, state: State) -> Template:
        email = data.get("email", "")
        try:
            await ratelimit.hit(state.redis, f"link:addr:{client_address(request)}", limit=10, window_seconds=900)
            await service.request_login_link(db, email=email, base_url=state.settings.base_url)
        except DomainError as exc:
            return _form_error("accounts/link_request.html", exc, email=email, sent=False)
        return Template("accounts/link_request.html", context={"email": email, "sent": True})

    # The emailed link opens a page with a button instead of logging in on GET: mail scanners
    # that prefetch links would otherwise spend the one-time token.
    @get("/login/link/{token:str}")
    async def link_confirm(self, token: FromPath[str]) -> Template:
        return Template("accounts/link_confirm.html", context={"token": token})

    @post("/login/link/{token:str}")
    async def link_login(self, token: FromPath[str], request: Request, db: Db) -> Template | Redirect:
        try:
            user = await service.redeem_login_link(db, token)
        except DomainError as exc:
            return _form_error("accounts/link_confirm.html", exc, token=None)
        await start_session(request, db, user.id, through_link=True)
        if user.password_hash is None:  # a buyer's or an invitee's first visit: set a password next
            flash(request, "You are logged in. Choose a password below to log in without a link next time.", "success")
            return Redirect("/account", status_code=303)
        return Redirect("/dashboard")

    @post("/logout")
    async def logout(self, request: Request, viewer: Viewer, db: Db) -> Redirect:
        if viewer:
            await service.revoke_token(db, user_id=viewer.user_id, token_id=viewer.token_id)
        request.clear_session()
        return Redirect("/login")

from __future__ import annotations

import datetime as dt

from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import FromPath, JSONBody

from community import ratelimit
from community.accounts import email_change, service
from community.accounts.guards import CurrentPrincipal, provide_principal
from community.accounts.models import TokenKind
from community.accounts.schemas import (
    EmailChangeConfirm,
    EmailChangeOut,
    EmailChangeRequest,
    EmailState,
    LogIn,
    LoginLinkRedeem,
    LoginLinkRequest,
    ProfileUpdate,
    Session,
    SignUp,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserOut,
    email_change_out,
    token_out,
    user_out,
)
from community.web import Db

# Login attempts: per client address, and per account (so one account cannot be brute-forced
# from many addresses).
LOGIN_PER_ADDRESS = (30, 300)
LOGIN_PER_ACCOUNT = (10, 900)
LINKS_PER_ADDRESS = (10, 900)
# Each request mails an address the caller names: a few an hour per account.
EMAIL_CHANGES_PER_ACCOUNT = (5, 3600)


async def check_email_change_limit(state: State, user_id: int) -> None:
    await ratelimit.hit(
        state.redis, f"email-change:{user_id}", limit=EMAIL_CHANGES_PER_ACCOUNT[0], window_seconds=EMAIL_CHANGES_PER_ACCOUNT[1]
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def check_login_limits(state: State, request: Request, email: str) -> None:
    redis = state.redis
    await ratelimit.hit(redis, f"login:addr:{client_address(request)}", limit=LOGIN_PER_ADDRESS[0], window_seconds=LOGIN_PER_ADDRESS[1])
    await ratelimit.hit(redis, f"login:acct:{email.strip().lower()}", limit=LOGIN_PER_ACCOUNT[0], window_seconds=LOGIN_PER_ACCOUNT[1])


class AuthController(Controller):
    path = "/auth"
    tags = ["accounts"]

    @post("/signup", status_code=201, summary="Create an account and get an API token")
    async def sign_up(self, data: JSONBody[SignUp], db: Db) -> Session:
        user = await service.sign_up(db, email=data.email, password=data.password, name=data.name)
        token, secret = await service.create_token(db, user_id=user.id, kind=TokenKind.api, name="sign-up")
        return Session(user=user_out(user), token=token_out(token), secret=secret)

    @post("/login", status_code=200, summary="Log in with email and password; returns a new API token")
    async def log_in(self, data: JSONBody[LogIn], db: Db, state: State, request: Request) -> Session:
        await check_login_limits(state, request, data.email)
        user = await service.authenticate(db, email=data.email, password=data.password)
        token, secret = await service.create_token(db, user_id=user.id, kind=TokenKind.api, name=data.token_name)
        return Session(user=user_out(user), token=token_out(token), secret=secret)

    @post("/login-link", status_code=202, summary="Email a one-time login link (always answers 202)")
    async def request_link(self, data: JSONBody[LoginLinkRequest], db: Db, state: State, request: Request) -> None:
        await ratelimit.hit(state.redis, f"link:addr:{client_address(request)}", limit=LINKS_PER_ADDRESS[0], window_seconds=LINKS_PER_ADDRESS[1])
        await ratelimit.hit(state.redis, f"link:acct:{data.email.strip().lower()}", limit=5, window_seconds=900)
        await service.request_login_link(db, email=data.email, base_url=state.settings.base_url)

    @post("/login-link/redeem", status_code=200, summary="Trade a login link's token for an API token")
    async def redeem_link(self, data: JSONBody[LoginLinkRedeem], db: Db) -> Session:
        user = await service.redeem_login_link(db, data.token)
        token, secret = await service.create_token(db, user_id=user.id, kind=TokenKind.api, name=data.token_name)
        return Session(user=user_out(user), token=token_out(token), secret=secret)

    @post("/logout", status_code=204, summary="Revoke the token this request was made with",
          dependencies={"principal": Provide(provide_principal)})
    async def log_out(self, principal: CurrentPrincipal, db: Db) -> None:
        await service.revoke_token(db, user_id=principal.user_id, token_id=principal.token_id)


class MeController(Controller):
    path = "/me"
    tags = ["accounts"]
    dependencies = {"principal": Provide(provide_principal)}

    @get("/", summary="The calling user")
    async def me(self, principal: CurrentPrincipal, db: Db) -> UserOut:
        return user_out(await service.get_user(db, principal.user_id))

    @patch("/", summary="Change my name or password")
    async def update_me(self, data: JSONBody[ProfileUpdate], principal: CurrentPrincipal, db: Db) -> UserOut:
        user = await service.get_user(db, principal.user_id)
        user = await service.update_profile(
            db, user, name=data.name, password=data.password, current_password=data.current_password
        )
        return user_out(user)

    @get("/email", summary="My email, and a change waiting for its link to be confirmed")
    async def email_state(self, principal: CurrentPrincipal, db: Db) -> EmailState:
        user = await service.get_user(db, principal.user_id)
        pending = await email_change.pending_email_change(db, user.id)
        return EmailState(email=user.email, pending=email_change_out(pending) if pending else None)

    @post("/email", status_code=202, summary="Change my email: a link is sent to the new address (and the change waits for it)")
    async def request_email_change(
        self, data: JSONBody[EmailChangeRequest], principal: CurrentPrincipal, db: Db, state: State
    ) -> EmailChangeOut:
        await check_email_change_limit(state, principal.user_id)
        user = await service.get_user(db, principal.user_id)
        change = await email_change.request_email_change(
            db, user, new_email=data.email, current_password=data.current_password, base_url=state.settings.base_url
        )
        return email_change_out(change)

    @post("/email/confirm", status_code=200, summary="Confirm my email change with the emailed link's token (works once)")
    async def confirm_email_change(
        self, data: JSONBody[EmailChangeConfirm], principal: CurrentPrincipal, db: Db, state: State
    ) -> UserOut:
        user = await email_change.confirm_email_change(db, principal.user_id, data.token, base_url=state.settings.base_url)
        return user_out(user)

    @get("/tokens", summary="My API tokens (secrets are never shown again)")
    async def list_tokens(self, principal: CurrentPrincipal, db: Db) -> list[TokenOut]:
        return [token_out(t) for t in await service.list_api_tokens(db, principal.user_id)]

    @post("/tokens", status_code=201, summary="Create an API token")
    async def create_token(self, data: JSONBody[TokenCreate], principal: CurrentPrincipal, db: Db) -> TokenCreated:
        ttl = dt.timedelta(days=data.expires_in_days) if data.expires_in_days else None
        token, secret = await service.create_token(
            db, user_id=principal.user_id, kind=TokenKind.api, name=data.name, ttl=ttl
        )
        return TokenCreated(token=token_out(token), secret=secret)

    @delete("/tokens/{token_id:int}", status_code=204, summary="Revoke one of my API tokens")
    async def revoke_token(self, token_id: FromPath[int], principal: CurrentPrincipal, db: Db) -> None:
        await service.revoke_token(db, user_id=principal.user_id, token_id=token_id, kind=TokenKind.api)

"""The account page (`/account`): name, password and email, through the same services and input
rules as `PATCH /api/v1/me` and `/api/v1/me/email`. A buyer whose account was made at checkout
sets a first password here once they came in through a link sent to their address."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community import ratelimit
from community.accounts import email_change, service
from community.accounts.api import (
    LINKS_PER_ADDRESS,
    check_email_change_limit,
    client_address,
)
from community.accounts.guards import THROUGH_LINK_KEY, Viewer, provide_viewer
from community.accounts.models import User
from community.accounts.schemas import EmailChangeRequest, ProfileUpdate
from community.accounts.service import PASSWORD_MIN, Principal
from community.errors import DomainError, NotAuthenticated
from community.forms import FormBody, Posted, read_input, refusal
from community.web import Db

# The email form's own name for the current password (the password form has one too: ids stay unique).
EMAIL_FORM_PASSWORD = "email_current_password"


def _signed(viewer: Principal | None) -> Principal:
    if viewer is None:
        raise NotAuthenticated("log in to see this page")  # pages: log in, then come back
    return viewer


def _through_link(request: Request) -> bool:
    return bool(request.session.get(THROUGH_LINK_KEY)) if request.session else False


class AccountSettingsPages(Controller):
    include_in_schema = False
    dependencies = {"viewer": Provide(provide_viewer)}

    @get("/account")
    async def account(self, request: Request, viewer: Viewer, db: Db) -> Template:
        user = await service.get_user(db, _signed(viewer).user_id)
        return await self._page(request, db, user)

    @post("/account/name")
    async def change_name(self, data: FormBody, request: Request, viewer: Viewer, db: Db) -> Template | Redirect:
        user = await service.get_user(db, _signed(viewer).user_id)
        form = Posted(data)
        try:
            given = read_input({"name": form.text("name")}, ProfileUpdate)
            async with db.begin_nested():
                await service.update_profile(db, user, name=given.name, password=None, current_password=None)
        except DomainError as exc:
            await db.refresh(user)  # as stored: a refused change leaves nothing behind
            return await self._page(request, db, user, failed="name", form=form, errors=refusal(exc), status_code=exc.status_code)
        flash(request, "Your name is saved.", "success")
        return Redirect("/account", status_code=303)

    @post("/account/password")
    async def change_password(self, data: FormBody, request: Request, viewer: Viewer, db: Db) -> Template | Redirect:
        user = await service.get_user(db, _signed(viewer).user_id)
        form = Posted(data)
        had_password = user.password_hash is not None
        try:
            given = read_input(
                {"password": form.text("password"), "current_password": form.text("current_password") if had_password else None},
                ProfileUpdate,
            )
            async with db.begin_nested():
                await service.update_profile(
                    db, user, name=None, password=given.password, current_password=given.current_password,
                    address_proven=_through_link(request),
                )
        except DomainError as exc:
            await db.refresh(user)  # as stored: a refused change leaves nothing behind
            return await self._page(request, db, user, failed="password", form=form, errors=refusal(exc), status_code=exc.status_code)
        flash(request, "Your password is changed." if had_password else "Your password is set: log in with it from now on.", "success")
        return Redirect("/account", status_code=303)

    @post("/account/email")
    async def change_email(self, data: FormBody, request: Request, viewer: Viewer, db: Db, state: State) -> Template | Redirect:
        user = await service.get_user(db, _signed(viewer).user_id)
        form = Posted(data)
        try:
            await check_email_change_limit(state, user.id)
            given = read_input(
                {"email": form.text("email"), "current_password": form.text(EMAIL_FORM_PASSWORD) if user.password_hash else None},
                EmailChangeRequest,
            )
            async with db.begin_nested():
                change = await email_change.request_email_change(
                    db, user, new_email=given.email, current_password=given.current_password, base_url=state.settings.base_url
                )
        except DomainError as exc:
            await db.refresh(user)
            errors = refusal(exc)
            if "current_password" in errors:
                errors = {EMAIL_FORM_PASSWORD: errors.pop("current_password")}
            return await self._page(request, db, user, failed="email", form=form, errors=errors, status_code=exc.status_code)
        flash(request, f"We sent a link to {change.new_email}. Open it to confirm the change; until then your email stays {user.email}.", "success")
        return Redirect("/account", status_code=303)

    @post("/account/link")
    async def send_link(self, request: Request, viewer: Viewer, db: Db, state: State) -> Redirect:
        """A logged-in account without a password asks for the link that proves its address."""
        user = await service.get_user(db, _signed(viewer).user_id)
        await ratelimit.hit(state.redis, f"link:addr:{client_address(request)}", limit=LINKS_PER_ADDRESS[0], window_seconds=LINKS_PER_ADDRESS[1])
        await service.request_login_link(db, email=user.email, base_url=state.settings.base_url)
        flash(request, f"A login link is on its way to {user.email}. Open it, then choose your password here.", "success")
        return Redirect("/account", status_code=303)

    # The emailed link opens a page with a button: a mail scanner's prefetch changes nothing.
    @get("/account/email/{token:str}")
    async def confirm_email_form(self, token: FromPath[str], viewer: Viewer, db: Db) -> Template:
        user = await service.get_user(db, _signed(viewer).user_id)
        try:
            change = await email_change.waiting_change(db, user.id, token)
        except DomainError as exc:
            return self._confirm_page(user, token=None, error=exc.detail, status_code=exc.status_code)
        return self._confirm_page(user, token=token, new_email=change.new_email)

    @post("/account/email/{token:str}")
    async def confirm_email(self, token: FromPath[str], request: Request, viewer: Viewer, db: Db, state: State) -> Template | Redirect:
        user = await service.get_user(db, _signed(viewer).user_id)
        try:
            async with db.begin_nested():
                await email_change.confirm_email_change(db, user.id, token, base_url=state.settings.base_url)
        except DomainError as exc:
            await db.refresh(user)
            return self._confirm_page(user, token=None, error=exc.detail, status_code=exc.status_code)
        # The address is proven now (the link reached it): this session may choose a first password.
        request.set_session({**(request.session or {}), THROUGH_LINK_KEY: True})
        flash(request, f"Your email is now {user.email}.", "success")
        return Redirect("/account", status_code=303)

    async def _page(
        self,
        request: Request,
        db: Db,
        user: User,
        *,
        failed: str | None = None,
        form: Posted | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        return Template(
            "accounts/account.html",
            context={
                "me": user,
                "has_password": user.password_hash is not None,
                "through_link": _through_link(request),
                "pending": await email_change.pending_email_change(db, user.id),
                "failed": failed,
                "form": form or Posted(),
                "errors": errors or {},
                "password_min": PASSWORD_MIN,
                "email_password": EMAIL_FORM_PASSWORD,
            },
            status_code=status_code,
        )

    @staticmethod
    def _confirm_page(user: User, *, status_code: int = 200, **context: Any) -> Template:
        return Template("accounts/email_confirm.html", context={"me": user, **context}, status_code=status_code)

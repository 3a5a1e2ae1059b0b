"""The home page, the signed-in user's dashboard (every community they belong to) and creating
a community. The console's screens of hubs and groups are in hubs/console_pages.py."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community.accounts import service as accounts
from community.accounts.guards import Viewer
from community.errors import DomainError
from community.forms import FormBody, Posted, read_input, refusal
from community.hubs import service
from community.hubs.frame import CONSOLE_DEPENDENCIES, SignedIn
from community.hubs.schemas import CommunityCreate
from community.money import SUPPORTED_CURRENCIES
from community.web import Db

CURRENCIES = [(code, code) for code in sorted(SUPPORTED_CURRENCIES)]


class HubPages(Controller):
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    @get("/")
    async def home(self, viewer: Viewer) -> Template:
        return Template("home.html", context={"logged_in": viewer is not None})

    @get("/dashboard")
    async def dashboard(self, signed: SignedIn, db: Db) -> Template:
        """Every community the user has a place in: staff open its console, members its page."""
        user = await accounts.get_user(db, signed.user_id)
        communities = await service.communities_of(db, signed.user_id)
        return Template("hubs/dashboard.html", context={"me": user, "communities": communities})

    @get("/dashboard/communities/new")
    async def new_community(self, signed: SignedIn, db: Db) -> Template:
        user = await accounts.get_user(db, signed.user_id)
        return self._new_form(user, Posted({"default_currency": "USD", "support_email": user.email}))

    @post("/dashboard/communities/new")
    async def create_community(self, data: FormBody, request: Request, signed: SignedIn, db: Db) -> Template | Redirect:
        form = Posted(data)
        user = await accounts.get_user(db, signed.user_id)
        try:
            given = read_input(
                {
                    "name": form.text("name"),
                    "slug": form.optional("slug"),
                    "default_currency": form.text("default_currency") or "USD",
                    "support_email": form.optional("support_email"),
                },
                CommunityCreate,
            )
            async with db.begin_nested():  # a refusal leaves nothing half-written
                community = await service.create_community(
                    db, creator=user, name=given.name, slug=given.slug,
                    default_currency=given.default_currency, support_email=given.support_email,
                )
        except DomainError as exc:
            return self._new_form(user, form, refusal(exc), exc.status_code)
        flash(request, f"{community.name} is ready. Next: the steps below.", "success")
        return Redirect(f"/dashboard/communities/{community.id}", status_code=303)

    @staticmethod
    def _new_form(user, form: Posted, errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
        return Template(
            "hubs/new_community.html",
            context={"me": user, "form": form, "errors": errors or {}, "currencies": CURRENCIES},
            status_code=status_code,
        )

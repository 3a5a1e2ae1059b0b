"""The console's payments setup: connect the community's Stripe account (Stripe's onboarding
and back), its status, and disconnecting it. The same service calls as the API's
/communities/{id}/stripe."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from community.checkout import connect
from community.errors import DomainError, Forbidden
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, Frame, console_page
from community.stripe_client import hosted_origin, stripe_client
from community.web import Db, csp_with_forms_to

STRIPE_CONNECT = "https://connect.stripe.com"  # where Account Links onboarding lives


def _editor(frame: Frame) -> None:
    if not frame.can_edit:
        raise Forbidden("only owners and admins connect or disconnect Stripe")


def _status_page(frame: Frame, state: State, account: Any, error: str | None, status_code: int = 200) -> Template:
    # "Connect with Stripe" posts, then redirects to Stripe's onboarding: the form may lead there.
    return console_page(
        "checkout/stripe_setup.html", frame, "stripe", account=account, error=error, status_code=status_code,
        headers={"Content-Security-Policy": csp_with_forms_to(hosted_origin(state.settings, STRIPE_CONNECT))},
    )


class StripeSetupPages(Controller):
    path = "/dashboard/communities/{community_id:int}/stripe"
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    @get("/")
    async def status(self, frame: CurrentFrame, db: Db, state: State) -> Template:
        account = await connect.account_of(db, frame.community.id)
        error = None
        if account is not None:
            try:  # what Stripe says now; the page still shows what we knew if Stripe does not answer
                account = await connect.refresh(db, stripe_client(state.settings), community_id=frame.community.id)
            except DomainError as exc:
                error = exc.detail
        return _status_page(frame, state, account, error)

    @post("/onboarding")
    async def onboarding(self, frame: CurrentFrame, request: Request, db: Db, state: State) -> Template | Redirect:
        _editor(frame)
        try:
            url = await connect.start_onboarding(
                db, stripe_client(state.settings), community_id=frame.community.id, base_url=state.settings.base_url
            )
        except DomainError as exc:
            return _status_page(frame, state, await connect.account_of(db, frame.community.id), exc.detail, exc.status_code)
        return Redirect(url, status_code=303)

    @get("/disconnect")
    async def confirm_disconnect(self, frame: CurrentFrame, db: Db) -> Template:
        _editor(frame)
        account = await connect.account_of(db, frame.community.id)
        return console_page("checkout/stripe_disconnect.html", frame, "stripe", account=account)

    @post("/disconnect")
    async def disconnect(self, frame: CurrentFrame, request: Request, db: Db) -> Redirect:
        _editor(frame)
        await connect.disconnect(db, community_id=frame.community.id)
        flash(request, "Stripe is disconnected: paid offers stop selling until you connect an account again.", "success")
        return Redirect(f"{frame.base}/stripe", status_code=303)

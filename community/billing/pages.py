"""The member's billing page (`/communities/{id}/billing`): memberships with their status,
access end and next payment; cancel, resume and update the payment method (CSRF-protected
forms); payments with refunds and receipts. A platform page: strict CSP, never any owner's
custom code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import select

from community.accounts import service as accounts
from community.accounts.guards import Viewer, provide_viewer
from community.accounts.service import Principal
from community.billing import memberships
from community.billing import service as billing
from community.db import utcnow
from community.errors import NotFound
from community.hubs.member_area import MemberAreaOf
from community.hubs.models import Community
from community.money import format_amount
from community.offers.models import Offer
from community.settings import Settings
from community.stripe_client import hosted_origin
from community.web import Db, csp_with_forms_to

PAYMENTS_SHOWN = 100
STRIPE_BILLING_PORTAL = "https://billing.stripe.com"


def _page_csp(settings: Settings) -> str:
    """ "Update payment method" redirects to Stripe's billing portal."""
    return csp_with_forms_to(hosted_origin(settings, STRIPE_BILLING_PORTAL))


async def _participant(db: Db, community_id: int, viewer: Principal) -> None:
    if await accounts.membership(db, community_id, viewer.user_id) is None:
        raise NotFound("community not found")


async def _change(
    change: Callable[..., Awaitable[object]], db: Db, state: State, viewer: Principal | None, community_id: int, entitlement_id: int
) -> Redirect:
    """A member's cancel or resume from the page's form, then back to the page."""
    if viewer is None:
        return Redirect("/login")
    await _participant(db, community_id, viewer)
    await change(db, state.settings, community_id=community_id, user_id=viewer.user_id, entitlement_id=entitlement_id)
    return Redirect(f"/communities/{community_id}/billing", status_code=303)


class BillingPages(Controller):
    include_in_schema = False
    path = "/communities/{community_id:int}/billing"
    dependencies = {"viewer": Provide(provide_viewer)}

    @get("/")
    async def page(self, area: MemberAreaOf, db: Db, state: State) -> Template:
        """In the member navigation (`area`: log-in required, a participant of the community)."""
        community_id, user_id = area.community.id, area.me.id
        held = await memberships.my_memberships(db, state.settings, community_id, user_id)
        payments = await memberships.my_payments(db, community_id, user_id, after=None, limit=PAYMENTS_SHOWN)
        offer_ids = {p.offer_id for p in payments}
        titles = {o.id: o.title for o in await db.scalars(select(Offer).where(Offer.id.in_(offer_ids)))}
        return area.page(
            "billing/portal.html",
            "billing",
            memberships=held,
            payments=payments,
            titles=titles,
            money=format_amount,
            live=memberships.subscription_is_live,
            now=utcnow(),
            spent=await billing.total_spent(db, community_id=community_id, user_id=user_id),  # a participant: checked by `area`
            headers={"Content-Security-Policy": _page_csp(state.settings)},
        )

    @get("/receipts/{payment_id:int}")
    async def receipt(self, community_id: FromPath[int], payment_id: FromPath[int], viewer: Viewer, db: Db) -> Template | Redirect:
        if viewer is None:
            return Redirect("/login")
        await _participant(db, community_id, viewer)
        payment = await memberships.my_payment(db, community_id, viewer.user_id, payment_id)
        community = await db.get_one(Community, community_id)
        offer = await db.get_one(Offer, payment.offer_id)
        user = await accounts.get_user(db, viewer.user_id)
        return Template(
            "billing/receipt.html",
            context={"community": community, "offer": offer, "payment": payment, "user": user, "money": format_amount},
        )

    @post("/{entitlement_id:int}/cancel")
    async def cancel(self, community_id: FromPath[int], entitlement_id: FromPath[int], viewer: Viewer, db: Db, state: State) -> Redirect:
        return await _change(memberships.cancel_at_period_end, db, state, viewer, community_id, entitlement_id)

    @post("/{entitlement_id:int}/resume")
    async def resume(self, community_id: FromPath[int], entitlement_id: FromPath[int], viewer: Viewer, db: Db, state: State) -> Redirect:
        return await _change(memberships.resume, db, state, viewer, community_id, entitlement_id)

    @post("/{entitlement_id:int}/payment-method")
    async def payment_method(
        self, community_id: FromPath[int], entitlement_id: FromPath[int], viewer: Viewer, db: Db, state: State
    ) -> Redirect:
        if viewer is None:
            return Redirect("/login")
        await _participant(db, community_id, viewer)
        url = await memberships.payment_method_url(
            db, state.settings, community_id=community_id, user_id=viewer.user_id, entitlement_id=entitlement_id
        )
        return Redirect(url, status_code=303)


"""Checkout through the API: the community's Stripe connection (owners and admins), Stripe's
webhook endpoints, and the public price preview of the checkout page."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody
from sqlalchemy import select

from community.accounts.api import client_address
from community.accounts.guards import COMMUNITY_GUARDS, StaffMember
from community.checkout import connect, quotes, webhooks
from community.checkout.quotes import QuoteIn, QuoteOut
from community.errors import NotFound
from community.offers.models import Offer, OfferStatus
from community.stripe_client import stripe_client
from community.web import Db, ObjectId


class StripeStatus(msgspec.Struct):
    connected: bool
    account_id: str | None = None
    charges_enabled: bool = False
    payouts_enabled: bool = False
    details_submitted: bool = False


class OnboardingLink(msgspec.Struct):
    url: str


def _status(account) -> StripeStatus:
    if account is None:
        return StripeStatus(connected=False)
    return StripeStatus(
        connected=True,
        account_id=account.account_id,
        charges_enabled=account.charges_enabled,
        payouts_enabled=account.payouts_enabled,
        details_submitted=account.details_submitted,
    )


class StripeConnectController(Controller):
    path = "/communities/{community_id:int}/stripe"
    tags = ["checkout"]
    dependencies = COMMUNITY_GUARDS

    @get("/", summary="The community's Stripe connection (refreshed from Stripe)")
    async def status(self, member: StaffMember, db: Db, state: State) -> StripeStatus:
        account = await connect.account_of(db, member.community_id)
        if account is not None:
            account = await connect.refresh(db, stripe_client(state.settings), community_id=member.community_id)
        return _status(account)

    @post("/onboarding", status_code=201, summary="Start or resume Stripe onboarding: open the returned URL")
    async def onboarding(self, editor: StaffMember, db: Db, state: State) -> OnboardingLink:
        url = await connect.start_onboarding(
            db, stripe_client(state.settings), community_id=editor.community_id, base_url=state.settings.base_url
        )
        return OnboardingLink(url=url)

    @delete("/", summary="Disconnect the Stripe account: paid offers stop selling")
    async def disconnect(self, editor: StaffMember, db: Db) -> None:
        await connect.disconnect(db, community_id=editor.community_id)


class WebhookAck(msgspec.Struct):
    received: bool
    duplicate: bool = False


class StripeWebhooksController(Controller):
    """Stripe calls these; the signature on the raw body is the only authentication."""

    path = "/webhooks/stripe"
    tags = ["checkout"]
    security = [{}]

    async def _receive(self, request: Request, db: Db, secret: str, *, connect_endpoint: bool) -> WebhookAck:
        event = webhooks.verify(await request.body(), request.headers.get("stripe-signature"), secret)
        new = await webhooks.receive(db, event, connect_endpoint=connect_endpoint)
        return WebhookAck(received=True, duplicate=not new)

    @post("/", status_code=200, summary="Stripe webhook endpoint for platform events")
    async def platform(self, request: Request, db: Db, state: State) -> WebhookAck:
        return await self._receive(request, db, state.settings.stripe_webhook_secret, connect_endpoint=False)

    @post("/connect", status_code=200, summary="Stripe webhook endpoint for connected-account events")
    async def connected(self, request: Request, db: Db, state: State) -> WebhookAck:
        return await self._receive(request, db, state.settings.stripe_connect_webhook_secret, connect_endpoint=True)


class QuoteController(Controller):
    """Public, like the checkout page it serves: the price with a discount code applied."""

    path = "/offers/{offer_id:int}/quote"
    tags = ["checkout"]
    security = [{}]

    @post("/", status_code=200, summary="Price preview with a discount code (rate-limited against guessing)")
    async def quote(self, offer_id: ObjectId, data: JSONBody[QuoteIn], request: Request, db: Db, state: State) -> QuoteOut:
        offer = await db.scalar(select(Offer).where(Offer.id == offer_id, Offer.status == OfferStatus.published))
        if offer is None:
            raise NotFound("offer not found")
        return await quotes.quote(db, state.redis, offer, data, address=client_address(request))

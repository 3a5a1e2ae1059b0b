"""The buyer's path in pages: landing page -> checkout page -> Stripe -> completion -> thanks
(the owner's custom code with the purchase details) -> the community or the owner's URL.

Only the landing, checkout and thanks pages of an offer render its custom code; they send a
policy that lets it run, and answer only on their community's own origin (web.OriginSplit), so
the code never runs where a member's session or another community's pages live. Every other
page keeps the strict policy (web.STRICT_CSP).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template

from community.accounts import service as accounts
from community.accounts.api import client_address
from community.accounts.guards import Viewer, provide_viewer
from community.accounts.pages import start_session
from community.affiliates import links
from community.billing import service as billing
from community.billing.models import Checkout, CheckoutState
from community.checkout import connect, quotes, service
from community.checkout import preview as previews
from community.db import utcnow
from community.errors import DomainError, NotFound
from community.hubs.models import Community
from community.markdown import render_markdown
from community.money import exponent, format_amount
from community.offers import service as offers
from community.offers.models import Offer, OfferStatus, Pricing
from community.offers.storage import storage_for
from community.stripe_client import stripe_client
from community.web import Db, moved_to_community

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]

# Owner code may load anything from anywhere; what it may not do is frame us, change the base
# of our links or embed plugins.
OFFER_PAGE_CSP = "base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
OFFER_PAGE_HEADERS = {"Content-Security-Policy": OFFER_PAGE_CSP, "Cache-Control": "no-store"}
FORWARD_SECONDS = 2


def price_view(offer: Offer) -> dict[str, Any]:
    """What the pages show about the price."""
    interval = None
    if offer.pricing is Pricing.recurring:
        months = offer.interval_months or 1
        interval = {1: "month", 3: "3 months", 6: "6 months", 12: "year"}.get(months, f"{months} months")
    return {
        "free": offer.pricing is Pricing.free,
        "price": format_amount(offer.amount, offer.currency) if offer.pricing is not Pricing.free else "Free",
        "old_price": format_amount(offer.old_amount, offer.currency) if offer.old_amount else None,
        "interval": interval,
        "trial_days": offer.trial_days if offer.pricing is Pricing.recurring else 0,
        "trial_needs_card": offer.trial_requires_card,
        "access_days": offer.access_days if offer.pricing is Pricing.one_time else None,
        "exponent": exponent(offer.currency) if offer.currency else 0,
    }


def _button(offer: Offer) -> str:
    if offer.pricing is Pricing.free:
        return "Join free"
    if offer.pricing is Pricing.recurring and offer.trial_days:
        return "Start free trial"
    return "Pay"


def _offer_context(state: State, community: Community, offer: Offer, preview_token: str | None = None) -> dict[str, Any]:
    storage = storage_for(state.settings)
    return {
        "community": community,
        "offer": offer,
        "price": price_view(offer),
        "page": offer.landing_page or {},
        "body_html": render_markdown((offer.landing_page or {}).get("body", "") or offer.description),
        "checkout_url": f"{service.offer_page_url(state.settings, community, offer)}/checkout{_keeping(preview_token)}",
        "preview": preview_token is not None,
        "login_url": f"{state.settings.base_url}/login",  # the platform's: this page is on the community's origin
        "button": _button(offer),
        "thumbnail_url": storage.url(offer.thumbnail) if offer.thumbnail else None,
        "cover_url": storage.url(offer.cover) if offer.cover else None,
    }


PreviewToken = FromQuery[str | None]


def _keeping(preview_token: str | None) -> str:
    """The query that keeps a preview going from the landing page to the checkout page."""
    return f"?{urlencode({previews.QUERY: preview_token})}" if preview_token is not None else ""


async def _offer_or_preview(
    db: Db, state: State, community_slug: str, offer_slug: str, token: str | None
) -> tuple[Community, Offer, str | None]:
    """The published offer, or (with the console's preview token for it) a draft or archived
    one; then the token that keeps the preview going, None for a published offer."""
    if token is None:
        community, offer = await service.published_offer(db, community_slug, offer_slug)
        return community, offer, None
    # Whatever is wrong, one answer: a preview link says no more about drafts than their absence.
    expired = NotFound(f"offer not found (a preview link works for {previews.PREVIEW_SECONDS // 60} minutes: open it again from the console)")
    try:
        community, offer = await service.published_offer(db, community_slug, offer_slug, drafts=True)
    except NotFound:
        raise expired from None
    if offer.status is OfferStatus.published:
        return community, offer, None
    if not previews.opens(state.settings.secret_key, token, community_id=community.id, offer_id=offer.id):
        raise expired
    return community, offer, token


class OfferPages(Controller):
    """Public offer pages, on their community's own origin. They know no member: the session
    cookie lives on the platform's origin only, so a buyer here is who the form says."""

    include_in_schema = False

    @get("/o/{community_slug:str}/{offer_slug:str}")
    async def landing(
        self, community_slug: FromPath[str], offer_slug: FromPath[str], request: Request, db: Db, state: State,
        ref: FromQuery[str | None] = None, preview: PreviewToken = None,
    ) -> Template | Redirect:
        community, offer, preview_token = await _offer_or_preview(db, state, community_slug, offer_slug, preview)
        cookies = await self._affiliate_click(request, state, offer, ref) if ref and preview_token is None else []
        if not offers.shows_landing_page(offer.landing_page):
            # no landing page: straight to checkout
            return Redirect(f"/o/{community_slug}/{offer_slug}/checkout{_keeping(preview_token)}", cookies=cookies)
        return Template(
            "checkout/landing.html",
            context={**_offer_context(state, community, offer, preview_token), "custom_code": True},
            headers=OFFER_PAGE_HEADERS,
            cookies=cookies,
        )

    @staticmethod
    async def _affiliate_click(request: Request, state: State, offer: Offer, ref: str) -> list:
        """?ref={code}: a click on the affiliate's link, as /r/{code} counts it (a code of
        another offer is ignored)."""
        target = await state.affiliate_targets.get(state.engine, ref)
        if target is None or target.offer_id != offer.id:
            return []
        return links.as_cookies(state, links.click(request, state, target))

    @get("/o/{community_slug:str}/{offer_slug:str}/checkout")
    async def checkout_form(
        self, community_slug: FromPath[str], offer_slug: FromPath[str], db: Db, state: State, preview: PreviewToken = None
    ) -> Template:
        """With a preview token, a draft's checkout page as buyers will see it, its button off:
        the POST below serves published offers only, so a preview never sells anything."""
        community, offer, preview_token = await _offer_or_preview(db, state, community_slug, offer_slug, preview)
        return self._checkout_page(state, community, offer, email="", name="", preview_token=preview_token)

    @post("/o/{community_slug:str}/{offer_slug:str}/quote", status_code=200)
    async def quote(
        self, community_slug: FromPath[str], offer_slug: FromPath[str], data: JSONBody[quotes.QuoteIn], request: Request, db: Db, state: State
    ) -> quotes.QuoteOut | Response[dict[str, Any]]:
        """The checkout page's price preview (same origin, CSRF header): what the API's quote says."""
        try:
            _, offer = await service.published_offer(db, community_slug, offer_slug)
            return await quotes.quote(db, state.redis, offer, data, address=client_address(request))
        except DomainError as exc:  # the page's script shows the reason
            return Response({"status": exc.status_code, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @post("/o/{community_slug:str}/{offer_slug:str}/checkout")
    async def checkout(
        self, community_slug: FromPath[str], offer_slug: FromPath[str], data: Form, request: Request, db: Db, state: State
    ) -> Template | Redirect:
        community, offer = await service.published_offer(db, community_slug, offer_slug)
        email, name, code = data.get("email", ""), data.get("name", ""), data.get("discount_code", "").strip()
        address = client_address(request)
        try:
            if code:
                await billing.check_guess_rate(state.redis, address=address)
            async with db.begin_nested():  # a refusal leaves nothing half-written
                started = await service.start(
                    db, state.settings, community=community, offer=offer, email=email, name=name,
                    viewer_id=None, code=code or None,
                    attribution=links.attribution_from(request, state.affiliate_keys, offer.id),
                )
        except DomainError as exc:
            if code and exc.field == "discount_code":
                await billing.note_failed_guess(state.redis, address=address)
            return self._checkout_page(
                state, community, offer, email=email, name=name, code=code,
                error=exc.detail, field=exc.field, status_code=exc.status_code,
            )
        return Redirect(started.redirect_url, status_code=303)

    def _checkout_page(
        self, state: State, community: Community, offer: Offer, *, status_code: int = 200, preview_token: str | None = None, **context: Any
    ) -> Template:
        return Template(
            "checkout/checkout.html",
            context={
                **_offer_context(state, community, offer, preview_token),
                "custom_code": True, "code": "", "error": None, "field": None, **context,
            },
            headers=OFFER_PAGE_HEADERS,
            status_code=status_code,
        )

    @get("/checkout/{token:str}/thanks")
    async def thanks(self, token: FromPath[str], request: Request, db: Db, state: State) -> Template | Redirect:
        """The confirmation step: the owner's code sees the purchase (conversion pixels), then
        the page forwards by itself to where the offer sends its buyers. Only the token tells
        whose checkout it is: asked for on another host, it moves to its community's origin
        (the token's holder learns nothing the page itself would not show)."""
        checkout = await service.checkout_by_token(db, token)
        if checkout.state is not CheckoutState.fulfilled:
            raise NotFound("checkout not found")
        community = await db.get_one(Community, checkout.community_id)
        if (elsewhere := moved_to_community(request, state.settings, community.slug)) is not None:
            return Redirect(elsewhere, status_code=308)
        offer = await db.get_one(Offer, checkout.offer_id)
        paid = checkout.amount_due
        return Template(
            "checkout/thanks.html",
            context={
                "community": community,
                "offer": offer,
                "custom_code": True,
                "purchase": {
                    "offer_id": offer.id,
                    "offer": offer.title,
                    "amount": paid,
                    "amount_decimal": format_amount(paid, checkout.currency).split()[0],
                    "currency": checkout.currency,
                    "checkout": checkout.token[:12],
                },
                "destination": service.destination_url(state.settings, checkout, offer),
                "forward_seconds": FORWARD_SECONDS,
            },
            headers=OFFER_PAGE_HEADERS,
        )


class CompletionPages(Controller):
    """Platform-origin routes: Stripe sends buyers back here; Connect onboarding returns here."""

    include_in_schema = False
    dependencies = {"viewer": Provide(provide_viewer)}

    @get("/checkout/{token:str}/complete")
    async def complete(
        self, token: FromPath[str], request: Request, viewer: Viewer, db: Db, state: State, session_id: FromQuery[str | None] = None
    ) -> Template | Redirect:
        checkout = await service.checkout_by_token(db, token, lock=True)
        if checkout.stripe_session_id is not None:
            # A paid checkout answers only the URL Stripe sent its buyer back with (the session
            # we created for it, on its account), before fulfilment and after: the token alone
            # is also in the thanks page's URL, where the owner's code runs.
            given = (session_id or "").encode("utf-8", "surrogatepass")
            if not secrets.compare_digest(given, checkout.stripe_session_id.encode()):
                raise NotFound("checkout not found")
            if checkout.state is not CheckoutState.fulfilled:
                # Fulfil now if the webhook has not yet; Stripe's answer decides, never the URL.
                await service.settle(db, state.settings, checkout, await service.fetch_session(state.settings, checkout))
        if checkout.state is not CheckoutState.fulfilled:
            return Template("checkout/pending.html", context={"checkout": checkout}, status_code=200)
        await self._log_in(request, viewer, db, checkout)
        return Redirect(await service.thanks_url(db, state.settings, checkout), status_code=303)

    async def _log_in(self, request: Request, viewer: Any, db: Db, checkout: Checkout) -> None:
        """A buyer whose account this checkout created is logged in, once. An existing account
        is never logged in by paying with its address: its owner logs in as usual."""
        if viewer is not None and viewer.user_id == checkout.user_id:
            return
        if checkout.new_user and checkout.login_used_at is None and checkout.user_id is not None:
            checkout.login_used_at = utcnow()
            await start_session(request, db, checkout.user_id)

    @get("/dashboard/communities/{community_id:int}/offers/{offer_id:int}/preview")
    async def preview(self, community_id: FromPath[int], offer_id: FromPath[int], viewer: Viewer, db: Db, state: State) -> Redirect:
        """"View offer page": staff are sent to the offer's page on its community's origin, as
        buyers see it with its custom code running; a draft or archived offer with a short-lived
        preview token (that origin has no platform session to show it by). Never rendered here:
        the platform's origin, where staff sessions live, runs no owner code."""
        if viewer is None:
            return Redirect("/login")
        await accounts.require_role(db, community_id, viewer.user_id, accounts.STAFF)
        offer = await offers.get_offer(db, community_id, offer_id)
        community = await db.get_one(Community, community_id)
        url = service.offer_page_url(state.settings, community, offer)
        if offer.status is not OfferStatus.published:
            url += _keeping(previews.mint(state.settings.secret_key, community_id=community_id, offer_id=offer.id))
        return Redirect(url, status_code=303, headers={"Cache-Control": "no-store"})

    @get("/connect/{community_id:int}/return")
    async def connect_return(self, community_id: FromPath[int], viewer: Viewer, db: Db, state: State) -> Redirect:
        if viewer is None:
            return Redirect("/login")
        await accounts.require_role(db, community_id, viewer.user_id, accounts.EDITORS)
        await connect.refresh(db, stripe_client(state.settings), community_id=community_id)
        return Redirect(f"/dashboard/communities/{community_id}/stripe")

    @get("/connect/{community_id:int}/refresh")
    async def connect_refresh(self, community_id: FromPath[int], viewer: Viewer, db: Db, state: State) -> Redirect:
        """Stripe sends the owner here when an onboarding link went stale: make a fresh one."""
        if viewer is None:
            return Redirect("/login")
        await accounts.require_role(db, community_id, viewer.user_id, accounts.EDITORS)
        url = await connect.start_onboarding(
            db, stripe_client(state.settings), community_id=community_id, base_url=state.settings.base_url
        )
        return Redirect(url, status_code=303)

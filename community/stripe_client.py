"""The one place that builds the Stripe client: Stripe itself, or the local sandbox when
COMMUNITY_STRIPE_API_BASE points at it."""

from __future__ import annotations

import asyncio
import weakref

import stripe

from community.errors import Conflict
from community.settings import Settings


class StripeNotConfigured(Conflict):
    """Answered 409: the platform has no Stripe key, so nothing paid can be sold."""


# Stripe did not answer (or failed on its side): the call may or may not have taken effect.
UNANSWERED = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)


# One client (and so one connection pool) per event loop: an httpx pool cannot outlive or
# cross the loop it was made on (the demo seeds in one loop, then serves in another).
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str | None], stripe.StripeClient]] = (
    weakref.WeakKeyDictionary()
)


def _client(api_key: str, api_base: str | None) -> stripe.StripeClient:
    if api_base and api_key.startswith(("sk_live_", "rk_live_")):
        # A live key must only ever travel to Stripe itself.
        raise StripeNotConfigured("a live Stripe key cannot be used with COMMUNITY_STRIPE_API_BASE")
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base, "connect": api_base} if api_base else {},
        http_client=stripe.HTTPXClient(timeout=30),
        max_network_retries=2,  # safe: every create call carries an idempotency key
    )


def hosted_origin(settings: Settings, stripe_origin: str) -> str:
    """Where one of Stripe's hosted pages lives (onboarding, the billing portal): Stripe's own
    origin, or the local sandbox's, which serves them all."""
    if settings.stripe_api_base:
        return "/".join(settings.stripe_api_base.split("/")[:3])
    return stripe_origin


def stripe_client(settings: Settings) -> stripe.StripeClient:
    if not settings.stripe_secret_key:
        raise StripeNotConfigured("Stripe is not configured on this platform (COMMUNITY_STRIPE_SECRET_KEY)")
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (settings.stripe_secret_key, settings.stripe_api_base)
    if key not in per_loop:
        per_loop[key] = _client(*key)
    return per_loop[key]

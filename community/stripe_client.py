"""The one place that builds the Stripe client: Stripe itself, or the local sandbox when
COMMUNITY_STRIPE_API_BASE points at it."""

from __future__ import annotations

from functools import lru_cache

import stripe

from community.errors import Conflict
from community.settings import Settings


class StripeNotConfigured(Conflict):
    """Answered 409: the platform has no Stripe key, so nothing paid can be sold."""


@lru_cache(maxsize=8)
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


def stripe_client(settings: Settings) -> stripe.StripeClient:
    if not settings.stripe_secret_key:
        raise StripeNotConfigured("Stripe is not configured on this platform (COMMUNITY_STRIPE_SECRET_KEY)")
    return _client(settings.stripe_secret_key, settings.stripe_api_base)

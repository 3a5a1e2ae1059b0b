"""The price preview with a discount code: answered by the public API (by offer id) and, for
the checkout page's own script, on the offer's own origin (its pages cannot reach the API's)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from community.billing import service as billing
from community.errors import DomainError
from community.offers.models import Offer, Pricing


class QuoteIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(max_length=40)] = ""
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None


class QuoteOut(msgspec.Struct):
    list_amount: int
    discount_amount: int
    amount_due: int
    currency: str
    code: str | None
    free: bool


async def quote(session: AsyncSession, redis: Redis, offer: Offer, data: QuoteIn, *, address: str) -> QuoteOut:
    """The price of a published offer with the code applied; wrong codes count against the
    address's guesses (rate-limited)."""
    if offer.pricing is Pricing.free:
        return QuoteOut(0, 0, 0, offer.currency, None, True)
    if data.code:
        await billing.check_guess_rate(redis, address=address)
    try:
        found = await billing.quote(
            session, community_id=offer.community_id, offer_id=offer.id, pricing=offer.pricing.value,
            amount=offer.amount, currency=offer.currency, code=data.code or None, email=data.email or None,
        )
    except DomainError:
        if data.code:
            await billing.note_failed_guess(redis, address=address)
        raise
    return QuoteOut(
        found.list_amount, found.discount_amount, found.amount_due, found.currency, found.code,
        free=offer.pricing is Pricing.one_time and found.is_free,
    )

"""What the console's home shows, read from each domain's own service."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from community.checkout import connect
from community.hubs import service as hubs
from community.offers import service as offers
from community.offers.models import OfferStatus


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    done: bool
    state: str  # what is true now, in a word or two
    path: str  # the screen that does it, under the console's base
    action: str


async def first_steps(session: AsyncSession, community_id: int) -> list[Step]:
    """A new owner's way to a first sale, in order, each with what is done already."""
    account = await connect.account_of(session, community_id)
    hub_rows = await hubs.list_hubs(session, community_id)
    groups = sum(len(groups) for _, groups in hub_rows)
    counts = await offers.status_counts(session, community_id)
    if account is None:
        stripe_state = "Not connected"
    elif account.charges_enabled:
        stripe_state = "Ready to take payments"
    else:
        stripe_state = "Onboarding not finished"
    return [
        Step("stripe", "Connect Stripe to take payments", bool(account and account.charges_enabled), stripe_state,
             "/stripe", "Set up payments"),
        Step("groups", "Create a hub and a group", groups > 0,
             f"{len(hub_rows)} hub{'s' * (len(hub_rows) != 1)}, {groups} group{'s' * (groups != 1)}", "/hubs", "Open hubs and groups"),
        Step("offer", "Create an offer", sum(counts.values()) > 0,
             f"{sum(counts.values())} offer{'s' * (sum(counts.values()) != 1)}", "/offers/new", "Create an offer"),
        Step("publish", "Publish it", counts[OfferStatus.published] > 0,
             f"{counts[OfferStatus.published]} published", "/offers", "Open digital offers"),
    ]

"""Stripe Connect: each community sells through its own Stripe account, onboarded with Account
Links. `account.updated` (and every status read) keeps "can take charges" current."""

from __future__ import annotations

from typing import Any

import stripe
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from community.checkout.models import StripeAccount
from community.db import utcnow
from community.errors import Conflict, NotFound
from community.hubs.models import Community


async def account_of(session: AsyncSession, community_id: int) -> StripeAccount | None:
    return await session.get(StripeAccount, community_id)


async def require_account(session: AsyncSession, community_id: int) -> StripeAccount:
    account = await account_of(session, community_id)
    if account is None or not account.charges_enabled:
        raise Conflict("this community cannot take payments yet: its Stripe account is not connected and enabled")
    return account


async def _apply(session: AsyncSession, row: StripeAccount, account: Any) -> StripeAccount:
    """Copy Stripe's view of the account onto our row and the community's sales flag."""
    row.charges_enabled = bool(account.charges_enabled)
    row.payouts_enabled = bool(account.payouts_enabled)
    row.details_submitted = bool(account.details_submitted)
    row.updated_at = utcnow()
    await session.execute(
        update(Community).where(Community.id == row.community_id).values(charges_enabled=row.charges_enabled)
    )
    await session.flush()
    return row


async def start_onboarding(
    session: AsyncSession, client: stripe.StripeClient, *, community_id: int, base_url: str
) -> str:
    """The Account Links URL that takes the owner through Stripe's onboarding; Stripe sends
    them back to our return route (or the refresh route when the link went stale). The account
    is created on the first call (idempotently: two clicks make one account)."""
    return_url, refresh_url = f"{base_url}/connect/{community_id}/return", f"{base_url}/connect/{community_id}/refresh"
    community = await session.scalar(select(Community).where(Community.id == community_id).with_for_update())
    if community is None:
        raise NotFound("community not found")
    row = await account_of(session, community_id)
    if row is None:
        params: stripe.params.AccountCreateParams = {"type": "standard", "metadata": {"community_id": str(community_id)}}
        if community.support_email:
            params["email"] = community.support_email
        account = await client.v1.accounts.create_async(
            params,
            {"idempotency_key": f"community-{community_id}-account-{community.created_at.timestamp():.6f}"},
        )
        row = StripeAccount(community_id=community_id, account_id=account.id)
        session.add(row)
        await _apply(session, row, account)
    link = await client.v1.account_links.create_async(
        {"account": row.account_id, "type": "account_onboarding", "return_url": return_url, "refresh_url": refresh_url}
    )
    return link.url


async def refresh(session: AsyncSession, client: stripe.StripeClient, *, community_id: int) -> StripeAccount | None:
    """Re-read the account from Stripe (after onboarding returns, or on account.updated)."""
    row = await account_of(session, community_id)
    if row is None:
        return None
    account = await client.v1.accounts.retrieve_async(row.account_id)
    return await _apply(session, row, account)


async def on_account_updated(session: AsyncSession, client: stripe.StripeClient, account_id: str) -> int | None:
    """Webhook: the community whose account this is (found through our row, never metadata)."""
    row = await session.scalar(select(StripeAccount).where(StripeAccount.account_id == account_id).with_for_update())
    if row is None:
        return None  # not ours (any more): nothing to do
    # Re-read rather than trust the event: an older event must not overwrite a newer state.
    await _apply(session, row, await client.v1.accounts.retrieve_async(account_id))
    return row.community_id


async def disconnect(session: AsyncSession, *, community_id: int) -> None:
    """Forget the account: paid offers stop selling. Stripe keeps the account (it is the owner's).
    Idempotent, like any DELETE."""
    await session.execute(delete(StripeAccount).where(StripeAccount.community_id == community_id))
    await session.execute(update(Community).where(Community.id == community_id).values(charges_enabled=False))

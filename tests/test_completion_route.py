"""The completion route (/checkout/{token}/complete) logs a buyer in only when the session_id it
carries is this checkout's Stripe session (made on the checkout's account), before fulfilment
and after it, and only once. The token alone is not enough: it is also in the thanks page's
URL, where the owner's custom code runs. Free checkouts have no Stripe session: the token and
the log-in-once rule are theirs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import select

from community.billing.models import Checkout, CheckoutState
from tests.checkout_helpers import (
    community_origin,
    connect_stripe,
    deliver_and_process,
    make_group,
    offer_for_sale,
    submit_checkout,
)
from tests.conftest import create_community, sign_up
from tests.test_checkout import sell, session_id_of, shop  # noqa: F401 - the shop fixture


@asynccontextmanager
async def browser(app) -> AsyncIterator[httpx.AsyncClient]:
    """Someone else's browser: no cookies of the buyer's."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as other:
        yield other


async def checkout_by_session(sessions, session_id: str) -> Checkout:
    async with sessions() as session:
        return await session.scalar(select(Checkout).where(Checkout.stripe_session_id == session_id))


async def logged_in_to(who: httpx.AsyncClient, community_id: int) -> bool:
    page = await who.get(f"/communities/{community_id}")
    if page.status_code == 200:
        return True
    assert page.status_code in (302, 303) and page.headers["location"] == f"/login?next=%2Fcommunities%2F{community_id}", page.text[:300]
    return False


async def attempt(app, checkout: Checkout, community_id: int, **params: str) -> tuple[int, bool]:
    """Open the completion URL in a fresh browser: its status, and whether that browser is now
    logged in."""
    async with browser(app) as other:
        response = await other.get(f"/checkout/{checkout.token}/complete", params=params)
        return response.status_code, await logged_in_to(other, community_id)


async def foreign_session_id(client, stripe_env) -> str:
    """A real Stripe session of another community's checkout, on that community's account."""
    rival = await sign_up(client, "rival@example.com")
    community = await create_community(client, rival, "Rival Guild")
    await connect_stripe(client, rival, community["id"], stripe_env.sandbox)
    group = await make_group(client, rival, community["id"], "Rival room")
    offer = await offer_for_sale(client, rival, community["id"], groups=[group])
    stripe_env.drain()
    started = await submit_checkout(client, f"/o/{community['slug']}/{offer['slug']}", email="rivalbuyer@example.com")
    return session_id_of(started)


async def test_only_this_checkouts_session_logs_in_before_fulfilment(app, client, owner, shop, stripe_env, sessions, settings) -> None:
    community_id = shop["community"]["id"]
    _, path = await sell(client, owner, shop)
    mine = session_id_of(await submit_checkout(client, path, email="new.buyer@example.com"))
    same_account = session_id_of(await submit_checkout(client, path, email="someone.else@example.com"))
    foreign = await foreign_session_id(client, stripe_env)
    stripe_env.sandbox.pay(mine)  # paid, the webhook not here yet
    checkout = await checkout_by_session(sessions, mine)

    for params in ({}, {"session_id": ""}, {"session_id": "cs_test_guess"}, {"session_id": same_account},
                   {"session_id": foreign}, {"session_id": mine + "x"}, {"session_id": mine.upper()}):
        assert await attempt(app, checkout, community_id, **params) == (404, False), params
    assert (await checkout_by_session(sessions, mine)).state is CheckoutState.open  # nothing fulfilled by them

    assert await attempt(app, checkout, community_id, session_id=mine) == (303, True)
    assert (await checkout_by_session(sessions, mine)).state is CheckoutState.fulfilled
    # The right URL again, from anywhere (a replay): no second log-in.
    assert await attempt(app, checkout, community_id, session_id=mine) == (303, False)
    await deliver_and_process(client, stripe_env, settings)


async def test_only_this_checkouts_session_logs_in_after_the_webhook_fulfilled_it(
    app, client, owner, shop, stripe_env, sessions, settings
) -> None:
    """The hole: once the webhook had fulfilled the checkout, its token with any session_id (or
    none) logged its new buyer in."""
    community_id = shop["community"]["id"]
    _, path = await sell(client, owner, shop)
    mine = session_id_of(await submit_checkout(client, path, email="new.buyer@example.com"))
    other = session_id_of(await submit_checkout(client, path, email="someone.else@example.com"))
    foreign = await foreign_session_id(client, stripe_env)
    stripe_env.sandbox.pay(mine)
    stripe_env.sandbox.pay(other)
    await deliver_and_process(client, stripe_env, settings)
    checkout = await checkout_by_session(sessions, mine)
    assert checkout.state is CheckoutState.fulfilled and checkout.new_user and checkout.login_used_at is None

    for params in ({}, {"session_id": ""}, {"session_id": "cs_test_guess"}, {"session_id": other}, {"session_id": foreign}):
        assert await attempt(app, checkout, community_id, **params) == (404, False), params
    assert (await checkout_by_session(sessions, mine)).login_used_at is None  # the one log-in is still the buyer's

    # The thanks page's URL (where the owner's code runs) carries the token: that is no way in.
    async with browser(app) as owner_code:
        # (it lives on the community's origin, where the owner's code runs)
        thanks = await owner_code.get(f"{community_origin(shop['community']['slug'])}/checkout/{checkout.token}/thanks")
        assert thanks.status_code == 200
        assert (await owner_code.get(f"/checkout/{checkout.token}/complete")).status_code == 404
        assert not await logged_in_to(owner_code, community_id)

    assert await attempt(app, checkout, community_id, session_id=mine) == (303, True)
    assert await attempt(app, checkout, community_id, session_id=mine) == (303, False)  # once


async def test_an_existing_account_is_never_logged_in_by_paying(app, client, owner, shop, stripe_env, sessions, settings) -> None:
    community_id = shop["community"]["id"]
    await sign_up(client, "known@example.com")
    _, path = await sell(client, owner, shop)
    session_id = session_id_of(await submit_checkout(client, path, email="known@example.com"))
    stripe_env.sandbox.pay(session_id)
    checkout = await checkout_by_session(sessions, session_id)
    assert await attempt(app, checkout, community_id, session_id=session_id) == (303, False)
    await deliver_and_process(client, stripe_env, settings)
    assert await attempt(app, checkout, community_id, session_id=session_id) == (303, False)


async def test_a_free_checkout_logs_its_new_buyer_in_once_by_its_token(app, client, owner, shop, sessions) -> None:
    community_id = shop["community"]["id"]
    _, path = await sell(client, owner, shop, pricing="free", amount=None, currency=None)
    async with browser(app) as buyer:
        done = await submit_checkout(buyer, path, email="free.buyer@example.com")
        assert done.status_code == 303 and done.headers["location"].endswith("/complete")
        completion = await buyer.get(done.headers["location"], params={"session_id": "cs_test_ignored"})
        assert completion.status_code == 303 and completion.headers["location"].endswith("/thanks")
        assert await logged_in_to(buyer, community_id)
    async with sessions() as session:
        checkout: Any = await session.scalar(select(Checkout).where(Checkout.email == "free.buyer@example.com"))
    assert checkout.stripe_session_id is None and checkout.login_used_at is not None
    assert await attempt(app, checkout, community_id) == (303, False)  # a replay: no second log-in
    async with browser(app) as stranger:
        assert (await stranger.get("/checkout/not-a-token/complete")).status_code == 404

"""Checkout through the local Stripe sandbox: Connect, the buyer's path from the checkout page to
access, discount codes at checkout, webhooks (signatures, duplicates, order), the completion
route before and after the webhook, destinations and custom code."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import func, select

from community.accounts.models import Member
from community.billing.models import (
    Checkout,
    CheckoutState,
    DiscountRedemption,
    Payment,
    StripeEvent,
)
from community.offers.models import Entitlement
from community.stripe_client import stripe_client
from tests.checkout_helpers import (
    API,
    CSRF,
    connect_stripe,
    deliver,
    deliver_and_process,
    make_group,
    offer_for_sale,
    offer_path,
    submit_checkout,
)
from tests.conftest import (
    CONNECT_WEBHOOK_SECRET,
    Account,
    StripeFixture,
    sign_up,
)
from tests.helpers import run_jobs

HEAD_CODE = '<script id="owner-pixel">window.ownerPixel = true;</script>'
BODY_CODE = '<div id="owner-chat-widget">chat</div>'


@pytest.fixture
async def shop(client: httpx.AsyncClient, owner: Account, community: dict[str, Any], stripe_env: StripeFixture) -> dict[str, Any]:
    """A community with a connected Stripe account and one group to sell."""
    account_id = await connect_stripe(client, owner, community["id"], stripe_env.sandbox)
    stripe_env.drain()
    group_id = await make_group(client, owner, community["id"], "Workshop")
    return {"community": community, "account_id": account_id, "group_id": group_id}


async def sell(client, owner, shop, **fields) -> tuple[dict[str, Any], str]:
    fields.setdefault("checkout_code_head", HEAD_CODE)
    fields.setdefault("checkout_code_body", BODY_CODE)
    offer = await offer_for_sale(client, owner, shop["community"]["id"], groups=[shop["group_id"]], **fields)
    return offer, offer_path(shop["community"], offer)


async def count(sessions, model, *where) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def the_checkout(sessions) -> Checkout:
    async with sessions() as session:
        return (await session.scalars(select(Checkout).order_by(Checkout.id.desc()))).first()


def session_id_of(redirect: httpx.Response) -> str:
    assert redirect.status_code == 303, redirect.text
    return redirect.headers["location"].rstrip("/").split("/")[-1]


async def complete(client: httpx.AsyncClient, checkout: Checkout) -> httpx.Response:
    return await client.get(f"/checkout/{checkout.token}/complete", params={"session_id": checkout.stripe_session_id})


async def can_open(client, community_id: int, group_id: int, headers) -> bool:
    response = await client.get(f"{API}/communities/{community_id}/groups/{group_id}/access", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["allowed"]


# ---------------------------------------------------------------- Connect


async def test_connect_onboarding_status_and_disconnect(client, owner, community, stripe_env, settings) -> None:
    base = f"{API}/communities/{community['id']}/stripe"
    assert (await client.get(base, headers=owner.headers)).json() == {
        "connected": False, "account_id": None, "charges_enabled": False, "payouts_enabled": False, "details_submitted": False,
    }
    started = await client.post(f"{base}/onboarding", headers=owner.headers)
    assert started.status_code == 201 and started.json()["url"].startswith(stripe_env.sandbox.url)
    again = await client.post(f"{base}/onboarding", headers=owner.headers)
    account_id = (await client.get(base, headers=owner.headers)).json()["account_id"]
    assert again.status_code == 201 and account_id.startswith("acct_")

    # A paid offer cannot be published before the account can take charges.
    offer = (await client.post(f"{API}/communities/{community['id']}/offers", json={"title": "Pro", "pricing": "one_time", "amount": 1000, "currency": "USD"}, headers=owner.headers)).json()
    refused = await client.post(f"{API}/communities/{community['id']}/offers/{offer['id']}/publish", headers=owner.headers)
    assert refused.status_code in (409, 422), refused.text

    # Onboarding finishes at Stripe; account.updated reaches us through the Connect endpoint.
    stripe_env.sandbox.complete_onboarding(account_id)
    await deliver_and_process(client, stripe_env, settings)
    assert (await client.get(base, headers=owner.headers)).json()["charges_enabled"] is True
    published = await client.post(f"{API}/communities/{community['id']}/offers/{offer['id']}/publish", headers=owner.headers)
    assert published.status_code == 200, published.text

    assert (await client.delete(base, headers=owner.headers)).status_code == 204
    assert (await client.get(base, headers=owner.headers)).json()["connected"] is False
    page = await submit_checkout(client, f"/o/{community['slug']}/{offer['slug']}", email="buyer@example.com")
    assert page.status_code == 409 and "cannot take payments" in page.text


async def test_account_updated_is_processed_from_the_current_account(client, owner, community, stripe_env, settings, sessions) -> None:
    base = f"{API}/communities/{community['id']}/stripe"
    await client.post(f"{base}/onboarding", headers=owner.headers)
    account_id = (await client.get(base, headers=owner.headers)).json()["account_id"]
    stripe_env.sandbox.complete_onboarding(account_id)
    responses = await deliver(client, stripe_env)
    assert [r.status_code for r in responses] and all(r.status_code == 200 for r in responses)
    await run_jobs(settings)
    async with sessions() as session:
        event = await session.scalar(select(StripeEvent).where(StripeEvent.type == "account.updated"))
        assert event.community_id == community["id"] and event.outcome == "updated"


# ---------------------------------------------------------------- the buyer's path


async def test_free_offer_checkout_logs_a_new_buyer_in_and_opens_the_group(client, owner, shop, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop, pricing="free", amount=None, currency=None)
    landing = await client.get(path)
    assert landing.status_code in (200, 302, 307)
    page = await client.get(f"{path}/checkout")
    assert "Join free" in page.text and HEAD_CODE in page.text and BODY_CODE in page.text
    done = await submit_checkout(client, path, email="Fresh.Buyer@Example.com", name="Fresh Buyer")
    assert done.status_code == 303 and "/complete" in done.headers["location"]
    completion = await client.get(done.headers["location"])
    assert completion.status_code == 303 and completion.headers["location"].endswith("/thanks")
    thanks = await client.get(completion.headers["location"])
    assert thanks.status_code == 200 and HEAD_CODE in thanks.text
    assert '"offer": "Pro Membership"' in thanks.text.replace("\\u0022", '"') or "Pro Membership" in thanks.text
    destination = f"{settings.base_url}/communities/{shop['community']['id']}"
    assert f'url={destination}' in thanks.text
    member_page = await client.get(f"/communities/{shop['community']['id']}")
    assert member_page.status_code == 200 and "Workshop" in member_page.text
    assert HEAD_CODE not in member_page.text and BODY_CODE not in member_page.text
    assert "unsafe-inline" not in member_page.headers.get("content-security-policy", "") and "script-src 'self'" in member_page.headers["content-security-policy"]
    checkout = await the_checkout(sessions)
    assert checkout.state is CheckoutState.fulfilled and checkout.new_user and checkout.amount_due == 0
    assert await count(sessions, Payment) == 0
    # The confirmation email carries a login link to set a password.
    await run_jobs(settings)
    mail = list((settings.data_dir / "mail").glob("*.eml"))
    texts = [m.read_text().lower() for m in mail]
    assert any("fresh.buyer@example.com" in t and "your purchase of pro membership" in t and "/login/link/" in t for t in texts)


async def test_one_time_purchase_completion_before_the_webhook(client, owner, shop, stripe_env, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop, amount=4900, auto_tags=["Member 2026", "Buyer"])
    redirect = await submit_checkout(client, path, email="buyer@example.com", name="Bea Buyer", amount="1")  # a form amount is ignored
    session_id = session_id_of(redirect)
    assert redirect.headers["location"].startswith(stripe_env.sandbox.url)
    checkout = await the_checkout(sessions)
    assert checkout.stripe_session_id == session_id and checkout.amount_due == 4900 and checkout.state is CheckoutState.open

    stripe_env.sandbox.pay(session_id, outcome="success")
    completion = await complete(client, checkout)  # the buyer is back before the webhook
    assert completion.status_code == 303 and completion.headers["location"].endswith(f"/checkout/{checkout.token}/thanks")
    await deliver_and_process(client, stripe_env, settings)  # then the webhook: changes nothing
    assert await count(sessions, Entitlement) == 1
    async with sessions() as session:
        payment = await session.scalar(select(Payment))
        assert (payment.amount, payment.currency, payment.discount_amount) == (4900, "USD", 0)
        assert payment.stripe_payment_intent_id and payment.stripe_checkout_session_id == session_id
        event = await session.scalar(select(StripeEvent).where(StripeEvent.type == "checkout.session.completed"))
        assert event.outcome == "already fulfilled" and event.community_id == shop["community"]["id"]
        member = await session.scalar(select(Member).where(Member.user_id == payment.user_id))
        assert member.tags == ["Buyer", "Member 2026"]  # the offer's auto-tags
    # The buyer was logged in (a new account) and reaches the group.
    member_page = await client.get(f"/communities/{shop['community']['id']}")
    assert member_page.status_code == 200 and "Workshop" in member_page.text


async def test_webhook_before_the_completion_route(client, owner, shop, stripe_env, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop)
    buyer = await sign_up(client, "known@example.com")
    redirect = await submit_checkout(client, path, email="KNOWN@example.com")
    stripe_env.sandbox.pay(session_id_of(redirect), outcome="success")
    await deliver_and_process(client, stripe_env, settings)
    checkout = await the_checkout(sessions)
    assert checkout.state is CheckoutState.fulfilled and checkout.user_id == buyer.id and not checkout.new_user
    assert await can_open(client, shop["community"]["id"], shop["group_id"], buyer.headers)
    completion = await complete(client, checkout)
    assert completion.status_code == 303
    # Paying with an existing account's address does not log anyone into that account.
    assert httpx.URL((await client.get(f"/communities/{shop['community']['id']}")).headers.get("location", "")).path == "/login"
    assert await count(sessions, Payment) == 1


async def test_recurring_with_trial_and_card_less_trial(client, owner, shop, stripe_env, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop, pricing="recurring", amount=1500, interval_months=3, trial_days=14, trial_requires_card=False)
    page = await client.get(f"{path}/checkout")
    assert "Start free trial" in page.text and "14-day free trial, no card needed" in page.text
    redirect = await submit_checkout(client, path, email="trial@example.com")
    session_id = session_id_of(redirect)
    stripe_session = stripe_env.sandbox.pay(session_id, outcome="trial_without_card")
    assert stripe_session["payment_status"] == "no_payment_required"
    await deliver_and_process(client, stripe_env, settings)
    checkout = await the_checkout(sessions)
    assert checkout.state is CheckoutState.fulfilled and checkout.stripe_subscription_id
    assert await count(sessions, Payment) == 0  # nothing paid yet
    async with sessions() as session:
        entitlement = await session.scalar(select(Entitlement))
        assert entitlement.ends_at is None and entitlement.status.value == "active"


async def test_recurring_purchase_with_a_card(client, owner, shop, stripe_env, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop, pricing="recurring", amount=2000, interval_months=12)
    redirect = await submit_checkout(client, path, email="yearly@example.com")
    stripe_env.sandbox.pay(session_id_of(redirect), outcome="success")
    await deliver_and_process(client, stripe_env, settings)
    checkout = await the_checkout(sessions)
    assert checkout.state is CheckoutState.fulfilled and checkout.stripe_subscription_id
    async with sessions() as session:
        payment = await session.scalar(select(Payment))
        assert payment.amount == 2000 and payment.stripe_subscription_id == checkout.stripe_subscription_id


async def test_declined_card_grants_nothing(client, owner, shop, stripe_env, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop)
    redirect = await submit_checkout(client, path, email="declined@example.com")
    stripe_env.sandbox.pay(session_id_of(redirect), outcome="decline")
    await deliver_and_process(client, stripe_env, settings)
    checkout = await the_checkout(sessions)
    page = await complete(client, checkout)
    assert page.status_code == 200 and "Payment not completed" in page.text
    assert checkout.state is CheckoutState.open
    assert await count(sessions, Entitlement) == 0 and await count(sessions, Payment) == 0


async def test_delayed_payment_succeeds_or_fails(client, owner, shop, stripe_env, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop)
    first = session_id_of(await submit_checkout(client, path, email="bank1@example.com"))
    second = session_id_of(await submit_checkout(client, path, email="bank2@example.com"))
    for session_id in (first, second):
        stripe_env.sandbox.pay(session_id, outcome="async_pending")
    await deliver_and_process(client, stripe_env, settings)
    async with sessions() as session:
        states = {c.stripe_session_id: c.state for c in await session.scalars(select(Checkout))}
    assert states == {first: CheckoutState.processing, second: CheckoutState.processing}
    stripe_env.sandbox.settle_async(first, succeeded=True)
    stripe_env.sandbox.settle_async(second, succeeded=False)
    await deliver_and_process(client, stripe_env, settings)
    async with sessions() as session:
        states = {c.stripe_session_id: c.state for c in await session.scalars(select(Checkout))}
    assert states == {first: CheckoutState.fulfilled, second: CheckoutState.failed}
    assert await count(sessions, Entitlement) == 1 and await count(sessions, Payment) == 1


async def test_expired_session_releases_the_discount_code(client, owner, shop, stripe_env, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop, amount=5000)
    code = await client.post(f"{API}/communities/{shop['community']['id']}/discount-codes", json={"code": "ONLYONE", "kind": "percent", "percent_bps": 1000, "max_redemptions": 1}, headers=owner.headers)
    assert code.status_code == 201, code.text
    session_id = session_id_of(await submit_checkout(client, path, email="a@example.com", discount_code="onlyone"))
    refused = await submit_checkout(client, path, email="b@example.com", discount_code="ONLYONE")
    assert refused.status_code == 422 and "used up" in refused.text  # reserved by the first buyer
    await stripe_client(settings).v1.checkout.sessions.expire_async(session_id, options={"stripe_account": shop["account_id"]})
    await deliver_and_process(client, stripe_env, settings)
    assert (await the_checkout(sessions)).state is CheckoutState.expired
    again = await submit_checkout(client, path, email="b@example.com", discount_code="ONLYONE")
    assert again.status_code == 303, again.text


# ---------------------------------------------------------------- discount codes at checkout


async def test_discount_code_sets_the_price_at_stripe_and_counts_once(client, owner, shop, stripe_env, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop, amount=4900)
    created = await client.post(f"{API}/communities/{shop['community']['id']}/discount-codes", json={"code": "Spring25", "kind": "percent", "percent_bps": 2500}, headers=owner.headers)
    assert created.status_code == 201, created.text
    quote = await client.post(f"{API}/offers/{offer['id']}/quote", json={"code": "spring25"})
    assert quote.status_code == 200 and quote.json()["amount_due"] == 3675, quote.text
    redirect = await submit_checkout(client, path, email="saver@example.com", discount_code="SPRING25")
    stripe_session = stripe_env.sandbox.pay(session_id_of(redirect), outcome="success")
    assert stripe_session["amount_total"] == 3675  # Stripe charges what our quote showed
    checkout = await the_checkout(sessions)
    await complete(client, checkout)
    await deliver_and_process(client, stripe_env, settings)
    async with sessions() as session:
        payment = await session.scalar(select(Payment))
        assert (payment.amount, payment.discount_amount) == (3675, 1225)
        redemptions = (await session.scalars(select(DiscountRedemption))).all()
        assert [r.state.value for r in redemptions] == ["redeemed"]


async def test_refused_codes_say_why_and_create_nothing(client, owner, shop, stripe_env, sessions) -> None:
    offer, path = await sell(client, owner, shop, amount=4900)
    other, _ = await sell(client, owner, shop, title="Other", amount=900)
    base = f"{API}/communities/{shop['community']['id']}/discount-codes"
    for body in (
        {"code": "OLD", "kind": "percent", "percent_bps": 1000, "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2021-01-01T00:00:00Z"},
        {"code": "ELSEWHERE", "kind": "percent", "percent_bps": 1000, "applies_to": "offers", "offer_ids": [other["id"]]},
        {"code": "TOODEEP", "kind": "amount", "amount_off": 4880, "currency": "USD"},
    ):
        assert (await client.post(base, json=body, headers=owner.headers)).status_code == 201
    for code, reason in (("old", "expired"), ("elsewhere", "not valid for this offer"), ("nosuch", "no such discount code"), ("toodeep", "below the minimum")):
        page = await submit_checkout(client, path, email="x@example.com", discount_code=code)
        assert page.status_code == 422 and reason in page.text, (code, page.text[:500])
    assert await count(sessions, Checkout) == 0


async def test_a_full_discount_on_a_one_time_offer_takes_the_free_path(client, owner, shop, stripe_env, sessions) -> None:
    offer, path = await sell(client, owner, shop, amount=4900)
    await client.post(f"{API}/communities/{shop['community']['id']}/discount-codes", json={"code": "GIFT", "kind": "percent", "percent_bps": 10000}, headers=owner.headers)
    done = await submit_checkout(client, path, email="gift@example.com", discount_code="gift")
    assert done.status_code == 303 and done.headers["location"].startswith("http://testserver/checkout/")
    checkout = await the_checkout(sessions)
    assert checkout.state is CheckoutState.fulfilled and checkout.stripe_session_id is None
    assert (checkout.amount_due, checkout.discount_amount) == (0, 4900)
    async with sessions() as session:
        assert [r.state.value for r in (await session.scalars(select(DiscountRedemption))).all()] == ["redeemed"]


async def test_the_last_redemption_goes_to_one_of_two_concurrent_buyers(app, owner, shop, client, sessions) -> None:
    offer, path = await sell(client, owner, shop, amount=4900)
    await client.post(f"{API}/communities/{shop['community']['id']}/discount-codes", json={"code": "LAST", "kind": "percent", "percent_bps": 5000, "max_redemptions": 1}, headers=owner.headers)

    async def buyer(n: int) -> int:
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n}", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as own:
            return (await submit_checkout(own, path, email=f"racer{n}@example.com", discount_code="LAST")).status_code

    assert sorted(await asyncio.gather(buyer(1), buyer(2))) == [303, 422]
    async with sessions() as session:
        assert len((await session.scalars(select(DiscountRedemption))).all()) == 1


# ---------------------------------------------------------------- webhooks


def signed(payload: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload.decode()}", secret)
    return {"Stripe-Signature": f"t={timestamp},v1={signature}", "Content-Type": "application/json"}


async def test_badly_signed_stale_or_unconfigured_webhooks_are_refused(client, app, sessions) -> None:
    payload = json.dumps({"id": "evt_forged", "type": "account.updated", "account": "acct_x", "data": {"object": {"id": "acct_x"}}}).encode()
    route = f"{API}/webhooks/stripe/connect"
    assert (await client.post(route, content=payload, headers=signed(payload, "whsec_wrong"))).status_code == 400
    assert (await client.post(route, content=payload, headers=signed(payload, CONNECT_WEBHOOK_SECRET, int(time.time()) - 3600))).status_code == 400
    assert (await client.post(route, content=payload)).status_code == 400
    tampered = payload.replace(b"acct_x", b"acct_y")
    assert (await client.post(route, content=tampered, headers=signed(payload, CONNECT_WEBHOOK_SECRET))).status_code == 400
    assert await count(sessions, StripeEvent) == 0
    ok = await client.post(route, content=payload, headers=signed(payload, CONNECT_WEBHOOK_SECRET))
    assert ok.status_code == 200 and await count(sessions, StripeEvent) == 1


async def test_an_endpoint_without_a_secret_refuses_everything(settings, engine) -> None:
    import dataclasses

    from community.app import create_app
    from tests.conftest import running

    unset = dataclasses.replace(settings, stripe_webhook_secret="")
    async with running(create_app(unset)) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            payload = b'{"id": "evt_1", "type": "account.updated"}'
            refused = await c.post(f"{API}/webhooks/stripe", content=payload, headers=signed(payload, ""))
            assert refused.status_code == 400 and "not configured" in refused.text


async def test_duplicate_and_concurrent_deliveries_are_stored_and_processed_once(client, owner, shop, stripe_env, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop)
    stripe_env.sandbox.pay(session_id_of(await submit_checkout(client, path, email="dup@example.com")), outcome="success")
    deliveries = stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint)
    completed = [d for d in deliveries if d.type == "checkout.session.completed"]
    assert len(completed) == 1
    route = f"{API}/webhooks/stripe/connect"
    responses = await asyncio.gather(*(client.post(route, content=completed[0].payload, headers=completed[0].headers) for _ in range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    assert sorted(r.json()["duplicate"] for r in responses) == [False, True, True, True]
    await run_jobs(settings)
    again = await client.post(route, content=completed[0].payload, headers=completed[0].headers)
    assert again.json()["duplicate"] is True
    await run_jobs(settings)
    assert await count(sessions, StripeEvent, StripeEvent.type == "checkout.session.completed") == 1
    assert await count(sessions, Entitlement) == 1 and await count(sessions, Payment) == 1


async def test_out_of_order_deliveries_end_the_same(client, owner, shop, stripe_env, sessions, settings) -> None:
    """A delayed payment's "succeeded" before its "completed": the current session decides."""
    offer, path = await sell(client, owner, shop)
    session_id = session_id_of(await submit_checkout(client, path, email="order@example.com"))
    stripe_env.sandbox.pay(session_id, outcome="async_pending")
    stripe_env.sandbox.settle_async(session_id, succeeded=True)
    deliveries = [d for d in stripe_env.sandbox.take_deliveries(stripe_env.connect_endpoint) if d.type.startswith("checkout.session")]
    for delivery in reversed(deliveries):
        response = await client.post(f"{API}/webhooks/stripe/connect", content=delivery.payload, headers=delivery.headers)
        assert response.status_code == 200
    await run_jobs(settings)
    assert (await the_checkout(sessions)).state is CheckoutState.fulfilled
    assert await count(sessions, Entitlement) == 1 and await count(sessions, Payment) == 1


async def test_an_event_from_another_account_naming_our_session_is_not_believed(client, owner, shop, stripe_env, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop)
    session_id = session_id_of(await submit_checkout(client, path, email="victim@example.com"))
    payload = json.dumps({
        "id": "evt_spoof", "type": "checkout.session.completed", "account": "acct_attacker",
        "data": {"object": {"id": session_id, "object": "checkout.session", "metadata": {"checkout_id": "1"}}},
    }).encode()
    await client.post(f"{API}/webhooks/stripe/connect", content=payload, headers=signed(payload, CONNECT_WEBHOOK_SECRET))
    await run_jobs(settings)
    async with sessions() as session:
        event = await session.scalar(select(StripeEvent).where(StripeEvent.event_id == "evt_spoof"))
        assert event.outcome == "not ours"
    assert (await the_checkout(sessions)).state is CheckoutState.open


# ---------------------------------------------------------------- destinations, members, custom code


async def test_custom_url_destination_and_no_redirect_from_the_query(client, owner, shop, stripe_env, sessions) -> None:
    offer, path = await sell(client, owner, shop, pricing="free", amount=None, currency=None, destination="custom_url", destination_url="https://owner.example.com/welcome")
    done = await submit_checkout(client, path, email="away@example.com")
    completion = await client.get(done.headers["location"] + "?next=https://evil.example.com&destination=https://evil.example.com")
    thanks = await client.get(completion.headers["location"] + "?url=https://evil.example.com")
    assert "url=https://owner.example.com/welcome" in thanks.text and "evil.example.com" not in thanks.text


async def test_a_buyer_who_already_holds_the_offer_is_not_charged_twice(client, owner, shop, stripe_env, sessions, settings) -> None:
    offer, path = await sell(client, owner, shop)
    stripe_env.sandbox.pay(session_id_of(await submit_checkout(client, path, email="twice@example.com")), outcome="success")
    await deliver_and_process(client, stripe_env, settings)
    again = await submit_checkout(client, path, email="TWICE@example.com")
    assert again.status_code == 409 and "already have this offer" in again.text
    assert await count(sessions, Checkout) == 1


async def test_custom_code_only_on_its_offer_pages(client, owner, shop, stripe_env) -> None:
    offer, path = await sell(client, owner, shop, pricing="free", amount=None, currency=None, landing_page={"headline": "Join us", "body": "**Bold** <script>alert(1)</script> [x](javascript:alert(1))"})
    other, other_path = await sell(client, owner, shop, title="Plain", pricing="free", amount=None, currency=None, checkout_code_head="", checkout_code_body="")
    landing = await client.get(path)
    assert landing.status_code == 200 and HEAD_CODE in landing.text and BODY_CODE in landing.text
    assert "<strong>Bold</strong>" in landing.text and "&lt;script&gt;alert(1)" in landing.text  # shown, not run
    assert "<script>alert(1)" not in landing.text and 'href="javascript:' not in landing.text
    assert "script-src" not in landing.headers["content-security-policy"]
    for url in (f"{other_path}/checkout", "/login", "/signup", "/"):
        page = await client.get(url)
        assert HEAD_CODE not in page.text and BODY_CODE not in page.text, url
    assert "script-src 'self'" in (await client.get("/login")).headers["content-security-policy"]


async def test_view_offer_page_shows_a_draft_on_its_own_origin_with_its_custom_code(client, owner, shop, settings, sessions) -> None:
    """"View offer page" (it replaced a platform-origin preview that left the custom code out):
    staff are sent to the page on the community's origin, a draft with a short-lived signed
    token; the page runs the owner's code there, and its checkout sells nothing."""
    from community.checkout import preview

    cid, slug = shop["community"]["id"], shop["community"]["slug"]
    draft = (await client.post(f"{API}/communities/{cid}/offers", json={
        "title": "Secret plan", "pricing": "one_time", "amount": 4900, "landing_page": {"headline": "Coming soon"},
        "checkout_code_head": HEAD_CODE,
    }, headers=owner.headers)).json()
    public = offer_path(shop["community"], draft)
    assert (await client.get(public)).status_code == 404  # not public yet
    view = f"/dashboard/communities/{cid}/offers/{draft['id']}/preview"
    assert (await client.get(view)).headers["location"].endswith("/login")
    page = await client.get("/login")
    token = CSRF.search(page.text).group(1)
    await client.post("/login", data={"_csrf_token": token, "email": owner.email, "password": "correct horse battery"})

    moved = await client.get(view)
    assert moved.status_code == 303 and moved.headers["location"].startswith(f"{public}?preview=")
    landing = await client.get(moved.headers["location"])
    assert landing.status_code == 200 and "Coming soon" in landing.text and HEAD_CODE in landing.text
    assert "script-src" not in landing.headers["content-security-policy"]  # the offer pages' policy: owner code runs
    assert 'id="preview-bar"' in landing.text
    checkout_link = re.search(r'id="cta" href="([^"]+)"', landing.text).group(1).replace("&amp;", "&")
    assert checkout_link.startswith(f"{public}/checkout?preview=")
    checkout = await client.get(checkout_link)
    assert checkout.status_code == 200 and HEAD_CODE in checkout.text
    assert re.search(r'<button type="submit" id="pay" disabled', checkout.text)
    form_token = CSRF.search(checkout.text).group(1)
    bought = await client.post(checkout_link, data={"_csrf_token": form_token, "email": "early@example.com"})
    assert bought.status_code == 404 and await count(sessions, Checkout) == 0  # a preview never sells

    secret = settings.secret_key
    expired = preview.mint(secret, community_id=cid, offer_id=draft["id"], now=time.time() - preview.PREVIEW_SECONDS - 1)
    forged = preview.mint("another-secret-key-" + "y" * 32, community_id=cid, offer_id=draft["id"])
    other = (await client.post(f"{API}/communities/{cid}/offers", json={"title": "Other plan", "pricing": "free"}, headers=owner.headers)).json()
    of_other = preview.mint(secret, community_id=cid, offer_id=other["id"])
    for bad in (expired, forged, of_other, "1.2.3", "x" * 300):
        refused = await client.get(public, params={"preview": bad})
        assert refused.status_code == 404 and HEAD_CODE not in refused.text, bad

    published = await client.post(f"{API}/communities/{cid}/offers/{other['id']}/publish", headers=owner.headers)
    assert published.status_code == 200
    straight = await client.get(f"/dashboard/communities/{cid}/offers/{other['id']}/preview")
    assert straight.headers["location"] == offer_path(shop["community"], other)  # published: the public page as it is

    stranger = await sign_up(client, "stranger@example.com")
    elsewhere = await client.post(f"{API}/communities", json={"name": "Other place"}, headers=stranger.headers)
    foreign = await client.get(f"/dashboard/communities/{elsewhere.json()['id']}/offers/{draft['id']}/preview")
    assert foreign.status_code == 404


async def test_offer_pages_on_their_own_origin(client, owner, shop, stripe_env, sessions, settings) -> None:
    """With a COMMUNITY_PAGES_URL pattern, owners' code runs only on its community's origin and
    the member's session cookie only ever exists on the platform's."""
    import dataclasses

    from community.app import create_app
    from tests.conftest import running

    offer, _ = await sell(client, owner, shop, landing_page={"headline": "Learn"})
    path = f"/o/{shop['community']['slug']}/{offer['slug']}"
    pages = f"http://{shop['community']['slug']}.pages.testserver"
    async with running(create_app(dataclasses.replace(settings, pages_url="http://{community}.pages.testserver"))) as app:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as buyer:
            moved = await buyer.get(f"{path}?utm_source=x")  # an offer page asked for on the platform
            assert moved.status_code == 308 and moved.headers["location"] == f"{pages}{path}?utm_source=x"
            landing = await buyer.get(f"{pages}{path}")
            assert landing.status_code == 200 and HEAD_CODE in landing.text
            back = await buyer.get(f"{pages}/login")  # platform pages never answer on a community's origin
            assert back.status_code == 308 and back.headers["location"] == "http://testserver/login"
            assert (await buyer.get(f"{pages}{API}/me")).status_code == 308
            assert (await buyer.get(f"{pages}/static/site.css")).status_code == 200

            redirect = await submit_checkout(buyer, f"{pages}{path}", email="far@example.com", name="Far Buyer")
            session_id = session_id_of(redirect)
            sent = stripe_env.sandbox.get(session_id)
            assert sent["success_url"].startswith("http://testserver/checkout/")  # logs in on the platform
            assert sent["cancel_url"] == f"{pages}{path}/checkout"  # back to the community's origin
            stripe_env.sandbox.pay(session_id, outcome="success")
            checkout = await the_checkout(sessions)
            completion = await complete(buyer, checkout)
            assert completion.status_code == 303 and "community_session" in completion.headers.get("set-cookie", "")
            assert completion.headers["location"] == f"{pages}/checkout/{checkout.token}/thanks"
            thanks = await buyer.get(completion.headers["location"])
            assert thanks.status_code == 200 and HEAD_CODE in thanks.text
            assert "community_session" not in thanks.headers.get("set-cookie", "")
            assert f'http://testserver/communities/{shop["community"]["id"]}' in thanks.text
            member_page = await buyer.get(f"/communities/{shop['community']['id']}")
            assert member_page.status_code == 200 and "Workshop" in member_page.text and HEAD_CODE not in member_page.text


async def test_two_subscriptions_paid_in_parallel_tabs_are_both_followed(client, owner, shop, stripe_env, sessions, settings) -> None:
    """Both checkouts were opened before either was paid, so Stripe charges two subscriptions:
    each gets its own entitlement, so its renewals are recorded and ending one leaves the other."""
    from community.billing.models import Subscription

    _offer, path = await sell(client, owner, shop, pricing="recurring", amount=1500, interval_months=1)
    first = session_id_of(await submit_checkout(client, path, email="tabs@example.com"))
    second = session_id_of(await submit_checkout(client, path, email="tabs@example.com"))
    stripe_env.sandbox.pay(first, outcome="success")
    stripe_env.sandbox.pay(second, outcome="success")
    await deliver_and_process(client, stripe_env, settings)
    async with sessions() as session:
        followed = (await session.scalars(select(Subscription).order_by(Subscription.id))).all()
        assert len(followed) == 2 and followed[0].entitlement_id != followed[1].entitlement_id
        assert {s.stripe_subscription_id for s in followed} == {stripe_env.sandbox.get(first)["subscription"], stripe_env.sandbox.get(second)["subscription"]}
    stripe_env.sandbox.advance_clock(32 * 86400)  # both renew: both renewals are recorded
    await deliver_and_process(client, stripe_env, settings)
    async with sessions() as session:
        renewals = (await session.scalars(select(Payment).where(Payment.kind == "renewal"))).all()
        assert sorted(p.entitlement_id for p in renewals) == sorted(s.entitlement_id for s in followed)

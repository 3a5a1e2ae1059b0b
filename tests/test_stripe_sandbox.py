"""The local Stripe sandbox, driven by the real `stripe` SDK over HTTP (DESIGN.md section 7).

Each test gets its own sandbox (a uvicorn server in a thread). Hosted pages are followed with
httpx like a browser would (form posts, 303 redirects); webhooks are checked with
`stripe.Webhook.construct_event`, and retries against a small local receiver.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import stripe

from stripe_sandbox import SandboxError, StripeSandbox
from stripe_sandbox.store import Store

# stripe's HTTPXClient hands httpx a str body as `data=`; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")

DAY = 86400
SECRET = "whsec_sandbox_test"


@pytest.fixture
def sandbox() -> Iterator[StripeSandbox]:
    with StripeSandbox(retry_delays=(0.05, 0.1, 0.2)) as sb:
        yield sb


@pytest.fixture
def sc(sandbox: StripeSandbox) -> stripe.StripeClient:
    return stripe.StripeClient(
        sandbox.api_key,
        base_addresses={"api": sandbox.url, "connect": sandbox.url},
        http_client=stripe.HTTPXClient(),
    )


@pytest.fixture
async def browser(sandbox: StripeSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url, follow_redirects=False) as c:
        yield c


async def connected_account(sc: stripe.StripeClient, sandbox: StripeSandbox) -> str:
    account = await sc.v1.accounts.create_async(params={"type": "express", "email": "owner@example.com"})
    sandbox.complete_onboarding(account.id)
    return account.id


def item(
    amount: int = 1000,
    *,
    currency: str = "usd",
    name: str = "Course",
    interval: str | None = None,
    interval_count: int = 1,
    quantity: int = 1,
) -> dict[str, Any]:
    price_data: dict[str, Any] = {"currency": currency, "unit_amount": amount, "product_data": {"name": name}}
    if interval:
        price_data["recurring"] = {"interval": interval, "interval_count": interval_count}
    return {"price_data": price_data, "quantity": quantity}


async def session(sc: stripe.StripeClient, account: str | None, **params: Any) -> Any:
    params.setdefault("mode", "payment")
    params.setdefault("line_items", [item()])
    params.setdefault("success_url", "http://app.test/done?session={CHECKOUT_SESSION_ID}")
    params.setdefault("cancel_url", "http://app.test/back")
    options: Any = {"stripe_account": account} if account else {}
    return await sc.v1.checkout.sessions.create_async(params=params, options=options)


def on(account: str) -> Any:
    return {"stripe_account": account}


def types(events: list[Any]) -> list[str]:
    return [e.type if hasattr(e, "type") else e["type"] for e in events]


def period(sub: Any) -> tuple[int, int]:
    """A subscription's current period: on its items since API 2025-03-31, not on the subscription."""
    item = sub["items"]["data"][0]
    return item["current_period_start"], item["current_period_end"]


# ---- keys, accounts, onboarding -------------------------------------------------------------------


async def test_live_keys_are_refused(sandbox: StripeSandbox) -> None:
    with pytest.raises(ValueError, match="live"):
        StripeSandbox(api_key="sk_live_123")
    for key in ("sk_live_abcdefghijklmnop", "sk_test_not_the_sandbox_key"):
        other = stripe.StripeClient(key, base_addresses={"api": sandbox.url}, http_client=stripe.HTTPXClient())
        with pytest.raises(stripe.AuthenticationError):
            await other.v1.customers.create_async(params={"email": "a@example.com"})
    assert sandbox.events() == []


async def test_accounts_and_onboarding_pages(
    sandbox: StripeSandbox, sc: stripe.StripeClient, browser: httpx.AsyncClient
) -> None:
    endpoint = sandbox.add_webhook_endpoint(None, SECRET, connect=True)
    platform = sandbox.add_webhook_endpoint(None, SECRET, connect=False)
    account = await sc.v1.accounts.create_async(
        params={
            "type": "express",
            "email": "o@example.com",
            "country": "US",
            "capabilities": {"card_payments": {"requested": True}},
        }
    )
    assert account.id.startswith("acct_") and account.object == "account" and "livemode" not in account  # Accounts have none
    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (False, False, False)
    with pytest.raises(stripe.InvalidRequestError, match="charges_enabled"):
        await session(sc, account.id)

    link = await sc.v1.account_links.create_async(
        params={
            "account": account.id,
            "refresh_url": "http://app.test/refresh",
            "return_url": "http://app.test/return",
            "type": "account_onboarding",
        }
    )
    page = await browser.get(link.url)
    assert page.status_code == 200 and 'id="complete-onboarding"' in page.text and account.id in page.text
    done = await browser.post(link.url, data={"action": "complete"})
    assert done.status_code == 303 and done.headers["location"] == "http://app.test/return"
    again = await browser.get(link.url)  # account links are single-use
    assert again.status_code == 303 and again.headers["location"] == "http://app.test/refresh"

    account = await sc.v1.accounts.retrieve_async(account.id)
    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (True, True, True)
    [delivery] = sandbox.take_deliveries(endpoint)
    event = stripe.Webhook.construct_event(delivery.payload, delivery.headers["Stripe-Signature"], SECRET)
    assert event.type == "account.updated" and event.account == account.id
    assert event.data.object.charges_enabled is True
    assert sandbox.take_deliveries(platform) == []

    leave = await sc.v1.account_links.create_async(
        params={
            "account": account.id,
            "refresh_url": "http://app.test/refresh",
            "return_url": "http://app.test/return",
            "type": "account_onboarding",
        }
    )
    left = await browser.post(leave.url, data={"action": "leave"})
    assert left.headers["location"] == "http://app.test/refresh"

    deleted = await sc.v1.accounts.delete_async(account.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await sc.v1.accounts.retrieve_async(account.id)
    assert missing.value.http_status == 404
    with pytest.raises(stripe.PermissionError):  # a deleted (or unknown) account in Stripe-Account
        await sc.v1.customers.create_async(params={"email": "a@example.com"}, options=on(account.id))


# ---- checkout: payment mode and the hosted page ---------------------------------------------------


async def test_payment_session_hosted_page_decline_then_success(
    sandbox: StripeSandbox, sc: stripe.StripeClient, browser: httpx.AsyncClient
) -> None:
    acct = await connected_account(sc, sandbox)
    endpoint = sandbox.add_webhook_endpoint(None, SECRET, connect=True)
    created = await session(
        sc,
        acct,
        customer_email="buyer@example.com",
        client_reference_id="checkout-5",
        metadata={"checkout_id": "5"},
        line_items=[item(2500, name="Masterclass <b>")],
        payment_intent_data={"metadata": {"checkout_id": "5"}, "application_fee_amount": 250},
    )
    assert created.id.startswith("cs_test_") and created.object == "checkout.session"
    assert (created.status, created.payment_status, created.mode) == ("open", "unpaid", "payment")
    assert (created.amount_subtotal, created.amount_total, created.currency) == (2500, 2500, "usd")
    assert created.metadata.to_dict() == {"checkout_id": "5"} and created.client_reference_id == "checkout-5"
    assert created.success_url == "http://app.test/done?session={CHECKOUT_SESSION_ID}"
    assert created.expires_at == created.created + DAY
    assert created.url.startswith(sandbox.url)

    page = await browser.get(created.url)
    assert page.status_code == 200
    assert "25.00 USD" in page.text and "Masterclass &lt;b&gt;" in page.text
    for button in ('id="pay-success"', 'id="pay-decline"', 'id="pay-async"'):
        assert button in page.text
    assert 'id="trial-no-card"' not in page.text

    declined = await browser.post(created.url, data={"outcome": "decline", "name": "Ada"})
    assert declined.status_code == 402 and "Your card was declined." in declined.text
    after_decline = await sc.v1.checkout.sessions.retrieve_async(created.id, options=on(acct))
    assert after_decline.status == "open"
    intent = await sc.v1.payment_intents.retrieve_async(after_decline.payment_intent, options=on(acct))
    assert intent.status == "requires_payment_method" and intent.last_payment_error.code == "card_declined"

    paid = await browser.post(created.url, data={"outcome": "success", "name": "Ada Lovelace"})
    assert paid.status_code == 303
    assert paid.headers["location"] == f"http://app.test/done?session={created.id}"

    done = await sc.v1.checkout.sessions.retrieve_async(created.id, options=on(acct))
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.customer_details.email == "buyer@example.com" and done.customer_details.name == "Ada Lovelace"
    intent = await sc.v1.payment_intents.retrieve_async(done.payment_intent, options=on(acct))
    assert intent.id == after_decline.payment_intent
    assert (intent.status, intent.amount, intent.amount_received) == ("succeeded", 2500, 2500)
    assert intent.application_fee_amount == 250 and intent.metadata.to_dict() == {"checkout_id": "5"}
    charge = await sc.v1.charges.retrieve_async(intent.latest_charge, options=on(acct))
    assert (charge.amount, charge.paid, charge.status, charge.refunded) == (2500, True, "succeeded", False)
    customer = await sc.v1.customers.retrieve_async(done.customer, options=on(acct))
    assert customer.email == "buyer@example.com" and charge.customer == customer.id

    listed = await sc.v1.checkout.sessions.list_async(params={"payment_intent": intent.id}, options=on(acct))
    assert [s.id for s in listed.data] == [created.id]
    items = await sc.v1.checkout.sessions.line_items.list_async(created.id, options=on(acct))
    assert [(i.description, i.quantity, i.amount_total) for i in items.data] == [("Masterclass <b>", 1, 2500)]

    events = [
        stripe.Webhook.construct_event(d.payload, d.headers["Stripe-Signature"], SECRET)
        for d in sandbox.take_deliveries(endpoint)
    ]
    assert types(events) == [
        "charge.failed",
        "payment_intent.payment_failed",
        "customer.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    assert all(e.account == acct for e in events)
    completed = events[-1]
    assert completed.data.object.id == created.id and completed.data.object.payment_status == "paid"
    assert completed.api_version == stripe.api_version

    # the page of a completed session no longer takes payments; a second buyer with the same email reuses the customer
    assert "This checkout is complete" in (await browser.get(created.url)).text
    second = await session(sc, acct, customer_email="buyer@example.com")
    assert sandbox.pay(second.id)["customer"] == customer.id


async def test_coupons_and_discounts(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    percent = await sc.v1.coupons.create_async(
        params={"percent_off": 25, "duration": "once", "name": "Launch", "max_redemptions": 1}, options=on(acct)
    )
    assert (percent.object, percent.percent_off, percent.valid, percent.times_redeemed) == ("coupon", 25, True, 0)
    discounted = await session(sc, acct, line_items=[item(2000)], discounts=[{"coupon": percent.id}])
    assert (discounted.amount_subtotal, discounted.amount_total) == (2000, 1500)
    assert discounted.total_details.amount_discount == 500
    sandbox.pay(discounted.id)
    used = await sc.v1.coupons.retrieve_async(percent.id, options=on(acct))
    assert (used.times_redeemed, used.valid) == (1, False)
    with pytest.raises(stripe.InvalidRequestError) as used_up:
        await session(sc, acct, discounts=[{"coupon": percent.id}])
    assert used_up.value.code == "coupon_expired"

    huge = await sc.v1.coupons.create_async(
        params={"amount_off": 5000, "currency": "usd", "duration": "forever"}, options=on(acct)
    )
    free = await session(sc, acct, line_items=[item(1000)], discounts=[{"coupon": huge.id}])
    assert (free.amount_total, free.total_details.amount_discount) == (0, 1000)  # clamps at 0
    assert 'id="pay-async"' not in (await httpx.AsyncClient().get(free.url)).text
    completed = sandbox.pay(free.id)
    assert (completed["payment_status"], completed["payment_intent"]) == ("no_payment_required", None)

    with pytest.raises(stripe.InvalidRequestError) as wrong_currency:
        await session(sc, acct, line_items=[item(1000, currency="eur")], discounts=[{"coupon": huge.id}])
    assert wrong_currency.value.param == "discounts[0][coupon]"
    repeating = await sc.v1.coupons.create_async(
        params={"id": "THREE", "percent_off": 10, "duration": "repeating", "duration_in_months": 3}, options=on(acct)
    )
    assert repeating.id == "THREE" and repeating.duration_in_months == 3
    deleted = await sc.v1.coupons.delete_async("THREE", options=on(acct))
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as gone:
        await sc.v1.coupons.retrieve_async("THREE", options=on(acct))
    assert gone.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as gone_in_session:
        await session(sc, acct, discounts=[{"coupon": "THREE"}])
    assert gone_in_session.value.http_status == 400 and gone_in_session.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as both:
        await sc.v1.coupons.create_async(
            params={"percent_off": 10, "amount_off": 100, "currency": "usd"}, options=on(acct)
        )
    assert both.value.param == "percent_off"


async def test_validation_errors_name_the_parameter(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"line_items": [{"price_data": {"currency": "usd", "unit_amount": 1000, "product_data": {"name": "x"}}}]},
            "line_items[0][quantity]",
        ),
        ({"line_items": [item(10)]}, "line_items"),  # below Stripe's minimum charge
        ({"line_items": [item(1000, interval="month")]}, "line_items[0][price_data][recurring]"),
        ({"mode": "subscription", "line_items": [item(1000)]}, "line_items[0][price_data][recurring]"),
        (
            {"mode": "subscription", "line_items": [item(1000, interval="fortnight")]},
            "line_items[0][price_data][recurring][interval]",
        ),
        ({"expires_at": int(time.time()) + 60}, "expires_at"),
        (
            {
                "subscription_data": {"trial_period_days": 7, "trial_end": int(time.time()) + 9 * DAY},
                "mode": "subscription",
                "line_items": [item(1000, interval="month")],
            },
            "subscription_data[trial_end]",
        ),
        ({"success_url": "not a url"}, "success_url"),
        ({"allow_unicorns": True}, "allow_unicorns"),
        ({"customer_email": "a@example.com", "customer": "cus_x"}, "customer_email"),
        ({"subscription_data": {"trial_period_days": 7}}, "subscription_data"),
    ]
    for params, param in cases:
        with pytest.raises(stripe.InvalidRequestError) as error:
            await session(sc, acct, **params)
        assert error.value.http_status == 400 and error.value.param == param, params
    with pytest.raises(stripe.InvalidRequestError) as unknown_url:
        await sc.raw_request_async("get", "/v1/products")
    assert unknown_url.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError, match="application fee"):  # fees only on connected accounts
        await session(sc, None, payment_intent_data={"application_fee_amount": 10})


async def test_sessions_expire_on_the_wall_clock(
    sandbox: StripeSandbox, sc: stripe.StripeClient, browser: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    acct = await connected_account(sc, sandbox)
    first = await session(sc, acct)
    expired = await sc.v1.checkout.sessions.expire_async(first.id, options=on(acct))
    assert expired.status == "expired"
    with pytest.raises(stripe.InvalidRequestError):
        await sc.v1.checkout.sessions.expire_async(first.id, options=on(acct))
    page = await browser.get(f"/c/pay/{first.id}")
    assert "expired" in page.text and 'id="pay-success"' not in page.text

    # the test clock moves billing, not checkout: a session made from the app's own clock still works after it
    sandbox.advance_clock(40 * DAY)
    second = await session(sc, acct, expires_at=int(time.time()) + 3600)
    assert second.created == pytest.approx(time.time(), abs=5)
    assert sandbox.expire_session(second.id)["status"] == "expired"
    third = await session(sc, acct, expires_at=int(time.time()) + 3600)
    monkeypatch.setattr(Store, "wall", staticmethod(lambda: int(time.time()) + 3600))  # an hour passes
    assert (await sc.v1.checkout.sessions.retrieve_async(third.id, options=on(acct))).status == "expired"
    with pytest.raises(SandboxError):
        sandbox.pay(third.id)
    expiries = sandbox.events("checkout.session.expired")
    assert [e["data"]["object"]["id"] for e in expiries] == [first.id, second.id, third.id]


async def test_async_payment_settles_later(
    sandbox: StripeSandbox, sc: stripe.StripeClient, browser: httpx.AsyncClient
) -> None:
    acct = await connected_account(sc, sandbox)
    ok = await session(sc, acct, customer_email="slow@example.com")
    redirect = await browser.post(ok.url, data={"outcome": "async_pending"})
    assert redirect.status_code == 303
    pending = await sc.v1.checkout.sessions.retrieve_async(ok.id, options=on(acct))
    assert (pending.status, pending.payment_status) == ("complete", "unpaid")
    assert (await sc.v1.payment_intents.retrieve_async(pending.payment_intent, options=on(acct))).status == "processing"
    settled = sandbox.settle_async(ok.id, succeeded=True)
    assert settled["payment_status"] == "paid"
    assert (await sc.v1.payment_intents.retrieve_async(pending.payment_intent, options=on(acct))).status == "succeeded"
    assert types(sandbox.events())[-1] == "checkout.session.async_payment_succeeded"

    failing = await session(sc, acct, customer_email="slow@example.com")
    sandbox.pay(failing.id, "async_pending")
    failed = sandbox.settle_async(failing.id, succeeded=False)
    assert failed["payment_status"] == "unpaid"
    assert types(sandbox.events())[-1] == "checkout.session.async_payment_failed"
    with pytest.raises(Exception, match="no delayed payment"):
        sandbox.settle_async(failing.id, succeeded=True)

    monthly = await session(sc, acct, mode="subscription", line_items=[item(800, interval="month")])
    sub_id = sandbox.pay(monthly.id, "async_pending")["subscription"]
    sub = await sc.v1.subscriptions.retrieve_async(sub_id, options=on(acct))
    assert sub.status == "incomplete"
    assert (await sc.v1.invoices.retrieve_async(sub.latest_invoice, options=on(acct))).status == "open"
    sandbox.settle_async(monthly.id, succeeded=True)
    assert (await sc.v1.subscriptions.retrieve_async(sub_id, options=on(acct))).status == "active"
    assert (await sc.v1.invoices.retrieve_async(sub.latest_invoice, options=on(acct))).status == "paid"


# Refunds, disputes and the expiry of idempotency keys: tests/test_stripe_sandbox_money.py


# ---- idempotency, scoping, customers, events ---------------------------------------------------------


async def test_idempotency_keys(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    params: Any = {"email": "same@example.com", "metadata": {"member_id": "7"}}
    first = await sc.v1.customers.create_async(params=params, options={"stripe_account": acct, "idempotency_key": "k1"})
    again = await sc.v1.customers.create_async(params=params, options={"stripe_account": acct, "idempotency_key": "k1"})
    assert again.id == first.id
    listed = await sc.v1.customers.list_async(params={"email": "same@example.com"}, options=on(acct))
    assert [c.id for c in listed.data] == [first.id]
    with pytest.raises(stripe.IdempotencyError):
        await sc.v1.customers.create_async(
            params={"email": "other@example.com"}, options={"stripe_account": acct, "idempotency_key": "k1"}
        )
    # the same key on another account is another key
    other = await connected_account(sc, sandbox)
    elsewhere = await sc.v1.customers.create_async(
        params=params, options={"stripe_account": other, "idempotency_key": "k1"}
    )
    assert elsewhere.id != first.id
    s1 = await sc.v1.checkout.sessions.create_async(
        params={"mode": "payment", "line_items": [item()], "success_url": "http://x.test/"},
        options={"stripe_account": acct, "idempotency_key": "checkout-1"},
    )
    s2 = await sc.v1.checkout.sessions.create_async(
        params={"mode": "payment", "line_items": [item()], "success_url": "http://x.test/"},
        options={"stripe_account": acct, "idempotency_key": "checkout-1"},
    )
    assert s1.id == s2.id


async def test_objects_belong_to_their_account(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    mine, theirs = await connected_account(sc, sandbox), await connected_account(sc, sandbox)
    paid = sandbox.pay((await session(sc, mine)).id)
    customer = await sc.v1.customers.create_async(params={"email": "x@example.com"}, options=on(mine))
    coupon = await sc.v1.coupons.create_async(params={"percent_off": 5}, options=on(mine))
    lookups = [
        lambda o: sc.v1.checkout.sessions.retrieve_async(paid["id"], options=o),
        lambda o: sc.v1.payment_intents.retrieve_async(paid["payment_intent"], options=o),
        lambda o: sc.v1.customers.retrieve_async(customer.id, options=o),
        lambda o: sc.v1.coupons.retrieve_async(coupon.id, options=o),
        lambda o: sc.v1.events.retrieve_async(sandbox.events()[-1]["id"], options=o),
    ]
    for lookup in lookups:
        assert (await lookup(on(mine))).id
        for foreign in (on(theirs), {}):
            with pytest.raises(stripe.InvalidRequestError) as error:
                await lookup(foreign)
            assert error.value.http_status == 404 and error.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as refund:
        await sc.v1.refunds.create_async(params={"payment_intent": paid["payment_intent"]}, options=on(theirs))
    assert refund.value.param == "payment_intent"
    assert (await sc.v1.checkout.sessions.list_async(options=on(theirs))).data == []
    with pytest.raises(stripe.PermissionError):
        await sc.v1.customers.list_async(options=on("acct_doesnotexist"))


async def test_customers_and_events_api(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    created = [
        await sc.v1.customers.create_async(params={"email": f"c{i}@example.com", "name": f"C {i}"}, options=on(acct))
        for i in range(3)
    ]
    page = await sc.v1.customers.list_async(params={"limit": 2}, options=on(acct))
    assert [c.id for c in page.data] == [created[2].id, created[1].id] and page.has_more
    rest = await sc.v1.customers.list_async(params={"limit": 2, "starting_after": created[1].id}, options=on(acct))
    assert [c.id for c in rest.data] == [created[0].id] and not rest.has_more
    every = [
        c.id async for c in (await sc.v1.customers.list_async(params={"limit": 1}, options=on(acct))).auto_paging_iter()
    ]
    assert every == [c.id for c in reversed(created)]

    events = await sc.v1.events.list_async(params={"type": "customer.created"}, options=on(acct))
    assert [e.data.object.id for e in events.data] == [c.id for c in reversed(created)]
    assert all(e.account == acct and e.request.idempotency_key for e in events.data)
    one = await sc.v1.events.retrieve_async(events.data[0].id, options=on(acct))
    assert one.type == "customer.created" and one.id.startswith("evt_") and one.created == events.data[0].created
    platform_events = await sc.v1.events.list_async(options={})
    assert platform_events.data == []  # every event so far belongs to the connected account
    wildcard = await sc.v1.events.list_async(params={"type": "account.*"}, options=on(acct))
    assert types(wildcard.data) == ["account.updated"]


# ---- webhooks: signatures and retries ------------------------------------------------------------------


class Receiver:
    """A tiny webhook receiver that answers 500 to its first `failures` requests."""

    def __init__(self, port: int = 0, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if receiver.failures > 0 else 200
                receiver.failures -= 1
                receiver.statuses.append(status)
                if status == 200:
                    receiver.received.append((body, dict(self.headers)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_webhook_signatures(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    receiver = Receiver()
    try:
        sandbox.add_webhook_endpoint(receiver.url, SECRET, connect=False)
        customer = await sc.v1.customers.create_async(params={"email": "p@example.com"})  # a platform event
        assert await asyncio.to_thread(sandbox.wait_deliveries, 10)
        [(payload, headers)] = receiver.received
        assert headers["Content-Type"].startswith("application/json")
        event = stripe.Webhook.construct_event(payload, headers["Stripe-Signature"], SECRET)
        assert event.type == "customer.created" and event.data.object.id == customer.id and "account" not in event
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(payload, headers["Stripe-Signature"], "whsec_wrong")
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(
                payload.replace(b"p@example.com", b"q@example.com"), headers["Stripe-Signature"], SECRET
            )
        stamp = int(re.search(r"t=(\d+)", headers["Stripe-Signature"]).group(1))  # type: ignore[union-attr]
        assert abs(stamp - time.time()) < 5  # signed with the wall clock, whatever the sandbox time
    finally:
        receiver.close()


async def test_failed_deliveries_are_retried(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    flaky = Receiver(failures=2)
    late_port = free_port()
    late_url = f"http://127.0.0.1:{late_port}/webhooks"
    try:
        flaky_ep = sandbox.add_webhook_endpoint(flaky.url, SECRET, connect=True)
        late_ep = sandbox.add_webhook_endpoint(late_url, SECRET, connect=True)
        acct = await connected_account(sc, sandbox)  # account.updated
        await sc.v1.customers.create_async(params={"email": "r@example.com"}, options=on(acct))
        await asyncio.sleep(0.1)
        late = Receiver(port=late_port)  # the receiver starts after the first attempts failed
        try:
            assert await asyncio.to_thread(sandbox.wait_deliveries, 10)
            for receiver in (flaky, late):
                got = [json.loads(body)["type"] for body, _ in receiver.received]
                assert sorted(got) == ["account.updated", "customer.created"]
                for body, headers in receiver.received:
                    stripe.Webhook.construct_event(body, headers["Stripe-Signature"], SECRET)
            assert flaky.statuses.count(500) == 2
            attempts = sandbox.delivery_attempts(late_ep)
            assert attempts[0]["ok"] is False and attempts[0]["status"] is None  # connection refused
            assert [a["ok"] for a in attempts].count(True) == 2
            assert len(sandbox.delivery_attempts(flaky_ep)) == 4
        finally:
            late.close()
    finally:
        flaky.close()


async def test_deliveries_give_up_after_the_last_retry(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    down = f"http://127.0.0.1:{free_port()}/webhooks"
    endpoint = sandbox.add_webhook_endpoint(down, SECRET, connect=False)
    started = time.monotonic()
    await sc.v1.customers.create_async(params={"email": "x@example.com"})  # answered without waiting for delivery
    assert time.monotonic() - started < 1
    assert await asyncio.to_thread(sandbox.wait_deliveries, 10)
    attempts = sandbox.delivery_attempts(endpoint)
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4] and not any(a["ok"] for a in attempts)


# ---- controls over HTTP and the standalone server --------------------------------------------------------


async def test_http_controls(sandbox: StripeSandbox, sc: stripe.StripeClient, browser: httpx.AsyncClient) -> None:
    endpoint = (
        await browser.post("/_sandbox/webhook_endpoints", json={"url": None, "secret": SECRET, "connect": True})
    ).json()["id"]
    account = await sc.v1.accounts.create_async(params={"type": "standard"})
    onboarded = await browser.post(
        f"/_sandbox/accounts/{account.id}/complete_onboarding", data={"charges_enabled": "true"}
    )
    assert onboarded.json()["charges_enabled"] is True
    created = await session(sc, account.id, mode="subscription", line_items=[item(700, interval="month")])
    paid = await browser.post(
        f"/_sandbox/checkout_sessions/{created.id}/pay", json={"outcome": "success", "name": "Bo"}
    )
    assert paid.json()["status"] == "complete"
    sub = sandbox.get(paid.json()["subscription"])
    before = (await browser.get("/_sandbox/clock")).json()["now"]
    advanced = await browser.post(
        "/_sandbox/clock/advance", data={"seconds": str(period(sub)[1] - before + 5)}
    )
    assert advanced.json()["now"] >= period(sub)[1]
    renewals = (await browser.get("/_sandbox/events", params={"type": "invoice.paid"})).json()["data"]
    assert len(renewals) == 2
    taken = (await browser.post(f"/_sandbox/webhook_endpoints/{endpoint}/take")).json()["data"]
    assert taken[0]["type"] == "account.updated"
    for d in taken:
        stripe.Webhook.construct_event(d["payload"], d["headers"]["Stripe-Signature"], SECRET)
    bad = await browser.post(f"/_sandbox/checkout_sessions/{created.id}/pay", json={"outcome": "success"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "checkout_session_not_open"
    dashboard = await browser.get("/_sandbox")
    assert "invoice.paid" in dashboard.text and 'id="advance"' in dashboard.text


def test_standalone_server() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "stripe_sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        assert f"http://127.0.0.1:{port}" in process.stdout.readline()
        client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": f"http://127.0.0.1:{port}"})
        customer = client.v1.customers.create(params={"email": "standalone@example.com"})
        assert (
            httpx.get(f"http://127.0.0.1:{port}/_sandbox/objects/{customer.id}").json()["email"]
            == "standalone@example.com"
        )
    finally:
        process.terminate()
        assert process.wait(10) == 0

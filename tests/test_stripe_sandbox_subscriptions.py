"""The local Stripe sandbox's subscriptions, driven by the real `stripe` SDK over HTTP: renewals
on the sandbox's clock, failures and recovery, trials with and without a card, cancelling,
repeating coupons and the billing portal (the sandbox's other objects: test_stripe_sandbox.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from stripe_sandbox import StripeSandbox
from stripe_sandbox.state import add_months
from tests.test_stripe_sandbox import (
    DAY,
    SECRET,
    browser,
    connected_account,
    item,
    on,
    period,
    sandbox,
    sc,
    session,
    types,
)

__all__ = ["browser", "sandbox", "sc"]  # pytest fixtures from test_stripe_sandbox, used by name

# stripe's HTTPXClient hands httpx a str body as `data=`; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


# ---- subscriptions and the clock --------------------------------------------------------------------


async def subscribe(
    sc: stripe.StripeClient, sandbox: StripeSandbox, acct: str, outcome: str = "success", **params: Any
) -> tuple[Any, Any]:
    params.setdefault("line_items", [item(1000, interval="month")])
    created = await session(sc, acct, mode="subscription", customer_email="sub@example.com", **params)
    done = sandbox.pay(created.id, outcome)
    return done, await sc.v1.subscriptions.retrieve_async(done["subscription"], options=on(acct))


async def test_subscription_renewals_failures_and_recovery(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    endpoint = sandbox.add_webhook_endpoint(None, SECRET, connect=True)
    done, sub = await subscribe(
        sc, sandbox, acct, subscription_data={"metadata": {"offer": "9"}, "application_fee_percent": 10}
    )
    assert (done["payment_status"], sub.status, sub.metadata.to_dict()) == ("paid", "active", {"offer": "9"})
    start, end = period(sub)
    assert end == add_months(start, 1) and sub.default_payment_method
    assert "current_period_end" not in sub and "current_period_start" not in sub  # gone since 2025-03-31
    first = await sc.v1.invoices.retrieve_async(sub.latest_invoice, options=on(acct))
    assert (first.status, first.amount_paid, first.billing_reason) == ("paid", 1000, "subscription_create")
    assert first.parent.subscription_details.subscription == sub.id and done["invoice"] == first.id
    assert types(sandbox.take_deliveries(endpoint)) == [
        "customer.created",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
        "checkout.session.completed",
    ]

    sandbox.advance_clock(end - sandbox.now() + 60)  # renewal paid
    sub = await sc.v1.subscriptions.retrieve_async(sub.id, options=on(acct))
    assert (sub.status, period(sub)) == ("active", (end, add_months(start, 2)))
    invoices = await sc.v1.invoices.list_async(params={"subscription": sub.id}, options=on(acct))
    renewal = invoices.data[0]
    assert len(invoices.data) == 2 and renewal.billing_reason == "subscription_cycle" and renewal.status == "paid"
    assert renewal.lines.data[0].period.start == end and renewal.created == end
    [paid] = (await sc.v1.invoice_payments.list_async(params={"invoice": renewal.id}, options=on(acct))).data
    assert (paid.status, paid.amount_paid, paid.payment.type, paid.invoice) == ("paid", 1000, "payment_intent", renewal.id)
    charge_pi = await sc.v1.payment_intents.retrieve_async(paid.payment.payment_intent, options=on(acct))
    assert (charge_pi.status, charge_pi.application_fee_amount) == ("succeeded", 100)
    assert types(sandbox.take_deliveries(endpoint)) == [
        "invoice.created",
        "invoice.finalized",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]

    sandbox.set_card_declines(sub.customer, True)
    second_end = period(sub)[1]
    sandbox.advance_clock(second_end - sandbox.now() + 60)  # renewal fails
    sub = await sc.v1.subscriptions.retrieve_async(sub.id, options=on(acct))
    failed = await sc.v1.invoices.retrieve_async(sub.latest_invoice, options=on(acct))
    assert sub.status == "past_due" and failed.status == "open" and failed.attempt_count == 1
    assert failed.next_payment_attempt == second_end + 3 * DAY
    [failure] = [
        stripe.Webhook.construct_event(d.payload, d.headers["Stripe-Signature"], SECRET)
        for d in sandbox.take_deliveries(endpoint)
        if d.type == "invoice.payment_failed"
    ]
    assert failure.data.object.id == failed.id and failure.data.object.next_payment_attempt == second_end + 3 * DAY
    [still_open] = (await sc.v1.invoice_payments.list_async(params={"invoice": failed.id}, options=on(acct))).data
    assert (still_open.status, still_open.amount_paid) == ("open", None)

    sandbox.set_card_declines(sub.customer, False)  # the buyer fixes the card; the next retry works
    sandbox.advance_clock(3 * DAY)
    sub = await sc.v1.subscriptions.retrieve_async(sub.id, options=on(acct))
    failed = await sc.v1.invoices.retrieve_async(failed.id, options=on(acct))
    assert (sub.status, failed.status, failed.attempt_count) == ("active", "paid", 2)
    assert types(sandbox.take_deliveries(endpoint))[-4:] == [
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]


async def test_invoice_payments_are_includable_and_never_in_events(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    """At the pinned API version an invoice names no payment intent or charge of its own; its
    `payments` come only when asked for (`expand[]=payments`, `data.payments` on a list) and
    never in an event, and the charge is the payment intent's `latest_charge`."""
    acct = await connected_account(sc, sandbox)
    _, sub = await subscribe(sc, sandbox, acct)
    invoice = await sc.v1.invoices.retrieve_async(sub.latest_invoice, options=on(acct))
    for removed in ("payments", "payment_intent", "charge", "subscription", "paid", "confirmation_secret"):
        assert removed not in invoice, removed
    expanded = await sc.v1.invoices.retrieve_async(
        invoice.id, params={"expand": ["payments.data.payment.payment_intent", "confirmation_secret"]}, options=on(acct)
    )
    [payment] = expanded.payments.data
    intent = payment.payment.payment_intent
    assert (payment.object, payment.status, payment.amount_paid, payment.is_default) == ("invoice_payment", "paid", 1000, True)
    assert (intent.object, intent.status) == ("payment_intent", "succeeded")
    charge = await sc.v1.charges.retrieve_async(intent.latest_charge, options=on(acct))
    assert (charge.amount, charge.payment_intent) == (1000, intent.id)
    assert expanded.confirmation_secret.client_secret == intent.client_secret
    listed = await sc.v1.invoices.list_async(params={"subscription": sub.id, "expand": ["data.payments"]}, options=on(acct))
    assert listed.data[0].payments.data[0].id == payment.id
    assert "payments" not in (await sc.v1.invoices.list_async(params={"subscription": sub.id}, options=on(acct))).data[0]
    by_intent = await sc.v1.invoice_payments.list_async(
        params={"payment": {"type": "payment_intent", "payment_intent": intent.id}, "expand": ["data.invoice"]},
        options=on(acct),
    )
    assert [(p.id, p.invoice.id) for p in by_intent.data] == [(payment.id, invoice.id)]
    assert (await sc.v1.invoice_payments.retrieve_async(payment.id, options=on(acct))).payment.payment_intent == intent.id
    # never in an event, whatever its type
    for event in sandbox.events():
        if event["data"]["object"]["object"] == "invoice":
            assert "payments" not in event["data"]["object"], event["type"]
    # other expandable ids: the checkout session's, the subscription's
    session_id = sandbox.events("checkout.session.completed")[-1]["data"]["object"]["id"]
    session_seen = await sc.v1.checkout.sessions.retrieve_async(
        session_id, params={"expand": ["subscription.latest_invoice", "line_items", "customer"]}, options=on(acct)
    )
    assert session_seen.subscription.latest_invoice.id == invoice.id and session_seen.customer.id == sub.customer
    assert session_seen.line_items.data[0].amount_total == 1000
    assert "line_items" not in await sc.v1.checkout.sessions.retrieve_async(session_id, options=on(acct))


async def test_bad_expand_paths_answer_400_and_change_nothing(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    _, sub = await subscribe(sc, sandbox, acct)
    refused = {
        ("list", "payments"): "This property cannot be expanded (payments).",  # a list's paths start with data
        ("list", "data"): "This property cannot be expanded (data).",
        ("list", "data.parent"): "This property cannot be expanded (parent).",  # a hash, not an id
        ("list", "data.nope"): "This property cannot be expanded (nope).",
        ("list", "data.payments.data.payment.payment_intent"): "You cannot expand more than 4 levels of a property.",
        ("one", "status"): "This property cannot be expanded (status).",
        ("one", "payments.payment"): "This property cannot be expanded (payment).",
        ("one", "lines"): "This property cannot be expanded (lines).",
    }
    for (where, path), message in refused.items():
        with pytest.raises(stripe.InvalidRequestError) as bad:
            if where == "list":
                await sc.v1.invoices.list_async(params={"subscription": sub.id, "expand": [path]}, options=on(acct))
            else:
                await sc.v1.invoices.retrieve_async(sub.latest_invoice, params={"expand": [path]}, options=on(acct))
        assert (bad.value.http_status, bad.value.error.type, bad.value.user_message) == (400, "invalid_request_error", message)
    # refused before the request runs: an update with a bad expand changes nothing
    with pytest.raises(stripe.InvalidRequestError):
        await sc.v1.subscriptions.update_async(
            sub.id, params={"cancel_at_period_end": True, "expand": ["latest_invoice.nope"]}, options=on(acct)
        )
    assert (await sc.v1.subscriptions.retrieve_async(sub.id, options=on(acct))).cancel_at_period_end is False
    updated = await sc.v1.subscriptions.update_async(
        sub.id, params={"cancel_at_period_end": True, "expand": ["latest_invoice"]}, options=on(acct)
    )
    assert updated.cancel_at_period_end and updated.latest_invoice.object == "invoice"
    # an expand nested in another parameter is an unknown parameter there
    with pytest.raises(stripe.InvalidRequestError) as nested:
        await sc.v1.subscriptions.update_async(
            sub.id, params={"cancellation_details": {"comment": "x", "expand": ["a"]}}, options=on(acct)  # type: ignore[typeddict-unknown-key]
        )
    assert nested.value.param == "cancellation_details[expand]"


async def test_failed_payments_end_the_subscription_after_the_retries(
    sandbox: StripeSandbox, sc: stripe.StripeClient
) -> None:
    acct = await connected_account(sc, sandbox)
    _, biweekly = await subscribe(sc, sandbox, acct, line_items=[item(900, interval="week", interval_count=2)])
    assert period(biweekly)[1] == period(biweekly)[0] + 14 * DAY
    await sc.v1.subscriptions.cancel_async(biweekly.id, options=on(acct))
    _, sub = await subscribe(sc, sandbox, acct)
    sandbox.set_card_declines(sub.customer, True)
    sandbox.advance_clock(period(sub)[1] - sandbox.now() + 1 + (3 + 5 + 7) * DAY)
    sub = await sc.v1.subscriptions.retrieve_async(sub.id, options=on(acct))
    assert sub.status == "canceled" and sub.cancellation_details.reason == "payment_failed"
    assert len(sandbox.events("invoice.payment_failed")) == 4
    assert [e["data"]["object"]["id"] for e in sandbox.events("customer.subscription.deleted")] == [biweekly.id, sub.id]


async def test_trials_with_and_without_a_card(
    sandbox: StripeSandbox, sc: stripe.StripeClient, browser: httpx.AsyncClient
) -> None:
    acct = await connected_account(sc, sandbox)
    trial = {"trial_period_days": 14, "trial_settings": {"end_behavior": {"missing_payment_method": "cancel"}}}
    cardless = await session(
        sc,
        acct,
        mode="subscription",
        customer_email="trial@example.com",
        line_items=[item(1500, interval="month")],
        subscription_data=trial,
        payment_method_collection="if_required",
    )
    assert (cardless.amount_total, cardless.payment_method_collection) == (0, "if_required")
    page = await browser.get(cardless.url)
    assert 'id="trial-no-card"' in page.text and 'id="pay-async"' not in page.text
    redirect = await browser.post(cardless.url, data={"outcome": "trial_without_card"})
    assert redirect.status_code == 303
    done = await sc.v1.checkout.sessions.retrieve_async(cardless.id, options=on(acct))
    assert (done.status, done.payment_status) == ("complete", "no_payment_required")
    sub = await sc.v1.subscriptions.retrieve_async(done.subscription, options=on(acct))
    assert (sub.status, sub.default_payment_method, sub.trial_end) == ("trialing", None, sub.trial_start + 14 * DAY)
    assert period(sub)[1] == sub.trial_end
    first = await sc.v1.invoices.retrieve_async(sub.latest_invoice, options=on(acct))
    assert (first.status, first.amount_due) == ("paid", 0)

    with_card = await session(
        sc,
        acct,
        mode="subscription",
        customer_email="card@example.com",
        line_items=[item(1500, interval="month")],
        subscription_data=trial,
    )
    assert 'id="trial-no-card"' not in (await browser.get(with_card.url)).text  # payment_method_collection=always
    with pytest.raises(Exception, match="trial without a card"):
        sandbox.pay(with_card.id, "trial_without_card")
    carded = await sc.v1.subscriptions.retrieve_async(sandbox.pay(with_card.id)["subscription"], options=on(acct))
    assert carded.status == "trialing" and carded.default_payment_method

    sandbox.advance_clock(11 * DAY)
    warnings = sandbox.events("customer.subscription.trial_will_end")
    assert {e["data"]["object"]["id"] for e in warnings} == {sub.id, carded.id}
    assert warnings[0]["created"] == sub.trial_end - 3 * DAY
    sandbox.advance_clock(3 * DAY)
    sub = await sc.v1.subscriptions.retrieve_async(sub.id, options=on(acct))
    assert (sub.status, sub.ended_at) == ("canceled", sub.trial_end)
    carded = await sc.v1.subscriptions.retrieve_async(carded.id, options=on(acct))
    assert carded.status == "active" and period(carded)[1] == add_months(carded.trial_end, 1)
    invoice = await sc.v1.invoices.retrieve_async(carded.latest_invoice, options=on(acct))
    assert (invoice.status, invoice.amount_paid) == ("paid", 1500)
    assert [e["data"]["object"]["id"] for e in sandbox.events("customer.subscription.deleted")] == [sub.id]


async def test_cardless_trial_that_invoices_or_pauses(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    subs = {}
    for behaviour in ("create_invoice", "pause"):
        created = await session(
            sc,
            acct,
            mode="subscription",
            customer_email=f"{behaviour}@example.com",
            line_items=[item(1500, interval="month")],
            subscription_data={
                "trial_period_days": 7,
                "trial_settings": {"end_behavior": {"missing_payment_method": behaviour}},
            },
            payment_method_collection="if_required",
        )
        subs[behaviour] = sandbox.pay(created.id, "trial_without_card")["subscription"]
    sandbox.advance_clock(7 * DAY)
    invoicing = await sc.v1.subscriptions.retrieve_async(subs["create_invoice"], options=on(acct))
    invoice = await sc.v1.invoices.retrieve_async(invoicing.latest_invoice, options=on(acct))
    assert (invoicing.status, invoice.status, invoice.amount_due) == ("past_due", "open", 1500)
    paused = await sc.v1.subscriptions.retrieve_async(subs["pause"], options=on(acct))
    assert paused.status == "paused"
    assert [e["data"]["object"]["id"] for e in sandbox.events("customer.subscription.paused")] == [paused.id]

    sandbox.set_card_declines(invoicing.customer, False)  # the buyer adds a card (the portal's "fix-card")
    sandbox.advance_clock(3 * DAY)
    invoicing = await sc.v1.subscriptions.retrieve_async(invoicing.id, options=on(acct))
    invoice = await sc.v1.invoices.retrieve_async(invoice.id, options=on(acct))
    assert (invoicing.status, invoice.status, invoice.amount_paid) == ("active", "paid", 1500)


async def test_cancel_at_period_end_and_cancel_now(
    sandbox: StripeSandbox, sc: stripe.StripeClient, browser: httpx.AsyncClient
) -> None:
    acct = await connected_account(sc, sandbox)
    _, sub = await subscribe(sc, sandbox, acct, line_items=[item(12000, interval="year")])
    updated = await sc.v1.subscriptions.update_async(
        sub.id, params={"cancel_at_period_end": True, "metadata": {"note": "leaving"}}, options=on(acct)
    )
    assert updated.cancel_at_period_end and updated.cancel_at == period(sub)[1]
    assert updated.metadata.to_dict() == {"note": "leaving"}
    last = sandbox.events("customer.subscription.updated")[-1]
    assert last["data"]["previous_attributes"]["cancel_at_period_end"] is False
    sandbox.advance_clock(period(sub)[1] - sandbox.now() - 60)
    assert (await sc.v1.subscriptions.retrieve_async(sub.id, options=on(acct))).status == "active"
    sandbox.advance_clock(120)
    ended = await sc.v1.subscriptions.retrieve_async(sub.id, options=on(acct))
    assert (ended.status, ended.ended_at) == ("canceled", period(sub)[1])
    assert len((await sc.v1.invoices.list_async(params={"subscription": sub.id}, options=on(acct))).data) == 1
    with pytest.raises(stripe.InvalidRequestError):
        await sc.v1.subscriptions.update_async(sub.id, params={"cancel_at_period_end": False}, options=on(acct))

    _, now_sub = await subscribe(sc, sandbox, acct)
    canceled = await sc.v1.subscriptions.cancel_async(now_sub.id, options=on(acct))
    assert canceled.status == "canceled" and sandbox.now() - 2 <= canceled.ended_at <= sandbox.now()
    with pytest.raises(stripe.InvalidRequestError):
        await sc.v1.subscriptions.cancel_async(now_sub.id, options=on(acct))
    assert [e["data"]["object"]["id"] for e in sandbox.events("customer.subscription.deleted")] == [sub.id, now_sub.id]


async def test_repeating_coupon_on_a_subscription(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    coupon = await sc.v1.coupons.create_async(
        params={"percent_off": 50, "duration": "repeating", "duration_in_months": 2}, options=on(acct)
    )
    done, sub = await subscribe(sc, sandbox, acct, discounts=[{"coupon": coupon.id}])
    assert done["amount_total"] == 500
    for _ in range(3):
        sub = await sc.v1.subscriptions.retrieve_async(sub.id, options=on(acct))
        sandbox.advance_clock(period(sub)[1] - sandbox.now() + 1)
    invoices = await sc.v1.invoices.list_async(params={"subscription": sub.id}, options=on(acct))
    assert [i.amount_paid for i in reversed(invoices.data)] == [500, 500, 1000, 1000]


async def test_billing_portal(sandbox: StripeSandbox, sc: stripe.StripeClient, browser: httpx.AsyncClient) -> None:
    acct = await connected_account(sc, sandbox)
    _, sub = await subscribe(sc, sandbox, acct)
    sandbox.set_card_declines(sub.customer, True)
    portal = await sc.v1.billing_portal.sessions.create_async(
        params={"customer": sub.customer, "return_url": "http://app.test/account"}, options=on(acct)
    )
    assert portal.object == "billing_portal.session" and portal.id.startswith("bps_")
    page = await browser.get(portal.url)
    assert 'id="return"' in page.text and 'href="http://app.test/account"' in page.text and "(declines)" in page.text
    fixed = await browser.post(portal.url, data={"action": "fix-card"})
    assert fixed.status_code == 303
    assert "(declines)" not in (await browser.get(portal.url)).text
    await browser.post(portal.url, data={"action": f"cancel:{sub.id}"})
    assert (await sc.v1.subscriptions.retrieve_async(sub.id, options=on(acct))).cancel_at_period_end is True
    with pytest.raises(stripe.InvalidRequestError) as foreign:
        await sc.v1.billing_portal.sessions.create_async(params={"customer": sub.customer})
    assert foreign.value.param == "customer"

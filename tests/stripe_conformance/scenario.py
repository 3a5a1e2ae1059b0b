"""Drives the sandbox through the real `stripe` SDK (and its own controls) until it has produced
every kind of object and event it can, recording each API answer and each webhook delivery
exactly as sent (the raw JSON bodies, not the SDK's parsed objects)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import stripe

from stripe_sandbox import StripeSandbox
from tests.stripe_conformance import scenario_refunds

DAY = 86400
SECRET = "whsec_conformance"


@dataclass
class Sample:
    """One JSON value the sandbox sent, and what Stripe's types say it is."""

    label: str  # where it came from, e.g. "GET /v1/charges/{id}" or "webhook charge.succeeded (connect)"
    value: Any
    ts_type: str  # a TypeScript type of the `stripe` package (for events: worked out from event_type)
    event_type: str | None = None
    expanded: frozenset[str] = frozenset()  # the request's expand[] paths ("payments.data.payment.payment_intent")


@dataclass
class Recorder:
    samples: list[Sample] = field(default_factory=list)

    def api(self, label: str, result: Any, *, list_of: str | None = None, expand: tuple[str, ...] = ()) -> Any:
        """Records an SDK call's answer as the sandbox sent it; `list_of`: the item type of a list."""
        body = json.loads(result.last_response.body)
        if list_of is not None:
            self.samples.append(Sample(label, body, f"Stripe.ApiList<{list_of}>", expanded=frozenset(expand)))
        elif body.get("object") == "event":
            self.samples.append(Sample(label, body, "", event_type=body["type"]))
        else:
            self.samples.append(Sample(label, body, object_type(body), expanded=frozenset(expand)))
        return result

    def deliveries(self, sandbox: StripeSandbox, endpoint: str, label: str) -> None:
        for delivery in sandbox.take_deliveries(endpoint):
            event = json.loads(delivery.payload)
            self.samples.append(Sample(f"webhook {event['type']} ({label})", event, "", event_type=event["type"]))


# The published type for each `object` value (a deleted object has its own type).
OBJECT_TYPES = {
    "account": "Stripe.Account",
    "account_link": "Stripe.AccountLink",
    "balance_transaction": "Stripe.BalanceTransaction",
    "billing_portal.session": "Stripe.BillingPortal.Session",
    "charge": "Stripe.Charge",
    "checkout.session": "Stripe.Checkout.Session",
    "coupon": "Stripe.Coupon",
    "customer": "Stripe.Customer",
    "dispute": "Stripe.Dispute",
    "event": "Stripe.Event",
    "invoice": "Stripe.Invoice",
    "invoice_payment": "Stripe.InvoicePayment",
    "item": "Stripe.LineItem",
    "line_item": "Stripe.InvoiceLineItem",
    "payment_intent": "Stripe.PaymentIntent",
    "payment_method": "Stripe.PaymentMethod",
    "price": "Stripe.Price",
    "refund": "Stripe.Refund",
    "subscription": "Stripe.Subscription",
    "subscription_item": "Stripe.SubscriptionItem",
}
DELETED_TYPES = {
    "account": "Stripe.DeletedAccount",
    "coupon": "Stripe.DeletedCoupon",
    "customer": "Stripe.DeletedCustomer",
    "invoice": "Stripe.DeletedInvoice",
    "price": "Stripe.DeletedPrice",
}


def object_type(body: dict[str, Any]) -> str:
    kind = body.get("object")
    table = DELETED_TYPES if body.get("deleted") is True else OBJECT_TYPES
    if kind not in table:
        raise AssertionError(f"no published type is mapped for object {kind!r} (deleted={body.get('deleted')!r})")
    return table[kind]


@dataclass
class Driver:
    """What every part of the scenario drives: the recorder, the sandbox, the SDK, and the
    connected account the product's objects live on."""

    rec: Recorder
    sandbox: StripeSandbox
    sc: stripe.StripeClient
    on: stripe.RequestOptions

    async def checkout(self, account: stripe.RequestOptions, **params: Any) -> str:
        params.setdefault("success_url", "https://example.com/thanks?session_id={CHECKOUT_SESSION_ID}")
        params.setdefault("cancel_url", "https://example.com/offer")
        created = await self.sc.v1.checkout.sessions.create_async(params=params, options=account)  # type: ignore[arg-type]
        self.rec.api("POST /v1/checkout/sessions", created)
        return str(created.id)

    async def paid_charge(self, amount: int, email: str) -> str:
        """A one-off payment on the connected account, paid by card: its charge's id."""
        session_id = await self.checkout(
            self.on, mode="payment", customer_email=email, line_items=[line(amount, "Pack")]
        )
        self.sandbox.pay(session_id)
        session = await self.sc.v1.checkout.sessions.retrieve_async(session_id, options=self.on)
        intent = await self.sc.v1.payment_intents.retrieve_async(str(session.payment_intent), options=self.on)
        return str(intent.latest_charge)


def line(amount: int, name: str, interval: str | None = None, currency: str = "usd") -> dict[str, Any]:
    price: dict[str, Any] = {"currency": currency, "unit_amount": amount, "product_data": {"name": name}}
    if interval:
        price["recurring"] = {"interval": interval}
    return {"price_data": price, "quantity": 1}


async def run(sandbox: StripeSandbox, sc: stripe.StripeClient) -> Recorder:
    """Every object and event kind, on a connected account (direct charges, as the product makes
    them) and on the platform."""
    rec = Recorder()
    platform_ep = sandbox.add_webhook_endpoint(None, SECRET, connect=False)
    connect_ep = sandbox.add_webhook_endpoint(None, SECRET, connect=True)

    # ---- connected accounts ------------------------------------------------------------------
    acct = rec.api(
        "POST /v1/accounts",
        await sc.v1.accounts.create_async(
            params={
                "type": "express",
                "email": "owner@example.com",
                "country": "US",
                "business_type": "individual",
                "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
                "metadata": {"community_id": "7"},
            }
        ),
    ).id
    rec.api(
        "POST /v1/account_links",
        await sc.v1.account_links.create_async(
            params={
                "account": acct,
                "type": "account_onboarding",
                "refresh_url": "https://example.com/refresh",
                "return_url": "https://example.com/return",
            }
        ),
    )
    sandbox.complete_onboarding(acct)
    on: stripe.RequestOptions = {"stripe_account": acct}
    rec.api("GET /v1/accounts/{id}", await sc.v1.accounts.retrieve_async(acct))
    rec.api(
        "POST /v1/accounts/{id}",
        await sc.v1.accounts.update_async(acct, params={"metadata": {"community_id": "8"}}),
    )
    rec.api("GET /v1/accounts", await sc.v1.accounts.list_async(), list_of="Stripe.Account")
    gone = await sc.v1.accounts.create_async(params={"type": "standard"})
    rec.api("DELETE /v1/accounts/{id}", await sc.v1.accounts.delete_async(gone.id))

    # ---- customers and coupons ------------------------------------------------------------
    customer = rec.api(
        "POST /v1/customers",
        await sc.v1.customers.create_async(
            params={"email": "member@example.com", "name": "Member", "metadata": {"user_id": "3"}}, options=on
        ),
    ).id
    rec.api(
        "POST /v1/customers/{id}",
        await sc.v1.customers.update_async(customer, params={"name": "A Member", "phone": "+15555550100"}, options=on),
    )
    rec.api("GET /v1/customers/{id}", await sc.v1.customers.retrieve_async(customer, options=on))
    rec.api(
        "GET /v1/customers",
        await sc.v1.customers.list_async(params={"email": "member@example.com"}, options=on),
        list_of="Stripe.Customer",
    )
    percent = rec.api(
        "POST /v1/coupons",
        await sc.v1.coupons.create_async(
            params={"percent_off": 50, "duration": "repeating", "duration_in_months": 2, "name": "Half"}, options=on
        ),
    ).id
    amount = rec.api(
        "POST /v1/coupons",
        await sc.v1.coupons.create_async(
            params={
                "amount_off": 500,
                "currency": "usd",
                "duration": "once",
                "max_redemptions": 5,
                "redeem_by": sandbox.now() + 30 * DAY,
                "metadata": {"code": "FIVE"},
            },
            options=on,
        ),
    ).id
    rec.api("GET /v1/coupons/{id}", await sc.v1.coupons.retrieve_async(amount, options=on))
    rec.api("GET /v1/coupons", await sc.v1.coupons.list_async(options=on), list_of="Stripe.Coupon")
    doomed = await sc.v1.coupons.create_async(params={"percent_off": 12.5, "duration": "forever"}, options=on)
    rec.api("DELETE /v1/coupons/{id}", await sc.v1.coupons.delete_async(doomed.id, options=on))

    drive = Driver(rec, sandbox, sc, on)
    checkout = drive.checkout

    # ---- one-off payments: declined then paid, refunded, disputed, delayed, expired ------------------
    paid = await checkout(
        on,
        mode="payment",
        customer_email="buyer@example.com",
        client_reference_id="checkout-1",
        line_items=[line(2500, "Course")],
        discounts=[{"coupon": amount}],
        metadata={"checkout_id": "1"},
        payment_intent_data={"application_fee_amount": 200, "metadata": {"checkout_id": "1"}},
    )
    sandbox.pay(paid, "decline")
    declined = await sc.v1.checkout.sessions.retrieve_async(paid, options=on)
    rec.api(
        "GET /v1/payment_intents/{id}", await sc.v1.payment_intents.retrieve_async(str(declined.payment_intent), options=on)
    )
    sandbox.pay(paid, name="Buyer One")
    session = rec.api("GET /v1/checkout/sessions/{id}", await sc.v1.checkout.sessions.retrieve_async(paid, options=on))
    rec.api(
        "GET /v1/checkout/sessions/{id}?expand[]=line_items",
        await sc.v1.checkout.sessions.retrieve_async(paid, params={"expand": ["line_items"]}, options=on),
        expand=("line_items",),
    )
    rec.api(
        "GET /v1/checkout/sessions/{id}/line_items",
        await sc.v1.checkout.sessions.line_items.list_async(paid, options=on),
        list_of="Stripe.LineItem",
    )
    rec.api(
        "GET /v1/checkout/sessions",
        await sc.v1.checkout.sessions.list_async(params={"payment_intent": session.payment_intent}, options=on),
        list_of="Stripe.Checkout.Session",
    )
    pi = rec.api(
        "GET /v1/payment_intents/{id}", await sc.v1.payment_intents.retrieve_async(session.payment_intent, options=on)
    )
    rec.api(
        "GET /v1/payment_intents",
        await sc.v1.payment_intents.list_async(params={"customer": session.customer}, options=on),
        list_of="Stripe.PaymentIntent",
    )
    charge = rec.api("GET /v1/charges/{id}", await sc.v1.charges.retrieve_async(pi.latest_charge, options=on))
    rec.api(
        "GET /v1/charges",
        await sc.v1.charges.list_async(params={"payment_intent": pi.id}, options=on),
        list_of="Stripe.Charge",
    )
    rec.api(
        "GET /v1/payment_methods/{id}", await sc.v1.payment_methods.retrieve_async(charge.payment_method, options=on)
    )
    refund = rec.api(
        "POST /v1/refunds",
        await sc.v1.refunds.create_async(
            params={
                "payment_intent": pi.id,
                "amount": 500,
                "reason": "requested_by_customer",
                "metadata": {"refund_id": "1"},
            },
            options=on,
        ),
    )
    rec.api("GET /v1/refunds/{id}", await sc.v1.refunds.retrieve_async(refund.id, options=on))
    rec.api(
        "GET /v1/refunds",
        await sc.v1.refunds.list_async(params={"charge": charge.id}, options=on),
        list_of="Stripe.Refund",
    )
    rec.api("GET /v1/charges/{id}", await sc.v1.charges.retrieve_async(charge.id, options=on))

    await scenario_refunds.refunds(drive)
    await scenario_refunds.disputes(drive)

    for succeeded in (True, False):  # a bank transfer: pending, then cleared or failed
        delayed = await checkout(
            on, mode="payment", customer_email="bank@example.com", line_items=[line(4000, "Bundle")]
        )
        sandbox.pay(delayed, "async_pending")
        pending = rec.api(
            "GET /v1/checkout/sessions/{id}", await sc.v1.checkout.sessions.retrieve_async(delayed, options=on)
        )
        intent = rec.api(
            "GET /v1/payment_intents/{id}",
            await sc.v1.payment_intents.retrieve_async(pending.payment_intent, options=on),
        )
        rec.api("GET /v1/charges/{id}", await sc.v1.charges.retrieve_async(intent.latest_charge, options=on))
        rec.api(
            "GET /v1/payment_methods/{id}", await sc.v1.payment_methods.retrieve_async(intent.payment_method, options=on)
        )
        sandbox.settle_async(delayed, succeeded)
        rec.api("GET /v1/checkout/sessions/{id}", await sc.v1.checkout.sessions.retrieve_async(delayed, options=on))
        rec.api("GET /v1/charges/{id}", await sc.v1.charges.retrieve_async(intent.latest_charge, options=on))

    abandoned = await checkout(on, mode="payment", customer_email="late@example.com", line_items=[line(1000, "Course")])
    rec.api("POST /v1/checkout/sessions/{id}/expire", await sc.v1.checkout.sessions.expire_async(abandoned, options=on))
    timed_out = await checkout(
        on, mode="payment", line_items=[line(1000, "Course")], expires_at=int(time.time()) + 3600
    )
    sandbox.expire_session(timed_out)
    free = await checkout(on, mode="payment", line_items=[line(1000, "Course")], discounts=[{"coupon": percent}])
    sandbox.pay(free)

    # ---- subscriptions: paid, renewed, declined and retried, canceled; trials; delayed payments ------
    monthly = [line(1000, "Membership", "month")]
    renewing = await checkout(
        on,
        mode="subscription",
        customer_email="member@example.com",
        line_items=monthly,
        discounts=[{"coupon": percent}],
        subscription_data={"application_fee_percent": 10, "metadata": {"offer_id": "4"}, "description": "Membership"},
    )
    sub_id = sandbox.pay(renewing)["subscription"]
    sub = rec.api("GET /v1/subscriptions/{id}", await sc.v1.subscriptions.retrieve_async(sub_id, options=on))
    trial_card = await checkout(
        on, mode="subscription", customer_email="trial@example.com", line_items=monthly,
        subscription_data={"trial_period_days": 7},
    )
    sandbox.pay(trial_card)
    cardless: dict[str, str] = {}
    for behaviour in ("cancel", "pause", "create_invoice"):
        created = await checkout(
            on,
            mode="subscription",
            customer_email=f"{behaviour}@example.com",
            line_items=monthly,
            payment_method_collection="if_required",
            subscription_data={
                "trial_period_days": 7,
                "trial_settings": {"end_behavior": {"missing_payment_method": behaviour}},
            },
        )
        cardless[behaviour] = sandbox.pay(created, "trial_without_card")["subscription"]
    for succeeded in (True, False):
        delayed = await checkout(on, mode="subscription", customer_email="sepa@example.com", line_items=monthly)
        sandbox.pay(delayed, "async_pending")
        sandbox.settle_async(delayed, succeeded)
    ending = await checkout(on, mode="subscription", customer_email="leaving@example.com", line_items=monthly)
    ending_sub = sandbox.pay(ending)["subscription"]
    rec.api(
        "POST /v1/subscriptions/{id}",
        await sc.v1.subscriptions.update_async(
            ending_sub, params={"cancel_at_period_end": True, "metadata": {"reason": "moving"}}, options=on
        ),
    )
    now = await checkout(on, mode="subscription", customer_email="now@example.com", line_items=monthly)
    rec.api(
        "DELETE /v1/subscriptions/{id}",
        await sc.v1.subscriptions.cancel_async(sandbox.pay(now)["subscription"], options=on),
    )
    rec.api(
        "POST /v1/billing_portal/sessions",
        await sc.v1.billing_portal.sessions.create_async(
            params={"customer": sub.customer, "return_url": "https://example.com/billing"}, options=on
        ),
    )

    sandbox.advance_clock(8 * DAY)  # trials end: paid, canceled, paused, invoiced without a card
    sandbox.set_card_declines(sub.customer, True)
    # the renewal is declined, and the subscription set to cancel at the period's end ends
    sandbox.advance_clock(sub["items"].data[0].current_period_end - sandbox.now() + 60)
    sandbox.set_card_declines(sub.customer, False)
    sandbox.advance_clock(3 * DAY + 60)  # the retry works
    sandbox.advance_clock(20 * DAY)  # the card-less trial's invoice ran out of retries

    rec.api("GET /v1/subscriptions/{id}", await sc.v1.subscriptions.retrieve_async(sub_id, options=on))
    rec.api(
        "GET /v1/subscriptions",
        await sc.v1.subscriptions.list_async(params={"status": "all"}, options=on),
        list_of="Stripe.Subscription",
    )
    invoices = rec.api(
        "GET /v1/invoices",
        await sc.v1.invoices.list_async(params={"subscription": sub_id}, options=on),
        list_of="Stripe.Invoice",
    )
    invoice_id = invoices.data[0].id
    rec.api("GET /v1/invoices/{id}", await sc.v1.invoices.retrieve_async(invoice_id, options=on))
    rec.api(
        "GET /v1/invoices/{id}?expand[]=payments",
        await sc.v1.invoices.retrieve_async(invoice_id, params={"expand": ["payments"]}, options=on),
        expand=("payments",),
    )
    await invoice_payments(drive, sub_id)

    # ---- the platform's own payments (events without `account`) ------------------------------
    platform = await checkout({}, mode="payment", customer_email="direct@example.com", line_items=[line(1500, "Guide")])
    sandbox.pay(platform)
    rec.api("GET /v1/checkout/sessions/{id}", await sc.v1.checkout.sessions.retrieve_async(platform))

    # ---- events, through the API and as delivered ----------------------------------------------
    # (every event is checked as delivered; the lists check the API's envelope and union)
    events = rec.api(
        "GET /v1/events",
        await sc.v1.events.list_async(params={"limit": 3}, options=on),
        list_of="Delivered<Stripe.Event>",
    )
    rec.api("GET /v1/events/{id}", await sc.v1.events.retrieve_async(events.data[0].id, options=on))
    rec.api("GET /v1/events", await sc.v1.events.list_async(params={"limit": 3}), list_of="Delivered<Stripe.Event>")
    rec.deliveries(sandbox, platform_ep, "platform")
    rec.deliveries(sandbox, connect_ep, "connect")
    return rec


async def invoice_payments(d: Driver, sub_id: str) -> None:
    """Invoice payments in each status (open, paid, canceled with a voided invoice), listed,
    retrieved and reached as the product reaches them; an open invoice's confirmation secret;
    a refund of a subscription's charge found through its invoice."""
    rec, sc, on = d.rec, d.sc, d.on
    invoices = await sc.v1.invoices.list_async(params={"subscription": sub_id}, options=on)
    paid = next(i for i in invoices.data if i.status == "paid" and i.amount_paid > 0)
    with_payments = ["payments.data.payment.payment_intent"]  # what the product asks for (billing/invoices.py)
    invoice = rec.api(
        "GET /v1/invoices/{id}?expand[]=payments.data.payment.payment_intent",
        await sc.v1.invoices.retrieve_async(paid.id, params={"expand": with_payments}, options=on),
        expand=tuple(with_payments),
    )
    assert invoice.payments is not None
    intent = invoice.payments.data[0].payment.payment_intent
    assert isinstance(intent, stripe.PaymentIntent)
    listed = rec.api(
        "GET /v1/invoice_payments",
        await sc.v1.invoice_payments.list_async(params={"limit": 100}, options=on),
        list_of="Stripe.InvoicePayment",
    )
    rec.api(
        "GET /v1/invoice_payments?invoice=",
        await sc.v1.invoice_payments.list_async(params={"invoice": paid.id}, options=on),
        list_of="Stripe.InvoicePayment",
    )
    rec.api(
        "GET /v1/invoice_payments/{id}?expand[]=invoice&expand[]=payment.payment_intent",
        await sc.v1.invoice_payments.retrieve_async(
            listed.data[0].id, params={"expand": ["invoice", "payment.payment_intent"]}, options=on
        ),
        expand=("invoice", "payment.payment_intent"),
    )
    rec.api(
        "GET /v1/invoice_payments?payment[payment_intent]=&expand[]=data.invoice",
        await sc.v1.invoice_payments.list_async(
            params={"payment": {"type": "payment_intent", "payment_intent": intent.id}, "expand": ["data.invoice"]},
            options=on,
        ),
        list_of="Stripe.InvoicePayment",
        expand=("data.invoice",),
    )
    rec.api(
        "GET /v1/subscriptions/{id}?expand[]=latest_invoice.payments",
        await sc.v1.subscriptions.retrieve_async(
            sub_id, params={"expand": ["latest_invoice.payments"]}, options=on
        ),
        expand=("latest_invoice.payments",),
    )
    unpaid = (await sc.v1.invoices.list_async(params={"status": "open"}, options=on)).data
    assert unpaid, "the card-less trial's invoice should still be open"
    rec.api(
        "GET /v1/invoices/{id}?expand[]=confirmation_secret",
        await sc.v1.invoices.retrieve_async(
            unpaid[0].id, params={"expand": ["confirmation_secret"]}, options=on
        ),
        expand=("confirmation_secret",),
    )
    rec.api(
        "POST /v1/refunds",
        await sc.v1.refunds.create_async(params={"payment_intent": intent.id, "amount": 300}, options=on),
    )

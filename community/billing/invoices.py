"""Stripe invoices as the pinned API version (2026-10-28) answers them, and our payment for each.

Since 2025-03-31 an invoice names no payment intent or charge of its own: what paid it is in its
`payments` (invoice payments), an *includable* field, absent unless the request asks for
`expand[]=payments` and never in an event's payload. An invoice payment of type
`payment_intent` names no charge either: the charge is the intent's `latest_charge`. So:
- a paid invoice is re-fetched with `payments.data.payment.payment_intent` expanded (four
  levels, Stripe's limit), on the connected account, to learn its intent and charge;
- a refund or dispute of a charge our records do not name yet asks Stripe which invoice its
  payment intent paid (`GET /v1/invoice_payments?payment[payment_intent]=...`).
The subscription an invoice belongs to is `parent.subscription_details.subscription`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from community.billing.models import Payment, PaymentKind, Subscription
from community.billing.stripe_objects import field, id_of
from community.errors import NotYetKnown
from community.settings import Settings
from community.stripe_client import stripe_client

# An invoice with what paid it: its invoice payments, each with its payment intent (whose
# latest_charge is the charge). Four levels, the most Stripe expands.
WITH_PAYMENTS = ["payments.data.payment.payment_intent"]
FIRST_INVOICE = "subscription_create"


@dataclass(frozen=True)
class PaidWith:
    """The payment intent and charge that paid an invoice (None: not paid through Stripe)."""

    payment_intent: str | None
    charge: str | None


def subscription_of(invoice: Any) -> str | None:
    """The subscription an invoice (an SDK object or an event's JSON) was made for."""
    return id_of(field(field(field(invoice, "parent"), "subscription_details"), "subscription"))


async def retrieve(settings: Settings, account: str, invoice_id: str) -> stripe.Invoice:
    """The invoice as Stripe holds it now, with what paid it (see WITH_PAYMENTS)."""
    return await stripe_client(settings).v1.invoices.retrieve_async(
        invoice_id, {"expand": WITH_PAYMENTS}, {"stripe_account": account}
    )


def paid_with(invoice: stripe.Invoice) -> PaidWith:
    """The intent and charge of the invoice's paid payment, from an invoice `retrieve` fetched."""
    for payment in invoice.payments.data if invoice.payments else []:
        if payment.status != "paid":
            continue
        intent = payment.payment.payment_intent
        if isinstance(intent, stripe.PaymentIntent):
            return PaidWith(intent.id, id_of(intent.latest_charge))
        if payment.payment.charge:  # a charge made without an intent
            return PaidWith(None, id_of(payment.payment.charge))
    return PaidWith(None, None)


async def first_invoice(settings: Settings, account: str, subscription_id: str) -> str | None:
    """The id of a subscription's first invoice (the one its checkout paid)."""
    listed = await stripe_client(settings).v1.invoices.list_async(
        {"subscription": subscription_id, "limit": 100}, {"stripe_account": account}
    )
    return next((i.id for i in listed.data if i.billing_reason == FIRST_INVOICE), None)


async def recorded_payment(session: AsyncSession, account: str, invoice: stripe.Invoice) -> Payment | None:
    """Our payment for this invoice, locked: the one recorded with its id, or for a
    subscription's first invoice the purchase its checkout recorded (which knows the
    subscription before it knows the invoice)."""
    by_invoice = (Payment.stripe_account_id == account) & (Payment.stripe_invoice_id == invoice.id)
    subscription_id = subscription_of(invoice)
    if invoice.billing_reason == FIRST_INVOICE and subscription_id:
        by_invoice = by_invoice | (
            (Payment.stripe_account_id == account)
            & (Payment.kind == PaymentKind.purchase)
            & (Payment.stripe_subscription_id == subscription_id)
        )
    return await session.scalar(
        select(Payment).where(by_invoice).order_by(Payment.id).limit(1).with_for_update().execution_options(
            populate_existing=True
        )
    )


def fill(payment: Payment, invoice: stripe.Invoice, paid: PaidWith) -> None:
    """Give our payment the Stripe ids it lacks, so refunds can name its charge and charge
    events (refunds, disputes, made here or in Stripe's dashboard) find it."""
    payment.stripe_invoice_id = payment.stripe_invoice_id or invoice.id
    payment.stripe_payment_intent_id = payment.stripe_payment_intent_id or paid.payment_intent
    payment.stripe_charge_id = payment.stripe_charge_id or paid.charge
    payment.receipt_url = payment.receipt_url or invoice.hosted_invoice_url


async def payment_for_intent(
    session: AsyncSession, settings: Settings, account: str, intent_id: str, charge_id: str | None
) -> Payment | None:
    """Our payment for a charge whose payment intent our records do not name: an invoice's, if
    Stripe says which invoice that intent paid. The payment gets the ids it lacked (locked).
    None: no invoice of one of our subscriptions. NotYetKnown: our subscription's invoice whose
    payment is not recorded yet (its invoice.paid job will record it; the caller's job retries)."""
    listed = await stripe_client(settings).v1.invoice_payments.list_async(
        {"payment": {"type": "payment_intent", "payment_intent": intent_id}, "expand": ["data.invoice"], "limit": 1},
        {"stripe_account": account},
    )
    invoice = listed.data[0].invoice if listed.data else None
    subscription_id = subscription_of(invoice) if isinstance(invoice, stripe.Invoice) else None
    if not isinstance(invoice, stripe.Invoice) or subscription_id is None:
        return None
    ours = await session.scalar(
        select(Subscription.id).where(
            Subscription.stripe_account_id == account, Subscription.stripe_subscription_id == subscription_id
        )
    )
    if ours is None:
        return None
    payment = await recorded_payment(session, account, invoice)
    if payment is None:
        raise NotYetKnown(f"the payment of invoice {invoice.id} (subscription {subscription_id}) is not recorded yet")
    fill(payment, invoice, PaidWith(intent_id, charge_id))
    return payment

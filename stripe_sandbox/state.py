"""The sandbox's state: every object and rule, assembled from the store and its rule modules.

store.py     objects behind one lock, events, idempotency, lists, time
accounts.py  connected accounts and onboarding, customers and payment methods, coupons
checkout.py  checkout sessions and the hosted page's outcomes
payments.py  payment intents and charges
refunds.py   refunds, pending until settled when a charge's refunds are held
disputes.py  inquiries, chargebacks, appeals and prevented disputes, with their balance transactions
billing.py   subscriptions and their items, the billing portal, the test clock
invoices.py  invoices and invoice payments
expand.py    expand[]: expandable ids and includable fields, for every response
"""

from __future__ import annotations

from stripe_sandbox.accounts import AccountRules
from stripe_sandbox.billing import BillingRules
from stripe_sandbox.checkout import CheckoutRules
from stripe_sandbox.disputes import DisputeRules
from stripe_sandbox.invoices import InvoiceRules
from stripe_sandbox.payments import PaymentRules
from stripe_sandbox.refunds import RefundRules
from stripe_sandbox.store import (
    API_VERSION,
    DAY,
    OUTCOMES,
    add_months,
    new_id,
    public,
)

__all__ = ["API_VERSION", "DAY", "OUTCOMES", "SandboxState", "add_months", "new_id", "public"]


class SandboxState(BillingRules, InvoiceRules, CheckoutRules, DisputeRules, RefundRules, PaymentRules, AccountRules):
    """All of the sandbox's objects and rules; every public method takes the one lock."""

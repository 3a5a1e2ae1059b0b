"""Payment intents and charges: what a checkout or an invoice creates to take money, and how a
charge fails. Refunds (refunds.py) and disputes (disputes.py) act on these charges."""

from __future__ import annotations

import copy
from typing import Any

from stripe_sandbox import shapes
from stripe_sandbox.forms import Params
from stripe_sandbox.store import Obj, Store, new_id, public


class PaymentRules(Store):
    def _new_intent(self, account: str | None, amount: int, currency: str, customer: Obj | None, **fields: Any) -> Obj:
        pi_id = new_id("pi_")
        return self._new(
            "payment_intent",
            "pi_",
            account,
            {
                **shapes.payment_intent_defaults(account),
                "amount": amount,
                "amount_capturable": 0,
                "amount_received": 0,
                "application_fee_amount": fields.get("application_fee_amount"),
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": "automatic",
                "client_secret": f"{pi_id}_secret_{new_id('', 25)}",
                "confirmation_method": "automatic",
                "currency": currency,
                "customer": customer["id"] if customer else None,
                "description": fields.get("description"),
                "last_payment_error": None,
                "latest_charge": None,
                "metadata": fields.get("metadata") or {},
                "next_action": None,
                "payment_method": None,
                "payment_method_types": ["card"],
                "receipt_email": fields.get("receipt_email"),
                "status": "requires_payment_method",
            },
            object_id=pi_id,
        )

    def _fail_payment(
        self,
        pi: Obj,
        charge: Obj,
        *,
        code: str = "card_declined",
        decline_code: str | None = "generic_decline",
        message: str = "Your card was declined.",
    ) -> None:
        """The intent's charge failed: it wants another payment method and says why, as Stripe's does."""
        error = {"type": "card_error", "code": code, "decline_code": decline_code, "message": message, "charge": charge["id"]}
        if decline_code is None:
            del error["decline_code"]
        pi.update(status="requires_payment_method", last_payment_error=error, latest_charge=charge["id"])
        self._emit("charge.failed", charge)
        self._emit("payment_intent.payment_failed", pi)

    def _new_charge(
        self,
        pi: Obj,
        pm: Obj | None,
        *,
        status: str,
        last4: str = "4242",
        name: str | None = None,
        email: str | None = None,
    ) -> Obj:
        customer = self.objects.get(pi["customer"] or "")
        succeeded = status == "succeeded"
        method_details: Obj
        if pm is not None and pm["type"] != "card":
            method_details = {"type": pm["type"], pm["type"]: shapes.bank_details(pm[pm["type"]])}
        else:
            last4 = pm["card"]["last4"] if pm is not None else last4
            method_details = {"type": "card", "card": shapes.card_details(last4, pi["amount"], succeeded=succeeded)}
        if pm is not None:
            billing = copy.deepcopy(pm["billing_details"])
        else:
            billing = {"address": None, "email": email, "name": name, "phone": None, "tax_id": None}
        return self._new(
            "charge",
            "ch_",
            pi["_account"],
            {
                **shapes.charge_defaults(pi["_account"]),
                "amount": pi["amount"],
                "amount_captured": pi["amount"] if succeeded else 0,
                "amount_refunded": 0,
                "application_fee_amount": pi["application_fee_amount"],
                "balance_transaction": None,
                "billing_details": billing,
                "captured": succeeded,
                "currency": pi["currency"],
                "customer": customer["id"] if customer else None,
                "description": pi["description"],
                "disputed": False,
                "failure_code": "card_declined" if status == "failed" else None,
                "failure_message": "Your card was declined." if status == "failed" else None,
                "metadata": dict(pi["metadata"]),
                "outcome": shapes.outcome(status),
                "paid": succeeded,
                "payment_intent": pi["id"],
                "payment_method": pm["id"] if pm else None,
                "payment_method_details": method_details,
                "receipt_email": pi["receipt_email"],
                "refunded": False,
                "status": status,
            },
        )

    def retrieve_payment_intent(self, account: str | None, pi_id: str) -> Obj:
        return public(self._get("payment_intent", pi_id, account))

    def list_payment_intents(self, account: str | None, p: Params) -> Obj:
        p.only("limit", "starting_after", "ending_before", "customer", "created")
        customer = p.str("customer")
        return self._list(
            "payment_intent",
            account,
            p,
            "/v1/payment_intents",
            lambda pi: customer is None or pi["customer"] == customer,
        )

    def retrieve_charge(self, account: str | None, charge_id: str) -> Obj:
        return public(self._get("charge", charge_id, account))

    def list_charges(self, account: str | None, p: Params) -> Obj:
        p.only("limit", "starting_after", "ending_before", "customer", "payment_intent", "created")
        filters = {k: p.str(k) for k in ("customer", "payment_intent")}
        return self._list(
            "charge", account, p, "/v1/charges", lambda c: all(v is None or c[k] == v for k, v in filters.items())
        )

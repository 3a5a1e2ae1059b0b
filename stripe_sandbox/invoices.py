"""Invoices and invoice payments, as Stripe answers them at the pinned API version.

A subscription's invoice is created (`invoice.created`, a draft) and finalized at once
(`invoice.finalized`); finalizing an invoice with money due makes its payment intent and its
default invoice payment (`invoice_payment`, `payment.type` "payment_intent"). Paying it marks
both paid (`invoice_payment.paid`, `invoice.paid`, `invoice.payment_succeeded`). Since the
2025-03-31 API the invoice names no payment intent or charge of its own: its `payments` are
includable (only with `expand[]=payments`, never in an event), or listed by
`GET /v1/invoice_payments?invoice=...`; the charge is the payment intent's `latest_charge`.
"""

from __future__ import annotations

from stripe_sandbox.currencies import format_amount
from stripe_sandbox.forms import Params
from stripe_sandbox.store import (
    DAY,
    RETRY_AFTER_DAYS,
    Obj,
    Store,
    coupon_discount,
    new_id,
    percent_of,
    public,
)


class InvoiceRules(Store):
    # ---- making and finalizing ----------------------------------------------------------------

    def _new_invoice(
        self, sub: Obj, reason: str, start: int, end: int, *, trial: bool = False, previous_start: int | None = None
    ) -> Obj:
        """A finalized invoice for the service period start..end (on its lines). Its own
        period_start/end are Stripe's: the period *before* the invoice (previous_start..now), or
        now..now for the first."""
        now = self.now()
        invoice_id = new_id("in_")
        lines = []
        subtotal = 0
        for name, item in zip(sub["_names"], sub["items"]["data"], strict=True):
            price = item["price"]
            amount = 0 if trial else price["unit_amount"] * item["quantity"]
            subtotal += amount
            lines.append(self._line(invoice_id, sub, item, name, amount, start, end, trial=trial))
        discount = self._subscription_discount(sub, subtotal, start)
        discount_id = sub["discounts"][0] if discount else None
        if discount_id:  # all on the first line (the sandbox's subscriptions have one)
            lines[0]["discount_amounts"] = [{"amount": discount, "discount": discount_id}]
        total = subtotal - discount
        customer = self.objects[sub["customer"]]
        account = self.objects.get(sub["_account"] or "")
        invoice = self._new(
            "invoice",
            "in_",
            sub["_account"],
            {
                "account_country": account["country"] if account else "US",
                "account_name": ((account or {}).get("business_profile") or {}).get("name"),
                "account_tax_ids": None,
                "amount_due": total,
                "amount_overpaid": 0,
                "amount_paid": 0,
                "amount_paid_off_stripe": 0,
                "amount_remaining": total,
                "amount_shipping": 0,
                "application": None,
                "attempt_count": 0,
                "attempted": False,
                "auto_advance": True,
                "automatic_tax": {
                    "disabled_reason": None,
                    "enabled": False,
                    "liability": None,
                    "provider": None,
                    "status": None,
                },
                "automatically_finalizes_at": None,
                "billing_reason": reason,
                "collection_method": "charge_automatically",
                "currency": sub["currency"],
                "custom_fields": None,
                "customer": customer["id"],
                "customer_account": None,
                "customer_address": None,
                "customer_email": customer["email"],
                "customer_name": customer["name"],
                "customer_phone": None,
                "customer_shipping": None,
                "customer_tax_exempt": "none",
                "customer_tax_ids": [],
                "default_payment_method": None,
                "default_source": None,
                "default_tax_rates": [],
                "description": None,
                "discounts": [discount_id] if discount_id else [],
                "due_date": None,
                "effective_at": None,
                "ending_balance": None,
                "footer": None,
                "from_invoice": None,
                "hosted_invoice_url": None,
                "invoice_pdf": None,
                "issuer": {"type": "self"},
                "last_finalization_error": None,
                "latest_revision": None,
                "lines": {
                    "object": "list",
                    "data": lines,
                    "has_more": False,
                    "url": f"/v1/invoices/{invoice_id}/lines",
                },
                "metadata": {},
                "next_payment_attempt": None,
                "number": None,
                "on_behalf_of": None,
                "parent": {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {"subscription": sub["id"], "metadata": dict(sub["metadata"])},
                },
                "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
                "period_start": previous_start if previous_start is not None else now,
                "period_end": now,
                "post_payment_credit_notes_amount": 0,
                "pre_payment_credit_notes_amount": 0,
                "receipt_number": None,
                "rendering": None,
                "shipping_cost": None,
                "shipping_details": None,
                "starting_balance": 0,
                "statement_descriptor": None,
                "status": "draft",
                "status_transitions": {
                    "finalized_at": None,
                    "marked_uncollectible_at": None,
                    "paid_at": None,
                    "voided_at": None,
                },
                "subtotal": subtotal,
                "subtotal_excluding_tax": subtotal,
                "test_clock": None,
                "total": total,
                "total_discount_amounts": [{"amount": discount, "discount": discount_id}] if discount_id else [],
                "total_excluding_tax": total,
                "total_pretax_credit_amounts": [],
                "total_taxes": [],
                "webhooks_delivered_at": now,
                "_subscription": sub["id"],
                "_payment_intent": None,
            },
            object_id=invoice_id,
        )
        sub["latest_invoice"] = invoice["id"]
        self._emit("invoice.created", invoice)
        self._finalize(invoice, sub)
        return invoice

    def _line(
        self, invoice_id: str, sub: Obj, item: Obj, name: str, amount: int, start: int, end: int, *, trial: bool
    ) -> Obj:
        price = item["price"]
        interval = price["recurring"]["interval"]
        return {
            "id": new_id("il_"),
            "object": "line_item",
            "amount": amount,
            "currency": price["currency"],
            "description": f"{'Trial period for ' if trial else ''}{item['quantity']} × {name} "
            f"(at {format_amount(price['unit_amount'], price['currency'])} / {interval})",
            "discount_amounts": [],
            "discountable": True,
            "discounts": [],
            "invoice": invoice_id,
            "livemode": False,
            "metadata": {},
            "parent": {
                "type": "subscription_item_details",
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": sub["id"],
                    "subscription_item": item["id"],
                },
            },
            "period": {"start": start, "end": end},
            "pretax_credit_amounts": [],
            "pricing": {
                "type": "price_details",
                "price_details": {"price": price["id"], "product": price["product"]},
                "unit_amount_decimal": price["unit_amount_decimal"],
            },
            "quantity": item["quantity"],
            "quantity_decimal": str(item["quantity"]),
            "subscription": sub["id"],
            "subtotal": amount,
            "taxes": [],
        }

    def _finalize(self, invoice: Obj, sub: Obj) -> None:
        now = self.now()
        self._invoice_numbers += 1
        invoice.update(
            status="open", number=f"SANDBOX-{self._invoice_numbers:05d}", effective_at=now, ending_balance=0
        )
        invoice["status_transitions"]["finalized_at"] = now
        if invoice["amount_due"] > 0:
            self._invoice_intent(invoice, sub)  # and its default invoice payment, as Stripe makes them here
        self._emit("invoice.finalized", invoice)

    def _subscription_discount(self, sub: Obj, subtotal: int, period_start: int) -> int:
        coupon = sub["_coupon"]
        if not coupon or subtotal == 0:
            return 0
        if coupon["duration"] == "once":
            if sub["_coupon_used"]:
                return 0
            sub["_coupon_used"] = True
        elif coupon["duration"] == "repeating" and period_start >= sub["_discount_end"]:
            return 0
        return coupon_discount(coupon, subtotal)

    def _invoice_intent(self, invoice: Obj, sub: Obj) -> Obj:
        """The invoice's payment intent, made once with its default invoice payment."""
        if invoice["_payment_intent"]:
            return self.objects[invoice["_payment_intent"]]
        customer = self.objects[sub["customer"]]
        fee_percent = sub["application_fee_percent"]
        fee = None if fee_percent is None else percent_of(invoice["amount_due"], fee_percent)
        pi = self._new_intent(
            sub["_account"],
            invoice["amount_due"],
            invoice["currency"],
            customer,
            description="Subscription update"
            if invoice["billing_reason"] != "subscription_create"
            else "Subscription creation",
            application_fee_amount=fee,
        )
        invoice["_payment_intent"] = pi["id"]
        self._new(
            "invoice_payment",
            "inpay_",
            invoice["_account"],
            {
                "amount_paid": None,
                "amount_requested": invoice["amount_due"],
                "currency": invoice["currency"],
                "invoice": invoice["id"],
                "is_default": True,
                "payment": {"type": "payment_intent", "payment_intent": pi["id"]},
                "status": "open",
                "status_transitions": {"canceled_at": None, "paid_at": None},
            },
        )
        return pi

    def _invoice_payments(self, invoice_id: str) -> list[Obj]:
        return [
            payment
            for pid in self.index.get("invoice_payment", [])
            if (payment := self.objects[pid])["invoice"] == invoice_id
        ]

    # ---- paying -------------------------------------------------------------------------------

    def _pay_invoice(self, invoice: Obj, sub: Obj) -> bool:
        """One payment attempt with the subscription's (or the customer's default) payment method."""
        customer = self.objects[sub["customer"]]
        pm_id = sub["default_payment_method"] or customer["invoice_settings"]["default_payment_method"]
        pi = self._invoice_intent(invoice, sub)
        failures = invoice["attempt_count"] + 1  # if this attempt fails too
        invoice.update(
            attempted=True,
            attempt_count=failures,
            # set before the failure is announced, as Stripe's invoice.payment_failed carries it
            next_payment_attempt=self.now() + RETRY_AFTER_DAYS[failures - 1] * DAY
            if failures <= len(RETRY_AFTER_DAYS)
            else None,
        )
        if pm_id is None:
            pi["last_payment_error"] = {
                "type": "invalid_request_error",
                "code": "payment_method_missing",
                "message": "The customer has no payment method.",
            }
            self._emit("invoice.payment_failed", invoice)
            return False
        pm = self.objects[pm_id]
        declines = customer["_card_declines"] and pm["type"] == "card"
        charge = self._new_charge(pi, pm, status="failed" if declines else "succeeded")
        pi.update(payment_method=pm_id, latest_charge=charge["id"])
        if declines:
            self._fail_payment(pi, charge)
            self._emit("invoice.payment_failed", invoice)
            return False
        pi.update(status="succeeded", amount_received=pi["amount"], last_payment_error=None)
        self._emit("charge.succeeded", charge)
        self._emit("payment_intent.succeeded", pi)
        self._mark_paid(invoice, pi)
        return True

    def _mark_paid(self, invoice: Obj, pi: Obj | None) -> None:
        now = self.now()
        invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0, next_payment_attempt=None)
        invoice["status_transitions"]["paid_at"] = now
        for payment in self._invoice_payments(invoice["id"]):
            if payment["status"] == "open":
                payment.update(status="paid", amount_paid=payment["amount_requested"])
                payment["status_transitions"]["paid_at"] = now
                self._emit("invoice_payment.paid", payment)
        self._emit("invoice.paid", invoice)
        self._emit("invoice.payment_succeeded", invoice)

    def _void_invoice(self, invoice: Obj) -> None:
        now = self.now()
        invoice.update(status="void", next_payment_attempt=None)
        invoice["status_transitions"]["voided_at"] = now
        for payment in self._invoice_payments(invoice["id"]):
            if payment["status"] == "open":
                payment["status"] = "canceled"
                payment["status_transitions"]["canceled_at"] = now
        self._emit("invoice.voided", invoice)

    # ---- the API --------------------------------------------------------------------------------

    def retrieve_invoice(self, account: str | None, invoice_id: str) -> Obj:
        return public(self._get("invoice", invoice_id, account))

    def list_invoices(self, account: str | None, p: Params) -> Obj:
        p.only("limit", "starting_after", "ending_before", "customer", "subscription", "status", "created")
        filters = {"customer": p.str("customer"), "_subscription": p.str("subscription"), "status": p.str("status")}
        return self._list(
            "invoice", account, p, "/v1/invoices", lambda i: all(v is None or i[k] == v for k, v in filters.items())
        )

    def retrieve_invoice_payment(self, account: str | None, payment_id: str) -> Obj:
        return public(self._get("invoice_payment", payment_id, account))

    def list_invoice_payments(self, account: str | None, p: Params) -> Obj:
        p.only("limit", "starting_after", "ending_before", "invoice", "payment", "status", "created")
        invoice, status = p.str("invoice"), p.enum("status", ("canceled", "open", "paid"))
        wanted: Obj = {}
        if "payment" in p:
            payment = p.sub("payment")
            payment.only("type", "payment_intent", "payment_record")
            wanted = {"type": payment.enum("type", ("payment_intent", "payment_record"), required=True)}
            for key in ("payment_intent", "payment_record"):
                if key in payment:
                    wanted[key] = payment.str(key)

        def match(ip: Obj) -> bool:
            if invoice is not None and ip["invoice"] != invoice:
                return False
            if status is not None and ip["status"] != status:
                return False
            return all(ip["payment"].get(k) == v for k, v in wanted.items())

        return self._list("invoice_payment", account, p, "/v1/invoice_payments", match)

    # ---- includable fields (expand.py) --------------------------------------------------------------

    def _include_invoice_payments(self, invoice: Obj, account: str | None) -> Obj:
        found = [public(ip) for ip in self._invoice_payments(invoice["id"]) if ip["_account"] == account]
        return {
            "object": "list",
            "data": list(reversed(found)),
            "has_more": False,
            "url": f"/v1/invoice_payments?invoice={invoice['id']}",
        }

    def _include_confirmation_secret(self, invoice: Obj, account: str | None) -> Obj | None:
        stored = self._find("invoice", invoice["id"], account)
        pi = self.objects.get((stored or {}).get("_payment_intent") or "")
        return {"client_secret": pi["client_secret"], "type": "payment_intent"} if pi else None

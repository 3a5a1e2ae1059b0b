"""Checkout sessions and what paying on the hosted page does (the payment intents and charges
it creates are payments.py's).

A subscription session's completion is billing's work (`_complete_subscription` in billing.py;
its invoices: invoices.py).
"""

from __future__ import annotations

import copy
import re

from stripe_sandbox import shapes
from stripe_sandbox.currencies import MINIMUM_CHARGE, format_amount
from stripe_sandbox.errors import SandboxError
from stripe_sandbox.forms import Params
from stripe_sandbox.store import (
    DAY,
    OUTCOMES,
    Obj,
    Store,
    coupon_discount,
    locked,
    new_id,
    public,
    url_param,
)


def not_open(session: Obj) -> SandboxError:
    """Stripe's answer to expiring a session that is not open (complete or expired already):
    a 400 invalid_request_error with this message, and neither param nor code."""
    return SandboxError(
        f'Only Checkout Sessions with a status in ["open"] can be expired. '
        f"This Checkout Session has a status of `{session['status']}`."
    )


class CheckoutRules(Store):
    # ---- checkout sessions -------------------------------------------------------------------

    def create_checkout_session(self, account: str | None, p: Params) -> Obj:
        p.only(
            "mode",
            "line_items",
            "customer_email",
            "customer",
            "client_reference_id",
            "metadata",
            "success_url",
            "cancel_url",
            "discounts",
            "payment_intent_data",
            "subscription_data",
            "payment_method_collection",
            "expires_at",
            ignored=(
                "locale",
                "payment_method_types",
                "billing_address_collection",
                "customer_creation",
                "submit_type",
                "custom_text",
                "phone_number_collection",
            ),
        )
        if account is not None and not self._get("account", account, None)["charges_enabled"]:
            raise SandboxError(
                f"The account {account} cannot currently make charges (charges_enabled is false): finish onboarding first.",
                code="account_invalid",
            )
        now, wall = self.now(), self.wall()
        mode = p.enum("mode", ("payment", "subscription", "setup"), required=True)
        if mode == "setup":
            raise SandboxError("The sandbox does not model setup mode.", param="mode")
        items = self._line_items(p, mode)
        currency = items[0]["price"]["currency"]
        subtotal = sum(i["price"]["unit_amount"] * i["quantity"] for i in items)

        coupon = None
        discounts = p.list("discounts")
        if len(discounts) > 1:
            raise SandboxError("You may only specify one discount.", param="discounts")
        for d in discounts:
            d.only("coupon", "promotion_code")
            if "promotion_code" in d:
                raise SandboxError("The sandbox does not model promotion codes.", param=d.name("promotion_code"))
            coupon = self._get(
                "coupon", d.str("coupon", required=True) or "", account, param=d.name("coupon"), status=400
            )
            self._refresh_coupon(coupon)
            if not coupon["valid"]:
                raise SandboxError(
                    f"Coupon '{coupon['id']}' can no longer be redeemed.", param=d.name("coupon"), code="coupon_expired"
                )
            if coupon["amount_off"] is not None and coupon["currency"] != currency:
                raise SandboxError(
                    f"The coupon's currency ({coupon['currency']}) does not match the line items' ({currency}).",
                    param=d.name("coupon"),
                )

        sub_data, pi_data = p.sub("subscription_data"), p.sub("payment_intent_data")
        if mode == "payment" and "subscription_data" in p:
            raise SandboxError("You can not pass `subscription_data` in `payment` mode.", param="subscription_data")
        if mode == "subscription" and "payment_intent_data" in p:
            raise SandboxError(
                "You can not pass `payment_intent_data` in `subscription` mode.", param="payment_intent_data"
            )
        sub_data.only(
            "trial_period_days",
            "trial_end",
            "trial_settings",
            "metadata",
            "application_fee_percent",
            "description",
            ignored=("proration_behavior",),
        )
        pi_data.only(
            "metadata",
            "application_fee_amount",
            "description",
            "receipt_email",
            ignored=("statement_descriptor", "statement_descriptor_suffix", "setup_future_usage", "capture_method"),
        )
        trial_days = sub_data.int("trial_period_days", minimum=1, maximum=730)
        trial_end = None  # an explicit end; trial_period_days count from the subscription's creation
        if "trial_end" in sub_data:
            if trial_days:
                raise SandboxError(
                    "You may only specify one of trial_end and trial_period_days.", param=sub_data.name("trial_end")
                )
            trial_end = sub_data.int("trial_end")
            if trial_end is None or trial_end < now + 2 * DAY:
                raise SandboxError(
                    "trial_end must be at least 48 hours in the future.", param=sub_data.name("trial_end")
                )
        missing_pm = (
            sub_data.sub("trial_settings")
            .sub("end_behavior")
            .enum("missing_payment_method", ("cancel", "create_invoice", "pause"))
            or "create_invoice"
        )
        fee_percent = sub_data.decimal("application_fee_percent")
        fee_amount = pi_data.int("application_fee_amount", minimum=0)
        if (fee_percent is not None or fee_amount is not None) and account is None:
            raise SandboxError(
                "Can only apply an application fee when the request is made on behalf of another account "
                "(the Stripe-Account header).",
                param=sub_data.name("application_fee_percent")
                if fee_percent is not None
                else pi_data.name("application_fee_amount"),
            )
        if fee_percent is not None and fee_percent > 100:
            raise SandboxError(
                "application_fee_percent must be at most 100.", param=sub_data.name("application_fee_percent")
            )

        # what is due now: the first payment, or the first invoice (nothing during a trial)
        due_subtotal = 0 if trial_days or trial_end else subtotal
        discount = coupon_discount(coupon, due_subtotal) if coupon else 0
        total = max(0, due_subtotal - discount)
        if fee_amount is not None and fee_amount > total:
            raise SandboxError(
                "application_fee_amount cannot exceed the amount.", param=pi_data.name("application_fee_amount")
            )
        _allocate_discount(items, discount)
        minimum = MINIMUM_CHARGE.get(currency.upper())
        if total > 0 and minimum and total < minimum:
            raise SandboxError(
                f"The Checkout Session's total amount due must add up to at least {format_amount(minimum, currency)}",
                param="line_items",
                code="amount_too_small",
            )

        customer_id, email = p.str("customer"), p.str("customer_email", max_length=512)
        if customer_id and email:
            raise SandboxError(
                "You may only specify one of these parameters: customer, customer_email.", param="customer_email"
            )
        known_email = email
        if customer_id:
            known_email = self._get("customer", customer_id, account, param="customer", status=400)["email"]
        if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise SandboxError(f"Invalid email address: {email}", param="customer_email", code="email_invalid")
        # checkout sessions live on the wall clock, as in Stripe (test clocks move billing only)
        expires_at = p.int("expires_at")
        if expires_at is None:
            expires_at = wall + DAY
        elif not wall + 30 * 60 - 60 <= expires_at <= wall + DAY + 60:
            raise SandboxError(
                "The `expires_at` timestamp must be between 30 minutes and 24 hours after the session's creation.",
                param="expires_at",
            )
        session_id = new_id("cs_test_", 58)
        session = self._new(
            "checkout.session",
            "cs_test_",
            account,
            {
                **shapes.checkout_session_defaults(mode, customer_given=bool(customer_id), locale=p.str("locale")),
                "created": wall,
                "mode": mode,
                "status": "open",
                "payment_status": "unpaid",
                "amount_subtotal": due_subtotal,
                "amount_total": total,
                "currency": currency,
                "total_details": {"amount_discount": discount, "amount_shipping": 0, "amount_tax": 0},
                "discounts": [{"coupon": coupon["id"], "promotion_code": None}] if coupon else [],
                "customer": customer_id,
                "customer_email": email,
                "customer_details": None,
                "client_reference_id": p.str("client_reference_id", max_length=200),
                "metadata": p.metadata() or {},
                "success_url": url_param(p, "success_url"),
                "cancel_url": url_param(p, "cancel_url"),
                "expires_at": expires_at,
                "payment_intent": None,
                "subscription": None,
                "invoice": None,
                "payment_method_collection": p.enum(
                    "payment_method_collection", ("always", "if_required"), default="always"
                ),
                "payment_method_types": ["card"],
                "url": f"{self.base_url}/c/pay/{session_id}",
                "_items": items,
                "_email": known_email,  # the buyer's email when we know it (customer_email, or the customer's)
                "_coupon": coupon["id"] if coupon else None,
                "_trial_days": trial_days,
                "_trial_end": trial_end,
                "_missing_pm": missing_pm,
                "_sub_metadata": sub_data.metadata() or {},
                "_sub_description": sub_data.str("description"),
                "_fee_percent": fee_percent,
                "_pi_metadata": pi_data.metadata() or {},
                "_pi_description": pi_data.str("description"),
                "_fee_amount": fee_amount,
                "_receipt_email": pi_data.str("receipt_email"),
            },
            object_id=session_id,
        )
        self._expiring(session)
        return public(session)

    def _line_items(self, p: Params, mode: str) -> list[Obj]:
        entries = p.list("line_items")
        if not entries:
            raise p.missing("line_items")
        items: list[Obj] = []
        for entry in entries:
            entry.only(
                "price_data", "quantity", "price", ignored=("adjustable_quantity", "tax_rates", "dynamic_tax_rates")
            )
            if "price" in entry:
                raise SandboxError(
                    f"No such price: '{entry.str('price')}' (the sandbox only models price_data)",
                    param=entry.name("price"),
                    code="resource_missing",
                )
            if "price_data" not in entry:
                raise entry.missing("price_data")
            pd = entry.sub("price_data")
            pd.only("currency", "unit_amount", "product_data", "recurring", "product", ignored=("tax_behavior",))
            if "product" in pd:
                raise SandboxError(
                    f"No such product: '{pd.str('product')}' (the sandbox only models product_data)",
                    param=pd.name("product"),
                    code="resource_missing",
                )
            currency = (pd.str("currency", required=True) or "").lower()
            if not re.fullmatch(r"[a-z]{3}", currency):
                raise SandboxError(f"Invalid currency: {currency}", param=pd.name("currency"), code="invalid_currency")
            unit_amount = pd.int("unit_amount", required=True, minimum=0, maximum=99_999_999)
            product = pd.sub("product_data")
            product.only("name", "description", "metadata", "images")
            name = product.str("name", required=True, max_length=250) if "product_data" in pd else None
            if name is None:
                raise pd.missing("product_data")
            recurring = None
            if "recurring" in pd:
                rp = pd.sub("recurring")
                rp.only("interval", "interval_count")
                interval = rp.enum("interval", ("day", "week", "month", "year"), required=True) or "month"
                limit = {"day": 1095, "week": 156, "month": 36, "year": 3}[interval]
                recurring = {
                    "interval": interval,
                    "interval_count": rp.int("interval_count", minimum=1, maximum=limit) or 1,
                    "meter": None,
                    "trial_period_days": None,
                    "usage_type": "licensed",
                }
            if mode == "payment" and recurring:
                raise SandboxError(
                    "You must be in `subscription` mode to use recurring prices.", param=pd.name("recurring")
                )
            if mode == "subscription" and not recurring:
                raise SandboxError(
                    "The sandbox models subscription mode with recurring prices only.", param=pd.name("recurring")
                )
            quantity = entry.int("quantity", required=True, minimum=1, maximum=999_999)
            items.append(
                {
                    "id": new_id("li_"),
                    "object": "item",
                    "adjustable_quantity": None,
                    "amount_discount": 0,
                    "amount_subtotal": (unit_amount or 0) * (quantity or 1),
                    "amount_tax": 0,
                    "amount_total": (unit_amount or 0) * (quantity or 1),
                    "currency": currency,
                    "description": name,
                    "metadata": {},
                    "price": shapes.price(
                        new_id("price_"), new_id("prod_", 14), currency, unit_amount or 0, recurring, self.now()
                    ),
                    "quantity": quantity,
                }
            )
            if currency != items[0]["currency"]:
                raise SandboxError("All line items must use the same currency.", param=pd.name("currency"))
            if recurring and {k: recurring[k] for k in ("interval", "interval_count")} != {
                k: items[0]["price"]["recurring"][k] for k in ("interval", "interval_count")
            }:
                raise SandboxError(
                    "All recurring prices must have the same billing interval.", param=pd.name("recurring")
                )
        return items

    def retrieve_checkout_session(self, account: str | None, session_id: str) -> Obj:
        return public(self._get("checkout.session", session_id, account))

    def list_checkout_sessions(self, account: str | None, p: Params) -> Obj:
        p.only(
            "limit",
            "starting_after",
            "ending_before",
            "payment_intent",
            "subscription",
            "customer",
            "status",
            "created",
        )
        filters = {k: p.str(k) for k in ("payment_intent", "subscription", "customer", "status")}
        return self._list(
            "checkout.session",
            account,
            p,
            "/v1/checkout/sessions",
            lambda s: all(v is None or s[k] == v for k, v in filters.items()),
        )

    def list_session_line_items(self, account: str | None, p: Params, session_id: str) -> Obj:
        p.only("limit", "starting_after", "ending_before")
        session = self._get("checkout.session", session_id, account)
        return {
            "object": "list",
            "data": copy.deepcopy(session["_items"]),
            "has_more": False,
            "url": f"/v1/checkout/sessions/{session_id}/line_items",
        }

    def _include_session_line_items(self, session: Obj, account: str | None) -> Obj:
        """`expand[]=line_items` (includable, as in Stripe)."""
        stored = self._get("checkout.session", session["id"], account)
        return {
            "object": "list",
            "data": copy.deepcopy(stored["_items"]),
            "has_more": False,
            "url": f"/v1/checkout/sessions/{session['id']}/line_items",
        }

    def expire_checkout_session(self, account: str | None, p: Params, session_id: str) -> Obj:
        p.only()
        session = self._get("checkout.session", session_id, account)
        if session["status"] != "open":
            raise not_open(session)
        self._expire(session)
        return public(session)

    @locked
    def session_view(self, session_id: str) -> Obj:
        """What the hosted page shows."""
        session = self._any("checkout.session", session_id)
        view = public(session)
        view["items"] = copy.deepcopy(session["_items"])
        view["trial_end"] = self._trial_end_for(session)
        view["offers_trial_without_card"] = self._offers_trial_without_card(session)
        view["recurring"] = session["_items"][0]["price"]["recurring"]
        view["account"] = session["_account"]
        view["email"] = session["_email"]
        view["last_error"] = None
        if session["payment_intent"]:
            error = self.objects[session["payment_intent"]]["last_payment_error"]
            view["last_error"] = error["message"] if error else None
        return view

    def _trial_end_for(self, session: Obj) -> int | None:
        """When a subscription started now from this session would end its trial (None: no trial)."""
        if session["_trial_days"]:
            return self.now() + session["_trial_days"] * DAY
        return session["_trial_end"]

    def _offers_trial_without_card(self, session: Obj) -> bool:
        return bool(
            session["mode"] == "subscription"
            and self._trial_end_for(session)
            and session["payment_method_collection"] == "if_required"
        )

    @locked
    def expire_session(self, session_id: str) -> Obj:
        """What reaching `expires_at` does to an open session (without waiting for it)."""
        session = self._any("checkout.session", session_id)
        if session["status"] != "open":
            raise not_open(session)
        self._expire(session)
        return public(session)

    @locked
    def success_redirect(self, session_id: str) -> str | None:
        session = self._any("checkout.session", session_id)
        url = session["success_url"]
        return url.replace("{CHECKOUT_SESSION_ID}", session["id"]) if url else None

    @locked
    def pay(
        self, session_id: str, outcome: str = "success", *, name: str | None = None, email: str | None = None
    ) -> Obj:
        """The buyer's choice on the hosted page (see OUTCOMES). Returns the session."""
        self.sweep()
        session = self._any("checkout.session", session_id)
        if outcome not in OUTCOMES:
            raise SandboxError(f"Unknown outcome {outcome!r}; use one of {', '.join(OUTCOMES)}", param="outcome")
        if session["status"] != "open":
            raise SandboxError(
                f"This Checkout Session is {session['status']}, it can no longer be paid.",
                code="checkout_session_not_open",
            )
        due = session["amount_total"]
        if outcome == "trial_without_card" and not self._offers_trial_without_card(session):
            raise SandboxError("This session does not offer a trial without a card.", param="outcome")
        if outcome == "async_pending" and due == 0:
            raise SandboxError("Nothing is due now: there is no delayed payment to make.", param="outcome")
        if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise SandboxError(f"Invalid email address: {email}", param="email", code="email_invalid")
        email = session["_email"] or email or "buyer@example.com"
        name = name or "Sandbox Buyer"
        if outcome == "decline":
            self._decline(session, name, email)
            return public(session)
        customer = self._customer_for(session, email, name)
        pm = None
        if outcome != "trial_without_card":
            pm = self._payment_method(customer, kind="card" if outcome == "success" else "us_bank_account", name=name)
            customer["invoice_settings"]["default_payment_method"] = pm["id"]
            customer["_card_declines"] = False
        session.update(
            status="complete",
            customer=customer["id"],
            customer_details=shapes.customer_details(email, name),
            collected_information=shapes.collected_information(),
        )
        if session["_coupon"]:
            coupon = self.objects[session["_coupon"]]
            coupon["times_redeemed"] += 1
            self._refresh_coupon(coupon)
        pending = outcome == "async_pending"
        if session["mode"] == "payment":
            self._complete_payment(session, customer, pm, pending)
        else:
            self._complete_subscription(session, customer, pm, pending)
        self._emit("checkout.session.completed", session)
        return public(session)

    def _customer_for(self, session: Obj, email: str, name: str) -> Obj:
        if session["customer"]:
            return self.objects[session["customer"]]
        for cid in reversed(self.index.get("customer", [])):
            found = self.objects[cid]
            if found["_account"] == session["_account"] and found["email"] == email and not found.get("_deleted"):
                return found
        return self._customer(session["_account"], email, name, {})

    def _decline(self, session: Obj, name: str, email: str) -> None:
        if session["mode"] != "payment" or session["amount_total"] == 0:
            return  # a subscription is only created once a payment works
        pi = self._session_intent(session, customer=None)
        charge = self._new_charge(pi, None, status="failed", last4="0002", name=name, email=email)
        self._fail_payment(pi, charge)

    def _session_intent(self, session: Obj, customer: Obj | None) -> Obj:
        if session["payment_intent"]:
            pi = self.objects[session["payment_intent"]]
        else:
            pi = self._new_intent(
                session["_account"],
                session["amount_total"],
                session["currency"],
                customer,
                metadata=dict(session["_pi_metadata"]),
                description=session["_pi_description"],
                application_fee_amount=session["_fee_amount"],
                receipt_email=session["_receipt_email"],
            )
            session["payment_intent"] = pi["id"]
        if customer is not None:
            pi["customer"] = customer["id"]
        return pi

    def _complete_payment(self, session: Obj, customer: Obj, pm: Obj | None, pending: bool) -> None:
        if session["amount_total"] == 0:
            session["payment_status"] = "no_payment_required"
            return
        pi = self._session_intent(session, customer)
        charge = self._new_charge(pi, pm, status="pending" if pending else "succeeded")
        pi.update(payment_method=pm["id"] if pm else None, latest_charge=charge["id"], last_payment_error=None)
        if pending:
            pi["status"] = "processing"
            session["payment_status"] = "unpaid"
            self._emit("charge.pending", charge)
            self._emit("payment_intent.processing", pi)
        else:
            pi.update(status="succeeded", amount_received=pi["amount"])
            session["payment_status"] = "paid"
            self._emit("charge.succeeded", charge)
            self._emit("payment_intent.succeeded", pi)

    @locked
    def settle_async(self, session_id: str, succeeded: bool) -> Obj:
        """A delayed payment (bank transfer) of a completed session clears or fails."""
        session = self._any("checkout.session", session_id)
        pi = None
        if session["status"] == "complete" and session["payment_status"] == "unpaid":
            if session["mode"] == "payment":
                pi = self.objects[session["payment_intent"]]
            else:
                invoice = self.objects[self.objects[session["subscription"]]["latest_invoice"]]
                pi = self.objects.get(invoice["_payment_intent"] or "")
        if pi is None or pi["status"] != "processing":
            raise SandboxError("This session has no delayed payment waiting to settle.", param="session")
        self._settle(pi, self.objects[pi["latest_charge"]], succeeded)
        if session["mode"] == "subscription":
            sub = self.objects[session["subscription"]]
            invoice = self.objects[sub["latest_invoice"]]
            previous = {"status": sub["status"]}
            if succeeded:
                self._mark_paid(invoice, pi)
                sub["status"] = "active"
                self._emit("customer.subscription.updated", sub, previous=previous)
            else:
                self._emit("invoice.payment_failed", invoice)
                self._void_invoice(invoice)
                sub.update(status="incomplete_expired", ended_at=self.now())
                self._emit("customer.subscription.deleted", sub, previous=previous)
        if succeeded:
            session["payment_status"] = "paid"
            self._emit("checkout.session.async_payment_succeeded", session)
        else:
            self._emit("checkout.session.async_payment_failed", session)
        return public(session)

    def _settle(self, pi: Obj, charge: Obj, succeeded: bool) -> None:
        if succeeded:
            charge.update(
                status="succeeded",
                paid=True,
                captured=True,
                amount_captured=charge["amount"],
                outcome=shapes.outcome("succeeded"),
            )
            pi.update(status="succeeded", amount_received=pi["amount"])
            self._emit("charge.succeeded", charge)
            self._emit("payment_intent.succeeded", pi)
        else:
            charge.update(
                status="failed",
                failure_code="insufficient_funds",
                failure_message="The bank transfer did not arrive.",
                outcome=shapes.outcome(
                    "failed", reason="insufficient_funds", seller_message="The bank transfer did not arrive."
                ),
            )
            self._fail_payment(
                pi, charge, code="insufficient_funds", decline_code=None, message="The bank transfer did not arrive."
            )


def _allocate_discount(items: list[Obj], discount: int) -> None:
    """Spreads a session's discount over its line items in proportion to their amounts (the last
    takes the rounding), as Stripe's `amount_discount` on each item adds up to the session's."""
    subtotal = sum(item["amount_subtotal"] for item in items)
    left = discount
    for n, item in enumerate(items):
        share = left if n == len(items) - 1 else discount * item["amount_subtotal"] // max(subtotal, 1)
        share = min(share, item["amount_subtotal"])
        item["amount_discount"] = share
        item["amount_total"] = item["amount_subtotal"] - share
        left -= share

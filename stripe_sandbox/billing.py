"""Subscriptions and their items, the billing portal, and the test clock (invoices: invoices.py).

Since the 2025-03-31 API a subscription's current period lives on each of its items
(`items.data[].current_period_start/end`), not on the subscription; the sandbox's items all
share one period.

The clock: `advance_clock` moves sandbox time forward and runs what falls due on the way in time
order, each at its own time (events carry it as `created`): three days before a trial ends
`customer.subscription.trial_will_end`; at a period's (or trial's) end the subscription ends if
`cancel_at_period_end`, a card-less trial follows
`trial_settings.end_behavior.missing_payment_method`, else the next period is invoiced and
charged (paid: `invoice.paid`; declined: `invoice.payment_failed`, status `past_due`, retried
after RETRY_AFTER_DAYS, then the subscription is canceled). As with Stripe's test clocks,
checkout sessions and account links keep to the wall clock.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from stripe_sandbox.errors import SandboxError, no_such
from stripe_sandbox.forms import Params
from stripe_sandbox.store import (
    TRIAL_WILL_END_BEFORE,
    Obj,
    Store,
    add_months,
    locked,
    new_id,
    period_end,
    public,
    url_param,
)


def current_period(sub: Obj) -> tuple[int, int]:
    """The subscription's current period (start, end), as its items hold it."""
    item = sub["items"]["data"][0]
    return item["current_period_start"], item["current_period_end"]


def _plan(price: Obj) -> Obj:
    """The legacy `plan` view of a recurring price, which subscription items still carry."""
    recurring = price["recurring"]
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring["interval"],
        "interval_count": recurring["interval_count"],
        "livemode": False,
        "metadata": {},
        "meter": None,
        "nickname": None,
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": recurring["usage_type"],
    }


class BillingRules(Store):
    # ---- subscriptions ----------------------------------------------------------------------

    def _complete_subscription(self, session: Obj, customer: Obj, pm: Obj | None, pending: bool) -> None:
        now = self.now()
        items = session["_items"]
        recurring = items[0]["price"]["recurring"]
        trial_end = self._trial_end_for(session)
        anchor = trial_end or now
        end = trial_end or period_end(anchor, recurring["interval"], recurring["interval_count"], 1)
        coupon = self.objects[session["_coupon"]] if session["_coupon"] else None
        sub_id = new_id("sub_")
        sub = self._new(
            "subscription",
            "sub_",
            session["_account"],
            {
                "application": None,
                "application_fee_percent": session["_fee_percent"],
                "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
                "billing_cycle_anchor": anchor,
                "billing_cycle_anchor_config": None,
                "billing_mode": {"flexible": {"proration_discounts": "itemized"}, "type": "flexible", "updated_at": now},
                "billing_schedules": [],
                "billing_thresholds": None,
                "cancel_at": None,
                "cancel_at_period_end": False,
                "canceled_at": None,
                "cancellation_details": {"comment": None, "feedback": None, "feedback_option": None, "reason": None},
                "collection_method": "charge_automatically",
                "currency": session["currency"],
                "customer": customer["id"],
                "customer_account": None,
                "days_until_due": None,
                "default_payment_method": pm["id"] if pm else None,
                "default_source": None,
                "default_tax_rates": [],
                "description": session["_sub_description"],
                "discounts": [new_id("di_")] if coupon else [],
                "ended_at": None,
                "invoice_settings": {
                    "account_tax_ids": None,
                    "custom_fields": None,
                    "description": None,
                    "footer": None,
                    "issuer": {"type": "self"},
                },
                "items": {
                    "object": "list",
                    "data": [self._subscription_item(sub_id, item, now, end) for item in items],
                    "has_more": False,
                    "url": f"/v1/subscription_items?subscription={sub_id}",
                },
                "latest_invoice": None,
                "livemode": False,
                "managed_payments": None,
                "metadata": dict(session["_sub_metadata"]),
                "next_pending_invoice_item_invoice": None,
                "on_behalf_of": None,
                "pause_collection": None,
                "payment_settings": {
                    "payment_method_options": None,
                    "payment_method_types": None,
                    "save_default_payment_method": "off",
                },
                "pending_invoice_item_interval": None,
                "pending_setup_intent": None,
                "pending_update": None,
                "schedule": None,
                "start_date": now,
                "status": "trialing" if trial_end else ("incomplete" if pending else "active"),
                "test_clock": None,
                "transfer_data": None,
                "trial_end": trial_end,
                "trial_settings": {
                    "end_behavior": {"billing_cycle_anchor": None, "missing_payment_method": session["_missing_pm"]}
                },
                "trial_start": now if trial_end else None,
                "_names": [item["description"] for item in items],  # product names, for invoice lines
                "_cycles": 0 if trial_end else 1,  # billing cycles since the anchor (the trial end, or now)
                "_coupon": copy.deepcopy(public(coupon)) if coupon else None,
                "_discount_end": (
                    add_months(now, coupon["duration_in_months"])
                    if coupon and coupon["duration"] == "repeating"
                    else None
                ),
                "_coupon_used": False,
                "_trial_will_end_sent": False,
            },
            object_id=sub_id,
        )
        session["subscription"] = sub["id"]
        self._emit("customer.subscription.created", sub)
        if trial_end and trial_end - TRIAL_WILL_END_BEFORE <= now:
            self._trial_will_end(sub)
        invoice = self._new_invoice(sub, "subscription_create", now, end, trial=bool(trial_end))
        session["invoice"] = invoice["id"]  # a subscription-mode session names its first invoice
        if invoice["amount_due"] == 0:
            self._mark_paid(invoice, None)
            session["payment_status"] = "no_payment_required"
        elif pending:
            pi = self._invoice_intent(invoice, sub)
            charge = self._new_charge(pi, pm, status="pending")
            pi.update(status="processing", payment_method=pm["id"] if pm else None, latest_charge=charge["id"])
            invoice.update(attempted=True, attempt_count=1)
            session["payment_status"] = "unpaid"
        else:
            self._pay_invoice(invoice, sub)
            session["payment_status"] = "paid"

    def _subscription_item(self, sub_id: str, item: Obj, start: int, end: int) -> Obj:
        price = copy.deepcopy(item["price"])
        return {
            "id": new_id("si_", 14),
            "object": "subscription_item",
            "billing_thresholds": None,
            "created": start,
            "current_period_end": end,
            "current_period_start": start,
            "current_trial": None,
            "discounts": [],
            "metadata": {},
            "plan": _plan(price),
            "price": price,
            "quantity": item["quantity"],
            "subscription": sub_id,
            "tax_rates": [],
        }

    def _trial_will_end(self, sub: Obj) -> None:
        sub["_trial_will_end_sent"] = True
        self._emit("customer.subscription.trial_will_end", sub)

    def retrieve_subscription(self, account: str | None, sub_id: str) -> Obj:
        return public(self._get("subscription", sub_id, account))

    def list_subscriptions(self, account: str | None, p: Params) -> Obj:
        p.only("limit", "starting_after", "ending_before", "customer", "status", "created")
        customer, status = p.str("customer"), p.str("status")

        def match(s: Obj) -> bool:
            if customer and s["customer"] != customer:
                return False
            if status == "all":
                return True
            return s["status"] == status if status else s["status"] not in ("canceled", "incomplete_expired")

        return self._list("subscription", account, p, "/v1/subscriptions", match)

    def update_subscription(self, account: str | None, p: Params, sub_id: str) -> Obj:
        sub = self._get("subscription", sub_id, account)
        p.only(
            "cancel_at_period_end", "metadata", "cancellation_details", "description", ignored=("proration_behavior",)
        )
        ended = sub["status"] in ("canceled", "incomplete_expired")
        if ended and any(k not in ("metadata", "cancellation_details") for k in p.data):
            raise SandboxError("A canceled subscription can only update its cancellation_details and metadata.")
        previous: Obj = {}
        cancel = p.bool("cancel_at_period_end")
        if cancel is not None and cancel != sub["cancel_at_period_end"]:
            previous.update(
                cancel_at_period_end=sub["cancel_at_period_end"],
                cancel_at=sub["cancel_at"],
                canceled_at=sub["canceled_at"],
            )
            sub.update(
                cancel_at_period_end=cancel,
                cancel_at=current_period(sub)[1] if cancel else None,
                canceled_at=self.now() if cancel else None,
            )
            sub["cancellation_details"]["reason"] = "cancellation_requested" if cancel else None
        details = p.sub("cancellation_details")
        details.only("comment", "feedback")
        for key in ("comment", "feedback"):
            if key in details:
                sub["cancellation_details"][key] = details.str(key)
        if "description" in p:
            sub["description"] = p.str("description")
        if "metadata" in p:
            previous["metadata"] = dict(sub["metadata"])
            self._update_metadata(sub, p.metadata())
        self._emit("customer.subscription.updated", sub, previous=previous)
        return public(sub)

    def cancel_subscription(self, account: str | None, p: Params, sub_id: str) -> Obj:
        sub = self._get("subscription", sub_id, account)
        p.only("cancellation_details", "invoice_now", "prorate")
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise SandboxError(f"The subscription {sub_id} is already canceled.", code="resource_missing")
        details = p.sub("cancellation_details")
        details.only("comment", "feedback")
        for key in ("comment", "feedback"):
            if key in details:
                sub["cancellation_details"][key] = details.str(key)
        self._end(sub, "cancellation_requested")
        return public(sub)

    def _end(self, sub: Obj, reason: str | None) -> None:
        now = self.now()
        previous = {"status": sub["status"]}
        sub.update(status="canceled", ended_at=now, canceled_at=sub["canceled_at"] or now, cancel_at=None)
        sub["cancellation_details"]["reason"] = reason
        self._emit("customer.subscription.deleted", sub, previous=previous)

    def create_portal_session(self, account: str | None, p: Params) -> Obj:
        p.only("customer", "return_url", "configuration", "locale", "flow_data", "on_behalf_of")
        customer = self._get("customer", p.str("customer", required=True) or "", account, param="customer", status=400)
        portal_id = new_id("bps_")
        return public(
            self._new(
                "billing_portal.session",
                "bps_",
                account,
                {
                    "configuration": "bpc_sandbox",
                    "customer": customer["id"],
                    "customer_account": None,
                    "flow": None,
                    "locale": p.str("locale"),
                    "on_behalf_of": None,
                    "return_url": url_param(p, "return_url"),
                    "url": f"{self.base_url}/p/session/{portal_id}",
                },
                object_id=portal_id,
            )
        )

    @locked
    def portal_view(self, portal_id: str) -> Obj:
        portal = self._any("billing_portal.session", portal_id)
        customer = self.objects[portal["customer"]]
        subscriptions = [
            public(self.objects[s])
            for s in self.index.get("subscription", [])
            if self.objects[s]["customer"] == customer["id"]
        ]
        pm_id = customer["invoice_settings"]["default_payment_method"]
        card = self.objects[pm_id].get("card") if pm_id else None
        return {
            "session": public(portal),
            "customer": public(customer),
            "subscriptions": subscriptions,
            "card": card,
            "card_declines": customer["_card_declines"],
        }

    @locked
    def portal_cancel(self, portal_id: str, sub_id: str) -> None:
        """The portal's "Cancel" button: cancels at the end of the period, as Stripe's portal does by default."""
        portal = self._any("billing_portal.session", portal_id)
        sub = self._get("subscription", sub_id, portal["_account"])
        if sub["customer"] != portal["customer"]:
            raise no_such("subscription", sub_id)
        self.update_subscription(portal["_account"], Params({"cancel_at_period_end": "true"}), sub_id)

    # ---- the test clock ----------------------------------------------------------------------

    @locked
    def advance_clock(self, seconds: int) -> int:
        """Moves sandbox time forward, running everything that falls due on the way, in time order."""
        if seconds < 0:
            raise SandboxError("The sandbox clock only moves forward.", param="seconds")
        target = self.now() + seconds
        try:
            while (due := self._next_due(target)) is not None:
                self._pinned = due[0]
                due[3]()
        finally:
            self._pinned = None
        self.offset += target - self.now()
        return self.now()

    def _next_due(self, target: int) -> tuple[int, int, int, Callable[[], None]] | None:
        """The earliest (time, priority, seq, action) due at or before `target`."""
        candidates: list[tuple[int, int, int, Callable[[], None]]] = []
        for sub_id in self.index.get("subscription", []):
            sub = self.objects[sub_id]
            seq = sub["_seq"]
            if sub["status"] == "trialing":
                if not sub["_trial_will_end_sent"]:
                    candidates.append(
                        (sub["trial_end"] - TRIAL_WILL_END_BEFORE, 1, seq, lambda sub=sub: self._trial_will_end(sub))
                    )
                candidates.append((sub["trial_end"], 3, seq, lambda sub=sub: self._period_ends(sub)))
            elif sub["status"] in ("active", "past_due"):
                candidates.append((current_period(sub)[1], 3, seq, lambda sub=sub: self._period_ends(sub)))
            if sub["status"] == "past_due":
                for invoice in self._open_invoices(sub):
                    if invoice["next_payment_attempt"] is not None:
                        candidates.append(
                            (
                                invoice["next_payment_attempt"],
                                2,
                                invoice["_seq"],
                                lambda sub=sub, invoice=invoice: self._retry(sub, invoice),
                            )
                        )
        due = [c for c in candidates if c[0] <= target]
        return min(due, key=lambda c: c[:3]) if due else None

    def _open_invoices(self, sub: Obj) -> list[Obj]:
        return [
            self.objects[i]
            for i in self.index.get("invoice", [])
            if self.objects[i]["_subscription"] == sub["id"] and self.objects[i]["status"] == "open"
        ]

    def _period_ends(self, sub: Obj) -> None:
        """A period (or the trial) is over: end the subscription, or invoice the next period and try to pay it."""
        if sub["cancel_at_period_end"]:
            self._end(sub, "cancellation_requested")
            return
        customer = self.objects[sub["customer"]]
        has_pm = bool(sub["default_payment_method"] or customer["invoice_settings"]["default_payment_method"])
        if sub["status"] == "trialing" and not has_pm:
            behaviour = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
            if behaviour == "cancel":
                self._end(sub, None)
                return
            if behaviour == "pause":
                previous = {"status": sub["status"]}
                sub["status"] = "paused"
                self._emit("customer.subscription.paused", sub)
                self._emit("customer.subscription.updated", sub, previous=previous)
                return
        previous = {"status": sub["status"], "items": copy.deepcopy(sub["items"])}
        recurring = sub["items"]["data"][0]["price"]["recurring"]
        previous_start, start = current_period(sub)
        sub["_cycles"] += 1
        end = period_end(
            sub["billing_cycle_anchor"], recurring["interval"], recurring["interval_count"], sub["_cycles"]
        )
        for item in sub["items"]["data"]:
            item.update(current_period_start=start, current_period_end=end)
        invoice = self._new_invoice(sub, "subscription_cycle", start, end, previous_start=previous_start)
        paid = invoice["amount_due"] == 0
        if paid:
            self._mark_paid(invoice, None)
        else:
            paid = self._pay_invoice(invoice, sub)
        sub["status"] = "active" if paid and not self._open_invoices(sub) else "past_due"
        self._emit("customer.subscription.updated", sub, previous=previous)

    def _retry(self, sub: Obj, invoice: Obj) -> None:
        if self._pay_invoice(invoice, sub):
            if not self._open_invoices(sub):
                sub["status"] = "active"
                self._emit("customer.subscription.updated", sub, previous={"status": "past_due"})
            return
        if invoice["next_payment_attempt"] is None:  # that was the last retry
            self._end(sub, "payment_failed")

"""Connected accounts and onboarding links, customers and their payment methods, coupons."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from stripe_sandbox.errors import SandboxError, no_such
from stripe_sandbox.forms import Params
from stripe_sandbox.store import (
    Obj,
    Store,
    locked,
    new_id,
    public,
    url_param,
)

BUSINESS_PROFILE_STRINGS = (
    "mcc",
    "name",
    "specified_commercial_transactions_act_url",
    "support_email",
    "support_phone",
    "support_url",
    "url",
)
ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


def _requirements(due: list[str], disabled_reason: str | None, pending: list[str] | None = None) -> Obj:
    """An account's `requirements`: what is due now (past due when that disables the account) and
    what Stripe is still verifying."""
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": disabled_reason,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due) if disabled_reason == "requirements.past_due" else [],
        "pending_verification": list(pending or []),
    }


class AccountRules(Store):
    # ---- accounts and onboarding ------------------------------------------------------------

    def check_account_header(self, account: str) -> None:
        if self._find("account", account, None) is None:
            raise SandboxError(
                f"The provided key does not have access to account '{account}' (or that account does not exist). "
                "Application access may have been revoked.",
                status=403,
                code="account_invalid",
            )

    def create_account(self, account: str | None, p: Params) -> Obj:
        if account:
            raise SandboxError("Connected accounts cannot create other connected accounts.", status=400)
        p.only(
            "type",
            "email",
            "country",
            "capabilities",
            "business_type",
            "metadata",
            "controller",
            "business_profile",
            "default_currency",
            ignored=("tos_acceptance", "settings", "individual", "company"),
        )
        account_type = p.enum("type", ("express", "standard", "custom"))
        if account_type is None:
            dashboard = p.sub("controller").sub("stripe_dashboard").str("type")
            if dashboard is None and "controller" not in p:
                raise p.missing("type")
            account_type = {"express": "express", "full": "standard"}.get(dashboard or "", "custom")
        capabilities = {name: "inactive" for name in (p.data.get("capabilities") or {})}
        country = (p.str("country") or "US").upper()
        return public(
            self._new(
                "account",
                "acct_",
                None,
                {
                    "type": account_type,
                    "email": p.str("email"),
                    "country": country,
                    "default_currency": (
                        p.str("default_currency") or ("eur" if country in ("DE", "FR", "NL", "IE") else "usd")
                    ),
                    "business_type": p.str("business_type"),
                    "business_profile": self._business_profile({}, p),
                    "capabilities": capabilities,
                    "charges_enabled": False,
                    "payouts_enabled": False,
                    "details_submitted": False,
                    "requirements": _requirements(["external_account", "tos_acceptance.date"], "requirements.past_due"),
                    "metadata": p.metadata() or {},
                },
                object_id=new_id("acct_", 16),
                livemode=False,  # an Account has no livemode field
            )
        )

    @staticmethod
    def _business_profile(current: Obj, p: Params) -> Obj:
        """Stripe's business_profile: every field present (null when unknown), updated from the params."""
        given = p.sub("business_profile")
        given.only(*BUSINESS_PROFILE_STRINGS, "support_address", "product_description", "estimated_worker_count")
        profile: Obj = {key: None for key in BUSINESS_PROFILE_STRINGS}
        profile.update(minority_owned_business_designation=None, support_address=None)
        profile.update(current)
        for key in (*BUSINESS_PROFILE_STRINGS, "product_description"):
            if key in given:
                profile[key] = given.str(key)
        if "estimated_worker_count" in given:
            profile["estimated_worker_count"] = given.int("estimated_worker_count", minimum=0)
        if "support_address" in given:
            address = given.sub("support_address")
            address.only(*ADDRESS_FIELDS)
            profile["support_address"] = {key: address.str(key) for key in ADDRESS_FIELDS}
        return profile

    def _account_for(self, header: str | None, account_id: str) -> Obj:
        if header not in (None, account_id):
            raise no_such("account", account_id)
        return self._get("account", account_id, None)

    def retrieve_account(self, header: str | None, account_id: str) -> Obj:
        return public(self._account_for(header, account_id))

    def update_account(self, header: str | None, p: Params, account_id: str) -> Obj:
        acct = self._account_for(header, account_id)
        p.only("metadata", "email", "business_profile", "default_currency")
        self._update_metadata(acct, p.metadata())
        if "email" in p:
            acct["email"] = p.str("email")
        if "business_profile" in p:
            acct["business_profile"] = self._business_profile(acct["business_profile"], p)
        self._emit("account.updated", acct, account=acct["id"])
        return public(acct)

    def list_accounts(self, header: str | None, p: Params) -> Obj:
        p.only("limit", "starting_after", "ending_before", "created")
        return self._list("account", None, p, "/v1/accounts", lambda a: True)

    def delete_account(self, header: str | None, account_id: str) -> Obj:
        acct = self._account_for(header, account_id)
        acct["_deleted"] = True
        return {"id": acct["id"], "object": "account", "deleted": True}

    def create_account_link(self, header: str | None, p: Params) -> Obj:
        p.only("account", "refresh_url", "return_url", "type", "collect", "collection_options")
        account_id = p.str("account", required=True)
        acct = self._find("account", account_id, None)
        if acct is None or header not in (None, account_id):
            raise no_such("account", account_id or "", "account")
        link_type = p.enum("type", ("account_onboarding", "account_update"), required=True)
        refresh_url, return_url = url_param(p, "refresh_url", required=True), url_param(p, "return_url", required=True)
        token = secrets.token_urlsafe(18)
        created = self.wall()  # account links live on the wall clock (test clocks move billing only)
        self.links[token] = {
            "account": acct["id"],
            "type": link_type,
            "refresh_url": refresh_url,
            "return_url": return_url,
            "expires_at": created + 300,
            "used": False,
        }
        return {
            "object": "account_link",
            "created": created,
            "expires_at": created + 300,
            "url": f"{self.base_url}/setup/{token}",
        }

    @locked
    def link(self, token: str) -> Obj | None:
        """An account link that can still be used, else None (the page then sends the user to refresh_url)."""
        found = self.links.get(token)
        return dict(found) if found else None

    @locked
    def use_link(self, token: str, complete: bool) -> str:
        """The onboarding page's buttons: completes onboarding or leaves; returns where to send the user."""
        found = self.links[token]
        if found["used"] or found["expires_at"] < self.wall():
            return found["refresh_url"]
        found["used"] = True
        if not complete:
            return found["refresh_url"]
        self.complete_onboarding(found["account"])
        return found["return_url"]

    @locked
    def complete_onboarding(self, account_id: str, charges_enabled: bool = True) -> Obj:
        acct = self._get("account", account_id, None)
        previous = {k: acct[k] for k in ("charges_enabled", "payouts_enabled", "details_submitted")}
        acct.update(charges_enabled=charges_enabled, payouts_enabled=charges_enabled, details_submitted=True)
        acct["capabilities"] = {
            name: "active" if charges_enabled else "inactive"
            for name in (acct["capabilities"] or {"card_payments": "", "transfers": ""})
        }
        acct["requirements"] = (
            _requirements([], None)
            if charges_enabled
            else _requirements([], "requirements.pending_verification", ["individual.verification.document"])
        )
        self._emit("account.updated", acct, account=acct["id"], previous=previous)
        return public(acct)

    # ---- customers, payment methods, coupons --------------------------------------------------

    def create_customer(self, account: str | None, p: Params) -> Obj:
        p.only(
            "email", "name", "metadata", "description", "phone", ignored=("address", "preferred_locales", "tax_exempt")
        )
        return public(
            self._customer(
                account,
                p.str("email", max_length=512),
                p.str("name", max_length=256),
                p.metadata() or {},
                description=p.str("description"),
                phone=p.str("phone"),
            )
        )

    def _customer(
        self, account: str | None, email: str | None, name: str | None, metadata: dict[str, str], **extra: Any
    ) -> Obj:
        customer = self._new(
            "customer",
            "cus_",
            account,
            {
                "email": email,
                "name": name,
                "description": extra.get("description"),
                "phone": extra.get("phone"),
                "address": None,
                "balance": 0,
                "currency": None,
                "delinquent": False,
                "default_source": None,
                "invoice_prefix": new_id("", 8).upper(),
                "invoice_settings": {
                    "custom_fields": None,
                    "default_payment_method": None,
                    "footer": None,
                    "rendering_options": None,
                },
                "metadata": metadata,
                "next_invoice_sequence": 1,
                "preferred_locales": [],
                "shipping": None,
                "tax_exempt": "none",
                "test_clock": None,
                "_card_declines": False,
            },
            object_id=new_id("cus_", 14),
        )
        self._emit("customer.created", customer)
        return customer

    def retrieve_customer(self, account: str | None, customer_id: str) -> Obj:
        return public(self._get("customer", customer_id, account))

    def update_customer(self, account: str | None, p: Params, customer_id: str) -> Obj:
        customer = self._get("customer", customer_id, account)
        p.only("email", "name", "metadata", "description", "phone")
        previous: Obj = {}
        for field in ("email", "name", "description", "phone"):
            if field in p:
                previous[field] = customer[field]
                customer[field] = p.str(field)
        self._update_metadata(customer, p.metadata())
        self._emit("customer.updated", customer, previous=previous)
        return public(customer)

    def list_customers(self, account: str | None, p: Params) -> Obj:
        p.only("limit", "starting_after", "ending_before", "email", "created")
        email = p.str("email")
        return self._list("customer", account, p, "/v1/customers", lambda c: email is None or c["email"] == email)

    def _payment_method(
        self, customer: Obj, *, kind: str = "card", last4: str = "4242", name: str | None = None
    ) -> Obj:
        details: Obj
        if kind == "card":
            details = {
                "card": {
                    "brand": "visa",
                    "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                    "country": "US",
                    "display_brand": "visa",
                    "exp_month": 12,
                    "exp_year": dt.date.today().year + 3,
                    "fingerprint": f"fp{last4}sandbox",
                    "funding": "credit",
                    "generated_from": None,
                    "last4": last4,
                    "networks": {"available": ["visa"], "preferred": None},
                    "regulated_status": "unregulated",
                    "three_d_secure_usage": {"supported": True},
                    "wallet": None,
                }
            }
        else:
            details = {
                kind: {
                    "account_holder_type": "individual",
                    "account_type": "checking",
                    "bank_name": "STRIPE TEST BANK",
                    "financial_connections_account": None,
                    "fingerprint": "fp6789sandbox",
                    "last4": "6789",
                    "networks": {"preferred": "ach", "supported": ["ach"]},
                    "routing_number": "110000000",
                    "status_details": {},
                }
            }
        return self._new(
            "payment_method",
            "pm_",
            customer["_account"],
            {
                "type": kind,
                **details,
                "allow_redisplay": "unspecified",
                "customer": customer["id"],
                "customer_account": None,
                "billing_details": {
                    "address": None,
                    "email": customer["email"],
                    "name": name or customer["name"],
                    "phone": None,
                    "tax_id": None,
                },
                "metadata": {},
            },
        )

    def retrieve_payment_method(self, account: str | None, pm_id: str) -> Obj:
        return public(self._get("payment_method", pm_id, account))

    @locked
    def set_card_declines(self, customer_id: str, declines: bool) -> Obj:
        """The customer's card on file declines (or works) from now on; gives a card-less customer a card."""
        customer = self._any("customer", customer_id)
        customer["_card_declines"] = declines
        if customer["invoice_settings"]["default_payment_method"] is None:
            pm = self._payment_method(customer, last4="0341" if declines else "4242")
            customer["invoice_settings"]["default_payment_method"] = pm["id"]
            self._emit("customer.updated", customer, previous={"invoice_settings": {"default_payment_method": None}})
        return public(customer)

    def create_coupon(self, account: str | None, p: Params) -> Obj:
        p.only(
            "id",
            "percent_off",
            "amount_off",
            "currency",
            "duration",
            "duration_in_months",
            "max_redemptions",
            "name",
            "metadata",
            "redeem_by",
            ignored=("applies_to", "currency_options"),
        )
        coupon_id = p.str("id", max_length=200)
        if coupon_id and self._find("coupon", coupon_id, account):
            raise SandboxError("Coupon already exists.", param="id", code="resource_already_exists")
        percent_off, amount_off = p.decimal("percent_off"), p.int("amount_off", minimum=1)
        if (percent_off is None) == (amount_off is None):
            raise SandboxError("You must pass exactly one of percent_off or amount_off.", param="percent_off")
        if percent_off is not None and not 0 < percent_off <= 100:
            raise SandboxError("percent_off must be greater than 0 and at most 100.", param="percent_off")
        currency = p.str("currency")
        if amount_off is not None and not currency:
            raise p.missing("currency")
        duration = p.enum("duration", ("once", "repeating", "forever"), default="once")
        months = p.int("duration_in_months", minimum=1, maximum=120)
        if duration == "repeating" and months is None:
            raise p.missing("duration_in_months")
        if duration != "repeating" and months is not None:
            raise SandboxError(
                "duration_in_months is only allowed with duration=repeating.", param="duration_in_months"
            )
        coupon = self._new(
            "coupon",
            "",
            account,
            {
                "amount_off": amount_off,
                "currency": currency.lower() if currency and amount_off is not None else None,
                "duration": duration,
                "duration_in_months": months,
                "max_redemptions": p.int("max_redemptions", minimum=1),
                "metadata": p.metadata() or {},
                "name": p.str("name", max_length=40),
                "percent_off": int(percent_off)
                if percent_off is not None and percent_off == int(percent_off)
                else percent_off,
                "redeem_by": p.int("redeem_by"),
                "times_redeemed": 0,
                "valid": True,
            },
            object_id=coupon_id or new_id("", 8).upper(),
        )
        self._emit("coupon.created", coupon)
        return public(coupon)

    def retrieve_coupon(self, account: str | None, coupon_id: str) -> Obj:
        coupon = self._get("coupon", coupon_id, account)
        self._refresh_coupon(coupon)
        return public(coupon)

    def delete_coupon(self, account: str | None, coupon_id: str) -> Obj:
        coupon = self._get("coupon", coupon_id, account)
        coupon["_deleted"] = True
        self._emit("coupon.deleted", coupon)
        return {"id": coupon["id"], "object": "coupon", "deleted": True}

    def list_coupons(self, account: str | None, p: Params) -> Obj:
        p.only("limit", "starting_after", "ending_before", "created")
        return self._list("coupon", account, p, "/v1/coupons", lambda c: True)

    def _refresh_coupon(self, coupon: Obj) -> None:
        used_up = coupon["max_redemptions"] is not None and coupon["times_redeemed"] >= coupon["max_redemptions"]
        expired = coupon["redeem_by"] is not None and coupon["redeem_by"] <= self.now()
        coupon["valid"] = not (used_up or expired)

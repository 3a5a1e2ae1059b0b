"""The fields of Stripe's objects that the sandbox does not model, as Stripe sends them when the
feature behind them is not in use (API version 2026-10-28).

Stripe always sends every non-optional field of an object, most of them null or empty for a
simple integration; clients (and Stripe's published types) rely on their presence. Kept here,
apart from the rules, so that checkout.py and billing.py say only what the sandbox decides.
tests/test_stripe_conformance.py checks every object against the published types.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

Obj = dict[str, Any]

# A Connect platform's own application id: what `application` shows on a connected account's
# objects that the platform created (the sandbox has one platform).
PLATFORM_APPLICATION = "ca_sandbox"


def checkout_session_defaults(mode: str, *, customer_given: bool, locale: str | None) -> Obj:
    payment = mode == "payment"
    return {
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "allowed_payment_method_types": None,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "client_secret": None,  # only embedded and custom UI modes have one
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer_account": None,
        # the sandbox makes a Customer for every buyer (Stripe's "always")
        "customer_creation": None if customer_given else "always",
        "integration_identifier": None,
        "invoice_creation": {
            "enabled": False,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        }
        if payment
        else None,
        "locale": locale,
        "managed_payments": None,
        "origin_context": None,
        "payment_link": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "permissions": None,
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "submit_type": None,
        "ui_mode": "hosted",
        "wallet_options": None,
    }


def customer_details(email: str, name: str) -> Obj:
    """A completed session's customer_details (what the buyer typed on the hosted page)."""
    return {
        "address": None,
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def collected_information() -> Obj:
    return {"business_name": None, "individual_name": None, "shipping_details": None}


def price(price_id: str, product_id: str, currency: str, unit_amount: int, recurring: Obj | None, created: int) -> Obj:
    """An inline price (`price_data`): inactive, as Stripe makes them."""
    return {
        "id": price_id,
        "object": "price",
        "active": False,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product_id,
        "recurring": None if recurring is None else {**recurring, "meter": None, "trial_period_days": None},
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def payment_intent_defaults(account: str | None) -> Obj:
    return {
        "allowed_payment_method_types": None,
        "application": PLATFORM_APPLICATION if account else None,
        "automatic_payment_methods": None,
        "customer_account": None,
        "excluded_payment_method_types": None,
        "managed_payments": None,
        "on_behalf_of": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_record": None,
        "processing": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "transfer_group": None,
    }


def charge_defaults(account: str | None) -> Obj:
    return {
        "application": PLATFORM_APPLICATION if account else None,
        "application_fee": None,
        "calculated_statement_descriptor": "SANDBOX",
        "failure_balance_transaction": None,
        "fraud_details": {},
        "on_behalf_of": None,
        "receipt_number": None,
        "receipt_url": None,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "transfer_data": None,
        "transfer_group": None,
    }


def outcome(status: str, *, reason: str | None = None, seller_message: str | None = None) -> Obj:
    """A charge's `outcome`: authorized, or declined by the issuer (reason: Stripe's decline code)."""
    declined = status == "failed"
    return {
        "advice_code": "try_again_later" if declined else None,
        "network_advice_code": None,
        "network_decline_code": "05" if declined else None,
        "network_status": "declined_by_network" if declined else "approved_by_network",
        "reason": (reason or "generic_decline") if declined else None,
        "risk_level": "normal",
        "seller_message": seller_message
        or (
            "The bank did not return any further details with this decline." if declined else "Payment complete."
        ),
        "type": "issuer_declined" if declined else "authorized",
    }


def card_details(last4: str, amount: int | None, *, succeeded: bool) -> Obj:
    """`payment_method_details.card` of a charge (amount: what was authorized)."""
    return {
        "amount_authorized": amount if succeeded else None,
        "authorization_code": "123456" if succeeded else None,
        "brand": "visa",
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "country": "US",
        "electronic_commerce_indicator": None,
        "exp_month": 12,
        "exp_year": dt.date.today().year + 3,
        "fingerprint": f"fp{last4}sandbox",
        "funding": "credit",
        "installments": None,
        "last4": last4,
        "mandate": None,
        "network": "visa",
        "network_transaction_id": "sandbox" + last4 if succeeded else None,
        "regulated_status": "unregulated",
        "three_d_secure": None,
        "transaction_link_id": None,
        "wallet": None,
    }


def bank_details(method: Obj) -> Obj:
    """`payment_method_details.us_bank_account` of a charge, from the payment method's."""
    return {
        "account_holder_type": method["account_holder_type"],
        "account_type": method["account_type"],
        "bank_name": method["bank_name"],
        "fingerprint": method["fingerprint"],
        "last4": method["last4"],
        "payment_reference": None,
        "routing_number": method["routing_number"],
    }

"""The offer editor's forms: an offer's fields as a page shows them (major units, percents) and
a posted section back as the API's fields (minor units, basis points).

Nothing here decides what an offer may be: the values go through the API's input struct and
the same service function as the API, which says what is wrong. What the page adds is how
people type things: an amount in major units of the offer's currency (money.parse_amount), a
percent, and which inputs belong to the pricing model or option chosen (inputs of the models
not chosen are ignored, as the page says).
"""

from __future__ import annotations

from typing import Any

from community.errors import Invalid
from community.forms import Posted
from community.money import (
    MINIMUM_CHARGE,
    decimal_amount,
    format_amount,
    parse_amount,
    parse_percent,
    percent_text,
    validate_currency,
)
from community.offers.models import Destination, Offer, Pricing

PRICING_CHOICES = [
    ("free", "Free"),
    ("one_time", "One-time payment"),
    ("recurring", "Recurring (subscription)"),
]
INTERVAL_CHOICES = [("1", "Monthly"), ("3", "Every 3 months"), ("6", "Every 6 months"), ("12", "Every 12 months")]
INTERVAL_WORDS = {1: "month", 3: "3 months", 6: "6 months", 12: "year"}
ACCESS_CHOICES = [("lifetime", "Lifetime access"), ("days", "A pass: access for a number of days")]
COMMISSION_CHOICES = [("percent", "A percent of each payment"), ("amount", "A fixed amount per payment")]
EARNS_CHOICES = [
    ("first", "The first payment only"),
    ("all", "Every payment, renewals included"),
    ("months", "The payments of the first months of a subscription"),
]


# ---------------------------------------------------------------- shown


def minimum_charge(currency: str) -> str | None:
    """Stripe's smallest charge in this currency, as shown next to a price."""
    minimum = MINIMUM_CHARGE.get(currency.upper())
    return format_amount(minimum, currency) if minimum is not None else None


def price_label(offer: Offer) -> str:
    """"Free", "49.00 USD", "15.00 USD / month"."""
    if offer.pricing is Pricing.free:
        return "Free"
    price = format_amount(offer.amount, offer.currency)
    if offer.pricing is Pricing.recurring and offer.interval_months:
        return f"{price} / {INTERVAL_WORDS.get(offer.interval_months, f'{offer.interval_months} months')}"
    return price


def access_label(offer: Offer) -> str | None:
    if offer.pricing is Pricing.one_time:
        return f"{offer.access_days}-day pass" if offer.access_days else "lifetime access"
    if offer.pricing is Pricing.recurring and offer.trial_days:
        return f"{offer.trial_days}-day free trial"
    return None


def _major(amount: int | None, currency: str) -> str:
    return "" if amount is None else decimal_amount(amount, currency)


def _checkbox(name: str, flag: bool) -> dict[str, str]:
    return {name: "on"} if flag else {}


def main_form(offer: Offer) -> Posted:
    paid = offer.pricing is not Pricing.free
    return Posted({
        "title": offer.title,
        "slug": offer.slug,
        "description": offer.description,
        "pricing": offer.pricing.value,
        "currency": offer.currency,
        "amount": _major(offer.amount, offer.currency) if paid else "",
        "old_amount": _major(offer.old_amount, offer.currency),
        "interval_months": str(offer.interval_months or 1),
        "trial_days": str(offer.trial_days or 0),
        **_checkbox("trial_requires_card", offer.trial_requires_card),
        "access": "days" if offer.access_days else "lifetime",
        "access_days": str(offer.access_days or ""),
    })


def email_form(offer: Offer) -> Posted:
    return Posted({"confirmation_subject": offer.confirmation_subject, "confirmation_body": offer.confirmation_body})


def destination_form(offer: Offer) -> Posted:
    return Posted({
        **_checkbox("custom_link", offer.destination is Destination.custom_url),
        "destination_url": offer.destination_url or "",
    })


def resell_form(offer: Offer) -> Posted:
    flat = offer.resell_commission_flat
    return Posted({
        **_checkbox("resell_enabled", offer.resell_enabled),
        "commission_kind": "amount" if flat is not None else "percent",
        "resell_commission_bps": percent_text(offer.resell_commission_bps) if offer.resell_commission_bps else "",
        "resell_commission_flat": _major(flat, offer.currency),
        "resell_earns": offer.resell_earns,
        "resell_earn_months": str(offer.resell_earn_months or ""),
        "resell_window_days": str(offer.resell_window_days),
        "resell_hold_days": str(offer.resell_hold_days),
        "resell_min_payout": _major(offer.resell_min_payout, offer.currency),
        "resell_description": offer.resell_description,
    })


def code_form(offer: Offer) -> Posted:
    return Posted({"checkout_code_head": offer.checkout_code_head, "checkout_code_body": offer.checkout_code_body})


LANDING_FIELDS = ("headline", "body", "call_to_action")


def landing_form(offer: Offer) -> Posted:
    page = offer.landing_page or {}
    return Posted({
        **_checkbox("landing_page.enabled", page.get("enabled", True)),
        **{f"landing_page.{name}": page.get(name, "") for name in LANDING_FIELDS},
    })


# ---------------------------------------------------------------- posted


def _whole_number(form: Posted, name: str) -> str | None:
    """A count typed in a box: None when left blank; the API's struct reads and bounds it."""
    return form.optional(name)


def _required_number(form: Posted, name: str, what: str) -> str:
    value = form.optional(name)
    if value is None:
        raise Invalid(f"enter {what}", field=name)
    return value


def new_fields(form: Posted, default_currency: str) -> dict[str, Any]:
    """Creating an offer: a title, a pricing model and, for a paid one, its price."""
    pricing = form.text("pricing")
    values: dict[str, Any] = {"title": form.text("title"), "slug": form.optional("slug"), "pricing": pricing}
    if pricing in (Pricing.one_time, Pricing.recurring):
        values["amount"] = parse_amount(form.text("amount"), default_currency, "amount")
    if pricing == Pricing.recurring:
        values["interval_months"] = form.text("interval_months") or None
    return values


def main_fields(form: Posted) -> dict[str, Any]:
    """Main information: title, description, the pricing model and the price fields of that
    model, amounts read in major units of the currency chosen."""
    pricing = form.text("pricing")
    values: dict[str, Any] = {
        "title": form.text("title"),
        **({"slug": slug} if (slug := form.optional("slug")) else {}),  # blank: the address stays
        "description": form.text("description"),
        "pricing": pricing,
        "currency": form.text("currency"),
    }
    if pricing not in (Pricing.one_time, Pricing.recurring):
        return values  # free (or unknown: the API's struct names the pricing it takes)
    currency = validate_currency(form.text("currency"))
    values["amount"] = parse_amount(form.text("amount"), currency, "amount")
    old = form.optional("old_amount")
    values["old_amount"] = parse_amount(old, currency, "old_amount") if old else None
    if pricing == Pricing.one_time:
        passes = form.text("access") == "days"
        values["access_days"] = _required_number(form, "access_days", "how many days a pass lasts") if passes else None
    else:
        values["interval_months"] = form.text("interval_months") or None
        values["trial_days"] = _whole_number(form, "trial_days")
        values["trial_requires_card"] = form.checked("trial_requires_card")
    return values


def email_fields(form: Posted) -> dict[str, Any]:
    return {"confirmation_subject": form.text("confirmation_subject"), "confirmation_body": form.text("confirmation_body")}


def destination_fields(form: Posted) -> dict[str, Any]:
    """"Redirect users to a custom link" on: the URL (the service checks it); off: logged in
    to the community."""
    if form.checked("custom_link"):
        return {"destination": Destination.custom_url.value, "destination_url": form.optional("destination_url")}
    return {"destination": Destination.platform.value, "destination_url": None}


def resell_fields(form: Posted, currency: str) -> dict[str, Any]:
    """Resell rights: the commission as a percent (basis points for the API) or an amount in
    major units of the offer's currency; which payments earn; window, hold, minimum payout."""
    values: dict[str, Any] = {
        "resell_enabled": form.checked("resell_enabled"),
        "resell_commission_bps": None,
        "resell_commission_flat": None,
        "resell_earns": form.text("resell_earns") or "first",
        "resell_earn_months": None,
        "resell_window_days": _required_number(form, "resell_window_days", "a number of days"),
        "resell_hold_days": _required_number(form, "resell_hold_days", "a number of days"),
        "resell_min_payout": parse_amount(form.text("resell_min_payout") or "0", currency, "resell_min_payout"),
        "resell_description": form.text("resell_description"),
    }
    if form.text("commission_kind") == "amount":
        flat = form.optional("resell_commission_flat")
        if flat is not None:
            values["resell_commission_flat"] = parse_amount(flat, currency, "resell_commission_flat", minimum=1)
    else:
        percent = form.optional("resell_commission_bps")
        if percent is not None:
            values["resell_commission_bps"] = parse_percent(percent, "resell_commission_bps")
    if values["resell_earns"] == "months":
        values["resell_earn_months"] = _whole_number(form, "resell_earn_months")
    return values


def code_fields(form: Posted) -> dict[str, Any]:
    return {"checkout_code_head": form.text("checkout_code_head"), "checkout_code_body": form.text("checkout_code_body")}


def landing_fields(form: Posted) -> dict[str, Any]:
    return {
        "landing_page": {
            "enabled": form.checked("landing_page.enabled"),
            **{name: form.text(f"landing_page.{name}") for name in LANDING_FIELDS},
        }
    }


# ---------------------------------------------------------------- the confirmation email's preview


def sample_variables(offer: Offer, community_name: str, access_url: str) -> dict[str, str]:
    """What a buyer's email would carry, with a made-up buyer."""
    paid = offer.pricing is not Pricing.free and offer.amount
    return {
        "buyer_name": "Alex Sample",
        "buyer_email": "alex@example.com",
        "offer_title": offer.title,
        "amount": format_amount(offer.amount, offer.currency) if paid else "0",
        "community_name": community_name,
        "access_url": access_url,
    }


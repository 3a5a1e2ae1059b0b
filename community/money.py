"""Money is integer minor units plus an ISO 4217 code, everywhere (DESIGN.md section 5)."""

from __future__ import annotations

import re

from community.errors import Invalid

ZERO_DECIMAL = frozenset(["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"])
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])

# Stripe's minimum charge per currency, in minor units.
MINIMUM_CHARGE = {
    "USD": 50, "EUR": 50, "GBP": 30, "AUD": 50, "CAD": 50, "CHF": 50, "NZD": 50, "SGD": 50,
    "BRL": 50, "INR": 50, "JPY": 50, "HKD": 400, "MXN": 1000, "NOK": 300, "SEK": 300,
    "DKK": 250, "PLN": 200, "CZK": 1500, "HUF": 17500, "RON": 200, "THB": 1000, "AED": 200,
    "MYR": 200, "BGN": 100,
}

SUPPORTED_CURRENCIES = frozenset(MINIMUM_CHARGE)


def exponent(currency: str) -> int:
    currency = currency.upper()
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def validate_currency(currency: str, field: str = "currency") -> str:
    code = currency.strip().upper()
    if code not in SUPPORTED_CURRENCIES:
        raise Invalid(
            f"unsupported currency {currency!r}; use one of {', '.join(sorted(SUPPORTED_CURRENCIES))}",
            field=field,
        )
    return code


def check_chargeable(amount: int, currency: str, field: str = "amount") -> None:
    """A paid amount must reach Stripe's minimum charge for its currency."""
    minimum = MINIMUM_CHARGE[validate_currency(currency)]
    if amount < minimum:
        raise Invalid(f"must be at least {format_amount(minimum, currency)} for {currency.upper()}", field=field)


def decimal_amount(amount: int, currency: str) -> str:
    """Minor units as a plain decimal (spreadsheets, display): 1234 USD -> 12.34."""
    places = exponent(currency)
    if places == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**places)
    return f"{sign}{whole}.{fraction:0{places}d}"


def format_amount(amount: int, currency: str) -> str:
    return f"{decimal_amount(amount, currency)} {currency.upper()}"


# Stripe takes at most eight digits of minor units per charge (999,999.99 USD): the API's bound
# for every amount an owner sets.
MAX_AMOUNT = 99_999_999

_DECIMAL = re.compile(r"(\d+)(?:\.(\d*))?|\.(\d+)")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d*)?")


def parse_amount(text: str, currency: str, field: str, *, minimum: int = 0, maximum: int = MAX_AMOUNT) -> int:
    """An amount typed in major units ("12.50", "1,200", "12.50 USD") as integer minor units of
    `currency`, refused (naming `field`) when it is not a plain non-negative number, has more
    decimals than the currency, or lies outside `minimum`..`maximum` (minor units)."""
    code = currency.strip().upper()
    value = text.strip().replace("\u00a0", "").replace(" ", "")
    if code and value.upper().endswith(code):
        value = value[: -len(code)]
    if "," in value:  # thousands separators only: "12,50" must not become 1250
        if not _THOUSANDS.fullmatch(value):
            raise Invalid(f"use a point for decimals, like {decimal_amount(1250, code)}", field=field)
        value = value.replace(",", "")
    if value.startswith("-"):
        raise Invalid("must not be negative", field=field)
    match = _DECIMAL.fullmatch(value)
    if not value or match is None:
        raise Invalid(f"must be an amount in {code}, like {decimal_amount(1250, code)}", field=field)
    whole, fraction = (match.group(1) or "0"), (match.group(2) or match.group(3) or "")
    places = exponent(code)
    if len(fraction.rstrip("0")) > places:
        if places == 0:
            raise Invalid(f"{code} amounts have no decimals", field=field)
        raise Invalid(f"{code} amounts have at most {places} decimals", field=field)
    fraction = fraction.rstrip("0").ljust(places, "0")
    if len(whole.lstrip("0")) > 12:  # far beyond any bound; keeps the arithmetic small
        raise Invalid(f"must be at most {format_amount(maximum, code)}", field=field)
    minor = int(whole) * 10**places + (int(fraction) if fraction else 0)
    if minor > maximum:
        raise Invalid(f"must be at most {format_amount(maximum, code)}", field=field)
    if minor < minimum:
        raise Invalid(f"must be at least {format_amount(minimum, code)}", field=field)
    return minor


def percent_text(bps: int) -> str:
    """Basis points as the percent people read: 1250 -> "12.5", 1000 -> "10"."""
    whole, fraction = divmod(bps, 100)
    return f"{whole}.{fraction:02d}".rstrip("0").rstrip(".") if fraction else str(whole)


def parse_percent(text: str, field: str, *, low: int = 1, high: int = 10_000) -> int:
    """A percent typed on a page ("12.5", "12.5 %") as basis points, between `low` and `high`
    basis points, at most two decimals."""
    value = text.strip().removesuffix("%").strip()
    match = _DECIMAL.fullmatch(value)
    if value.startswith("-"):
        raise Invalid("must not be negative", field=field)
    if not value or match is None:
        raise Invalid("must be a percent, like 20 or 12.5", field=field)
    whole, fraction = (match.group(1) or "0"), (match.group(2) or match.group(3) or "")
    if len(fraction.rstrip("0")) > 2:
        raise Invalid("a percent has at most 2 decimals", field=field)
    if len(whole.lstrip("0")) > 6:
        raise Invalid(f"must be between {percent_text(low)}% and {percent_text(high)}%", field=field)
    bps = int(whole) * 100 + int(fraction.rstrip("0").ljust(2, "0") or 0)
    if not low <= bps <= high:
        raise Invalid(f"must be between {percent_text(low)}% and {percent_text(high)}%", field=field)
    return bps

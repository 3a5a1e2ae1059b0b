"""Money is integer minor units plus an ISO 4217 code, everywhere (DESIGN.md section 5)."""

from __future__ import annotations

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

"""What Stripe knows of currencies, as the sandbox needs it: decimal places, the minimum charge
(stripe.com/docs/currencies), and amounts written as Stripe's messages write them."""

from __future__ import annotations

ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())

# Minor units.
MINIMUM_CHARGE = {
    "USD": 50, "EUR": 50, "GBP": 30, "AUD": 50, "CAD": 50, "CHF": 50, "NZD": 50, "SGD": 50,
    "BRL": 50, "INR": 50, "JPY": 50, "HKD": 400, "MXN": 1000, "NOK": 300, "SEK": 300,
    "DKK": 250, "PLN": 200, "CZK": 1500, "HUF": 17500, "RON": 200, "THB": 1000, "AED": 200,
    "MYR": 200, "BGN": 100,
}  # fmt: skip


def format_amount(amount: int, currency: str) -> str:
    code = currency.upper()
    places = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    if places == 0:
        return f"{amount} {code}"
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**places)
    return f"{sign}{whole}.{fraction:0{places}d} {code}"

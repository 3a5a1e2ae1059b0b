"""Our Stripe calls are type-checked against the SDK's typed params (mypy), so a misspelt
parameter fails CI instead of failing at Stripe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every module that calls the Stripe API.
STRIPE_CALLERS = [
    "community/stripe_client.py",
    "community/checkout/connect.py",
    "community/checkout/service.py",
    "community/billing/refunds.py",
    "community/billing/disputes.py",
    "community/billing/memberships.py",
    "community/billing/subscriptions.py",
    "community/billing/invoices.py",
]
MYPY = [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent", "--no-incremental"]


def _mypy(*paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MYPY, *paths], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_stripe_calls_match_the_sdk_types() -> None:
    result = _mypy(*STRIPE_CALLERS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_catches_a_misspelt_parameter(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "import stripe\n\n"
        "async def f(client: stripe.StripeClient) -> None:\n"
        "    params: stripe.params.checkout.SessionCreateParams = {'mode': 'payment', 'sucess_url': 'https://x'}\n"
        "    await client.v1.checkout.sessions.create_async(params)\n"
    )
    result = _mypy(str(wrong))
    assert result.returncode != 0 and "sucess_url" in result.stdout, result.stdout

"""Every object and event the sandbox produces, checked against Stripe's published types for the
API version the SDK sends (the official `stripe` npm package of that version carries them,
compiled from Stripe's OpenAPI spec), so the sandbox and Stripe cannot drift apart silently.

The scenario (tests/stripe_conformance/scenario.py, scenario_refunds.py) drives the sandbox with
the real SDK until it has produced every kind of object and event its source can produce, every
includable field it knows and every published status of each object (coverage.py says which it
does not model, and why); typecheck.py checks all of it with one run of the TypeScript compiler.
No mismatch may remain but those known.py lists with a reason. npm fetches `stripe` and `typescript` into a cache
outside the repo (toolchain.py) the first time. Without npm or the registry the test is skipped,
saying why, except in CI (`CI` set), where it fails.
"""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import stripe

from stripe_sandbox import StripeSandbox, expand
from stripe_sandbox.state import API_VERSION
from tests.stripe_conformance import coverage, known, scenario, toolchain, typecheck
from tests.stripe_conformance.scenario import Sample
from tests.stripe_conformance.typecheck import Finding

# stripe's HTTPXClient hands httpx a str body as `data=`; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")

# Includable fields (Stripe's API reference: sent only when asked for with expand[], never in
# events) of the objects the sandbox makes. The types show them as optional fields; the check
# also makes sure each of them is one.
INCLUDABLE = {
    "account": ("Stripe.Account", {"external_accounts"}),
    "charge": ("Stripe.Charge", {"refunds"}),
    "checkout.session": ("Stripe.Checkout.Session", {"line_items"}),
    "coupon": ("Stripe.Coupon", {"applies_to", "currency_options"}),
    "customer": (
        "Stripe.Customer",
        {"cash_balance", "invoice_credit_balance", "sources", "subscriptions", "tax", "tax_ids"},
    ),
    "invoice": ("Stripe.Invoice", {"confirmation_secret", "payments"}),
}

@dataclass
class Conformance:
    samples: list[Sample]  # everything the scenario recorded
    findings: list[Finding]  # without the canaries'
    canary_findings: list[Finding]
    state_kinds: set[str]  # the kinds of object the sandbox stored


@pytest.fixture(scope="module")
def types() -> toolchain.Toolchain:
    try:
        return toolchain.ensure()
    except toolchain.Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Stripe's published types could not be fetched, and CI must check them: {exc}")
        pytest.skip(f"Stripe's published types could not be fetched with npm: {exc}")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[StripeSandbox]:
    with StripeSandbox(retry_delays=(0.05,)) as sb:
        yield sb


@pytest.fixture(scope="module")
async def conformance(types: toolchain.Toolchain, sandbox: StripeSandbox) -> AsyncIterator[Conformance]:
    client = stripe.StripeClient(
        sandbox.api_key, base_addresses={"api": sandbox.url, "connect": sandbox.url}, http_client=stripe.HTTPXClient()
    )
    recorded = await scenario.run(sandbox, client)
    canaries = _canaries(recorded.samples)
    everything = [*recorded.samples, *canaries]
    findings = typecheck.check(types, everything, INCLUDABLE) + typecheck.includable_findings(everything, INCLUDABLE)
    is_canary = {s.label for s in canaries}
    yield Conformance(
        samples=recorded.samples,
        findings=[f for f in findings if f.label not in is_canary],
        canary_findings=[f for f in findings if f.label in is_canary],
        state_kinds=set(sandbox.state.index),
    )


def _canaries(samples: list[Sample]) -> list[Sample]:
    """Copies of real samples spoiled on purpose: the check must find exactly what was spoiled."""
    charge = copy.deepcopy(next(s for s in samples if s.label == "GET /v1/charges/{id}").value)
    charge["bogus_field"] = 1
    del charge["amount"]
    charge["currency"] = 5
    charge["refunds"] = {"object": "list", "data": [], "has_more": False, "url": "/v1/refunds"}
    event = copy.deepcopy(next(s for s in samples if s.event_type == "customer.updated").value)
    del event["data"]["object"]["email"]
    event["data"]["previous_attributes"] = {"no_such_field": 1, "invoice_settings": {"default_payment_method": None}}
    unknown = copy.deepcopy(event)
    unknown["type"] = "customer.exploded"
    del unknown["data"]["previous_attributes"]
    # what the sandbox sent before the 2026-10-28 rework (issue 11), each a mismatch the check must see
    expanded = next(s for s in samples if s.label == "GET /v1/invoices/{id}?expand[]=payments.data.payment.payment_intent")
    paid = copy.deepcopy(next(s for s in samples if s.event_type == "invoice.paid").value)
    paid["data"]["object"]["payments"] = copy.deepcopy(expanded.value["payments"])
    subscription = copy.deepcopy(next(s for s in samples if s.label == "GET /v1/subscriptions/{id}").value)
    subscription["current_period_end"] = subscription["items"]["data"][0]["current_period_end"]
    refund = copy.deepcopy(next(s for s in samples if s.label == "GET /v1/refunds/{id}").value)
    refund["livemode"] = False
    through = next(s for s in samples if s.label == "GET /v1/payment_intents/{id}?expand[]=latest_charge.refunds")
    return [
        Sample("canary charge", charge, "Stripe.Charge"),
        Sample("canary event", event, "", event_type="customer.updated"),
        Sample("canary unknown event", unknown, "", event_type="customer.exploded"),
        Sample("canary invoice event", paid, "", event_type="invoice.paid"),
        Sample("canary subscription", subscription, "Stripe.Subscription"),
        Sample("canary refund", refund, "Stripe.Refund"),
        Sample("canary unasked", copy.deepcopy(through.value), through.ts_type, expanded=frozenset({"latest_charge"})),
    ]


def _listing(findings: list[Finding]) -> str:
    """One line per mismatch, with a sample that shows it."""
    first: dict[str, Finding] = {}
    for finding in findings:
        first.setdefault(finding.key, finding)
    return "\n".join(f"  {key}    (e.g. {first[key].label})" for key in sorted(first))


def test_the_python_sdk_and_the_npm_types_pin_the_same_api_version(types: toolchain.Toolchain) -> None:
    assert stripe.api_version == types.npm_api_version() == API_VERSION == "2026-10-28.endive", (
        f"stripe-python sends {stripe.api_version}, stripe@{toolchain.STRIPE_NPM_VERSION} on npm pins "
        f"{types.npm_api_version()}, the sandbox answers as {API_VERSION}"
    )


def test_the_check_finds_excess_missing_mistyped_and_includable_fields(conformance: Conformance) -> None:
    found = {(f.label, f.key) for f in conformance.canary_findings}
    assert found == {
        ("canary charge", "charge.bogus_field: sent, but not in the published type"),
        ("canary charge", "charge.amount: required by the published type, not sent"),
        ("canary charge", "charge.currency: expected string"),
        ("canary charge", "charge.refunds: includable, sent without expand[]"),
        ("canary event", "customer.email: required by the published type, not sent"),
        ("canary event", "customer (previous_attributes).no_such_field: sent, but not in the published type"),
        ("canary unknown event", "event: sent an event type this API version does not have"),
        ("canary invoice event", "invoice.payments: includable, sent in an event"),
        ("canary subscription", "subscription.current_period_end: sent, but not in the published type"),
        ("canary refund", "refund.livemode: sent, but not in the published type"),
        ("canary unasked", "charge.refunds: includable, sent without expand[]"),
    }, _listing(conformance.canary_findings)


def test_every_event_type_the_sandbox_emits_was_checked(conformance: Conformance) -> None:
    emitted, _, problems = coverage.declared()
    assert not problems, problems
    checked = {s.event_type for s in conformance.samples if s.label.startswith("webhook ")}
    assert emitted - checked == set(), (
        "the sandbox can emit these event types, but the scenario (tests/stripe_conformance/scenario.py) "
        f"did not make it: {sorted(emitted - checked)}"
    )


def test_every_kind_of_object_the_sandbox_makes_was_checked(conformance: Conformance) -> None:
    _, made, problems = coverage.declared()
    assert not problems, problems
    checked = coverage.observed(s.value for s in conformance.samples)
    missing = (made | conformance.state_kinds) - checked
    assert missing == set(), (
        "the sandbox can make these kinds of object, but the scenario (tests/stripe_conformance/scenario.py) "
        f"did not check one: {sorted(missing)}"
    )


def test_the_sandbox_answers_as_stripes_published_types_say(conformance: Conformance) -> None:
    """Every object and event: accounts and account links, checkout sessions and their line
    items, customers, coupons, payment intents, charges, payment methods, refunds, disputes and
    their balance transactions, subscriptions and their items, invoices and their lines, invoice
    payments, billing portal sessions, list envelopes and the event envelope. No mismatch but
    those listed in known.py, where Stripe's documented behaviour and its types disagree; each of
    them must still occur (otherwise delete it there)."""
    found = {f.key for f in conformance.findings}
    new, gone = found - set(known.DISAGREEMENTS), set(known.DISAGREEMENTS) - found
    assert not new and not gone, (
        (f"the sandbox disagrees with Stripe's published types:\n{_listing([f for f in conformance.findings if f.key in new])}\n" if new else "")
        + ("no longer found (delete them from known.DISAGREEMENTS):\n  " + "\n  ".join(sorted(gone)) if gone else "")
    )


def test_every_published_status_of_every_object_was_checked(
    conformance: Conformance, types: toolchain.Toolchain
) -> None:
    """Refunds pending, succeeded, failed and canceled; disputes in all ten published statuses;
    invoices, invoice payments, subscriptions, sessions, intents, charges and balance transactions
    in theirs: each checked at least once, or listed in coverage.NOT_MODELLED with the reason."""
    seen = coverage.statuses(s.value for s in conformance.samples)
    published = {
        (kind, status)
        for kind in {kind for kind, _ in seen}
        for status in types.published_statuses(scenario.OBJECT_TYPES[kind])
    }
    unchecked = published - seen - set(coverage.NOT_MODELLED)
    modelled_after_all = set(coverage.NOT_MODELLED) & seen
    unknown = seen - published
    assert not unchecked and not modelled_after_all and not unknown, (
        f"never checked (drive the scenario there, or say in coverage.NOT_MODELLED why not): {sorted(unchecked)}\n"
        f"listed as not modelled, but the sandbox sent them: {sorted(modelled_after_all)}\n"
        f"not published: {sorted(unknown)}"
    )


def test_every_includable_field_the_sandbox_knows_is_checked() -> None:
    """The includable fields expand.py can produce are the ones INCLUDABLE checks (sent only
    when expanded, never in events), so a new one cannot go unchecked."""
    declared = {
        (kind, name)
        for kind, fields in expand.SCHEMAS.items()
        for name, node in fields.items()
        if isinstance(node, expand.Include)
    }
    checked = {(kind, name) for kind, (_, fields) in INCLUDABLE.items() for name in fields}
    assert declared - checked == set()


def test_event_envelopes_carry_the_pinned_version_and_their_account(
    conformance: Conformance, types: toolchain.Toolchain
) -> None:
    """What the types leave open: the version data was rendered at, test mode, and `account`
    exactly on Connect events (the connected account the object lives on)."""
    delivered = [s for s in conformance.samples if s.label.startswith("webhook ")]
    accounts = {s.value["id"] for s in conformance.samples if s.label == "POST /v1/accounts"}
    wrong = [
        f"{s.label} {s.value['id']}: api_version={s.value['api_version']!r} livemode={s.value['livemode']!r} "
        f"account={s.value.get('account')!r}"
        for s in delivered
        if s.value["api_version"] != types.npm_api_version()
        or s.value["livemode"] is not False
        or (s.value.get("account") in accounts) != s.label.endswith("(connect)")
    ]
    assert delivered and not wrong, wrong

"""The sandbox's refunds, disputes and idempotency keys, as Stripe answers them at the pinned API
version (2026-10-28): refunds that stay pending and then succeed, fail or are canceled;
inquiries, chargebacks, appeals and prevented disputes with their money movements; keys that
replay the first answer, errors and 500s included, for 24 hours and are forgotten after."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from stripe_sandbox import StripeSandbox
from tests.test_stripe_sandbox import (  # noqa: F401 - fixtures
    DAY,
    SECRET,
    browser,
    connected_account,
    item,
    on,
    sandbox,
    sc,
    session,
    types,
)

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


async def paid_charge(sc: stripe.StripeClient, sandbox: StripeSandbox, acct: str, amount: int) -> tuple[str, str]:
    """(payment intent id, charge id) of a paid one-time checkout."""
    paid = sandbox.pay((await session(sc, acct, line_items=[item(amount)])).id)
    return paid["payment_intent"], sandbox.get(paid["payment_intent"])["latest_charge"]


def events_of(sandbox: StripeSandbox, endpoint: str) -> list[Any]:
    return [
        stripe.Webhook.construct_event(d.payload, d.headers["Stripe-Signature"], SECRET)
        for d in sandbox.take_deliveries(endpoint)
    ]


# ---- refunds ---------------------------------------------------------------------------------------


async def test_refunds_succeed_at_once_up_to_what_is_left(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    endpoint = sandbox.add_webhook_endpoint(None, SECRET, connect=True, events=["charge.*", "refund.*"])
    pi, charge_id = await paid_charge(sc, sandbox, acct, 3000)
    partial = await sc.v1.refunds.create_async(
        params={"payment_intent": pi, "amount": 1000, "reason": "requested_by_customer", "metadata": {"why": "late"}},
        options=on(acct),
    )
    assert (partial.object, partial.amount, partial.status, partial.payment_intent) == ("refund", 1000, "succeeded", pi)
    assert partial.charge == charge_id and partial.metadata["why"] == "late"
    charge = await sc.v1.charges.retrieve_async(charge_id, options=on(acct))
    assert (charge.amount_refunded, charge.refunded) == (1000, False)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        await sc.v1.refunds.create_async(params={"charge": charge_id, "amount": 2001}, options=on(acct))
    assert too_much.value.param == "amount"
    rest = await sc.v1.refunds.create_async(params={"charge": charge_id}, options=on(acct))
    assert rest.amount == 2000
    charge = await sc.v1.charges.retrieve_async(charge_id, options=on(acct))
    assert (charge.amount_refunded, charge.refunded) == (3000, True)
    with pytest.raises(stripe.InvalidRequestError) as nothing_left:
        await sc.v1.refunds.create_async(params={"payment_intent": pi}, options=on(acct))
    assert nothing_left.value.code == "charge_already_refunded"
    events = events_of(sandbox, endpoint)
    assert types(events) == ["charge.succeeded", "charge.refunded", "refund.created", "charge.refunded", "refund.created"]
    assert events[-2].data.object.amount_refunded == 3000
    # `refunds` is includable on a charge at this API version: neither the object nor the event carries it.
    assert "refunds" not in charge and all("refunds" not in e.data.object for e in events if e.type.startswith("charge."))


async def test_held_refunds_stay_pending_then_succeed_fail_or_are_canceled(
    sandbox: StripeSandbox, sc: stripe.StripeClient
) -> None:
    acct = await connected_account(sc, sandbox)
    endpoint = sandbox.add_webhook_endpoint(None, SECRET, connect=True, events=["charge.refund*", "refund.*"])
    pi, charge_id = await paid_charge(sc, sandbox, acct, 5000)
    sandbox.hold_refunds(charge_id)

    async def refund(amount: int) -> Any:
        return await sc.v1.refunds.create_async(params={"payment_intent": pi, "amount": amount}, options=on(acct))

    async def refunded() -> int:
        return (await sc.v1.charges.retrieve_async(charge_id, options=on(acct))).amount_refunded

    first = await refund(1000)
    assert (first.status, first.pending_reason) == ("pending", "processing")
    assert await refunded() == 1000  # a pending refund is taken: it cannot be refunded twice
    with pytest.raises(stripe.InvalidRequestError):
        await refund(4001)
    assert types(events_of(sandbox, endpoint)) == ["charge.refunded", "refund.created"]

    succeeded = sandbox.settle_refund(first.id, "succeeded")
    assert succeeded["status"] == "succeeded" and "pending_reason" not in succeeded
    updated = events_of(sandbox, endpoint)
    assert types(updated) == ["refund.updated", "charge.refund.updated"]
    assert all(e.data.previous_attributes["status"] == "pending" and e.data.object.status == "succeeded" for e in updated)

    second = await refund(500)
    sandbox.settle_refund(second.id, "failed", "expired_or_canceled_card")
    failed = await sc.v1.refunds.retrieve_async(second.id, options=on(acct))
    assert (failed.status, failed.failure_reason) == ("failed", "expired_or_canceled_card")
    assert await refunded() == 1000  # given back
    assert types(events_of(sandbox, endpoint)) == [
        "charge.refunded", "refund.created", "refund.updated", "charge.refund.updated", "refund.failed",
    ]

    third = await refund(700)
    assert sandbox.settle_refund(third.id, "canceled")["status"] == "canceled"
    assert await refunded() == 1000
    assert types(events_of(sandbox, endpoint))[-2:] == ["refund.updated", "charge.refund.updated"]

    # A succeeded refund can still fail (a closed card): its amount is refundable again.
    late = sandbox.settle_refund(first.id, "failed")
    assert (late["status"], late["failure_reason"]) == ("failed", "unknown")
    assert await refunded() == 0
    with pytest.raises(Exception) as not_again:
        sandbox.settle_refund(third.id, "succeeded")
    assert "canceled" in str(not_again.value)

    sandbox.hold_refunds(charge_id, False)
    whole = await refund(5000)
    assert whole.status == "succeeded" and await refunded() == 5000
    listed = await sc.v1.refunds.list_async(params={"charge": charge_id}, options=on(acct))
    assert [r.status for r in listed.data] == ["succeeded", "canceled", "failed", "failed"]


# ---- disputes --------------------------------------------------------------------------------------


async def test_inquiries_move_no_money_and_can_close_or_escalate(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    endpoint = sandbox.add_webhook_endpoint(None, SECRET, connect=True, events=["charge.dispute.*"])
    pi, charge_id = await paid_charge(sc, sandbox, acct, 4000)
    inquiry = sandbox.dispute(charge_id, inquiry=True, reason="general")
    assert (inquiry["status"], inquiry["balance_transactions"], inquiry["is_charge_refundable"]) == (
        "warning_needs_response", [], True,
    )
    assert inquiry["payment_method_details"]["card"]["case_type"] == "inquiry"
    # While it is an inquiry, the charge can still be refunded.
    await sc.v1.refunds.create_async(params={"payment_intent": pi, "amount": 500}, options=on(acct))
    answered = await sc.v1.disputes.update_async(
        inquiry["id"], params={"evidence": {"uncategorized_text": "They used it daily."}}, options=on(acct)
    )
    assert answered.status == "warning_under_review" and answered.evidence_details.submission_count == 1
    closed = sandbox.close_dispute(inquiry["id"])
    assert (closed["status"], closed["balance_transactions"]) == ("warning_closed", [])
    assert types(events_of(sandbox, endpoint)) == ["charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"]

    escalated = sandbox.dispute(charge_id, inquiry=True, amount=1000)
    chargeback = sandbox.escalate_dispute(escalated["id"])
    assert (chargeback["status"], chargeback["is_charge_refundable"]) == ("needs_response", False)
    [withdrawn] = chargeback["balance_transactions"]
    assert (withdrawn["amount"], withdrawn["fee"], withdrawn["net"], withdrawn["reporting_category"]) == (
        -1000, 1500, -2500, "dispute",
    )
    assert types(events_of(sandbox, endpoint)) == [
        "charge.dispute.created", "charge.dispute.updated", "charge.dispute.funds_withdrawn",
    ]
    with pytest.raises(stripe.InvalidRequestError) as charged_back:
        await sc.v1.refunds.create_async(params={"payment_intent": pi, "amount": 100}, options=on(acct))
    assert charged_back.value.code == "charge_disputed"


async def test_chargebacks_are_won_lost_and_appealed(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    endpoint = sandbox.add_webhook_endpoint(None, SECRET, connect=True, events=["charge.dispute.*"])
    _pi, charge_id = await paid_charge(sc, sandbox, acct, 5000)
    opened = sandbox.dispute(charge_id)
    assert (opened["status"], opened["amount"], opened["charge"]) == ("needs_response", 5000, charge_id)
    assert [t["amount"] for t in opened["balance_transactions"]] == [-5000]
    staged = await sc.v1.disputes.update_async(
        opened["id"], params={"evidence": {"access_activity_log": "logins"}, "submit": False}, options=on(acct)
    )
    assert (staged.status, staged.evidence_details.has_evidence, staged.evidence.access_activity_log) == (
        "needs_response", True, "logins",
    )
    assert sandbox.respond_to_dispute(opened["id"])["status"] == "under_review"
    won = sandbox.close_dispute(opened["id"], won=True)
    assert (won["status"], won["is_charge_refundable"]) == ("won", True)
    assert [t["amount"] for t in won["balance_transactions"]] == [-5000, 5000]
    assert types(events_of(sandbox, endpoint)) == [
        "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.updated",
        "charge.dispute.updated", "charge.dispute.closed", "charge.dispute.funds_reinstated",
    ]

    second = sandbox.dispute(charge_id, amount=2000)
    lost = await sc.v1.disputes.close_async(second["id"], options=on(acct))  # accepted: lost
    assert lost.status == "lost"
    appealed = sandbox.appeal_dispute(second["id"])
    assert appealed["status"] == "appeal_needs_response"
    assert [t["amount"] for t in appealed["balance_transactions"]] == [-2000]  # still withdrawn
    with pytest.raises(stripe.InvalidRequestError):  # only appeal evidence during an appeal
        await sc.v1.disputes.update_async(second["id"], params={"evidence": {"uncategorized_text": "x"}}, options=on(acct))
    reviewed = await sc.v1.disputes.update_async(
        second["id"],
        params={"evidence": {"appeal": {"card": {"reason_for_filing": "proof of use", "supporting_files": ["file_1"]}}}},
        options=on(acct),
    )
    assert reviewed.status == "appeal_under_review"
    assert reviewed.evidence.appeal.card.supporting_files == ["file_1"]
    won_on_appeal = sandbox.close_dispute(second["id"], won=True)
    assert [t["amount"] for t in won_on_appeal["balance_transactions"]] == [-2000, 2000]
    assert types(events_of(sandbox, endpoint)) == [
        "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.closed",
        "charge.dispute.updated", "charge.dispute.updated", "charge.dispute.closed", "charge.dispute.funds_reinstated",
    ]
    with pytest.raises(Exception, match="Only a lost dispute"):
        sandbox.appeal_dispute(second["id"])
    listed = await sc.v1.disputes.list_async(params={"charge": charge_id}, options=on(acct))
    assert [d.id for d in listed.data] == [second["id"], opened["id"]]


async def test_prevented_disputes_block_or_refund(sandbox: StripeSandbox, sc: stripe.StripeClient) -> None:
    acct = await connected_account(sc, sandbox)
    endpoint = sandbox.add_webhook_endpoint(None, SECRET, connect=True, events=["charge.dispute.*", "charge.refunded"])
    _pi, charge_id = await paid_charge(sc, sandbox, acct, 3000)
    blocked = sandbox.prevent_dispute(charge_id)
    assert (blocked["status"], blocked["balance_transactions"]) == ("prevented", [])
    assert blocked["payment_method_details"]["card"]["case_type"] == "block"
    resolved = sandbox.prevent_dispute(charge_id, amount=1200, resolution=True)
    assert resolved["payment_method_details"]["card"]["case_type"] == "resolution"
    [refund] = (await sc.v1.refunds.list_async(params={"charge": charge_id}, options=on(acct))).data
    assert (refund.amount, refund.status) == (1200, "succeeded")
    assert types(events_of(sandbox, endpoint)) == ["charge.dispute.created", "charge.dispute.created", "charge.refunded"]
    with pytest.raises(Exception, match="already closed"):
        sandbox.close_dispute(blocked["id"], won=True)


# ---- idempotency keys ----------------------------------------------------------------------------------


async def test_an_error_is_replayed_and_invalid_parameters_are_not_saved(
    sandbox: StripeSandbox, sc: stripe.StripeClient, browser: httpx.AsyncClient
) -> None:
    acct = await connected_account(sc, sandbox)
    pi, charge_id = await paid_charge(sc, sandbox, acct, 3000)
    chargeback = sandbox.dispute(charge_id)
    key = {"stripe_account": acct, "idempotency_key": "refund-1"}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        await sc.v1.refunds.create_async(params={"payment_intent": pi, "amount": 1000}, options=key)
    assert refused.value.code == "charge_disputed"
    sandbox.close_dispute(chargeback["id"], won=True)  # refundable again, but the key keeps its first answer
    with pytest.raises(stripe.InvalidRequestError) as replayed:
        await sc.v1.refunds.create_async(params={"payment_intent": pi, "amount": 1000}, options=key)
    assert replayed.value.code == "charge_disputed" and replayed.value.headers["idempotent-replayed"] == "true"
    assert (await sc.v1.refunds.list_async(params={"charge": charge_id}, options=on(acct))).data == []
    made = await sc.v1.refunds.create_async(
        params={"payment_intent": pi, "amount": 1000}, options={**key, "idempotency_key": "refund-2"}
    )
    assert made.status == "succeeded"

    # Parameters that fail validation save nothing: the key works once they are right.
    bad = await browser.post(
        "/v1/refunds",
        data={"payment_intent": pi, "amount": "ten"},
        headers={"Authorization": f"Bearer {sandbox.api_key}", "Stripe-Account": acct, "Idempotency-Key": "refund-3"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "parameter_invalid_integer"
    fixed = await sc.v1.refunds.create_async(
        params={"payment_intent": pi, "amount": 10}, options={**key, "idempotency_key": "refund-3"}
    )
    assert fixed.amount == 10


async def test_a_500_is_replayed_for_24_hours_then_the_key_is_forgotten(
    sandbox: StripeSandbox, sc: stripe.StripeClient
) -> None:
    acct = await connected_account(sc, sandbox)
    pi, charge_id = await paid_charge(sc, sandbox, acct, 3000)
    params: Any = {"payment_intent": pi, "amount": 700}
    key = {"stripe_account": acct, "idempotency_key": "refund-outage"}
    sandbox.fail_next("POST", "/v1/refunds")
    for _ in range(2):  # the outage, then every retry with the key: the same 500, and nothing made
        with pytest.raises(stripe.APIError) as outage:
            await sc.v1.refunds.create_async(params=params, options=key)
        assert outage.value.http_status == 500 and outage.value.headers["stripe-should-retry"] == "false"
    assert (await sc.v1.refunds.list_async(params={"charge": charge_id}, options=on(acct))).data == []
    with pytest.raises(stripe.IdempotencyError):
        await sc.v1.refunds.create_async(params={**params, "amount": 701}, options=key)

    sandbox.advance_clock(3 * DAY)  # the test clock does not age keys (as in Stripe)
    sandbox.age_idempotency_keys(DAY - 60)
    with pytest.raises(stripe.APIError):
        await sc.v1.refunds.create_async(params=params, options=key)
    sandbox.age_idempotency_keys(60)  # 24 hours old: forgotten, the request is a new one
    made = await sc.v1.refunds.create_async(params=params, options=key)
    assert (made.amount, made.status) == (700, "succeeded")
    again = await sc.v1.refunds.create_async(params=params, options=key)  # and saved again
    assert again.id == made.id
    assert len((await sc.v1.refunds.list_async(params={"charge": charge_id}, options=on(acct))).data) == 1


async def test_http_controls_for_refunds_disputes_and_keys(
    sandbox: StripeSandbox, sc: stripe.StripeClient, browser: httpx.AsyncClient
) -> None:
    acct = await connected_account(sc, sandbox)
    pi, charge_id = await paid_charge(sc, sandbox, acct, 3000)
    assert (await browser.post(f"/_sandbox/charges/{charge_id}/hold_refunds", data={"held": "true"})).status_code == 200
    refund = await sc.v1.refunds.create_async(params={"payment_intent": pi, "amount": 300}, options=on(acct))
    assert refund.status == "pending"
    settled = await browser.post(f"/_sandbox/refunds/{refund.id}/settle", data={"status": "failed", "failure_reason": "declined"})
    assert settled.json()["failure_reason"] == "declined"
    wrong = await browser.post(f"/_sandbox/refunds/{refund.id}/settle", data={"status": "succeeded"})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "status"

    inquiry = (await browser.post(f"/_sandbox/charges/{charge_id}/dispute", data={"inquiry": "true", "amount": "1000"})).json()
    assert inquiry["status"] == "warning_needs_response"
    assert (await browser.post(f"/_sandbox/disputes/{inquiry['id']}/escalate")).json()["status"] == "needs_response"
    assert (await browser.post(f"/_sandbox/disputes/{inquiry['id']}/respond")).json()["status"] == "under_review"
    assert (await browser.post(f"/_sandbox/disputes/{inquiry['id']}/close", data={"won": "false"})).json()["status"] == "lost"
    assert (await browser.post(f"/_sandbox/disputes/{inquiry['id']}/appeal")).json()["status"] == "appeal_needs_response"
    prevented = await browser.post(f"/_sandbox/charges/{charge_id}/prevent_dispute", data={"resolution": "false"})
    assert prevented.json()["status"] == "prevented"

    failing = await browser.post("/_sandbox/fail_next", data={"method": "POST", "path": "/v1/customers"})
    assert failing.status_code == 200
    with pytest.raises(stripe.APIError):
        await sc.v1.customers.create_async(params={"email": "x@example.com"}, options={"idempotency_key": "c-1"})
    aged = await browser.post("/_sandbox/idempotency_keys/age", data={"seconds": str(DAY)})
    assert aged.json()["saved"] >= 1
    customer = await sc.v1.customers.create_async(params={"email": "x@example.com"}, options={"idempotency_key": "c-1"})
    assert customer.email == "x@example.com"

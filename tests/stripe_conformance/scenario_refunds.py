"""The scenario's refunds and disputes: every status each can have, reached the ways Stripe
reaches it (the API where a business acts, the sandbox's controls where the cardholder, the
bank or the card network does), with the events each step sends."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stripe.params import DisputeUpdateParams

    from tests.stripe_conformance.scenario import Driver

EVIDENCE = "The member logged in 14 times after buying; the access log is attached."


async def refunds(d: Driver) -> None:
    """Pending refunds that succeed, fail or are canceled; a succeeded refund that fails later
    (the card was closed); a charge's refunds, listed and included."""
    rec, sc, on = d.rec, d.sc, d.on
    charge = await d.paid_charge(6000, "refunds@example.com")
    d.sandbox.hold_refunds(charge)
    for status, failure_reason in (("succeeded", None), ("failed", "insufficient_funds"), ("canceled", None)):
        pending = rec.api(
            "POST /v1/refunds",
            await sc.v1.refunds.create_async(
                params={"charge": charge, "amount": 1000, "reason": "duplicate", "metadata": {"refund_id": status}},
                options=on,
            ),
        )
        d.sandbox.settle_refund(pending.id, status, failure_reason)
        rec.api("GET /v1/refunds/{id}", await sc.v1.refunds.retrieve_async(pending.id, options=on))
    d.sandbox.hold_refunds(charge, held=False)
    closed_card = await sc.v1.refunds.create_async(params={"charge": charge, "amount": 500}, options=on)
    d.sandbox.settle_refund(closed_card.id, "failed", "expired_or_canceled_card")
    rec.api("GET /v1/refunds/{id}", await sc.v1.refunds.retrieve_async(closed_card.id, options=on))
    rec.api(
        "GET /v1/refunds",
        await sc.v1.refunds.list_async(params={"charge": charge}, options=on),
        list_of="Stripe.Refund",
    )
    rec.api(
        "GET /v1/charges/{id}?expand[]=refunds",
        await sc.v1.charges.retrieve_async(charge, params={"expand": ["refunds"]}, options=on),
        expand=("refunds",),
    )
    refunded = await sc.v1.charges.retrieve_async(charge, options=on)
    rec.api(
        "GET /v1/payment_intents/{id}?expand[]=latest_charge.refunds",
        await sc.v1.payment_intents.retrieve_async(
            str(refunded.payment_intent), params={"expand": ["latest_charge.refunds"]}, options=on
        ),
        expand=("latest_charge.refunds",),
    )


async def disputes(d: Driver) -> None:
    """Chargebacks won and lost, answered through the API and in the dashboard, accepted,
    appealed (won and lost); inquiries answered, closed and escalated; prevented disputes."""
    rec, sc, on, sandbox = d.rec, d.sc, d.on, d.sandbox

    async def get(dispute_id: str) -> None:
        rec.api("GET /v1/disputes/{id}", await sc.v1.disputes.retrieve_async(dispute_id, options=on))

    async def update(dispute_id: str, params: DisputeUpdateParams) -> None:
        rec.api("POST /v1/disputes/{id}", await sc.v1.disputes.update_async(dispute_id, params=params, options=on))

    async def opened(reason: str, *, inquiry: bool = False) -> str:
        charge = await d.paid_charge(3000, "cardholder@example.com")
        dispute_id = str(sandbox.dispute(charge, reason=reason, inquiry=inquiry)["id"])
        await get(dispute_id)
        rec.api("GET /v1/charges/{id}", await sc.v1.charges.retrieve_async(charge, options=on))
        return dispute_id

    # a chargeback: evidence staged, then submitted through the API; won (the money comes back)
    won = await opened("fraudulent")
    await update(
        won,
        {
            "evidence": {"uncategorized_text": EVIDENCE, "customer_email_address": "cardholder@example.com"},
            "submit": False,
            "metadata": {"case": "1"},
            "intended_submission_method": "manual",
        },
    )
    await update(won, {"submit": True})
    sandbox.close_dispute(won, won=True)
    await get(won)

    # accepted through the API (lost), appealed with evidence[appeal], won on appeal
    accepted = await opened("product_not_received")
    rec.api("POST /v1/disputes/{id}/close", await sc.v1.disputes.close_async(accepted, options=on))
    sandbox.appeal_dispute(accepted)
    await get(accepted)
    await update(accepted, {"evidence": {"appeal": {"card": {"reason_for_filing": EVIDENCE, "supporting_files": []}}}})
    sandbox.close_dispute(accepted, won=True)
    await get(accepted)

    # answered in the dashboard, lost, appealed there too, lost again
    lost = await opened("subscription_canceled")
    sandbox.respond_to_dispute(lost)
    await get(lost)
    sandbox.close_dispute(lost, won=False)
    sandbox.appeal_dispute(lost)
    sandbox.respond_to_dispute(lost)
    await get(lost)
    sandbox.close_dispute(lost, won=False)
    await get(lost)

    # inquiries: answered then closed; closed through the API; escalated into a chargeback
    answered = await opened("general", inquiry=True)
    sandbox.respond_to_dispute(answered)
    await get(answered)
    sandbox.close_dispute(answered)
    await get(answered)
    dropped = await opened("unrecognized", inquiry=True)
    rec.api("POST /v1/disputes/{id}/close", await sc.v1.disputes.close_async(dropped, options=on))
    escalated = await opened("fraudulent", inquiry=True)
    sandbox.escalate_dispute(escalated)
    await get(escalated)
    sandbox.close_dispute(escalated, won=False)

    # prevented: blocked (nothing moves), or resolved with a refund to the cardholder
    for resolution in (False, True):
        charge = await d.paid_charge(2000, "prevented@example.com")
        await get(str(sandbox.prevent_dispute(charge, resolution=resolution)["id"]))
    rec.api(
        "GET /v1/disputes",
        await sc.v1.disputes.list_async(params={"limit": 100}, options=on),
        list_of="Stripe.Dispute",
    )

"""Refunds of a succeeded charge, named by the charge or its payment intent.

A refund succeeds at once, or, on a charge whose refunds are held (`hold_refunds`: what a
connected account without the balance to pay it, or a slow payment method, does), stays
`pending` until `settle_refund` makes it `succeeded`, `failed` or `canceled`. A succeeded refund
can still fail later, as with Stripe's "asynchronous failure" test card (the card was closed).

From its creation until it fails or is canceled, a refund's amount counts in the charge's
`amount_refunded` (it cannot be refunded a second time); a failed or canceled one gives it back.
Events: creating sends `charge.refunded` and `refund.created`; every later change of status sends
`refund.updated` and `charge.refund.updated`, and a failure `refund.failed` as well. Charge
objects and their events never carry a `refunds` list (includable, and not modelled): list
`/v1/refunds?charge=` instead.
"""

from __future__ import annotations

from stripe_sandbox.currencies import format_amount
from stripe_sandbox.errors import ParameterError, SandboxError
from stripe_sandbox.forms import Params
from stripe_sandbox.store import Obj, Store, locked, public

# Where a refund may go next (Stripe's statuses; `requires_action` is not modelled).
NEXT_STATUSES = {"pending": ("succeeded", "failed", "canceled"), "succeeded": ("failed",)}
FAILURE_REASONS = (
    "lost_or_stolen_card",
    "expired_or_canceled_card",
    "charge_for_pending_refund_disputed",
    "insufficient_funds",
    "declined",
    "merchant_request",
    "unknown",
)


class RefundRules(Store):
    def create_refund(self, account: str | None, p: Params) -> Obj:
        p.only(
            "payment_intent",
            "charge",
            "amount",
            "reason",
            "metadata",
            ignored=("refund_application_fee", "reverse_transfer", "instructions_email"),
        )
        pi_id, charge_id = p.str("payment_intent"), p.str("charge")
        if not pi_id and not charge_id:
            raise ParameterError(
                "One of the following params should be provided for this request: payment_intent or charge.",
                param="payment_intent",
                code="parameter_missing",
            )
        amount = p.int("amount", minimum=1)
        reason = p.enum("reason", ("duplicate", "fraudulent", "requested_by_customer"))
        metadata = p.metadata() or {}
        if pi_id:
            pi = self._get("payment_intent", pi_id, account, param="payment_intent", status=400)
            if pi["status"] != "succeeded":
                raise SandboxError(
                    f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                    param="payment_intent",
                    code="charge_not_refundable",
                )
            charge = self.objects[pi["latest_charge"]]
            if charge_id and charge_id != charge["id"]:
                raise SandboxError("The charge does not belong to this PaymentIntent.", param="charge")
        else:
            charge = self._get("charge", charge_id or "", account, param="charge", status=400)
        if charge["status"] != "succeeded":
            raise SandboxError(
                f"Charge {charge['id']} has not succeeded; there is nothing to refund.",
                param="charge",
                code="charge_not_refundable",
            )
        if self._refund_blocked_by_dispute(charge):
            raise SandboxError(
                f"Charge {charge['id']} has been disputed; it cannot be refunded.", code="charge_disputed"
            )
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining == 0:
            raise SandboxError(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        if amount is None:
            amount = remaining
        if amount > remaining:
            raise SandboxError(
                f"Refund amount ({format_amount(amount, charge['currency'])}) is greater than unrefunded amount on charge "
                f"({format_amount(remaining, charge['currency'])})",
                param="amount",
                code="amount_too_large",
            )
        return public(self._refund(charge, amount, reason=reason, metadata=metadata))

    def _refund(self, charge: Obj, amount: int, *, reason: str | None, metadata: dict[str, str]) -> Obj:
        held = bool(charge.get("_hold_refunds"))
        refund = self._new(
            "refund",
            "re_",
            charge["_account"],
            {
                "amount": amount,
                "balance_transaction": None,
                "charge": charge["id"],
                "currency": charge["currency"],
                "customer": charge["customer"],
                "customer_account": None,
                "metadata": metadata,
                "payment_intent": charge["payment_intent"],
                "payment_method": charge["payment_method"],
                "reason": reason,
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": "pending" if held else "succeeded",
                "transfer_reversal": None,
                **({"pending_reason": "processing"} if held else {}),
            },
        )
        del refund["livemode"]  # a refund has none in Stripe's published types
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self._emit("charge.refunded", charge, previous=previous)
        self._emit("refund.created", refund)
        return refund

    def retrieve_refund(self, account: str | None, refund_id: str) -> Obj:
        return public(self._get("refund", refund_id, account))

    def list_refunds(self, account: str | None, p: Params) -> Obj:
        p.only("limit", "starting_after", "ending_before", "charge", "payment_intent", "created")
        filters = {k: p.str(k) for k in ("charge", "payment_intent")}
        return self._list(
            "refund", account, p, "/v1/refunds", lambda r: all(v is None or r[k] == v for k, v in filters.items())
        )

    def _include_charge_refunds(self, charge: Obj, account: str | None) -> Obj:
        """`expand[]=refunds` (includable since 2022-11-15, as in Stripe)."""
        refunds = self.list_refunds(account, Params({"charge": charge["id"], "limit": "100"}))
        return {**refunds, "url": f"/v1/charges/{charge['id']}/refunds"}

    # ---- the sandbox's controls ------------------------------------------------------------------

    @locked
    def hold_refunds(self, charge_id: str, held: bool = True) -> Obj:
        """From now on, this charge's new refunds stay `pending` (held) or succeed at once."""
        charge = self._any("charge", charge_id)
        charge["_hold_refunds"] = held
        return public(charge)

    @locked
    def settle_refund(self, refund_id: str, status: str, failure_reason: str | None = None) -> Obj:
        """A pending refund succeeds, fails or is canceled; a succeeded one fails (`failure_reason`
        one of FAILURE_REASONS, default `unknown`). Returns the refund."""
        refund = self._any("refund", refund_id)
        allowed = NEXT_STATUSES.get(refund["status"], ())
        if status not in allowed:
            raise SandboxError(
                f"Refund {refund_id} is {refund['status']}: it can become {', '.join(allowed) or 'nothing else'}, "
                f"not {status}.",
                param="status",
            )
        if status != "failed" and failure_reason is not None:
            raise SandboxError("failure_reason goes only with status=failed.", param="failure_reason")
        if failure_reason is not None and failure_reason not in FAILURE_REASONS:
            raise SandboxError(f"failure_reason must be one of {', '.join(FAILURE_REASONS)}.", param="failure_reason")
        previous = {"status": refund["status"]}
        refund["status"] = status
        refund.pop("pending_reason", None)
        if status in ("failed", "canceled"):
            if status == "failed":
                refund["failure_reason"] = failure_reason or "unknown"
            charge = self.objects[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]  # given back: refundable again
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self._emit("refund.updated", refund, previous=previous)
        self._emit("charge.refund.updated", refund, previous=previous)
        if status == "failed":
            self._emit("refund.failed", refund)
        return public(refund)

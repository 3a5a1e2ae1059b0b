"""Disputes of a charge, with the statuses and money movements of Stripe's API at the pinned
version.

- An inquiry (`warning_needs_response`, `warning_under_review`) withdraws nothing and the charge
  stays refundable; it closes as `warning_closed`, or escalates into a chargeback.
- A chargeback (`needs_response`, `under_review`) withdraws the disputed amount and a dispute fee
  at once (a balance transaction, `charge.dispute.funds_withdrawn`); `won` reinstates the amount
  (a second balance transaction, `charge.dispute.funds_reinstated`), `lost` keeps it withdrawn.
- A lost decision can be appealed where the network allows it: `appeal_needs_response` (submit
  `evidence[appeal]`), then `appeal_under_review`, then `won` (reinstated) or `lost`. The money
  stays withdrawn throughout the appeal.
- `prevented`: stopped before it became a chargeback (card case type `block`: nothing moves;
  `resolution`: Stripe refunds the amount to the cardholder, a refund on the charge).

Responding (evidence, through the API or `respond_to_dispute`) moves `*_needs_response` to
`*_under_review` (`charge.dispute.updated`); every close sends `charge.dispute.closed`.
"""

from __future__ import annotations

from typing import Any

from stripe_sandbox.errors import ParameterError, SandboxError
from stripe_sandbox.forms import Params
from stripe_sandbox.store import DAY, Obj, Store, locked, new_id, public

INQUIRY_OPEN = ("warning_needs_response", "warning_under_review")
CHARGEBACK_OPEN = ("needs_response", "under_review")
APPEAL_OPEN = ("appeal_needs_response", "appeal_under_review")
UNDER_REVIEW = {"warning_needs_response": "warning_under_review", "needs_response": "under_review"}
DISPUTE_FEE = 1500  # minor units of the charge's currency, withdrawn with a chargeback
EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


class DisputeRules(Store):
    def _refund_blocked_by_dispute(self, charge: Obj) -> bool:
        """A chargeback (open, lost or under appeal) has taken the money: no refund on top of it."""
        return any(
            self.objects[d]["charge"] == charge["id"] and not self.objects[d]["is_charge_refundable"]
            for d in self.index.get("dispute", [])
        )

    def _new_dispute(self, charge: Obj, amount: int | None, reason: str, status: str, case_type: str) -> Obj:
        if charge["status"] != "succeeded":
            raise SandboxError("Only a succeeded charge can be disputed.", param="charge")
        left = charge["amount"] - charge["amount_refunded"]
        amount = left if amount is None else amount
        if not 1 <= amount <= left:
            raise SandboxError(f"amount must be between 1 and what is not refunded, {left}.", param="amount")
        card = (charge.get("payment_method_details") or {}).get("card") or {}
        return self._new(
            "dispute",
            "dp_",
            charge["_account"],
            {
                "amount": amount,
                "balance_transactions": [],
                "charge": charge["id"],
                "currency": charge["currency"],
                "enhanced_eligibility_types": [],
                "evidence": {**dict.fromkeys(EVIDENCE_FIELDS), "enhanced_evidence": {}},
                "evidence_details": {
                    "due_by": self.now() + 7 * DAY,
                    "enhanced_eligibility": {},
                    "has_evidence": False,
                    "past_due": False,
                    "submission_count": 0,
                    "submission_method": "not_submitted",
                },
                "intended_submission_method": None,
                "is_charge_refundable": status not in CHARGEBACK_OPEN,
                "metadata": {},
                "payment_intent": charge["payment_intent"],
                "payment_method_details": {
                    "type": "card",
                    "card": {
                        "brand": card.get("brand", "visa"),
                        "case_type": case_type,
                        "network": card.get("brand", "visa"),
                        "network_reason_code": None,
                    },
                },
                "reason": reason,
                "status": status,
            },
        )

    def _move_funds(self, dispute: Obj, *, withdraw: bool) -> None:
        """A balance transaction on the dispute: the amount (and the fee) out, or the amount back."""
        amount = -dispute["amount"] if withdraw else dispute["amount"]
        fee = DISPUTE_FEE if withdraw else 0
        now = self.now()
        dispute["balance_transactions"].append(
            {
                "id": new_id("txn_"),
                "object": "balance_transaction",
                "amount": amount,
                "available_on": now + 2 * DAY,
                "balance_type": "payments",
                "created": now,
                "currency": dispute["currency"],
                "description": f"Chargeback {'withdrawal' if withdraw else 'reversal'} for {dispute['charge']}",
                "exchange_rate": None,
                "fee": fee,
                "fee_details": [
                    {
                        "amount": fee,
                        "application": None,
                        "currency": dispute["currency"],
                        "description": "Dispute fee",
                        "type": "stripe_fee",
                    }
                ]
                if fee
                else [],
                "net": amount - fee,
                "reporting_category": "dispute" if withdraw else "dispute_reversal",
                "source": dispute["id"],
                "status": "pending",
                "type": "adjustment",
            }
        )
        dispute["is_charge_refundable"] = not withdraw
        if withdraw:
            self._emit("charge.dispute.funds_withdrawn", dispute)
        else:
            self._emit("charge.dispute.funds_reinstated", dispute)

    # ---- the API -------------------------------------------------------------------------------

    def retrieve_dispute(self, account: str | None, dispute_id: str) -> Obj:
        return public(self._get("dispute", dispute_id, account))

    def list_disputes(self, account: str | None, p: Params) -> Obj:
        p.only("limit", "starting_after", "ending_before", "charge", "payment_intent", "created")
        filters = {k: p.str(k) for k in ("charge", "payment_intent")}
        return self._list(
            "dispute", account, p, "/v1/disputes", lambda d: all(v is None or d[k] == v for k, v in filters.items())
        )

    def update_dispute(self, account: str | None, p: Params, dispute_id: str) -> Obj:
        """Evidence staged (`submit=false`) or submitted (the default), and metadata."""
        p.only("evidence", "metadata", "submit", "intended_submission_method")
        dispute = self._get("dispute", dispute_id, account)
        evidence = p.sub("evidence")
        evidence.only(*EVIDENCE_FIELDS, "appeal", ignored=("enhanced_evidence",))
        staged: dict[str, Any] = {key: evidence.str(key, max_length=20_000) for key in EVIDENCE_FIELDS if key in evidence}
        if "appeal" in evidence:
            card = evidence.sub("appeal").sub("card")
            evidence.sub("appeal").only("card")
            card.only("reason_for_filing", "supporting_files")
            files = _strings(card, "supporting_files")
            staged["appeal"] = {"card": {"reason_for_filing": card.str("reason_for_filing"), "supporting_files": files}}
        submit = p.bool("submit", default=True)
        method = p.enum("intended_submission_method", ("manual", "prefer_manual", "prefer_smart_disputes", "smart_disputes"))
        metadata = p.metadata()
        if (staged or "submit" in p) and dispute["status"] not in (*UNDER_REVIEW, "appeal_needs_response"):
            raise SandboxError(
                f"This dispute is {dispute['status']}: it takes no evidence now.", param="evidence", code="dispute_not_open"
            )
        appeal_stage = dispute["status"] == "appeal_needs_response"
        if appeal_stage and set(staged) - {"appeal"}:
            raise SandboxError("During an appeal only evidence[appeal] can be updated.", param="evidence")
        if not appeal_stage and "appeal" in staged:
            raise SandboxError(
                "evidence[appeal] is only for disputes whose status is appeal_needs_response.", param="evidence[appeal]"
            )
        submitting = bool(submit) and bool(staged or "submit" in p)
        if submitting and not staged and not dispute["evidence_details"]["has_evidence"]:
            raise SandboxError("There is no evidence to submit: send at least one field of `evidence`.", param="evidence")
        previous: Obj = {}
        if staged:
            previous["evidence"] = dict(dispute["evidence"])
            dispute["evidence"].update(staged)
            dispute["evidence_details"]["has_evidence"] = True
        if method is not None:
            dispute["intended_submission_method"] = method
        if metadata is not None:
            previous["metadata"] = dict(dispute["metadata"])
            self._update_metadata(dispute, metadata)
        if submitting:
            previous["status"] = dispute["status"]
            self._submit(dispute)
        self._emit("charge.dispute.updated", dispute, previous=previous)
        return public(dispute)

    def close_dispute_api(self, account: str | None, p: Params, dispute_id: str) -> Obj:
        """Accepting the dispute: an unanswered chargeback or appeal is lost, an inquiry closes."""
        p.only()
        dispute = self._get("dispute", dispute_id, account)
        outcome = {"needs_response": "lost", "appeal_needs_response": "lost", "warning_needs_response": "warning_closed"}
        if dispute["status"] not in outcome:
            raise SandboxError(
                f"This dispute is {dispute['status']}; only one that needs a response can be closed.", param="dispute"
            )
        self._close(dispute, outcome[dispute["status"]])
        return public(dispute)

    def _submit(self, dispute: Obj) -> None:
        dispute["status"] = "appeal_under_review" if dispute["status"] == "appeal_needs_response" else UNDER_REVIEW[dispute["status"]]
        details = dispute["evidence_details"]
        details["submission_count"] += 1
        details["submission_method"] = "manual"
        details["past_due"] = bool(details["due_by"]) and self.now() > details["due_by"]

    def _close(self, dispute: Obj, status: str) -> None:
        previous = {"status": dispute["status"]}
        dispute["status"] = status
        self._emit("charge.dispute.closed", dispute, previous=previous)
        if status == "won":
            self._move_funds(dispute, withdraw=False)

    # ---- the sandbox's controls (what the cardholder, their bank and the network do) -----------

    @locked
    def dispute(
        self, charge_id: str, *, amount: int | None = None, reason: str = "fraudulent", inquiry: bool = False
    ) -> Obj:
        """The cardholder disputes the charge: an inquiry (no money moves yet) or a chargeback
        (the amount and the fee are withdrawn now)."""
        charge = self._any("charge", charge_id)
        status = "warning_needs_response" if inquiry else "needs_response"
        dispute = self._new_dispute(charge, amount, reason, status, "inquiry" if inquiry else "chargeback")
        charge["disputed"] = True
        self._emit("charge.dispute.created", dispute)
        if not inquiry:
            self._move_funds(dispute, withdraw=True)
        return public(dispute)

    @locked
    def escalate_dispute(self, dispute_id: str) -> Obj:
        """The bank turns an open inquiry into a chargeback: the money is withdrawn now."""
        dispute = self._any("dispute", dispute_id)
        if dispute["status"] not in INQUIRY_OPEN:
            raise SandboxError(f"Dispute {dispute_id} is {dispute['status']}, not an open inquiry.", param="dispute")
        previous = {"status": dispute["status"]}
        dispute["status"] = "needs_response"
        dispute["payment_method_details"]["card"]["case_type"] = "chargeback"
        dispute["evidence_details"].update(due_by=self.now() + 7 * DAY, submission_count=0)
        self._emit("charge.dispute.updated", dispute, previous=previous)
        self._move_funds(dispute, withdraw=True)
        return public(dispute)

    @locked
    def respond_to_dispute(self, dispute_id: str, text: str = "Access was given and used; see the logs.") -> Obj:
        """What answering in the dashboard does: evidence submitted, `*_needs_response` becomes
        `*_under_review` (for an appeal, `evidence[appeal]`)."""
        dispute = self._any("dispute", dispute_id)
        if dispute["status"] not in (*UNDER_REVIEW, "appeal_needs_response"):
            raise SandboxError(f"Dispute {dispute_id} is {dispute['status']}: there is nothing to answer.", param="dispute")
        previous = {"status": dispute["status"], "evidence": dict(dispute["evidence"])}
        if dispute["status"] == "appeal_needs_response":
            dispute["evidence"]["appeal"] = {"card": {"reason_for_filing": text, "supporting_files": []}}
        else:
            dispute["evidence"]["uncategorized_text"] = text
        dispute["evidence_details"]["has_evidence"] = True
        self._submit(dispute)
        self._emit("charge.dispute.updated", dispute, previous=previous)
        return public(dispute)

    @locked
    def close_dispute(self, dispute_id: str, won: bool | None = None) -> Obj:
        """The decision: an open chargeback or appeal is `won` (the amount comes back) or `lost`;
        an open inquiry closes as `warning_closed` (`won` is not asked for)."""
        dispute = self._any("dispute", dispute_id)
        if dispute["status"] in INQUIRY_OPEN:
            if won is not None:
                raise SandboxError("An inquiry closes as warning_closed: leave out won.", param="won")
            self._close(dispute, "warning_closed")
        elif dispute["status"] in (*CHARGEBACK_OPEN, *APPEAL_OPEN):
            if won is None:
                raise SandboxError("Say whether the chargeback was won.", param="won")
            self._close(dispute, "won" if won else "lost")
        else:
            raise SandboxError(f"Dispute {dispute_id} is already closed ({dispute['status']}).", param="dispute")
        return public(dispute)

    @locked
    def appeal_dispute(self, dispute_id: str) -> Obj:
        """The business appeals a lost decision (where the network allows it): the dispute wants
        appeal evidence; the money stays withdrawn."""
        dispute = self._any("dispute", dispute_id)
        if dispute["status"] != "lost":
            raise SandboxError(f"Only a lost dispute can be appealed; {dispute_id} is {dispute['status']}.", param="dispute")
        previous = {"status": "lost"}
        dispute["status"] = "appeal_needs_response"
        dispute["evidence_details"]["due_by"] = self.now() + 10 * DAY
        self._emit("charge.dispute.updated", dispute, previous=previous)
        return public(dispute)

    @locked
    def prevent_dispute(
        self, charge_id: str, *, amount: int | None = None, reason: str = "fraudulent", resolution: bool = False
    ) -> Obj:
        """A dispute stopped before it became a chargeback (`prevented`): blocked (nothing moves),
        or resolved by Stripe refunding the amount to the cardholder (a refund on the charge)."""
        charge = self._any("charge", charge_id)
        dispute = self._new_dispute(charge, amount, reason, "prevented", "resolution" if resolution else "block")
        self._emit("charge.dispute.created", dispute)
        if resolution:
            self._refund(charge, dispute["amount"], reason="fraudulent", metadata={})
        return public(dispute)


def _strings(params: Params, key: str) -> list[str]:
    """An array of strings (`key[0]=a&key[1]=b`)."""
    value = params.data.get(key)
    if value is None or value == "":
        return []
    if not isinstance(value, dict) or not all(k.isdigit() and isinstance(v, str) for k, v in value.items()):
        raise ParameterError(f"Invalid array: {params.name(key)}", param=params.name(key), code="parameter_invalid_array")
    return [value[k] for k in sorted(value, key=int)]

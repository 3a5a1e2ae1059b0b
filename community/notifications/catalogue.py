"""The catalogue: every message the platform sends about a community's life, as an entry
(the event it answers, its audience, its default subject and body, the variables it offers).

The defaults are the files under templates/notifications/<template>/ (subject.txt, body.txt,
and body.html, sent as the HTML part while the owner has not edited the text). Account mails
(login links, email changes, staff invitations) are "system" entries: listed, never switched off,
sent directly by accounts through mail.service.queue_email."""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from typing import Annotated

from litestar.params import PathParameter

from community.mail.owner_templates import (
    CONFIRMATION_VARIABLES,
    DEFAULT_CONFIRMATION_BODY,
    DEFAULT_CONFIRMATION_SUBJECT,
)

STAFF, MEMBER, SYSTEM = "staff", "member", "system"

COMMON = {
    "community_name": "the community's name",
    "offer_title": "the offer's title",
    "site_url": "the site's address",
}
MEMBER_VARS = {
    "name": "the member's name (may be empty)",
    "email": "the member's email address",
}
ABOUT_MEMBER = {
    "member_name": "the member's name (may be empty)",
    "member_email": "the member's email address",
}
STAFF_VARS = {
    "name": "your staff member's name (may be empty)",
    "email": "your staff member's email address",
}


@dataclasses.dataclass(frozen=True)
class Entry:
    key: str
    audience: str
    title: str
    event: str  # the announced event it answers ("" for system mail)
    template: str  # folder under templates/notifications/
    variables: dict[str, str]
    default_on: bool = True

    @property
    def switchable(self) -> bool:
        return self.audience != SYSTEM

    def default_subject(self) -> str:
        if self.key == "purchase_confirmation":  # the offers' confirmation email has its own default
            return DEFAULT_CONFIRMATION_SUBJECT
        return _source(self.template, "subject.txt").strip()

    def default_body(self) -> str:
        if self.key == "purchase_confirmation":
            return DEFAULT_CONFIRMATION_BODY
        return _source(self.template, "body.txt")


@functools.cache  # read once: the catalogue page and every send with an edited text ask again
def _source(template: str, name: str) -> str:
    return (resources.files("community") / "templates" / "notifications" / template / name).read_text()


def _v(*groups: dict[str, str], **more: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for group in groups:
        out.update(group)
    out.update(more)
    return out


AMOUNT = {"amount": "the amount, with its currency (for example $49.00)"}
BILLING = {"billing_url": "the member's payments and memberships page"}

ENTRIES: list[Entry] = [
    # To staff (owners and admins by default; managers when they choose to).
    Entry(
        "staff_purchase",
        STAFF,
        "New purchase or subscription",
        "purchase",
        "staff_purchase",
        _v(COMMON, STAFF_VARS, ABOUT_MEMBER, AMOUNT),
    ),
    Entry(
        "staff_renewal",
        STAFF,
        "Recurring payment",
        "payment_succeeded",
        "staff_renewal",
        _v(COMMON, STAFF_VARS, ABOUT_MEMBER, AMOUNT),
    ),
    Entry(
        "staff_payment_failed",
        STAFF,
        "Failed payment",
        "payment_failed",
        "payment_failed_staff",
        _v(
            COMMON,
            AMOUNT,
            staff_name="your staff member's name (may be empty)",
            name="the member's name",
            email="the member's email",
            grace_ends="the day access stops without a payment",
            grace_days="the community's days of grace",
        ),
    ),
    Entry(
        "staff_cancellation",
        STAFF,
        "Cancellation",
        "cancellation",
        "member_cancelled",
        _v(
            COMMON,
            STAFF_VARS,
            ABOUT_MEMBER,
            ends_at="when access ends (empty: ended)",
            in_grace="true while a payment is unpaid",
        ),
    ),
    Entry(
        "staff_refund_failed",
        STAFF,
        "Refund failed",
        "refund_failed",
        "refund_failed_staff",
        _v(
            COMMON,
            STAFF_VARS,
            ABOUT_MEMBER,
            AMOUNT,
            outcome="failed or was canceled",
            why="Stripe's reason",
            payment_id="the payment's number",
            refund_id="the refund's number",
            stripe_refund_id="Stripe's refund id",
            member_told="true if the member had been told it succeeded",
            access_ended="true if access ended",
            revoke_access="true if the refund was to end access",
        ),
    ),
    Entry(
        "staff_dispute_opened",
        STAFF,
        "Dispute opened",
        "dispute_opened",
        "dispute_opened",
        _v(
            COMMON,
            STAFF_VARS,
            ABOUT_MEMBER,
            AMOUNT,
            paid="the payment disputed",
            reason="the reason given",
            respond_by="the deadline to answer",
            payment_id="the payment's number",
            dispute_id="Stripe's dispute id",
            inquiry="true for an inquiry",
            escalated="true when an inquiry became a chargeback",
        ),
    ),
    Entry(
        "staff_dispute_closed",
        STAFF,
        "Dispute closed",
        "dispute_closed",
        "dispute_closed",
        _v(
            COMMON,
            STAFF_VARS,
            ABOUT_MEMBER,
            AMOUNT,
            outcome="won, lost, ...",
            payment_id="the payment's number",
            dispute_id="Stripe's dispute id",
            prevented="true when no chargeback was raised",
        ),
    ),
    Entry(
        "staff_refund_issued",
        STAFF,
        "Refund issued",
        "refund_issued",
        "refund_issued_staff",
        _v(
            COMMON,
            STAFF_VARS,
            ABOUT_MEMBER,
            AMOUNT,
            paid="the payment refunded",
            access_revoked="true if access ended",
            payment_url="the payment's page in your console",
        ),
    ),
    Entry(
        "staff_payout_due",
        STAFF,
        "Payout due (resell rights)",
        "payout_due",
        "payout_due",
        _v(
            STAFF_VARS,
            community_name="the community's name",
            site_url="the site's address",
            affiliates="how many affiliates can be paid now",
            total="what they are owed in all, per currency",
            balances_url="the console's page of balances, where the payout run is created",
        ),
    ),
    # To members.
    Entry(
        "purchase_confirmation",
        MEMBER,
        "Purchase confirmation",
        "purchase",
        "purchase_confirmation",
        dict(CONFIRMATION_VARIABLES),
    ),
    Entry(
        "cancellation_confirmed",
        MEMBER,
        "Cancellation confirmation",
        "cancellation",
        "cancellation_confirmed",
        _v(
            COMMON,
            MEMBER_VARS,
            BILLING,
            ends_at="when access ends (empty: ended)",
            in_grace="true while a payment is unpaid",
            by_staff="true when staff ended it",
        ),
    ),
    Entry(
        "payment_succeeded",
        MEMBER,
        "Payment succeeded",
        "payment_succeeded",
        "payment_succeeded",
        _v(
            COMMON,
            MEMBER_VARS,
            AMOUNT,
            receipt_url="the receipt's address",
            community_url="the community's page",
        ),
    ),
    Entry(
        "payment_failed",
        MEMBER,
        "Payment failed",
        "payment_failed",
        "payment_failed",
        _v(
            COMMON,
            MEMBER_VARS,
            AMOUNT,
            grace_ends="the day access stops without a payment",
            grace_days="the community's days of grace",
            community_url="the community's page",
        ),
    ),
    Entry(
        "trial_ending",
        MEMBER,
        "Trial ending",
        "trial_ending",
        "trial_ending",
        _v(
            COMMON,
            MEMBER_VARS,
            AMOUNT,
            trial_ends="the day the trial ends",
            has_card="true with a card on file",
            community_url="the community's page",
        ),
    ),
    Entry(
        "refund_issued",
        MEMBER,
        "Refund issued",
        "refund_issued",
        "refund_issued",
        _v(
            COMMON,
            MEMBER_VARS,
            AMOUNT,
            BILLING,
            paid="the payment refunded",
            access_revoked="true if access ended",
        ),
    ),
    Entry(
        "refund_failed",
        MEMBER,
        "Refund failed (correction)",
        "refund_failed",
        "refund_failed",
        _v(
            COMMON,
            MEMBER_VARS,
            AMOUNT,
            BILLING,
            outcome="failed or was canceled",
            why="Stripe's reason",
            access_ended="true if access ended",
        ),
    ),
    # Sent by the access runs' email job (notifications/access.py), one per member per run.
    Entry(
        "access_gained",
        MEMBER,
        "Access gained",
        "access_changed",
        "access_gained",
        _v(COMMON, MEMBER_VARS, groups="the groups gained (a list)", community_url="the community's page"),
    ),
    Entry(
        "access_lost",
        MEMBER,
        "Access lost",
        "access_changed",
        "access_lost",
        _v(COMMON, MEMBER_VARS, groups="the groups lost (a list)", community_url="the community's page"),
    ),
    # System mail: sent by accounts directly; cannot be switched off or edited.
    Entry("login_link", SYSTEM, "Login link", "", "login_link", {}),
    Entry("email_change", SYSTEM, "Email change confirmation", "", "email_change", {}),
    Entry("email_changed", SYSTEM, "Email changed notice", "", "email_changed", {}),
    Entry("staff_invite", SYSTEM, "Staff invitation", "", "staff_invite", {}),
]

BY_KEY = {entry.key: entry for entry in ENTRIES}
SWITCHABLE = [entry for entry in ENTRIES if entry.switchable]


def for_event(event: str) -> list[Entry]:
    """The messages answering an event: the member's first, then staff's."""
    return sorted((entry for entry in ENTRIES if entry.event == event), key=lambda entry: entry.audience != MEMBER)


# Sample values for previews and for checking an owner's template at save.
SAMPLE: dict[str, object] = {
    "community_name": "Sample Community",
    "offer_title": "Sample Membership",
    "site_url": "https://example.com",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "member_name": "Ada Lovelace",
    "member_email": "ada@example.com",
    "staff_name": "Grace Hopper",
    "amount": "$49.00",
    "paid": "$49.00",
    "billing_url": "https://example.com/communities/1/billing",
    "community_url": "https://example.com/communities/1",
    "receipt_url": "https://example.com/receipt/1",
    "ends_at": "31 December 2026, 00:00 UTC",
    "in_grace": False,
    "by_staff": False,
    "grace_ends": "31 December 2026",
    "grace_days": 7,
    "trial_ends": "31 December 2026",
    "has_card": True,
    "access_revoked": False,
    "access_ended": False,
    "revoke_access": False,
    "member_told": True,
    "outcome": "won",
    "why": "expired_or_canceled_card",
    "reason": "fraudulent",
    "respond_by": "31 December 2026, 00:00 UTC",
    "payment_id": 1,
    "refund_id": 1,
    "stripe_refund_id": "re_123",
    "dispute_id": "dp_123",
    "inquiry": False,
    "escalated": False,
    "prevented": False,
    "buyer_name": "Ada Lovelace",
    "buyer_email": "ada@example.com",
    "access_url": "https://example.com/communities/1",
    "groups": ["Weight Training", "Yoga"],
    "payment_url": "https://example.com/dashboard/communities/1/payments/1",
    "affiliates": 2,
    "total": "$120.00",
    "balances_url": "https://example.com/dashboard/communities/1/resell/balances",
}


MessageKey = Annotated[str, PathParameter(max_length=60, description="A message of the catalogue (its key).")]

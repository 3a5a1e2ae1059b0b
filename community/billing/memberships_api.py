"""Memberships through the API: a member's own (list, payments, cancel at the period's end,
resume, update the payment method) and the staff's end of one (now, at Stripe too)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import JSONBody

from community.accounts.guards import (
    StaffMember,
    provide_editor,
    provide_member,
    provide_participant,
    provide_principal,
)
from community.billing import memberships
from community.billing import service as billing
from community.billing.schemas import PaymentOut, payment_out
from community.offers import entitlements
from community.offers.access_api import End, EntitlementOut, entitlement_out
from community.offers.models import EntitlementStatus
from community.web import Cursor, Db, ObjectId, Page, PageLimit, page_of


class SubscriptionOut(msgspec.Struct):
    status: str  # Stripe's: trialing, active, past_due, canceled, ...
    cancel_at_period_end: bool
    current_period_end: dt.datetime | None
    next_payment_at: dt.datetime | None  # null once cancelled (no more charges)
    next_payment_amount: int | None
    currency: str


class MembershipOut(msgspec.Struct):
    entitlement_id: int
    offer_id: int
    offer_title: str
    pricing: str
    status: str  # the entitlement's: active, past_due, cancelled, refunded, expired
    live: bool  # access now
    starts_at: dt.datetime
    ends_at: dt.datetime | None  # access stops then (null: open-ended)
    subscription: SubscriptionOut | None
    can_cancel: bool
    can_resume: bool
    join_again_url: str | None


class PortalOut(msgspec.Struct):
    url: str


class TotalSpentOut(msgspec.Struct):
    totals: dict[str, int]  # per currency, minor units, net of refunds and chargebacks


def _subscription_out(m: memberships.Membership) -> SubscriptionOut | None:
    sub = m.subscription
    if sub is None:
        return None
    charging = memberships.subscription_is_live(sub) and not sub.cancel_at_period_end
    return SubscriptionOut(
        status=sub.status,
        cancel_at_period_end=sub.cancel_at_period_end,
        current_period_end=sub.current_period_end,
        next_payment_at=sub.current_period_end if charging else None,
        next_payment_amount=sub.amount if charging else None,
        currency=sub.currency,
    )


def membership_out(m: memberships.Membership) -> MembershipOut:
    live = entitlements.is_live(m.entitlement)
    running = live and memberships.subscription_is_live(m.subscription)
    return MembershipOut(
        entitlement_id=m.entitlement.id,
        offer_id=m.offer.id,
        offer_title=m.offer.title,
        pricing=m.offer.pricing.value,
        status=m.entitlement.status.value,
        live=live,
        starts_at=m.entitlement.starts_at,
        ends_at=m.entitlement.ends_at,
        subscription=_subscription_out(m),
        can_cancel=running and m.subscription is not None and not m.subscription.cancel_at_period_end,
        can_resume=running and m.subscription is not None and m.subscription.cancel_at_period_end,
        join_again_url=m.join_again_url,
    )


async def _change(
    change: Callable[..., Awaitable[object]], db: Db, state: State, participant: StaffMember, entitlement_id: int
) -> MembershipOut:
    """A member's cancel or resume, answered with the membership as it is now."""
    community_id, user_id = participant.community_id, participant.user_id
    await change(db, state.settings, community_id=community_id, user_id=user_id, entitlement_id=entitlement_id)
    for m in await memberships.my_memberships(db, state.settings, community_id, user_id):
        if m.entitlement.id == entitlement_id:
            return membership_out(m)
    raise AssertionError("the member's entitlement was just read")


class MyMembershipsController(Controller):
    path = "/communities/{community_id:int}/me"
    tags = ["memberships"]
    dependencies = {"principal": Provide(provide_principal), "participant": Provide(provide_participant)}

    @get("/memberships", summary="My memberships here: status, access end, next payment, how to join again")
    async def list_memberships(self, participant: StaffMember, db: Db, state: State) -> list[MembershipOut]:
        rows = await memberships.my_memberships(db, state.settings, participant.community_id, participant.user_id)
        return [membership_out(m) for m in rows]

    @get("/payments", summary="My payments here, newest first (keyset pages), with refunds and receipts")
    async def list_payments(
        self, participant: StaffMember, db: Db, after: Cursor = None, limit: PageLimit = 50
    ) -> Page[PaymentOut]:
        rows = await memberships.my_payments(db, participant.community_id, participant.user_id, after=after, limit=limit)
        return page_of([payment_out(p) for p in rows], limit, lambda item: item.id)

    @get("/total-spent", summary="What I paid here, per currency, net of refunds and chargebacks")
    async def total_spent(self, participant: StaffMember, db: Db) -> TotalSpentOut:
        # The guard found the participant: no second membership check (memberships.total_spent's).
        return TotalSpentOut(await billing.total_spent(db, community_id=participant.community_id, user_id=participant.user_id))

    @post("/memberships/{entitlement_id:int}/cancel", status_code=200, summary="Cancel at the period's end (access stays until then)")
    async def cancel(self, entitlement_id: ObjectId, participant: StaffMember, db: Db, state: State) -> MembershipOut:
        return await _change(memberships.cancel_at_period_end, db, state, participant, entitlement_id)

    @post("/memberships/{entitlement_id:int}/resume", status_code=200, summary="Resume a cancelled membership before its period ends")
    async def resume(self, entitlement_id: ObjectId, participant: StaffMember, db: Db, state: State) -> MembershipOut:
        return await _change(memberships.resume, db, state, participant, entitlement_id)

    @post(
        "/memberships/{entitlement_id:int}/payment-method",
        status_code=201,
        summary="A Stripe billing portal session to update the payment method (its url; back to the billing page)",
    )
    async def payment_method(self, entitlement_id: ObjectId, participant: StaffMember, db: Db, state: State) -> PortalOut:
        url = await memberships.payment_method_url(
            db, state.settings, community_id=participant.community_id, user_id=participant.user_id,
            entitlement_id=entitlement_id,
        )
        return PortalOut(url)


class EndEntitlementController(Controller):
    path = "/communities/{community_id:int}/entitlements/{entitlement_id:int}"
    tags = ["access"]
    dependencies = {"principal": Provide(provide_principal), "editor": Provide(provide_editor)}

    @post("/end", status_code=200, summary="Cancel, refund or expire an entitlement (a running subscription: at Stripe too, now)")
    async def end(self, entitlement_id: ObjectId, data: JSONBody[End], editor: StaffMember, db: Db, state: State) -> EntitlementOut:
        entitlement = await memberships.end_now(
            db, state.settings, community_id=editor.community_id, entitlement_id=entitlement_id,
            status=EntitlementStatus(data.status), at=data.at, actor_id=editor.user_id, reason=data.reason,
            notify=data.status == "cancelled",
        )
        return entitlement_out(entitlement)

    @post("/cancel-now", status_code=200, summary="Cancel now: Stripe stops charging, access ends now")
    async def cancel_now(self, entitlement_id: ObjectId, editor: StaffMember, db: Db, state: State) -> EntitlementOut:
        entitlement = await memberships.end_now(
            db, state.settings, community_id=editor.community_id, entitlement_id=entitlement_id,
            status=EntitlementStatus.cancelled, actor_id=editor.user_id, reason="cancelled now by staff", notify=True,
        )
        return entitlement_out(entitlement)


class MemberTotalController(Controller):
    path = "/communities/{community_id:int}/members/{user_id:int}/total-spent"
    tags = ["payments"]
    dependencies = {"principal": Provide(provide_principal), "member": Provide(provide_member)}

    @get("/", summary="What a member paid here, per currency, net of refunds and chargebacks")
    async def total_spent(self, user_id: ObjectId, member: StaffMember, db: Db) -> TotalSpentOut:
        return TotalSpentOut(await memberships.total_spent(db, member.community_id, user_id))

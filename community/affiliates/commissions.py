"""Commissions: what each attributed payment earns its affiliate, kept as a signed ledger.

A payment earns when its checkout (or, for a renewal, its entitlement's purchase checkout)
carries an affiliate and the offer's program says this payment counts ("first", "all", or the
first N months). One commission per payment (a unique key), so a webhook or job delivered
twice earns once. The ledger (commission_entries) is the truth; dashboards sum it.

Reversals are recomputed from the payment's current state, never accumulated from events:
the commission should have reversed `amount - floor(amount * remaining / base_amount)`, and
the entry written is the difference from what it reversed so far. Any sequence of partial
refunds therefore ends exactly at zero, a repeated job writes nothing, and a won dispute
writes the difference back (a `restored` entry).

States: pending (inside the hold) -> approved (the cron, after hold_until) -> paid (its payout
was paid). A full reversal before any of its entries went into a payout ends it `reversed`;
after that, reversals stay payable lines (negative) on the affiliate's next payout.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from community.accounts.models import User
from community.affiliates import payouts
from community.affiliates.models import (
    Affiliate,
    AffiliateStatus,
    Commission,
    CommissionState,
    EntryKind,
    LedgerEntry,
)
from community.billing.models import Checkout, Payment, PaymentKind
from community.db import utcnow
from community.jobs import JobContext
from community.mail.announce import announce
from community.money import format_amount
from community.offers.models import Offer

log = logging.getLogger("community.affiliates")

SELF_REFERRAL = "self-referral: the affiliate bought through their own link"
SUSPENDED = "the affiliate was suspended when the payment was made"
NOTHING_EARNED = "the commission rounds down to nothing"
GMAIL_DOMAINS = frozenset(["gmail.com", "googlemail.com"])
APPROVE_BATCH = 500


def same_person_email(email: str) -> str:
    """An address as one person's mailbox: case folded, `+tag` dropped, Gmail's dots ignored
    (and googlemail.com is gmail.com)."""
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0] or local  # "+deals@x.com" is its own mailbox, not "@x.com"
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def commission_for(offer: Offer, base_amount: int, currency: str) -> int:
    """The offer's rate on what was paid (floor), or its flat amount (never more than was paid)."""
    if offer.resell_commission_bps is not None:
        return base_amount * offer.resell_commission_bps // 10_000
    if offer.resell_commission_flat is not None and currency == offer.currency:
        return min(offer.resell_commission_flat, base_amount)
    return 0


def reversal_due(commission: Commission, payment: Payment) -> int:
    """What the commission should have reversed by now, given what is left of the payment."""
    if commission.base_amount <= 0:
        return 0
    remaining = max(payment.amount - payment.refunded_amount - payment.disputed_amount, 0)
    return commission.amount - commission.amount * remaining // commission.base_amount


# ---------------------------------------------------------------- attribution


async def _purchase_of(session: AsyncSession, payment: Payment) -> Payment | None:
    """The payment that bought what this one pays for: itself, or its entitlement's purchase."""
    if payment.kind == PaymentKind.purchase:
        return payment
    if payment.entitlement_id is None:
        return None
    return await session.scalar(
        select(Payment)
        .where(
            Payment.community_id == payment.community_id,
            Payment.entitlement_id == payment.entitlement_id,
            Payment.kind == PaymentKind.purchase,
        )
        .order_by(Payment.id)
        .limit(1)
    )


async def _paid_position(session: AsyncSession, payment: Payment) -> int:
    """How many paid (non-zero) payments of the same entitlement came before this one."""
    if payment.entitlement_id is None:
        return 0 if payment.kind == PaymentKind.purchase else 1
    earlier = (Payment.paid_at < payment.paid_at) | ((Payment.paid_at == payment.paid_at) & (Payment.id < payment.id))
    return await session.scalar(
        select(func.count()).where(
            Payment.community_id == payment.community_id,
            Payment.entitlement_id == payment.entitlement_id,
            Payment.amount > 0,
            earlier,
        )
    ) or 0


async def earns(session: AsyncSession, offer: Offer, payment: Payment) -> bool:
    """Whether the program counts this payment: the first paid one, all, or those whose period
    starts within the first `resell_earn_months` months (by position, so a renewal charged a
    little after its anniversary is still the month it pays for)."""
    if offer.resell_earns == "all":
        return True
    position = await _paid_position(session, payment)
    if offer.resell_earns == "months" and offer.resell_earn_months:
        return position * (offer.interval_months or 1) < offer.resell_earn_months
    return position == 0


async def _checkout_of(session: AsyncSession, payment: Payment) -> Checkout | None:
    """The checkout that bought what this payment pays for: the purchase payment's, or (a trial
    has no purchase payment: its first money is a renewal) the entitlement's first checkout."""
    purchase = await _purchase_of(session, payment)
    query = select(Checkout).where(Checkout.community_id == payment.community_id)
    if purchase is not None and purchase.checkout_id is not None:
        return await session.scalar(query.where(Checkout.id == purchase.checkout_id))
    if payment.entitlement_id is None:
        return None
    return await session.scalar(query.where(Checkout.entitlement_id == payment.entitlement_id).order_by(Checkout.id).limit(1))


async def _attribution(session: AsyncSession, payment: Payment) -> tuple[Affiliate, Checkout] | None:
    """The affiliate whose link sold this (for this offer, in this community), and that checkout."""
    checkout = await _checkout_of(session, payment)
    if checkout is None or checkout.affiliate_id is None:
        return None
    affiliate = await session.get(Affiliate, checkout.affiliate_id)
    if affiliate is None or affiliate.community_id != payment.community_id or affiliate.offer_id != payment.offer_id:
        return None
    return affiliate, checkout


def _suspended_when_paid(affiliate: Affiliate, payment: Payment) -> bool:
    """Suspended now, and already when the payment was made (a suspension after it does not
    take back what the payment earned)."""
    if affiliate.status != AffiliateStatus.suspended:
        return False
    return affiliate.suspended_at is None or affiliate.suspended_at <= payment.paid_at


async def _is_self_referral(session: AsyncSession, affiliate: Affiliate, checkout: Checkout, payment: Payment) -> bool:
    """The affiliate bought (paid, or was logged in at checkout), or the buyer's mailbox is theirs."""
    if affiliate.user_id in (payment.user_id, checkout.user_id, checkout.viewer_id):
        return True
    emails = dict((await session.execute(select(User.id, User.email).where(User.id.in_([payment.user_id, affiliate.user_id])))).all())
    mine = same_person_email(emails[affiliate.user_id])
    return any(email and same_person_email(email) == mine for email in (emails.get(payment.user_id), checkout.email))


# ---------------------------------------------------------------- recording


async def record_commission(session: AsyncSession, *, community_id: int, payment_id: int) -> Commission | None:
    """The commission this payment earns (created once), brought up to date with its refunds
    and disputes. None when the payment earns nothing (no affiliate, program off, a payment the
    program does not count)."""
    payment = await session.scalar(
        select(Payment).where(Payment.community_id == community_id, Payment.id == payment_id)
    )
    if payment is None or payment.amount <= 0:
        return None
    attribution = await _attribution(session, payment)
    if attribution is None:
        return None
    affiliate, checkout = attribution
    offer = await session.get(Offer, payment.offer_id)
    assert offer is not None
    if not offer.resell_enabled or not await earns(session, offer, payment):
        return None
    amount, reason = commission_for(offer, payment.amount, payment.currency), ""
    if _suspended_when_paid(affiliate, payment):
        amount, reason = 0, SUSPENDED
    elif await _is_self_referral(session, affiliate, checkout, payment):
        amount, reason = 0, SELF_REFERRAL
    elif amount == 0:
        reason = NOTHING_EARNED
    new_id = await session.scalar(
        insert(Commission)
        .values(
            community_id=community_id,
            affiliate_id=affiliate.id,
            offer_id=payment.offer_id,
            payment_id=payment.id,
            buyer_user_id=payment.user_id,
            currency=payment.currency,
            base_amount=payment.amount,
            amount=amount,
            reversed_amount=0,
            state=CommissionState.rejected if reason else CommissionState.pending,
            reason=reason,
            hold_until=payment.paid_at + dt.timedelta(days=offer.resell_hold_days),
        )
        .on_conflict_do_nothing(index_elements=["payment_id"])
        .returning(Commission.id)
    )
    if new_id is not None and amount > 0:
        session.add(_entry(affiliate.id, community_id, new_id, EntryKind.earned, amount, payment.currency))
        await session.flush()
    return await adjust_commission(session, community_id=community_id, payment_id=payment.id)


def _entry(affiliate_id: int, community_id: int, commission_id: int, kind: EntryKind, amount: int, currency: str) -> LedgerEntry:
    return LedgerEntry(
        community_id=community_id, affiliate_id=affiliate_id, commission_id=commission_id,
        kind=kind, amount=amount, currency=currency,
    )


async def _has_paid_out(session: AsyncSession, commission_id: int) -> bool:
    """Whether any of its entries went into a payout (then reversals are payout lines)."""
    return bool(
        await session.scalar(
            select(func.count()).where(LedgerEntry.commission_id == commission_id, LedgerEntry.payout_id.is_not(None))
        )
    )


async def adjust_commission(session: AsyncSession, *, community_id: int, payment_id: int) -> Commission | None:
    """Bring the payment's commission in line with its refunds and disputes now. The commission
    row is locked, then the payment read as committed: concurrent or repeated jobs write each
    difference once."""
    commission = await session.scalar(
        select(Commission)
        .where(Commission.community_id == community_id, Commission.payment_id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if commission is None or commission.amount == 0:
        return commission
    payment = await session.scalar(
        select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    )
    assert payment is not None
    difference = reversal_due(commission, payment) - commission.reversed_amount
    if difference == 0:
        return commission
    kind = EntryKind.reversal if difference > 0 else EntryKind.restored
    session.add(_entry(commission.affiliate_id, community_id, commission.id, kind, -difference, commission.currency))
    commission.reversed_amount += difference
    await _settle_state(session, commission)
    await session.flush()
    return commission


async def _settle_state(session: AsyncSession, commission: Commission) -> None:
    fully_reversed = commission.reversed_amount == commission.amount
    if commission.state in (CommissionState.pending, CommissionState.approved) and fully_reversed:
        if not await _has_paid_out(session, commission.id):
            commission.state = CommissionState.reversed
    elif commission.state == CommissionState.reversed and not fully_reversed:
        # A won dispute: back into the hold (or approved, if the hold is over).
        commission.state = CommissionState.approved if commission.approved_at else CommissionState.pending


async def approve_due(session: AsyncSession, *, now: dt.datetime | None = None, batch: int = APPROVE_BATCH) -> int:
    """Pending commissions whose hold is over become approved (payable). One batch per call;
    the cron repeats until a batch comes back short. Idempotent."""
    now = now or utcnow()
    due = (
        select(Commission.id)
        .where(Commission.state == CommissionState.pending, Commission.hold_until <= now)
        .order_by(Commission.hold_until)
        .limit(batch)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    approved = (
        await session.execute(
            update(Commission)
            .where(Commission.id.in_(due), Commission.state == CommissionState.pending)
            .values(state=CommissionState.approved, approved_at=now)
            .returning(Commission.id, Commission.community_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    for community_id in sorted({row.community_id for row in approved}):
        await _announce_payout_due(session, community_id, [row.id for row in approved if row.community_id == community_id])
    return len(approved)


async def _announce_payout_due(session: AsyncSession, community_id: int, approved_ids: list[int]) -> None:
    """Staff hear that affiliates can be paid when an approval makes a balance reach its
    minimum (not at every approval of an affiliate already due). Announced in the approval's
    transaction: a rerun approves nothing and tells nobody."""
    just_approved = {
        (affiliate_id, currency): int(total)
        for affiliate_id, currency, total in await session.execute(
            select(LedgerEntry.affiliate_id, LedgerEntry.currency, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.commission_id.in_(approved_ids))
            .group_by(LedgerEntry.affiliate_id, LedgerEntry.currency)
        )
    }
    due = [balance for balance in await payouts.balances(session, community_id) if balance.due]
    newly_due = [
        balance for balance in due
        if (balance.affiliate_id, balance.currency) in just_approved
        and not payouts.reaches_minimum(balance.amount - just_approved[balance.affiliate_id, balance.currency], balance.minimum)
    ]
    if not newly_due:
        return
    totals: dict[str, int] = {}
    for balance in due:
        totals[balance.currency] = totals.get(balance.currency, 0) + balance.amount
    await announce(
        session, "payout_due", community_id=community_id,
        affiliates=len({balance.affiliate_id for balance in due}),
        total=", ".join(format_amount(amount, currency) for currency, amount in sorted(totals.items())),
        balances_path=f"/dashboard/communities/{community_id}/resell/balances",
    )


async def approve_all_due(sessions: async_sessionmaker[AsyncSession]) -> int:
    """The approval cron: one transaction per batch until a batch comes back short."""
    approved = 0
    while True:
        async with sessions() as session, session.begin():
            done = await approve_due(session)
        approved += done
        if done < APPROVE_BATCH:
            return approved


# ---------------------------------------------------------------- jobs


async def on_payment_recorded(session: AsyncSession, ctx: JobContext, *, payment_id: int) -> None:
    assert ctx.community_id is not None
    await record_commission(session, community_id=ctx.community_id, payment_id=payment_id)


async def on_payment_adjusted(session: AsyncSession, ctx: JobContext, *, payment_id: int) -> None:
    assert ctx.community_id is not None
    await adjust_commission(session, community_id=ctx.community_id, payment_id=payment_id)

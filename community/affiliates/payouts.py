"""Payouts: the owner pays affiliates what their ledger says is payable, per currency.

Payable: an entry in no payout yet whose commission is approved, or paid (a refund after
payout: a negative line on the next payout, so a clawback nets against new earnings). A payout
takes all of an affiliate's payable entries in one currency when their sum reaches the offer's
minimum payout (and is above zero); a negative balance waits for later earnings.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts.models import User
from community.affiliates.models import (
    Affiliate,
    Commission,
    CommissionState,
    LedgerEntry,
    Payout,
    PayoutState,
)
from community.db import get_in_community, newest_first, utcnow
from community.errors import Conflict, Invalid, check_storable
from community.offers.models import Offer

PAYABLE_STATES = (CommissionState.approved, CommissionState.paid)


def _payable(community_id: int, *columns):
    """The community's entries owed now and in no payout: `columns`, then the minimum payout
    of the entry's offer."""
    return (
        select(*columns, Offer.resell_min_payout)
        .join(Commission, Commission.id == LedgerEntry.commission_id)
        .join(Affiliate, Affiliate.id == LedgerEntry.affiliate_id)
        .join(Offer, Offer.id == Affiliate.offer_id)
        .where(
            LedgerEntry.community_id == community_id,
            LedgerEntry.payout_id.is_(None),
            Commission.state.in_(PAYABLE_STATES),
        )
    )


@dataclass(frozen=True)
class Balance:
    affiliate_id: int
    currency: str
    amount: int  # payable now
    minimum: int  # the offer's minimum payout

    @property
    def due(self) -> bool:
        """Whether the next payout run pays it (`create_payouts`' rule)."""
        return reaches_minimum(self.amount, self.minimum)


def reaches_minimum(total: int, minimum: int) -> bool:
    """A balance is paid out once it is above zero and reaches the offer's minimum payout."""
    return total > 0 and total >= minimum


async def balances(session: AsyncSession, community_id: int) -> list[Balance]:
    """What is payable per affiliate and currency (what the owner sees before paying)."""
    rows = await session.execute(
        _payable(community_id, LedgerEntry.affiliate_id, LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .group_by(LedgerEntry.affiliate_id, LedgerEntry.currency, Offer.resell_min_payout)
        .order_by(LedgerEntry.affiliate_id, LedgerEntry.currency)
    )
    return [Balance(a, c, int(total), minimum) for a, c, total, minimum in rows]


async def create_payouts(session: AsyncSession, community_id: int) -> list[Payout]:
    """One open payout per affiliate and currency whose payable balance reaches the minimum.
    The entries are locked while they are taken, so two owners pressing the button at once
    never put one entry in two payouts (the second finds nothing left)."""
    entries = (
        await session.execute(
            _payable(community_id, LedgerEntry.id, LedgerEntry.affiliate_id, LedgerEntry.currency, LedgerEntry.amount)
            .order_by(LedgerEntry.id)
            # The commissions too: a refund being applied (which locks its commission) either
            # lands first (a fully reversed commission is no longer payable) or sees the entry
            # taken (and stays a payable reversal for the next payout).
            .with_for_update(of=(LedgerEntry, Commission))
        )
    ).all()
    groups: dict[tuple[int, str, int], list[tuple[int, int]]] = {}  # (affiliate, currency, its minimum) -> entries
    for entry_id, affiliate_id, currency, amount, minimum in entries:
        groups.setdefault((affiliate_id, currency, minimum), []).append((entry_id, amount))
    made = []
    for (affiliate_id, currency, minimum), lines in groups.items():
        total = sum(amount for _, amount in lines)
        if not reaches_minimum(total, minimum):
            continue
        payout = Payout(community_id=community_id, affiliate_id=affiliate_id, currency=currency, amount=total)
        session.add(payout)
        await session.flush()
        await session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.id.in_([entry_id for entry_id, _ in lines]))
            .values(payout_id=payout.id)
            .execution_options(synchronize_session=False)
        )
        made.append(payout)
    return made


async def get_payout(session: AsyncSession, community_id: int, payout_id: int, *, lock: bool = False) -> Payout:
    return await get_in_community(session, Payout, community_id, payout_id, what="payout", lock=lock)


async def mark_paid(session: AsyncSession, community_id: int, payout_id: int, reference: str) -> Payout:
    """The owner sent the money: the payout is paid with their reference (a transfer id), and
    the commissions it carried are paid. Once only: a second call is a conflict."""
    reference = check_storable(reference, "reference").strip()
    if not reference:
        raise Invalid("say how it was paid (a transfer reference)", field="reference")
    payout = await get_payout(session, community_id, payout_id, lock=True)
    if payout.state == PayoutState.paid:
        raise Conflict(f"this payout was already paid ({payout.reference})", field="reference")
    payout.state, payout.reference, payout.paid_at = PayoutState.paid, reference[:200], utcnow()
    carried = select(LedgerEntry.commission_id).where(LedgerEntry.payout_id == payout.id)
    await session.execute(
        update(Commission)
        .where(Commission.id.in_(carried), Commission.state == CommissionState.approved)
        .values(state=CommissionState.paid)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    return payout


async def list_payouts(
    session: AsyncSession,
    community_id: int,
    *,
    after: int | None,
    limit: int,
    state: PayoutState | None = None,
    affiliate_id: int | None = None,
) -> list[Payout]:
    """Payouts, newest first."""
    return await newest_first(session, Payout, community_id, after=after, limit=limit, state=state, affiliate_id=affiliate_id)


async def payees(session: AsyncSession, community_id: int, affiliate_ids: set[int]) -> dict[int, tuple[str, str]]:
    """Affiliate id -> (email, name) of the person to pay."""
    if not affiliate_ids:
        return {}
    rows = await session.execute(
        select(Affiliate.id, User.email, User.name)
        .join(User, User.id == Affiliate.user_id)
        .where(Affiliate.community_id == community_id, Affiliate.id.in_(affiliate_ids))
    )
    return {affiliate_id: (email, name) for affiliate_id, email, name in rows}


async def payout_lines(session: AsyncSession, community_id: int, payout_id: int) -> list[tuple[LedgerEntry, Commission]]:
    rows = await session.execute(
        select(LedgerEntry, Commission)
        .join(Commission, Commission.id == LedgerEntry.commission_id)
        .where(LedgerEntry.community_id == community_id, LedgerEntry.payout_id == payout_id)
        .order_by(LedgerEntry.id)
    )
    return [(entry, commission) for entry, commission in rows]


@dataclass(frozen=True)
class Payee:
    email: str
    name: str
    offer_id: int
    offer_title: str


async def payee_details(session: AsyncSession, community_id: int, affiliate_ids: set[int]) -> dict[int, Payee]:
    """Affiliate id -> who they are and whose program (the console's balances and payouts)."""
    if not affiliate_ids:
        return {}
    rows = await session.execute(
        select(Affiliate.id, User.email, User.name, Offer.id, Offer.title)
        .join(User, User.id == Affiliate.user_id)
        .join(Offer, Offer.id == Affiliate.offer_id)
        .where(Affiliate.community_id == community_id, Affiliate.id.in_(affiliate_ids))
    )
    return {a: Payee(email, name, offer_id, title) for a, email, name, offer_id, title in rows}

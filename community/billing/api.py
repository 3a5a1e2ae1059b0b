"""Discount codes and the payments ledger through the API: owners and admins write, staff
(managers too) read."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream

from community.accounts.guards import (
    StaffMember,
    provide_editor,
    provide_member,
    provide_principal,
)
from community.billing import (
    discount_exports,
    discounts,
    payment_list,
    refunds,
    service,
)
from community.billing.schemas import (
    DiscountCodeCreate,
    DiscountCodeOut,
    DiscountCodeUpdate,
    DisputeOut,
    PaymentOut,
    RedemptionOut,
    RefundCreate,
    RefundOut,
    RevenueOut,
    code_out,
    dispute_out,
    given,
    payment_out,
    redemption_out,
    refund_out,
)
from community.db import utcnow
from community.exports import csv_download, stream_csv
from community.web import MAX_ID, Cursor, Db, ObjectId, Page, PageLimit, page_of

UserFilter = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID, description="Only this member's payments.")]
OfferFilter = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID, description="Only payments for this offer.")]
StatusFilter = Annotated[
    str | None,
    QueryParameter(description=f"Only payments in this status: {', '.join(payment_list.STATUSES)} (disputed: a chargeback holds part of it)."),
]
PaidFrom = Annotated[
    str | None, QueryParameter(description="Only payments made at or after this instant (ISO 8601 with a time zone, e.g. 2026-12-01T00:00:00Z).")
]
PaidTo = Annotated[
    str | None, QueryParameter(description="Only payments made before this instant (ISO 8601 with a time zone; excluded).")
]
EmailFilter = Annotated[
    str | None, QueryParameter(description="Only payments whose buyer's email contains this text, ignoring case.")
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="Repeat a request with the same key (a double click, a retry) and get the refund it made, not a second one.",
    ),
]

GUARDS = {
    "principal": Provide(provide_principal),
    "member": Provide(provide_member),
    "editor": Provide(provide_editor),
}


async def _out(db: Db, codes: list) -> list[DiscountCodeOut]:
    ids = [c.id for c in codes]
    offers = await discounts.offer_ids_of(db, ids)
    counts = await discounts.counts_of(db, ids)
    now = utcnow()
    return [code_out(c, offers[c.id], counts[c.id], now) for c in codes]


class DiscountCodesController(Controller):
    path = "/communities/{community_id:int}/discount-codes"
    tags = ["discount codes"]
    dependencies = GUARDS

    @get("/", summary="Discount codes, oldest first (keyset pages), with their redemption counts")
    async def list_codes(
        self, member: StaffMember, db: Db, after: Cursor = None, limit: PageLimit = 50
    ) -> Page[DiscountCodeOut]:
        codes = await discounts.list_codes(db, member.community_id, after=after, limit=limit)
        return page_of(await _out(db, codes), limit, lambda item: item.id)

    @post("/", status_code=201, summary="Create a discount code (codes ignore case)")
    async def create_code(self, data: JSONBody[DiscountCodeCreate], editor: StaffMember, db: Db) -> DiscountCodeOut:
        code = await discounts.create_code(db, editor.community_id, given(data))
        return (await _out(db, [code]))[0]

    @get("/{code_id:int}", summary="One discount code, with its redemption counts")
    async def read_code(self, code_id: ObjectId, member: StaffMember, db: Db) -> DiscountCodeOut:
        return (await _out(db, [await discounts.get_code(db, member.community_id, code_id)]))[0]

    @patch("/{code_id:int}", summary="Change a discount code's fields (only those sent); active: false deactivates it")
    async def update_code(
        self, code_id: ObjectId, data: JSONBody[DiscountCodeUpdate], editor: StaffMember, db: Db
    ) -> DiscountCodeOut:
        code = await discounts.update_code(db, editor.community_id, code_id, given(data))
        return (await _out(db, [code]))[0]

    @delete("/{code_id:int}", status_code=204, summary="Delete a code nobody redeemed (otherwise deactivate it)")
    async def delete_code(self, code_id: ObjectId, editor: StaffMember, db: Db) -> Response[None]:
        await discounts.delete_code(db, editor.community_id, code_id)
        return Response(None, status_code=204)

    @get("/{code_id:int}/redemptions", summary="A code's redemptions and reservations, newest first (keyset pages)")
    async def redemptions(
        self, code_id: ObjectId, member: StaffMember, db: Db, after: Cursor = None, limit: PageLimit = 50
    ) -> Page[RedemptionOut]:
        rows = await discounts.list_redemptions(db, member.community_id, code_id, after=after, limit=limit)
        return page_of([redemption_out(r) for r in rows], limit, lambda item: item.id)


    @get(
        "/{code_id:int}/redemptions.csv",
        summary="A code's redemptions and reservations as CSV, newest first (amounts as decimals, with the currency)",
    )
    async def redemptions_csv(self, code_id: ObjectId, member: StaffMember, db: Db, state: State) -> Stream:
        code = await discounts.get_code(db, member.community_id, code_id)
        chunks = discount_exports.redemptions_csv(state.sessions, member.community_id, code.id)
        return csv_download(f"discount-code-{code.id}-redemptions.csv", chunks)


class DiscountCodeExportsController(Controller):
    path = "/communities/{community_id:int}"
    tags = ["discount codes"]
    dependencies = GUARDS

    @get(
        "/discount-codes.csv",
        summary="Every discount code as CSV, oldest first, with its uses and state (amounts as decimals, with the currency)",
    )
    async def codes_csv(self, member: StaffMember, state: State) -> Stream:
        return csv_download("discount-codes.csv", discount_exports.codes_csv(state.sessions, member.community_id))


async def provide_payment_filter(
    user_id: UserFilter = None,
    offer_id: OfferFilter = None,
    status: StatusFilter = None,
    paid_from: PaidFrom = None,
    paid_to: PaidTo = None,
    email: EmailFilter = None,
) -> payment_list.PaymentFilter:
    """The payments list's filters from the query, the same for the list and its CSV."""
    return payment_list.read_filter(
        offer_id=offer_id, user_id=user_id, status=status, paid_from=paid_from, paid_to=paid_to, email=email
    )


PaymentFilter = NamedDependency[payment_list.PaymentFilter]
PAYMENT_GUARDS = {**GUARDS, "wanted": Provide(provide_payment_filter)}


class PaymentsController(Controller):
    path = "/communities/{community_id:int}/payments"
    tags = ["payments"]
    dependencies = PAYMENT_GUARDS

    @get("/", summary="Payments, newest first (keyset pages), by offer, member, status, date paid (UTC) or buyer's email")
    async def list_payments(
        self,
        member: StaffMember,
        db: Db,
        wanted: PaymentFilter,
        after: Cursor = None,
        limit: PageLimit = 50,
    ) -> Page[PaymentOut]:
        rows = await payment_list.list_payments(db, member.community_id, wanted, after=after, limit=limit)
        return page_of([payment_out(r.payment) for r in rows], limit, lambda item: item.id)

    @get("/revenue", summary="Revenue per offer and currency, net of refunds and disputes")
    async def revenue(self, member: StaffMember, db: Db, offer_id: OfferFilter = None) -> list[RevenueOut]:
        rows = await service.offer_revenue(db, member.community_id, offer_ids=None if offer_id is None else [offer_id])
        return [
            RevenueOut(
                offer_id=r.offer_id, currency=r.currency, payments=r.payments, paid_amount=r.paid,
                refunded_amount=r.refunded, disputed_amount=r.disputed, net_amount=r.net,
            )
            for r in rows
        ]

    @get("/{payment_id:int}", summary="One payment")
    async def read_payment(self, payment_id: ObjectId, member: StaffMember, db: Db) -> PaymentOut:
        return payment_out(await service.get_payment(db, member.community_id, payment_id))

    @get("/{payment_id:int}/disputes", summary="A payment's disputes (inquiries and chargebacks) with their status and evidence due date")
    async def list_disputes(self, payment_id: ObjectId, member: StaffMember, db: Db) -> list[DisputeOut]:
        await service.get_payment(db, member.community_id, payment_id)
        return [dispute_out(d) for d in await payment_list.disputes_of(db, member.community_id, payment_id)]

    @get("/{payment_id:int}/refunds", summary="A payment's refunds (ours and the Stripe dashboard's), oldest first")
    async def list_refunds(self, payment_id: ObjectId, member: StaffMember, db: Db) -> list[RefundOut]:
        return [refund_out(r) for r in await refunds.list_refunds(db, member.community_id, payment_id)]

    @post(
        "/{payment_id:int}/refunds",
        status_code=201,
        summary="Refund a payment fully or partly (up to what is left); the membership stays unless revoke_access",
    )
    async def refund(
        self, payment_id: ObjectId, data: JSONBody[RefundCreate], editor: StaffMember, db: Db, state: State,
        idempotency_key: IdempotencyKey = None,
    ) -> RefundOut:
        request = refunds.RefundRequest(data.amount, data.reason, data.revoke_access, editor.user_id, idempotency_key)
        refund = await refunds.refund_payment(
            db, state.settings, community_id=editor.community_id, payment_id=payment_id, request=request
        )
        return refund_out(refund)


class PaymentsCsvController(Controller):
    path = "/communities/{community_id:int}/payments.csv"
    tags = ["payments"]
    dependencies = PAYMENT_GUARDS

    @get("/", summary="The payments list as CSV (streamed), with the same filters; amounts in major units beside their currency")
    async def payments_csv(
        self,
        member: StaffMember,
        state: State,
        wanted: PaymentFilter,
    ) -> Response:
        return payments_csv_response(state, member.community_id, wanted)


def payments_csv_response(state: State, community_id: int, wanted: payment_list.PaymentFilter) -> Response:
    """The streamed CSV of the payments `wanted` selects (the console's download too)."""
    chunks = stream_csv(
        state.sessions, payment_list.CSV_HEADER, payment_list.csv_statement(community_id, wanted), payment_list.csv_row
    )
    return csv_download(payment_list.csv_filename(community_id), chunks)

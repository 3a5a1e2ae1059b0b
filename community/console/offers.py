"""The console's list of digital offers: each with its status, price, how many people hold it
now and what it took (net of refunds and disputes, per currency, from the payments ledger).
The same numbers as the API's offer list (`holders`) and /payments/revenue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from litestar import Controller, get
from litestar.params import QueryParameter
from litestar.response import Template

from community.billing import service as billing
from community.hubs.frame import CONSOLE_DEPENDENCIES, CurrentFrame, console_page
from community.money import format_amount
from community.offers import editor_forms, service
from community.offers.models import Offer, OfferStatus
from community.web import Cursor, Db

PAGE_SIZE = 50
StatusFilter = Annotated[Literal["draft", "published", "archived"] | None, QueryParameter()]


@dataclass(frozen=True)
class OfferRow:
    offer: Offer
    price: str
    access: str | None
    holders: int
    revenue: list[str]  # one line per currency, net


class OfferList(Controller):
    include_in_schema = False
    dependencies = CONSOLE_DEPENDENCIES

    @get("/dashboard/communities/{community_id:int}/offers")
    async def offers(self, frame: CurrentFrame, db: Db, after: Cursor = None, status: StatusFilter = None) -> Template:
        community_id = frame.community.id
        offers = await service.list_offers(
            db, community_id, after=after, limit=PAGE_SIZE, status=OfferStatus(status) if status else None
        )
        ids = [offer.id for offer in offers]
        holders = await service.holder_counts(db, community_id, ids)
        revenue: dict[int, list[str]] = {}
        for line in await billing.offer_revenue(db, community_id, offer_ids=ids):
            revenue.setdefault(line.offer_id, []).append(format_amount(line.net, line.currency))
        rows = [
            OfferRow(
                offer=offer, price=editor_forms.price_label(offer), access=editor_forms.access_label(offer),
                holders=holders[offer.id], revenue=revenue.get(offer.id, []),
            )
            for offer in offers
        ]
        return console_page(
            "offers/list.html", frame, "offers", rows=rows, status=status,
            counts=await service.status_counts(db, community_id),
            next=offers[-1].id if len(offers) == PAGE_SIZE else None,
        )

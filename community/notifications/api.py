"""The notifications API: the catalogue with each message on or off and its texts, preview,
test send, per-offer overrides, per-staff choices, and the delivery log (per community and per
member). Staff read; owners and admins change (`editor`); each staff person sets their own choices."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post, put
from litestar.params import JSONBody, QueryParameter

from community.accounts import service as accounts
from community.accounts.guards import COMMUNITY_GUARDS, StaffMember
from community.errors import Forbidden
from community.notifications import service
from community.notifications.catalogue import ENTRIES, SYSTEM, MessageKey
from community.notifications.schemas import (
    CatalogueOut,
    DeliveryOut,
    MessageIn,
    MessageOut,
    OverridesIn,
    OverridesOut,
    PreviewIn,
    PreviewOut,
    StaffChoicesIn,
    StaffChoicesOut,
    SystemMessageOut,
    TestSentOut,
    delivery_out,
    message_out,
    staff_out,
)
from community.web import MAX_ID, Db, ObjectId, PageLimit

StateParam = Annotated[str | None, QueryParameter(max_length=20, description="queued, sending, sent, failed or bounced.")]
Before = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID, description="Page on: the last id of the previous page.")]


class NotificationsController(Controller):
    path = "/communities/{community_id:int}/notifications"
    tags = ["notifications"]
    dependencies = COMMUNITY_GUARDS

    @get("/messages", summary="The catalogue of messages: on or off, texts, variables")
    async def catalogue(self, member: StaffMember, db: Db) -> CatalogueOut:
        views = await service.messages(db, member.community_id)
        return CatalogueOut(
            messages=[message_out(v) for v in views],
            system=[SystemMessageOut(e.key, e.title) for e in ENTRIES if e.audience == SYSTEM],
        )

    @get("/messages/{key:str}", summary="One message of the catalogue")
    async def read_message(self, key: MessageKey, member: StaffMember, db: Db) -> MessageOut:
        return message_out(await service.message(db, member.community_id, key))

    @patch(
        "/messages/{key:str}",
        summary="Switch a message on or off, edit its subject and body, or reset them (owners, admins)",
        description="A subject or body that cannot render with the listed variables is a 422 naming the field.",
    )
    async def update_message(self, key: MessageKey, data: JSONBody[MessageIn], editor: StaffMember, db: Db) -> MessageOut:
        view = await service.update_message(
            db, editor.community_id, key, enabled=data.enabled, subject=data.subject, body=data.body, reset=data.reset
        )
        return message_out(view)

    @post("/messages/{key:str}/preview", status_code=200, summary="A message rendered with sample data")
    async def preview(self, key: MessageKey, data: JSONBody[PreviewIn], member: StaffMember, db: Db) -> PreviewOut:
        subject, body = await service.preview(db, member.community_id, key, subject=data.subject, body=data.body)
        return PreviewOut(subject, body)

    @post("/messages/{key:str}/test", status_code=202, summary="Send yourself the saved message with sample data")
    async def send_test(self, key: MessageKey, member: StaffMember, db: Db) -> TestSentOut:
        user = await accounts.get_user(db, member.user_id)
        await service.send_test(db, member.community_id, key, to=user.email)
        return TestSentOut(to=user.email)

    @get("/offers/{offer_id:int}", summary="An offer's overrides of the community's messages")
    async def offer_overrides(self, offer_id: ObjectId, member: StaffMember, db: Db) -> OverridesOut:
        return OverridesOut(offer_id, await service.offer_overrides(db, member.community_id, offer_id))

    @put("/offers/{offer_id:int}", summary="Set an offer's overrides (owners, admins); null follows the community")
    async def set_offer_overrides(
        self, offer_id: ObjectId, data: JSONBody[OverridesIn], editor: StaffMember, db: Db
    ) -> OverridesOut:
        return OverridesOut(offer_id, await service.set_offer_overrides(db, editor.community_id, offer_id, data.overrides))

    @get("/staff", summary="Which staff messages each staff person gets")
    async def staff(self, member: StaffMember, db: Db) -> list[StaffChoicesOut]:
        return [staff_out(p) for p in await service.staff_choices(db, member.community_id)]

    @put(
        "/staff/{user_id:int}",
        summary="Choose which staff messages a staff person gets (your own; owners and admins: anyone's)",
    )
    async def set_staff(self, user_id: ObjectId, data: JSONBody[StaffChoicesIn], member: StaffMember, db: Db) -> StaffChoicesOut:
        if user_id != member.user_id and member.role not in accounts.EDITORS:
            raise Forbidden("only owners and admins choose for other staff")
        return staff_out(await service.set_staff_choices(db, member.community_id, user_id, data.choices))

    @get("/deliveries", summary="The delivery log: each message sent, newest first, with its state")
    async def deliveries(
        self, member: StaffMember, db: Db, status: StateParam = None, before: Before = None, limit: PageLimit = 50
    ) -> list[DeliveryOut]:
        rows = await service.deliveries(db, member.community_id, state=status, before_id=before, limit=limit)
        return [delivery_out(r) for r in rows]

    @get("/members/{user_id:int}/deliveries", summary="The messages sent to one member, newest first")
    async def member_deliveries(
        self, user_id: ObjectId, member: StaffMember, db: Db, before: Before = None, limit: PageLimit = 50
    ) -> list[DeliveryOut]:
        rows = await service.member_deliveries(db, member.community_id, user_id, before_id=before, limit=limit)
        return [delivery_out(r) for r in rows]

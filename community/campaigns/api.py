"""The campaigns API: drafts, their audience and preview, send (now or at a time), cancel, and
per-recipient status. Staff read; owners and admins change (`editor`)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter

from community.accounts import service as accounts
from community.accounts.guards import COMMUNITY_GUARDS, StaffMember
from community.campaigns import sender, service
from community.campaigns.schemas import (
    AudienceOut,
    CampaignIn,
    CampaignOut,
    CampaignPatch,
    CancelledOut,
    PreviewOut,
    RecipientPageOut,
    SendIn,
    campaign_out,
    recipient_out,
)
from community.hubs import service as hubs
from community.web import Cursor, Db, ObjectId, PageLimit, known_query

SegmentParam = Annotated[str, QueryParameter(max_length=40, description="A built-in segment's key or a saved segment's id.")]
StateParam = Annotated[
    str | None, QueryParameter(name="state", max_length=12, description="queued, sending, sent, failed, bounced, skipped or cancelled.")
]


async def _out(db: Db, campaign) -> CampaignOut:
    return campaign_out(campaign, (await service.counts(db, [campaign.id]))[campaign.id])


class CampaignsController(Controller):
    path = "/communities/{community_id:int}"
    tags = ["campaigns"]
    dependencies = COMMUNITY_GUARDS

    @get("/campaigns", summary="The community's campaigns, newest first, with recipients per state", guards=[known_query("before", "limit")])
    async def list_campaigns(self, member: StaffMember, db: Db, before: Cursor = None, limit: PageLimit = 50) -> list[CampaignOut]:
        rows = await service.list_campaigns(db, member.community_id, before=before, limit=limit)
        counts = await service.counts(db, [c.id for c in rows])
        return [campaign_out(c, counts[c.id]) for c in rows]

    @get(
        "/campaigns/audience",
        summary="How many members a segment reaches (the directory's count; unsubscribed ones apart)",
        guards=[known_query("segment")],
    )
    async def audience(self, member: StaffMember, db: Db, segment: SegmentParam) -> AudienceOut:
        a = await service.audience(db, member.community_id, segment)
        return AudienceOut(segment=segment, members=a.members, unsubscribed=a.unsubscribed, reaches=a.reaches)

    @post("/campaigns", status_code=201, summary="Write a campaign (a draft; owners, admins)")
    async def create(self, data: JSONBody[CampaignIn], editor: StaffMember, db: Db) -> CampaignOut:
        campaign = await service.create_campaign(
            db, editor.community_id, author_id=editor.user_id, subject=data.subject, body=data.body,
            format=data.format, segment=data.segment, send_at=data.send_at.plain() if data.send_at else None,
        )
        return campaign_out(campaign)

    @get("/campaigns/{campaign_id:int}", summary="A campaign with its recipients per state")
    async def read(self, campaign_id: ObjectId, member: StaffMember, db: Db) -> CampaignOut:
        return await _out(db, await service.get_campaign(db, member.community_id, campaign_id))

    @patch("/campaigns/{campaign_id:int}", summary="Edit a draft (owners, admins)")
    async def edit(self, campaign_id: ObjectId, data: JSONBody[CampaignPatch], editor: StaffMember, db: Db) -> CampaignOut:
        given = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        send_at = given.pop("send_at", msgspec.UNSET)
        campaign = await service.update_campaign(
            db, editor.community_id, campaign_id, **given,
            send_at=send_at.plain() if send_at not in (None, msgspec.UNSET) else None,
            clear_send_at=send_at is None,
        )
        return await _out(db, campaign)

    @get("/campaigns/{campaign_id:int}/preview", summary="The message as the signed-in staff person would get it")
    async def preview(self, campaign_id: ObjectId, member: StaffMember, db: Db, state: State) -> PreviewOut:
        campaign = await service.get_campaign(db, member.community_id, campaign_id)
        user = await accounts.get_user(db, member.user_id)
        subject, text, html = sender.preview(
            state.settings, campaign, (await hubs.get_community(db, member.community_id)).name,
            name=user.name, email=user.email, user_id=user.id,
        )
        return PreviewOut(subject, text, html)

    @post(
        "/campaigns/{campaign_id:int}/send",
        status_code=200,
        summary="Send a draft: now (every recipient queued at once), or at its send_at (owners, admins)",
    )
    async def send(self, campaign_id: ObjectId, data: JSONBody[SendIn], editor: StaffMember, db: Db) -> CampaignOut:
        campaign = await service.send(db, editor.community_id, campaign_id, expected=data.expected)
        return await _out(db, campaign)

    @post(
        "/campaigns/{campaign_id:int}/cancel",
        status_code=200,
        summary="Cancel a draft, a scheduled or a sending campaign: queued recipients will not get it (owners, admins)",
    )
    async def cancel(self, campaign_id: ObjectId, editor: StaffMember, db: Db) -> CancelledOut:
        not_sent = await service.cancel(db, editor.community_id, campaign_id)
        return CancelledOut(await _out(db, await service.get_campaign(db, editor.community_id, campaign_id)), not_sent)

    @get(
        "/campaigns/{campaign_id:int}/recipients",
        summary="A campaign's recipients with their status, keyset pages",
        guards=[known_query("state", "after", "limit")],
    )
    async def recipients(
        self, campaign_id: ObjectId, member: StaffMember, db: Db, recipient_state: StateParam = None, after: Cursor = None,
        limit: PageLimit = 50,
    ) -> RecipientPageOut:
        rows = await service.recipients(db, member.community_id, campaign_id, state=recipient_state, after=after, limit=limit)
        return RecipientPageOut([recipient_out(r) for r in rows], rows[-1].user_id if len(rows) == limit else None)

"""Who is told what: community settings, per-offer overrides, per-staff choices, owners'
templates (checked at save, previewed with sample data), and the delivery log."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts import service as accounts
from community.accounts.models import Member, Role
from community.errors import Invalid, NotFound, check_storable
from community.mail import log as mail_log
from community.mail import service as mail
from community.mail.models import Delivery
from community.mail.owner_templates import (
    check_renders,
    render_confirmation,
    render_strict,
)
from community.notifications.catalogue import (
    BY_KEY,
    MEMBER,
    SAMPLE,
    STAFF,
    SWITCHABLE,
    Entry,
)
from community.notifications.models import MessageSetting, OfferOverride, StaffChoice
from community.offers import service as offers

# Who gets staff messages unless they choose otherwise: owners and admins; managers opt in.
STAFF_DEFAULT_ROLES = (Role.owner, Role.admin)


def entry(key: str) -> Entry:
    """A message named in the path: an unknown one is a 404."""
    found = _switchable(key)
    if found is None:
        raise NotFound("no such message")
    return found


def entry_named(key: str, field: str) -> Entry:
    """A message named in a body (not the path): an unknown one is a 422 naming it."""
    found = _switchable(key)
    if found is None:
        raise Invalid("is not a message of the catalogue (GET .../notifications/messages lists them)", field=field)
    return found


def _switchable(key: str) -> Entry | None:
    found = BY_KEY.get(key)
    return found if found is not None and found.switchable else None


@dataclasses.dataclass
class MessageView:
    entry: Entry
    enabled: bool
    subject: str  # what is sent: the owner's, else the default
    body: str
    edited: bool


async def messages(session: AsyncSession, community_id: int) -> list[MessageView]:
    rows = {
        s.message: s
        for s in await session.scalars(select(MessageSetting).where(MessageSetting.community_id == community_id))
    }
    views = []
    for item in SWITCHABLE:
        row = rows.get(item.key)
        edited = row is not None and (row.subject is not None or row.body is not None)
        views.append(
            MessageView(
                entry=item,
                enabled=row.enabled if row is not None else item.default_on,
                subject=row.subject if row is not None and row.subject is not None else item.default_subject(),
                body=row.body if row is not None and row.body is not None else item.default_body(),
                edited=edited,
            )
        )
    return views


async def message(session: AsyncSession, community_id: int, key: str) -> MessageView:
    item = entry(key)
    return next(v for v in await messages(session, community_id) if v.entry.key == item.key)


def sample_for(item: Entry) -> dict[str, Any]:
    return {name: SAMPLE.get(name, "") for name in item.variables}


async def update_message(
    session: AsyncSession,
    community_id: int,
    key: str,
    *,
    enabled: bool | None = None,
    subject: str | None = None,
    body: str | None = None,
    reset: bool = False,
) -> MessageView:
    """Switch a message, edit its subject/body (refused with 422 naming the field if it cannot
    render with the variables offered), or reset it to the default text."""
    item = entry(key)
    sample = sample_for(item)
    if subject is not None:
        check_storable(subject, "subject")
        if not subject.strip():
            raise Invalid("must not be empty", field="subject")
        check_renders(subject, "subject", sample)
    if body is not None:
        check_storable(body, "body")
        if not body.strip():
            raise Invalid("must not be empty", field="body")
        check_renders(body, "body", sample)
    row = await session.get(MessageSetting, (community_id, item.key), with_for_update=True)
    if row is None:
        row = MessageSetting(community_id=community_id, message=item.key, enabled=item.default_on)
        session.add(row)
    if enabled is not None:
        row.enabled = enabled
    if reset:
        row.subject = row.body = None
    # Text equal to the default is not an edit: it keeps following the default.
    if subject is not None:
        row.subject = None if subject.strip() == item.default_subject().strip() else subject
    if body is not None:
        row.body = None if body.strip() == item.default_body().strip() else body
    await session.flush()
    return await message(session, community_id, key)


def render_preview(item: Entry, subject: str, body: str, variables: dict[str, Any] | None = None) -> tuple[str, str]:
    """What a recipient would get from these texts with the sample data (or `variables`)."""
    values = variables if variables is not None else sample_for(item)
    if item.key == "purchase_confirmation":
        return render_confirmation(
            subject,
            body,
            {k: str(v) for k, v in values.items()},
            fallback_subject=str(values.get("offer_title", "")),
        )
    return " ".join(render_strict(subject, values).split())[:200], render_strict(body, values)


async def preview(
    session: AsyncSession,
    community_id: int,
    key: str,
    *,
    subject: str | None = None,
    body: str | None = None,
) -> tuple[str, str]:
    """The saved texts (or the ones given, checked like a save) rendered with sample data."""
    view = await message(session, community_id, key)
    sample = sample_for(view.entry)
    if subject is not None:
        check_renders(subject, "subject", sample)
    if body is not None:
        check_renders(body, "body", sample)
    return render_preview(
        view.entry,
        subject if subject is not None else view.subject,
        body if body is not None else view.body,
    )


async def send_test(session: AsyncSession, community_id: int, key: str, *, to: str) -> None:
    """The saved message with sample data, to the person asking (through the outbox)."""
    view = await message(session, community_id, key)
    subject, body = render_preview(view.entry, view.subject, view.body)
    await mail.enqueue_rendered(
        session,
        to=to,
        subject=f"[Test] {subject}",
        text=body,
        html=mail.render_html("owner_text", body=body, site_url=""),
        community_id=community_id,
    )


# ---------------------------------------------------------------- per offer


async def offer_overrides(session: AsyncSession, community_id: int, offer_id: int) -> dict[str, bool]:
    await offers.get_offer(session, community_id, offer_id)  # 404 for a foreign offer
    rows = await session.scalars(
        select(OfferOverride).where(
            OfferOverride.community_id == community_id,
            OfferOverride.offer_id == offer_id,
        )
    )
    return {row.message: row.enabled for row in rows}


async def set_offer_overrides(
    session: AsyncSession,
    community_id: int,
    offer_id: int,
    changes: dict[str, bool | None],
) -> dict[str, bool]:
    """For each message: True/False overrides the community's setting for this offer; None
    follows the community again."""
    await offers.get_offer(session, community_id, offer_id)
    for key, value in changes.items():
        item = entry_named(key, f"overrides.{key}")
        await session.execute(
            delete(OfferOverride).where(OfferOverride.offer_id == offer_id, OfferOverride.message == item.key)
        )
        if value is not None:
            session.add(
                OfferOverride(
                    community_id=community_id,
                    offer_id=offer_id,
                    message=item.key,
                    enabled=value,
                )
            )
    await session.flush()
    return await offer_overrides(session, community_id, offer_id)


# ---------------------------------------------------------------- per staff person


@dataclasses.dataclass
class StaffPerson:
    user_id: int
    name: str
    email: str
    role: str
    choices: dict[str, bool]  # every staff message: gets it or not


async def staff_choices(session: AsyncSession, community_id: int) -> list[StaffPerson]:
    chosen: dict[tuple[int, str], bool] = {
        (row.user_id, row.message): row.enabled
        for row in await session.scalars(select(StaffChoice).where(StaffChoice.community_id == community_id))
    }
    people = []
    for member, user in await accounts.list_staff(session, community_id):
        default = member.role in STAFF_DEFAULT_ROLES
        people.append(
            StaffPerson(
                user_id=user.id,
                name=user.name or "",
                email=user.email,
                role=member.role.value,
                choices={e.key: chosen.get((user.id, e.key), default) for e in SWITCHABLE if e.audience == STAFF},
            )
        )
    return people


async def set_staff_choices(
    session: AsyncSession, community_id: int, user_id: int, changes: dict[str, bool]
) -> StaffPerson:
    member = await session.scalar(
        select(Member).where(
            Member.community_id == community_id,
            Member.user_id == user_id,
            Member.role.is_not(None),
        )
    )
    if member is None:
        raise NotFound("no such staff person")
    for key, value in changes.items():
        item = entry_named(key, f"choices.{key}")
        if item.audience != STAFF:
            raise Invalid("is not a message to staff", field=f"choices.{key}")
        stmt = insert(StaffChoice).values(community_id=community_id, user_id=user_id, message=item.key, enabled=value)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["community_id", "user_id", "message"],
                set_={"enabled": value},
            )
        )
    return next(p for p in await staff_choices(session, community_id) if p.user_id == user_id)


# ---------------------------------------------------------------- deciding


async def enabled_for(session: AsyncSession, community_id: int, item: Entry, offer_id: int | None) -> bool:
    if offer_id is not None:
        override = await session.get(OfferOverride, (offer_id, item.key))
        if override is not None:
            return override.enabled
    row = await session.get(MessageSetting, (community_id, item.key))
    return row.enabled if row is not None else item.default_on


async def staff_recipients(session: AsyncSession, community_id: int, item: Entry) -> list[tuple[int, str, str]]:
    return [(p.user_id, p.name, p.email) for p in await staff_choices(session, community_id) if p.choices.get(item.key)]


async def edited_texts(session: AsyncSession, community_id: int, item: Entry) -> tuple[str | None, str | None]:
    row = await session.get(MessageSetting, (community_id, item.key))
    return (row.subject, row.body) if row is not None else (None, None)


# ---------------------------------------------------------------- the log


deliveries = mail_log.deliveries  # the log lives with delivery (mail/log.py), read here too


async def member_deliveries(
    session: AsyncSession, community_id: int, user_id: int, *, before_id: int | None = None, limit: int = 50
) -> list[Delivery]:
    """One member's messages; someone who is not a member of this community is a 404."""
    if await accounts.membership(session, community_id, user_id) is None:
        raise NotFound("no such member")
    return await mail_log.deliveries(session, community_id, user_id=user_id, before_id=before_id, limit=limit)


AUDIENCES = (STAFF, MEMBER)

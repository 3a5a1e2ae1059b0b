"""The notifications API's structs in and out."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from community.mail.models import Delivery
from community.notifications.service import MessageView, StaffPerson

Subject = Annotated[str, msgspec.Meta(max_length=500)]
Body = Annotated[str, msgspec.Meta(max_length=20_000)]


class VariableOut(msgspec.Struct):
    name: str
    description: str


class MessageOut(msgspec.Struct):
    key: str
    audience: str  # staff or member
    title: str
    event: str
    enabled: bool
    subject: str  # the owner's text, or the default
    body: str
    edited: bool  # false: the default text is sent
    default_subject: str
    default_body: str
    variables: list[VariableOut]


class SystemMessageOut(msgspec.Struct):
    key: str
    title: str


class CatalogueOut(msgspec.Struct):
    messages: list[MessageOut]
    system: list[SystemMessageOut]  # sent directly by accounts; never switched off or edited


class MessageIn(msgspec.Struct, forbid_unknown_fields=True):
    """Any of: enabled; subject and body (Jinja2, sandboxed, only the listed variables); reset
    (back to the default texts)."""

    enabled: bool | None = None
    subject: Subject | None = None
    body: Body | None = None
    reset: bool = False


class PreviewIn(msgspec.Struct, forbid_unknown_fields=True):
    """Unsaved texts to preview (else the saved ones)."""

    subject: Subject | None = None
    body: Body | None = None


class PreviewOut(msgspec.Struct):
    subject: str
    body: str


class TestSentOut(msgspec.Struct):
    to: str


class OverridesIn(msgspec.Struct, forbid_unknown_fields=True):
    """message key -> true (send for this offer), false (not for this offer), null (follow the community)."""

    overrides: dict[str, bool | None]


class OverridesOut(msgspec.Struct):
    offer_id: int
    overrides: dict[str, bool]


class StaffChoicesIn(msgspec.Struct, forbid_unknown_fields=True):
    choices: dict[str, bool]


class StaffChoicesOut(msgspec.Struct):
    user_id: int
    name: str
    email: str
    role: str
    choices: dict[str, bool]


class DeliveryOut(msgspec.Struct):
    id: int
    message: str
    user_id: int | None
    email: str
    subject: str
    state: str  # queued, sending, sent, failed, bounced
    error: str | None  # the SMTP server's answer when failed or bounced
    created_at: dt.datetime
    sent_at: dt.datetime | None


def message_out(view: MessageView) -> MessageOut:
    item = view.entry
    return MessageOut(
        key=item.key, audience=item.audience, title=item.title, event=item.event, enabled=view.enabled,
        subject=view.subject, body=view.body, edited=view.edited, default_subject=item.default_subject(),
        default_body=item.default_body(), variables=[VariableOut(k, v) for k, v in item.variables.items()],
    )


def staff_out(person: StaffPerson) -> StaffChoicesOut:
    return StaffChoicesOut(person.user_id, person.name, person.email, person.role, person.choices)


def delivery_out(row: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=row.id, message=row.message, user_id=row.user_id, email=row.email, subject=row.subject, state=row.state,
        error=row.error, created_at=row.created_at, sent_at=row.sent_at,
    )

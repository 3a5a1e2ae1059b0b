"""The members API's structs in and out."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from community.billing.schemas import PaymentOut, payment_out
from community.members import directory, profile, service
from community.members.models import MemberNote, MemberSegment

NoteBody = Annotated[str, msgspec.Meta(min_length=1, max_length=service.NOTE_MAX)]
TagText = Annotated[str, msgspec.Meta(min_length=1, max_length=service.TAG_MAX)]
Text200 = Annotated[str, msgspec.Meta(max_length=200)]


class OfferRefOut(msgspec.Struct):
    id: int
    title: str


class DirectoryMemberOut(msgspec.Struct):
    """A directory row. `id` is the member row's id (as the staff routes use it); `user_id`
    names the person in every /members/{user_id} route."""

    id: int
    user_id: int
    email: str
    name: str
    role: str | None
    joined_at: dt.datetime
    status: str  # active, trialing, past_due, cancelled, ended, none (see GET .../members)
    offers: list[OfferRefOut]  # every offer they hold or held
    total_spent: dict[str, int]  # per currency, minor units, net of refunds and chargebacks
    last_payment_at: dt.datetime | None
    tags: list[str]


class DirectoryPageOut(msgspec.Struct):
    """A keyset page: pass `next` back as `after` (with the same sort and order)."""

    items: list[DirectoryMemberOut]
    next: str | None


def row_out(r: directory.Row) -> DirectoryMemberOut:
    return DirectoryMemberOut(
        id=r.member_id, user_id=r.user_id, email=r.email, name=r.name, role=r.role, joined_at=r.joined_at,
        status=r.status, offers=[OfferRefOut(o.id, o.title) for o in r.offers], total_spent=r.total_spent,
        last_payment_at=r.last_payment_at, tags=r.tags,
    )


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    body: NoteBody


class NoteOut(msgspec.Struct):
    id: int
    user_id: int
    body: str
    author_id: int | None
    author_name: str | None
    created_at: dt.datetime
    edited_by_id: int | None
    edited_by_name: str | None
    edited_at: dt.datetime | None


def note_out(n: MemberNote, names: dict[int, str]) -> NoteOut:
    return NoteOut(
        id=n.id, user_id=n.user_id, body=n.body, author_id=n.author_id,
        author_name=names.get(n.author_id) if n.author_id else None, created_at=n.created_at,
        edited_by_id=n.edited_by_id, edited_by_name=names.get(n.edited_by_id) if n.edited_by_id else None,
        edited_at=n.edited_at,
    )


class TagIn(msgspec.Struct, forbid_unknown_fields=True):
    tag: TagText


class TagOut(msgspec.Struct):
    tag: str
    auto: bool  # an auto-tag of an offer they hold or held


def tags_out(tags: list[service.Tag]) -> list[TagOut]:
    return [TagOut(t.tag, t.auto) for t in tags]


class FiltersIn(msgspec.Struct, forbid_unknown_fields=True):
    """The directory's filters, as its query takes them (text), for saved segments and bulk actions."""

    q: Text200 | None = None
    offer: int | None = None
    status: Text200 | None = None
    tag: Text200 | None = None
    segment: Text200 | None = None
    joined_from: Text200 | None = None
    joined_to: Text200 | None = None
    spent_above: int | None = None
    currency: Text200 | None = None

    def parsed(self) -> directory.Filters:
        values = {k: getattr(self, k) for k in self.__struct_fields__ if getattr(self, k) is not None}
        return directory.parse_filters(values)


class SegmentIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=service.SEGMENT_NAME_MAX)]
    filters: FiltersIn


class SegmentOut(msgspec.Struct):
    key: str  # what the directory's `segment=` takes: a built-in's key, or a saved one's id
    name: str
    builtin: bool
    count: int  # members in it now
    id: int | None = None
    filters: dict[str, object] | None = None


def saved_out(s: MemberSegment, count: int) -> SegmentOut:
    return SegmentOut(key=str(s.id), name=s.name, builtin=False, count=count, id=s.id, filters=dict(s.filters))


class BulkTagIn(msgspec.Struct, forbid_unknown_fields=True):
    """Add or remove one tag for a segment (or any filters of the directory) or a selection."""

    tag: TagText
    action: Literal["add", "remove"]
    segment: Text200 | None = None
    filters: FiltersIn | None = None
    user_ids: Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]], msgspec.Meta(max_length=service.SELECTION_MAX)] | None = None


class BulkTagOut(msgspec.Struct):
    changed: int  # members whose tags changed


class RemovedOut(msgspec.Struct):
    user_id: int
    ended_entitlement_ids: list[int]


class EventOut(msgspec.Struct):
    status: str
    ends_at: dt.datetime | None
    reason: str
    actor_id: int | None
    at: dt.datetime


class MemberSubscriptionOut(msgspec.Struct):
    status: str
    cancel_at_period_end: bool
    current_period_end: dt.datetime | None
    trial_end: dt.datetime | None
    amount: int
    currency: str


class MemberMembershipOut(msgspec.Struct):
    entitlement_id: int
    offer_id: int
    offer_title: str
    source: str
    status: str
    live: bool
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    subscription: MemberSubscriptionOut | None
    history: list[EventOut]


class RefundOut(msgspec.Struct):
    id: int
    amount: int
    currency: str
    state: str
    reason: str
    created_at: dt.datetime


class MemberPaymentOut(msgspec.Struct):
    payment: PaymentOut
    offer_title: str
    refunds: list[RefundOut]


class AccessLogOut(msgspec.Struct):
    group_id: int
    group_name: str
    change: str  # gained, lost
    cause: str
    at: dt.datetime


class EnrolmentOut(msgspec.Struct):
    affiliate_id: int
    offer_id: int
    offer_title: str
    code: str
    status: str
    created_at: dt.datetime


class ProfileOut(msgspec.Struct):
    member: DirectoryMemberOut
    memberships: list[MemberMembershipOut]
    payments: list[MemberPaymentOut]
    access_log: list[AccessLogOut]  # newest first, at most 200
    resell_enrolments: list[EnrolmentOut]
    notes: list[NoteOut]
    tags: list[TagOut]


def profile_out(p: profile.Profile) -> ProfileOut:
    def live(e) -> bool:
        return e.ends_at is None or e.ends_at > p.now

    return ProfileOut(
        member=row_out(p.row),
        memberships=[
            MemberMembershipOut(
                entitlement_id=m.entitlement.id, offer_id=m.entitlement.offer_id, offer_title=m.offer_title,
                source=m.entitlement.source.value, status=m.entitlement.status.value, live=live(m.entitlement),
                starts_at=m.entitlement.starts_at, ends_at=m.entitlement.ends_at,
                subscription=MemberSubscriptionOut(
                    m.subscription.status, m.subscription.cancel_at_period_end, m.subscription.current_period_end,
                    m.subscription.trial_end, m.subscription.amount, m.subscription.currency,
                ) if m.subscription else None,
                history=[EventOut(e.status.value, e.ends_at, e.reason, e.actor_id, e.at) for e in m.events],
            )
            for m in p.memberships
        ],
        payments=[
            MemberPaymentOut(
                payment_out(line.payment), line.offer_title,
                [RefundOut(r.id, r.amount, r.currency, r.state.value, r.reason, r.created_at) for r in line.refunds],
            )
            for line in p.payments
        ],
        access_log=[AccessLogOut(e.group_id, e.group_name, e.change.value, e.cause, e.at) for e in p.access_log],
        resell_enrolments=[
            EnrolmentOut(e.affiliate.id, e.affiliate.offer_id, e.offer_title, e.affiliate.code, e.affiliate.status.value, e.affiliate.created_at)
            for e in p.enrolments
        ],
        notes=[note_out(n, p.note_authors) for n in p.notes],
        tags=tags_out(p.tags),
    )

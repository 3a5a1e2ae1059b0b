"""Demo data for `community demo`, and `community bootstrap` for a real first owner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts import service as accounts
from community.accounts.models import Role, TokenKind, User
from community.billing import discounts
from community.billing.models import Subscription
from community.checkout import connect
from community.checkout import service as checkout_service
from community.checkout.models import StripeAccount
from community.content import service as content
from community.db import create_engine, session_factory
from community.hubs import service as hubs
from community.hubs.models import Community
from community.offers import entitlements, grants
from community.offers import service as offers
from community.offers.models import EntitlementStatus, OfferStatus
from community.origins import PLACEHOLDER
from community.settings import Settings
from community.stripe_client import stripe_client

DEMO_PASSWORD = "demo-password"
DEMO_SLUG = "demo-makers"
DEMO_PEOPLE = {
    "owner@demo.community": ("Olivia Owner", Role.owner),
    "admin@demo.community": ("Adam Admin", Role.admin),
    "manager@demo.community": ("Mia Manager", Role.manager),
}
DEMO_HUBS = {
    "Start here": {
        "Welcome": "Say hello and read the house rules.",
        "Announcements": "News from the team.",
    },
    "Courses": {
        "Beginner track": "Your first projects, step by step.",
        "Advanced track": "Deep dives for experienced makers.",
    },
}


# What the demo sells (by slug): the groups each offer grants, by name, and its fields.
DEMO_OFFERS = {
    "starter": (["Welcome"], {
        "title": "Starter (free)", "pricing": "free",
        "landing_page": {"headline": "Join Demo Makers for free", "body": "Say hello in **Welcome** and meet the community.", "call_to_action": "Join free"},
    }),
    "beginner-course": (["Beginner track"], {
        "title": "Beginner course", "pricing": "one_time", "amount": 4900, "old_amount": 7900, "currency": "USD",
        "landing_page": {"headline": "Your first ten projects", "body": "Ten projects, step by step:\n\n- tools\n- materials\n- finishing", "call_to_action": "Get the course"},
        "checkout_code_head": "<!-- the owner's tracking pixel would go here -->",
        "checkout_code_body": '<p class="muted" id="demo-custom-code">This line is the offer\'s custom code.</p>',
    }),
    "pro-membership": (["Advanced track", "Announcements"], {
        "title": "Pro membership", "pricing": "recurring", "amount": 1500, "currency": "USD", "interval_months": 1,
        "trial_days": 7, "trial_requires_card": False,
        "landing_page": {"headline": "Everything, every month", "body": "The advanced track and every announcement.", "call_to_action": "Start your trial"},
    }),
}
DEMO_CODE = "DEMO20"
DEMO_SUBSCRIBER = ("member@demo.community", "Maya Member")  # pays monthly for Pro, with a card
DEMO_BUYER = ("buyer@demo.community", "Ben Buyer")  # bought the Beginner course with DEMO20
MONTH_SECONDS = 31 * 86400  # advancing this much always crosses one monthly renewal


@dataclass
class DemoLogins:
    people: dict[str, str]
    api_token: str
    community_id: int
    offer_paths: list[str] = field(default_factory=list)
    renewal: DemoRenewal | None = None


@dataclass
class DemoRenewal:
    """The demo subscriber's subscription in the sandbox, and how to move its clock."""

    email: str
    sandbox_url: str
    customer_id: str
    seconds_to_next_charge: int


async def _user(session: AsyncSession, email: str, password: str, name: str) -> User:
    user = await accounts.find_user_by_email(session, email)
    if user is None:
        user = await accounts.sign_up(session, email=email, password=password, name=name)
    return user


async def _seed_community(session: AsyncSession, owner: User) -> Community:
    community = await hubs.create_community(
        session, creator=owner, name="Demo Makers", slug=DEMO_SLUG, default_currency="USD", support_email="help@demo.community"
    )
    for hub_name, groups in DEMO_HUBS.items():
        hub = await hubs.create_hub(session, community.id, name=hub_name, slug=None, description="")
        for group_name, description in groups.items():
            group = await hubs.create_group(session, community.id, hub.id, name=group_name, slug=None, description=description)
            await content.create_post(
                session,
                community.id,
                group.id,
                author_id=owner.id,
                title=f"Welcome to {group_name}",
                body=f"{description}\n\nThis post was created by `community demo`.",
            )
    return community


async def seed(settings: Settings, onboard: Callable[[str], Any] | None = None, sandbox: Any = None) -> DemoLogins:
    """Idempotent: a second demo start finds the data and only issues a fresh API token.
    With `onboard` (the Stripe sandbox's onboarding), it also sets up the shop; with the
    sandbox itself, a member subscribed monthly to Pro whose renewal the sandbox clock moves."""
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            users = {email: await _user(session, email, DEMO_PASSWORD, name) for email, (name, _) in DEMO_PEOPLE.items()}
            owner = users["owner@demo.community"]
            existing = [c for c, _ in await hubs.communities_of(session, owner.id) if c.slug == DEMO_SLUG]
            community = existing[0] if existing else await _seed_community(session, owner)
            for email, (_, role) in DEMO_PEOPLE.items():
                await accounts.join(session, community_id=community.id, user_id=users[email].id, role=role)
            _, secret = await accounts.create_token(session, user_id=owner.id, kind=TokenKind.api, name="demo")
            offer_paths = await _seed_shop(session, settings, community, onboard) if onboard else []
            renewal = await _seed_subscriber(session, settings, community, sandbox) if onboard and sandbox else None
            if onboard and sandbox:
                await _seed_buyer(session, settings, community, sandbox)
            people = {email: DEMO_PASSWORD for email in DEMO_PEOPLE}
            if renewal:
                people[renewal.email] = DEMO_PASSWORD
                people[DEMO_BUYER[0]] = DEMO_PASSWORD
            return DemoLogins(
                people=people, api_token=secret, community_id=community.id, offer_paths=offer_paths, renewal=renewal,
            )
    finally:
        await engine.dispose()


async def _seed_shop(
    session: AsyncSession, settings: Settings, community: Community, onboard: Callable[[str], Any]
) -> list[str]:
    """A connected Stripe account (the sandbox's), three offers and a discount code. The
    sandbox forgets everything when it stops, so the account is connected afresh each start."""

    client = stripe_client(settings)
    await session.execute(delete(StripeAccount).where(StripeAccount.community_id == community.id))
    await connect.start_onboarding(session, client, community_id=community.id, base_url=settings.base_url)
    account = await connect.account_of(session, community.id)
    assert account is not None
    onboard(account.account_id)  # the owner finishing Stripe's onboarding
    await connect.refresh(session, client, community_id=community.id)
    groups = {g.name: g.id for _, gs in await hubs.list_hubs(session, community.id) for g in gs}
    existing = {o.slug for o in await offers.list_offers(session, community.id, after=0, limit=100)}
    paths = []
    for slug, (group_names, fields) in DEMO_OFFERS.items():
        if slug not in existing:
            offer = await offers.create_offer(session, community.id, {**fields, "slug": slug}, allow_local_http=True)
            await grants.edit_groups(
                session, community_id=community.id, offer_id=offer.id,
                add=[groups[name] for name in group_names if name in groups], remove=[], mode="everyone",
            )
            await offers.set_status(session, community.id, offer.id, OfferStatus.published)
        paths.append(grants.landing_url(settings, community.slug, slug))
    if await discounts.find_code(session, community.id, DEMO_CODE) is None:
        await discounts.create_code(session, community.id, {"code": DEMO_CODE, "kind": "percent", "percent_bps": 2000})
    return paths


async def _seed_subscriber(session: AsyncSession, settings: Settings, community: Community, sandbox: Any) -> DemoRenewal:
    """A member who bought Pro through the sandbox's checkout with a card: trialing, then billed
    monthly as the sandbox clock moves. The sandbox forgets its subscriptions when it stops, so
    each start ends the previous one and subscribes afresh."""
    email, name = DEMO_SUBSCRIBER
    user = await _user(session, email, DEMO_PASSWORD, name)
    _, offer = await checkout_service.published_offer(session, community.slug, "pro-membership")
    held = await entitlements.live_entitlement(session, community_id=community.id, offer_id=offer.id, user_id=user.id)
    if held is not None:
        await entitlements.end(
            session, community_id=community.id, entitlement_id=held.id, status=EntitlementStatus.cancelled,
            reason="demo restarted: the sandbox that billed it is gone",
        )
    started = await checkout_service.start(
        session, settings, community=community, offer=offer, email=email, name=name, viewer_id=None, code=None
    )
    checkout = started.checkout
    assert checkout.stripe_session_id is not None
    sandbox.pay(checkout.stripe_session_id, "success")  # the buyer pays on the hosted page
    await checkout_service.settle(session, settings, checkout, await checkout_service.fetch_session(settings, checkout))
    subscription = await session.scalar(select(Subscription).where(Subscription.entitlement_id == checkout.entitlement_id))
    assert subscription is not None and subscription.current_period_end is not None
    seconds = int(subscription.current_period_end.timestamp()) - sandbox.now() + 60
    return DemoRenewal(email, sandbox.url, subscription.stripe_customer_id or "", max(seconds, 60))


async def _seed_buyer(session: AsyncSession, settings: Settings, community: Community, sandbox: Any) -> None:
    """A buyer who paid for the Beginner course with DEMO20 through the sandbox's checkout, so
    the console's payments, discount codes and numbers have a purchase to show. Once: the
    payment stays in the database across starts (a refund of it after a restart is refused by
    the new sandbox, which never saw it)."""
    email, name = DEMO_BUYER
    user = await _user(session, email, DEMO_PASSWORD, name)
    _, offer = await checkout_service.published_offer(session, community.slug, "beginner-course")
    if await entitlements.live_entitlement(session, community_id=community.id, offer_id=offer.id, user_id=user.id):
        return
    started = await checkout_service.start(
        session, settings, community=community, offer=offer, email=email, name=name, viewer_id=None, code=DEMO_CODE
    )
    checkout = started.checkout
    assert checkout.stripe_session_id is not None
    sandbox.pay(checkout.stripe_session_id, "success")
    await checkout_service.settle(session, settings, checkout, await checkout_service.fetch_session(settings, checkout))


def banner(settings: Settings, logins: DemoLogins) -> str:
    base = settings.base_url
    lines = [
        "",
        "community demo is running",
        f"  Web:        {base}/",
        f"  Log in:     {base}/login",
        f"  API docs:   {base}/schema",
        f"  API:        {base}/api/v1/communities/{logins.community_id}/hubs",
        f"  Offer pages: {settings.pages_origin(DEMO_SLUG)}  (every community on its own origin, {settings.pages.origin(PLACEHOLDER)}:",
        "               owners' code runs there, never where a member's session or another community's pages live)",
        "  Logins (email / password):",
        *[f"    {email} / {password}" for email, password in logins.people.items()],
        f"  API token (owner): {logins.api_token}",
        f"    curl -H 'Authorization: Bearer {logins.api_token}' {base}/api/v1/communities",
        *([f"  Offers for sale (Stripe is the local sandbox: pay with its test cards; code {DEMO_CODE} takes 20% off):"]
          + [f"    {path}" for path in logins.offer_paths] if logins.offer_paths else []),
        *(_renewal_lines(logins.renewal) if logins.renewal else []),
        f"  Emails are written to {settings.data_dir / 'mail'} (set COMMUNITY_SMTP_URL to send them)",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def _renewal_lines(renewal: DemoRenewal) -> list[str]:
    advance = f"curl -X POST {renewal.sandbox_url}/_sandbox/clock/advance -d seconds="
    return [
        f"  Subscriber: {renewal.email} pays monthly for Pro (in its trial now). Move the sandbox clock:",
        f"    first charge (trial ends):   {advance}{renewal.seconds_to_next_charge}",
        f"    each further renewal:        {advance}{MONTH_SECONDS}",
        f"    make the next renewal fail:  curl -X POST {renewal.sandbox_url}/_sandbox/customers/{renewal.customer_id}/card_declines -d declines=true",
    ]


async def bootstrap(
    settings: Settings, *, email: str, password: str, name: str, community: str, slug: str | None
) -> dict[str, str]:
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            user = await accounts.find_user_by_email(session, email)
            if user is None:
                user = await accounts.sign_up(session, email=email, password=password, name=name)
            created = await hubs.create_community(
                session, creator=user, name=community, slug=slug, default_currency="USD", support_email=None
            )
            _, secret = await accounts.create_token(session, user_id=user.id, kind=TokenKind.api, name="bootstrap")
            return {
                "user": f"{user.id} {user.email}",
                "community": f"{created.id} {created.name} (/{created.slug})",
                "api token": secret,
            }
    finally:
        await engine.dispose()

"""Demo data for `community demo`, and `community bootstrap` for a real first owner."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from community.accounts import service as accounts
from community.accounts.models import Role, TokenKind, User
from community.content import service as content
from community.db import create_engine, session_factory
from community.hubs import service as hubs
from community.hubs.models import Community
from community.settings import Settings

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


@dataclass
class DemoLogins:
    people: dict[str, str]
    api_token: str
    community_id: int


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


async def seed(settings: Settings) -> DemoLogins:
    """Idempotent: a second demo start finds the data and only issues a fresh API token."""
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
            return DemoLogins(
                people={email: DEMO_PASSWORD for email in DEMO_PEOPLE}, api_token=secret, community_id=community.id
            )
    finally:
        await engine.dispose()


def banner(settings: Settings, logins: DemoLogins) -> str:
    base = settings.base_url
    lines = [
        "",
        "community demo is running",
        f"  Web:        {base}/",
        f"  Log in:     {base}/login",
        f"  API docs:   {base}/schema  (Swagger UI: {base}/schema/swagger)",
        f"  API:        {base}/api/v1/communities/{logins.community_id}/hubs",
        "  Logins (email / password):",
        *[f"    {email} / {password}" for email, password in logins.people.items()],
        f"  API token (owner): {logins.api_token}",
        f"    curl -H 'Authorization: Bearer {logins.api_token}' {base}/api/v1/communities",
        f"  Emails are written to {settings.data_dir / 'mail'} (set COMMUNITY_SMTP_URL to send them)",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


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

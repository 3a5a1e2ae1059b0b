"""create_app(settings) -> Litestar: plugins, routers, templates, errors."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from litestar import Litestar, Router
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.flash import FlashConfig, FlashPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from redis.asyncio import Redis

from community import __version__
from community.accounts.account_pages import AccountSettingsPages
from community.accounts.api import AuthController, MeController
from community.accounts.pages import AccountPages
from community.affiliates.api import AffiliatesController, MyAffiliatesController
from community.affiliates.console_pages import ResellPages
from community.affiliates.links import (
    COOKIE_PREFIX,
    VISITOR_COOKIE,
    ClickRecorder,
    Keys,
    LinkPages,
    Targets,
)
from community.affiliates.owner_api import AffiliateReportController
from community.affiliates.pages import AffiliatePages
from community.affiliates.payout_pages import PayoutPages
from community.billing.api import (
    DiscountCodeExportsController,
    DiscountCodesController,
    PaymentsController,
    PaymentsCsvController,
)
from community.billing.discount_pages import DiscountPages
from community.billing.entitlement_pages import EntitlementPages
from community.billing.memberships_api import (
    EndEntitlementController,
    MemberTotalController,
    MyMembershipsController,
)
from community.billing.pages import BillingPages
from community.billing.payment_pages import PaymentPages
from community.campaigns.api import CampaignsController
from community.campaigns.pages import CampaignPages
from community.campaigns.unsubscribe_pages import UNSUBSCRIBE_PATH, UnsubscribePages
from community.checkout.api import (
    QuoteController,
    StripeConnectController,
    StripeWebhooksController,
)
from community.checkout.pages import CompletionPages, OfferPages
from community.checkout.stripe_pages import StripeSetupPages
from community.console.api import NumbersController
from community.console.offers import OfferList
from community.console.pages import ConsoleHome
from community.content.api import DeletionPreviewController, PostsController
from community.content.console_pages import GroupConsole
from community.content.pages import MemberPages, provide_member_area
from community.db import create_engine, session_factory
from community.hubs.api import (
    CommunitiesController,
    CommunityController,
    GroupsController,
    HubsController,
)
from community.hubs.console_pages import HubsConsole
from community.hubs.pages import HubPages
from community.inputs import (
    INSTANT_DECODER,
    INSTANT_ENCODER,
    InstantSchema,
    RefuseUnstorable,
)
from community.jobs_api import JobsController
from community.members.api import MembersController
from community.members.directory_pages import DirectoryPages
from community.members.member_pages import MemberProfilePages
from community.migrate import ensure_migrated
from community.notifications.api import NotificationsController
from community.notifications.pages import EmailSettingsPages
from community.offers.access import open_check_pool
from community.offers.access_api import (
    AccessCheckController,
    AccessController,
    ClaimController,
)
from community.offers.access_pages import OfferPermissionPages
from community.offers.api import MediaController, OffersController
from community.offers.pages import OfferEditorPages
from community.settings import Settings
from community.web import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    OriginSplit,
    add_docs_headers,
    add_security_headers,
    derived_key,
    exception_handler,
    provide_db,
)

log = logging.getLogger("community")

PACKAGE_DIR = Path(__file__).resolve().parent
DOCS_ASSETS = "/schema-assets"
# Swagger UI 5 (OpenAPI 3.1), as the swagger-ui-py package ships it.
SWAGGER_UI = Path(str(resources.files("swagger_ui") / "static"))
THANKS = "^/checkout/[^/]+/thanks"

API_CONTROLLERS = [
    AuthController,
    MeController,
    CommunitiesController,
    CommunityController,
    HubsController,
    GroupsController,
    PostsController,
    DeletionPreviewController,
    JobsController,
    NumbersController,
    AccessController,
    AccessCheckController,
    ClaimController,
    OffersController,
    DiscountCodesController,
    DiscountCodeExportsController,
    PaymentsController,
    PaymentsCsvController,
    MyMembershipsController,
    EndEntitlementController,
    MemberTotalController,
    MembersController,
    CampaignsController,
    NotificationsController,
    AffiliateReportController,
    StripeConnectController,
    StripeWebhooksController,
    QuoteController,
    MyAffiliatesController,
    AffiliatesController,
]


def create_app(settings: Settings | None = None, *, check_migrations: bool = True) -> Litestar:
    settings = settings or Settings.from_env()
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError(
            "COMMUNITY_DATABASE_URL and COMMUNITY_REDIS_URL are not set: start through the "
            "`community` command (it runs embedded PostgreSQL and Redis) or set both"
        )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=10, max_overflow=10)
        if check_migrations:
            await ensure_migrated(engine)
        app.state.engine = engine
        app.state.sessions = session_factory(engine)
        app.state.redis = Redis.from_url(settings.redis_url)
        app.state.access_pool = await open_check_pool(settings.database_url)  # the access check's hot path
        app.state.clicks = ClickRecorder()
        app.state.clicks.start(engine)
        try:
            yield
        finally:
            try:
                await app.state.clicks.stop()  # every buffered click written before the engine goes
            finally:
                await app.state.access_pool.close()
                await app.state.redis.aclose()
                await engine.dispose()

    settings.pages  # noqa: B018 - an unusable COMMUNITY_PAGES_URL stops here, naming the variable
    # Every cookie is host-only (no Domain); on https each is __Host-, which no other host can set.
    secure_cookies, prefix = settings.secure_cookies, settings.cookie_prefix
    pages_cookies = re.compile(rf"{re.escape(prefix)}(?:{CSRF_COOKIE}|{VISITOR_COOKIE}|{COOKIE_PREFIX}\d+)")
    templates = TemplateConfig(directory=PACKAGE_DIR / "templates", engine=JinjaTemplateEngine)
    api = Router(path="/api/v1", route_handlers=API_CONTROLLERS)
    return Litestar(
        route_handlers=[
            api,
            AccountPages,
            AccountSettingsPages,
            HubPages,
            ConsoleHome,
            HubsConsole,
            GroupConsole,
            StripeSetupPages,
            OfferList,
            OfferEditorPages,
            OfferPermissionPages,
            EntitlementPages,
            EmailSettingsPages,
            PaymentPages,
            DiscountPages,
            DirectoryPages,
            MemberProfilePages,
            CampaignPages,
            UnsubscribePages,
            MemberPages,
            BillingPages,
            OfferPages,
            CompletionPages,
            LinkPages,
            AffiliatePages,
            ResellPages,
            PayoutPages,
            MediaController,
            create_static_files_router(path="/static", directories=[PACKAGE_DIR / "static"], name="static"),
            # Swagger UI's files from its Python package: the API docs work offline, no CDN.
            create_static_files_router(path=DOCS_ASSETS, directories=[SWAGGER_UI], name="docs-assets", include_in_schema=False),
        ],
        # `area`: the member pages' community and navigation (hubs/member_area.py), for every floor's member pages.
        dependencies={"db": Provide(provide_db), "area": Provide(provide_member_area)},
        lifespan=[lifespan],
        # lifespan adds engine, sessions, redis, access_pool, clicks
        state=State({
            "settings": settings, "affiliate_keys": Keys(settings.secret_key, prefix), "affiliate_targets": Targets(),
        }),
        template_config=templates,
        # one-time notices after a redirect; Instant (request date-times) in the OpenAPI document
        plugins=[FlashPlugin(FlashConfig(template_config=templates)), InstantSchema()],
        middleware=[
            RefuseUnstorable(),  # first: no NUL, no impossible id reaches the session, CSRF or a handler
            # Then: an offer page only ever answers on its own community's origin.
            DefineMiddleware(OriginSplit, settings=settings, pages_cookies=pages_cookies),
            CookieBackendConfig(
                secret=derived_key(settings.secret_key, "session"),
                key=f"{prefix}{SESSION_COOKIE}",
                httponly=True,
                samesite="lax",
                secure=secure_cookies,
                max_age=30 * 24 * 3600,
                exclude=["^/api/", "^/r/", THANKS],  # the API, affiliate links and thanks never read the cookie session
            ).middleware
        ],
        csrf_config=CSRFConfig(
            secret=derived_key(settings.secret_key, "csrf").hex(),
            cookie_name=f"{prefix}{CSRF_COOKIE}",
            cookie_secure=secure_cookies,
            cookie_httponly=True,
            # The API authenticates with bearer tokens, never cookies; /r/ only redirects; thanks has no
            # form; unsubscribe is RFC 8058 one-click (a mail provider posts it; its signed token is the authority).
            exclude=["^/api/", "^/r/", THANKS, UNSUBSCRIBE_PATH],
        ),
        openapi_config=OpenAPIConfig(
            title="community API",
            version=__version__,
            # Its own router so the docs pages get their own CSP (the closest after_request wins).
            openapi_router=Router(path="/schema", route_handlers=[], after_request=add_docs_headers),
            render_plugins=[
                SwaggerRenderPlugin(
                    path=["/", "/swagger"],
                    js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                    css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                    standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
                    favicon="<link rel='icon' type='image/svg+xml' href='/static/favicon.svg'>",
                )
            ],
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", description="An API token")}
            ),
            security=[{"BearerToken": []}],
        ),
        type_decoders=[INSTANT_DECODER],
        type_encoders=INSTANT_ENCODER,
        exception_handlers={Exception: exception_handler},
        after_request=add_security_headers,
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )

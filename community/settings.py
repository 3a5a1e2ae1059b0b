"""One Settings object, read from COMMUNITY_* environment variables.

Every variable is listed in the README's settings table; keep the two in step.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from community.origins import (
    PagesOrigins,
    PatternError,
    development_pattern,
    registrable_domain,
)


class SettingsError(RuntimeError):
    """Start-up configuration is unusable; the message names the variable."""


# Secrets that production must be given explicitly (development generates or skips them).
PRODUCTION_REQUIRED = (
    "COMMUNITY_SECRET_KEY",
    "COMMUNITY_DATABASE_URL",
    "COMMUNITY_REDIS_URL",
    "COMMUNITY_BASE_URL",
    "COMMUNITY_PAGES_URL",
    "COMMUNITY_SMTP_URL",
    "COMMUNITY_STRIPE_SECRET_KEY",
    "COMMUNITY_STRIPE_WEBHOOK_SECRET",
    "COMMUNITY_STRIPE_CONNECT_WEBHOOK_SECRET",
)


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    data_dir: Path = Path(".community")
    database_url: str | None = None
    redis_url: str | None = None
    secret_key: str = ""
    base_url: str = "http://127.0.0.1:8000"
    pages_url: str | None = None  # the COMMUNITY_PAGES_URL pattern; None: origins.development_pattern
    smtp_url: str | None = None
    mail_from: str = "Community <no-reply@localhost>"
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_connect_webhook_secret: str = ""
    stripe_api_base: str | None = None
    platform_fee_bps: int = 0
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1_000_000
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)
    campaign_rate: float = 10.0  # campaign messages a second per sender; 0: as fast as the server takes them

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @cached_property
    def pages(self) -> PagesOrigins:
        """Each community's own origin, where its offer pages (and its owner's code) live."""
        return pages_origins(self.pages_url or development_pattern(self.base_url), self.base_url)

    def pages_origin(self, community_slug: str) -> str:
        return self.pages.origin(community_slug)

    @property
    def secure_cookies(self) -> bool:
        """https (the pages origins share the platform's scheme): every cookie of ours is then
        Secure and named __Host- (host-only, path /), which no sibling host can set or shadow."""
        return self.base_url.startswith("https://")

    @property
    def cookie_prefix(self) -> str:
        return "__Host-" if self.secure_cookies else ""

    def with_services(self, database_url: str, redis_url: str) -> Settings:
        return replace(self, database_url=database_url, redis_url=redis_url)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        mode = get("COMMUNITY_ENV") or "development"
        if mode not in ("development", "production", "test"):
            raise SettingsError(f"COMMUNITY_ENV must be development, production or test, not {mode!r}")
        if mode == "production":
            missing = [name for name in PRODUCTION_REQUIRED if not get(name)]
            if missing:
                raise SettingsError(
                    "production start-up needs these environment variables: " + ", ".join(missing)
                )

        data_dir = Path(get("COMMUNITY_DATA_DIR") or ".community").absolute()
        secret_key = get("COMMUNITY_SECRET_KEY") or _development_secret(data_dir)
        if len(secret_key) < 32:
            raise SettingsError("COMMUNITY_SECRET_KEY must be at least 32 characters long")

        base_url = _url("COMMUNITY_BASE_URL", get("COMMUNITY_BASE_URL") or "http://127.0.0.1:8000")
        pages_url = get("COMMUNITY_PAGES_URL")
        pages_origins(pages_url or development_pattern(base_url), base_url, production=mode == "production")
        fee = _int("COMMUNITY_PLATFORM_FEE_BPS", get("COMMUNITY_PLATFORM_FEE_BPS") or "0", 0, 10_000)
        port = _int("COMMUNITY_PORT", get("COMMUNITY_PORT") or "8000", 1, 65535)
        rate = _float("COMMUNITY_CAMPAIGN_RATE", get("COMMUNITY_CAMPAIGN_RATE") or "10", 0.0, 100_000.0)
        proxies = tuple(p.strip() for p in (get("COMMUNITY_TRUSTED_PROXIES") or "").split(",") if p.strip())
        return cls(
            env=mode,
            data_dir=data_dir,
            database_url=get("COMMUNITY_DATABASE_URL"),
            redis_url=get("COMMUNITY_REDIS_URL"),
            secret_key=secret_key,
            base_url=base_url,
            pages_url=pages_url,
            smtp_url=get("COMMUNITY_SMTP_URL"),
            mail_from=get("COMMUNITY_MAIL_FROM") or cls.mail_from,
            stripe_secret_key=get("COMMUNITY_STRIPE_SECRET_KEY") or "",
            stripe_publishable_key=get("COMMUNITY_STRIPE_PUBLISHABLE_KEY") or "",
            stripe_webhook_secret=get("COMMUNITY_STRIPE_WEBHOOK_SECRET") or "",
            stripe_connect_webhook_secret=get("COMMUNITY_STRIPE_CONNECT_WEBHOOK_SECRET") or "",
            stripe_api_base=get("COMMUNITY_STRIPE_API_BASE"),
            platform_fee_bps=fee,
            host=get("COMMUNITY_HOST") or "127.0.0.1",
            port=port,
            trusted_proxies=proxies,
            campaign_rate=rate,
        )


def pages_origins(pattern: str, base_url: str, *, production: bool = False) -> PagesOrigins:
    """Parse COMMUNITY_PAGES_URL and refuse a pattern that would let owners' code near the
    platform: a community whose origin is the platform's, another scheme than the platform's
    (cookies are Secure by the platform's), and in production any pages host on the platform's
    own site (registrable domain), where owners' code could set cookies for the platform's
    domain and count as same-site for its SameSite cookies."""
    name = "COMMUNITY_PAGES_URL"
    try:
        pages = PagesOrigins.parse(pattern)
    except PatternError as exc:
        raise SettingsError(f"{name} {exc}") from None
    platform = urlsplit(base_url)
    if pages.scheme != platform.scheme:
        raise SettingsError(f"{name} must use the scheme of COMMUNITY_BASE_URL ({platform.scheme}), not {pages.scheme}")
    if production:
        site = registrable_domain(platform.hostname or "")
        if registrable_domain(pages.sample_host()) == site:
            raise SettingsError(
                f"{name} must be on another registrable domain than COMMUNITY_BASE_URL (both are on {site}): "
                "owners' code on the pages could set cookies for the platform's domain and would count as "
                "the platform's own site, so a member's session would ride along its requests. Serve the "
                "pages from a domain of its own, as GitHub Pages serves user content from github.io, not github.com"
            )
    if pages.slug_of(platform.netloc) is not None:
        raise SettingsError(f"{name} would give a community the platform's own host ({platform.netloc})")
    return pages


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an absolute http(s) URL, not {value!r}")
    return value.rstrip("/")


def _int(name: str, value: str, low: int, high: int) -> int:
    return int(_number(name, value, low, high, int))


def _float(name: str, value: str, low: float, high: float) -> float:
    return _number(name, value, low, high, float)


def _number(name: str, value: str, low: float, high: float, kind: type[int] | type[float]) -> float:
    try:
        number = kind(value)
    except ValueError:
        raise SettingsError(f"{name} must be {'an integer' if kind is int else 'a number'}, not {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}")
    return number


def _development_secret(data_dir: Path) -> str:
    """Generate the secret key once and keep it, so sessions survive a restart."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key

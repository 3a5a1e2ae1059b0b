"""Affiliate links: /r/{code} (and ?ref={code} on a landing page) counts a click, sets a signed
attribution cookie and sends the visitor on to the offer.

The request does no database write: a click goes into this process's buffer (after an
in-memory repeat check) and a background task writes the buffer in one statement at least
every FLUSH_SECONDS, and once more on shutdown. A crash loses at most that much of the click
counts, never an attribution: the cookie carries it to checkout. Each worker process has its
own buffer; the flush itself drops a visitor's repeat within the hour that another worker
already wrote (under a transaction advisory lock, so two workers' flushes cannot both let one
through).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hmac
import logging
import re
import time
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import Cookie, State
from litestar.params import FromPath
from litestar.types import ASGIApp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from community.accounts.api import client_address
from community.affiliates.models import Affiliate
from community.errors import NotFound
from community.hubs.models import Community
from community.offers import service as offers
from community.offers.models import Offer, OfferStatus
from community.web import SECURITY_HEADERS, derived_key, moved_to_community

log = logging.getLogger("community.affiliates")

FLUSH_SECONDS = 0.5
REPEAT_SECONDS = 3600  # a visitor's clicks on one link within an hour count once
COOKIE_PREFIX = "ref_"  # one attribution cookie per offer: ref_{offer_id}
VISITOR_COOKIE = "community_vid"
VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{16,43}$")
LINK_CODE = re.compile(r"[A-Za-z0-9]{1,16}")
TARGET_TTL = 30.0  # seconds a code's target is trusted from memory
MAX_TARGETS = 10_000
MAX_SEEN = 200_000  # repeat-check entries held in memory; the flush re-checks in the database
MAX_BUFFER = 1_000_000  # beyond this (database unreachable for long) new clicks are dropped


@dataclass(frozen=True, slots=True)
class Target:
    """Where a code leads: its affiliate, offer and page."""

    affiliate_id: int
    community_id: int
    offer_id: int
    path: str  # the offer's landing page, or its checkout page when it has none
    window_days: int
    community_slug: str  # its origin is where the link answers (and its cookie lives)


@dataclass(frozen=True, slots=True)
class Attribution:
    affiliate_id: int
    offer_id: int
    clicked_at: dt.datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """The secrets of links: one to sign attribution cookies, one to hash visitors; and the
    cookies' names (on https __Host-: no sibling community's host can set them for this one)."""

    def __init__(self, secret_key: str, cookie_prefix: str = "") -> None:
        self.cookie = derived_key(secret_key, "affiliate-cookie")
        self.visitor = derived_key(secret_key, "affiliate-visitor")
        self.visitor_cookie = f"{cookie_prefix}{VISITOR_COOKIE}"
        self.attribution_prefix = f"{cookie_prefix}{COOKIE_PREFIX}"

    def attribution_cookie(self, offer_id: int) -> str:
        return f"{self.attribution_prefix}{offer_id}"

    def hash(self, value: str) -> str:
        return blake2b(value.encode(), key=self.visitor, digest_size=16).hexdigest()

    def _sign(self, payload: str) -> str:
        return _b64(blake2b(payload.encode(), key=self.cookie, digest_size=16).digest())

    def attribution_value(self, affiliate_id: int, offer_id: int, clicked_at: float) -> str:
        payload = f"{affiliate_id}.{offer_id}.{int(clicked_at)}"
        return f"{payload}.{self._sign(payload)}"

    def read_attribution(self, value: str | None, offer_id: int) -> Attribution | None:
        """The cookie's attribution if its signature holds and it is this offer's; else None."""
        if not value or value.count(".") != 3:
            return None
        payload, _, signature = value.rpartition(".")
        # As bytes: compare_digest refuses str with non-ASCII characters, which a browser may send.
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        affiliate_id, cookie_offer, clicked = (int(part) for part in payload.split("."))
        if cookie_offer != offer_id:
            return None
        return Attribution(affiliate_id, offer_id, dt.datetime.fromtimestamp(clicked, dt.UTC))


def attribution_from(request: Request, keys: Keys, offer_id: int) -> Attribution | None:
    return keys.read_attribution(request.cookies.get(keys.attribution_cookie(offer_id)), offer_id)


# ---------------------------------------------------------------- code -> target


class Targets:
    """Codes' targets, from memory for TARGET_TTL seconds (a link is read far more often than
    an offer's slugs or landing page change)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, Target]] = {}

    async def get(self, engine: AsyncEngine, code: str) -> Target | None:
        now = time.monotonic()
        hit = self._cache.get(code)
        if hit is not None and hit[0] > now:
            return hit[1]
        target = await self._load(engine, code)
        if target is not None:
            if len(self._cache) >= MAX_TARGETS:
                self._cache.clear()
            self._cache[code] = (now + TARGET_TTL, target)
        return target

    @staticmethod
    async def _load(engine: AsyncEngine, code: str) -> Target | None:
        if not LINK_CODE.fullmatch(code):  # anything else (a NUL, a long string) is no code of ours
            return None
        query = (
            select(Affiliate.id, Affiliate.community_id, Affiliate.offer_id, Community.slug, Offer.slug, Offer.landing_page, Offer.resell_window_days)
            .join(Offer, Offer.id == Affiliate.offer_id)
            .join(Community, Community.id == Affiliate.community_id)
            .where(Affiliate.code == code, Offer.status == OfferStatus.published)
        )
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        affiliate_id, community_id, offer_id, community_slug, offer_slug, landing, window = row
        path = f"/o/{community_slug}/{offer_slug}"
        if not offers.shows_landing_page(landing):
            path += "/checkout"  # what the landing page would redirect to
        return Target(affiliate_id, community_id, offer_id, path, window, community_slug)


# ---------------------------------------------------------------- click buffer

_FLUSH_SQL = """
INSERT INTO affiliate_clicks (community_id, affiliate_id, offer_id, visitor_hash, ip_hash, user_agent, referrer, at)
SELECT c.* FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
    AS c(community_id, affiliate_id, offer_id, visitor_hash, ip_hash, user_agent, referrer, at)
WHERE NOT EXISTS (
    SELECT 1 FROM affiliate_clicks p
    WHERE p.affiliate_id = c.affiliate_id AND p.visitor_hash = c.visitor_hash AND p.at > c.at - interval '1 hour'
)
"""
_FLUSH_LOCK = 0x61666663  # pg_advisory_xact_lock key: one flush at a time across workers


def _clean(value: str, limit: int) -> str:
    return value[:limit].replace("\x00", "")  # PostgreSQL text holds no NUL


class ClickRecorder:
    """This process's click buffer and its flusher."""

    def __init__(self) -> None:
        self._rows: list[tuple[Any, ...]] = []
        self._seen: dict[tuple[int, str], float] = {}  # (affiliate, visitor) -> last counted, insertion-ordered
        self._task: asyncio.Task[None] | None = None
        self._engine: AsyncEngine | None = None
        self._lock = asyncio.Lock()
        self.written = 0

    @property
    def pending(self) -> int:
        return len(self._rows)

    def record(self, target: Target, visitor_hash: str, ip_hash: str, user_agent: str, referrer: str, at: float) -> bool:
        """Buffer a click unless the visitor clicked this link within the hour; True if counted."""
        key = (target.affiliate_id, visitor_hash)
        last = self._seen.get(key)
        if last is not None and at - last < REPEAT_SECONDS:
            return False
        if len(self._rows) >= MAX_BUFFER:
            return False
        if last is not None:
            del self._seen[key]  # re-inserted at the end: the dict stays in time order
        self._seen[key] = at
        self._rows.append((
            target.community_id, target.affiliate_id, target.offer_id, visitor_hash, ip_hash,
            _clean(user_agent, 300), _clean(referrer, 500), at,
        ))  # fmt: skip
        return True

    def start(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._task = asyncio.create_task(self._run(), name="affiliate-click-flusher")

    async def stop(self) -> None:
        """Graceful shutdown: stop the timer, then write everything still buffered."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:
                log.exception("writing affiliate clicks failed; kept %d for the next try", len(self._rows))

    async def flush(self) -> int:
        """Write the buffer in one statement; on failure the rows go back to the buffer."""
        async with self._lock:
            rows, self._rows = self._rows, []
            self._forget_old(time.time())
            if not rows or self._engine is None:
                self._rows[:0] = rows
                return 0
            try:
                await self._write(rows)
            except BaseException:
                self._rows[:0] = rows
                raise
            self.written += len(rows)
            return len(rows)

    async def _write(self, rows: list[tuple[Any, ...]]) -> None:
        assert self._engine is not None
        columns = list(zip(*rows, strict=True))
        columns[7] = tuple(dt.datetime.fromtimestamp(at, dt.UTC) for at in columns[7])
        async with self._engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            async with driver.transaction():
                await driver.execute("SELECT pg_advisory_xact_lock($1)", _FLUSH_LOCK)
                await driver.execute(_FLUSH_SQL, *columns)

    def _forget_old(self, now: float) -> None:
        """Drop repeat-check entries older than the hour (from the front: they are in time order)."""
        expired = []
        for key, at in self._seen.items():
            if now - at < REPEAT_SECONDS:
                break
            expired.append(key)
        for key in expired:
            del self._seen[key]
        if len(self._seen) > MAX_SEEN:
            self._seen.clear()  # the database check still drops repeats


# ---------------------------------------------------------------- the request's part


def visitor(request: Request, keys: Keys) -> tuple[str, str, str]:
    """(visitor id for the cookie, its hash, the address's hash). A visitor without our cookie
    gets an id derived from address and user agent, so a client that refuses cookies still
    counts once an hour."""
    address = client_address(request)
    vid = request.cookies.get(keys.visitor_cookie, "")
    if not VISITOR_ID.match(vid):
        vid = _b64(blake2b(f"{address}|{request.headers.get('user-agent', '')}".encode(), key=keys.visitor, digest_size=16).digest())
    return vid, keys.hash(f"v:{vid}"), keys.hash(f"a:{address}")


def click(request: Request, state: Any, target: Target) -> list[tuple[str, str, int]]:
    """Count the click; the cookies to set as (name, value, max-age): visitor id, attribution."""
    now = time.time()
    vid, visitor_hash, ip_hash = visitor(request, state.affiliate_keys)
    headers = request.headers
    state.clicks.record(target, visitor_hash, ip_hash, headers.get("user-agent", ""), headers.get("referer", ""), now)
    keys = state.affiliate_keys
    attribution = keys.attribution_value(target.affiliate_id, target.offer_id, now)
    return [(keys.visitor_cookie, vid, 365 * 86400), (keys.attribution_cookie(target.offer_id), attribution, target.window_days * 86400)]


def _secure(state: Any) -> bool:
    return state.settings.secure_cookies


def _set_cookie(name: str, value: str, max_age: int, secure: bool) -> tuple[bytes, bytes]:
    """The one way our link cookies are rendered, written directly: our values need no quoting,
    and Litestar's Cookie rendering (through http.cookies and dataclasses.asdict) costs more
    than the rest of a /r/ request together."""
    return (b"set-cookie", f"{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{'; Secure' if secure else ''}".encode())


class _LinkCookie(Cookie):
    """A Litestar Cookie (for a page's response: ?ref=) rendered as /r/ renders its own."""

    def to_encoded_header(self) -> tuple[bytes, bytes]:
        return _set_cookie(self.key, self.value or "", self.max_age or 0, bool(self.secure))


def as_cookies(state: Any, cookies: list[tuple[str, str, int]]) -> list[Cookie]:
    return [_LinkCookie(key=k, value=v, max_age=age, httponly=True, samesite="lax", secure=_secure(state)) for k, v, age in cookies]


def _set_cookie_headers(state: Any, cookies: list[tuple[str, str, int]]) -> list[tuple[bytes, bytes]]:
    secure = _secure(state)
    return [_set_cookie(k, v, age, secure) for k, v, age in cookies]


_REDIRECT_HEADERS = [
    (b"content-length", b"0"),
    (b"cache-control", b"no-store"),
    *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()),
]


class _Redirect:
    """A bare redirect sent as is (Litestar's Response objects rebuild their headers item by item)."""

    __slots__ = ("headers", "status")

    def __init__(self, location: str, headers: list[tuple[bytes, bytes]], status: int = 302) -> None:
        self.headers = [(b"location", location.encode()), *_REDIRECT_HEADERS, *headers]
        self.status = status

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": b""})


async def _as_sent(response: Any) -> Any:
    return response


class LinkPages(Controller):
    """/r/{code}: on its community's own origin, so the cookie is where checkout reads it (a
    link asked for on another host moves there first: only the code tells which community).
    No database session, no session cookie, no CSRF cookie: a lookup from memory, a buffered
    click, a redirect."""

    include_in_schema = False

    @get("/r/{code:str}", after_request=_as_sent)  # the headers are in the redirect already
    async def follow(self, code: FromPath[str], request: Request, state: State) -> ASGIApp:
        target = await state.affiliate_targets.get(state.engine, code)
        if target is None:
            raise NotFound("this link leads nowhere")
        if (elsewhere := moved_to_community(request, state.settings, target.community_slug)) is not None:
            return _Redirect(elsewhere, [], status=308)  # nothing counted or set on the wrong host
        return _Redirect(target.path, _set_cookie_headers(state, click(request, state, target)))

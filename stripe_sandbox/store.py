"""The sandbox's store: objects in memory behind one lock, events, idempotency, lists, time.

Objects are plain dicts shaped like Stripe's JSON (keys starting with `_` are the sandbox's own
bookkeeping and never leave it). Every public method takes the lock (`@locked`), so the HTTP
server's thread and a test's thread can both drive the same state. Changes emit events: stored,
and handed to `on_event` (the webhook deliverer) while the lock is held, in creation order.

Time is `wall clock + offset` (see billing.py for the clock that moves it).
"""

from __future__ import annotations

import calendar
import copy
import datetime as dt
import fnmatch
import heapq
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from functools import wraps
from typing import Any

import stripe

from stripe_sandbox import expand
from stripe_sandbox.errors import SandboxError, no_such
from stripe_sandbox.forms import Params

API_VERSION = stripe.api_version
DAY = 86400
TRIAL_WILL_END_BEFORE = 3 * DAY
RETRY_AFTER_DAYS = (3, 5, 7)  # failed invoice payments are retried after these gaps, then the subscription ends
IDEMPOTENCY_TTL = DAY  # Stripe may prune a key once it is 24 hours old
OUTCOMES = ("success", "decline", "trial_without_card", "async_pending")
_ALPHABET = string.ascii_letters + string.digits

Obj = dict[str, Any]


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def public(obj: Obj) -> Obj:
    """A snapshot of an object as the API shows it (without the sandbox's `_` bookkeeping)."""
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


def add_months(anchor: int, months: int) -> int:
    """`anchor` plus whole months, keeping the anchor's day where the month has it (Jan 31 -> Feb 28 -> Mar 31)."""
    start = dt.datetime.fromtimestamp(anchor, dt.UTC)
    total = start.month - 1 + months
    year, month = start.year + total // 12, total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def period_end(anchor: int, interval: str, count: int, cycles: int) -> int:
    """The end of billing cycle number `cycles` (1-based) counted from `anchor`."""
    if interval == "day":
        return anchor + cycles * count * DAY
    if interval == "week":
        return anchor + cycles * count * 7 * DAY
    months = cycles * count * (12 if interval == "year" else 1)
    return add_months(anchor, months)


def percent_of(amount: int, percent: float | Decimal) -> int:
    """`percent` per cent of `amount` (minor units), rounded half up as Stripe rounds."""
    return int((Decimal(amount) * Decimal(str(percent)) / 100).quantize(Decimal(1), ROUND_HALF_UP))


def coupon_discount(coupon: Obj, amount: int) -> int:
    if coupon.get("percent_off") is not None:
        return min(amount, percent_of(amount, coupon["percent_off"]))
    return min(amount, coupon["amount_off"])


def locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper


def url_param(p: Params, key: str, *, required: bool = False) -> str | None:
    value = p.str(key, required=required)
    if value is not None and not re.match(r"^https?://[^\s/]+", value):
        raise SandboxError(f"Not a valid URL: {p.name(key)}", param=p.name(key), code="url_invalid")
    return value


class Store:
    def __init__(self, base_url: str = "http://127.0.0.1") -> None:
        self.lock = threading.RLock()
        self.base_url = base_url
        self.objects: dict[str, Obj] = {}
        self.index: dict[str, list[str]] = {}  # object type -> ids in creation order
        self.links: dict[str, Obj] = {}  # account link token -> link
        self.idempotency: dict[tuple[str | None, str], Obj] = {}
        self.offset = 0
        self.on_event: Callable[[Obj], None] = lambda event: None
        self.request: Obj = {"id": None, "idempotency_key": None}  # the API request being served
        self._pinned: int | None = None  # the time of the clock step being processed
        self._expiries: list[tuple[int, str]] = []  # (expires_at, session id), a heap
        self._faults: list[tuple[str, str, int]] = []  # (method, path, status) of fail_next
        self._seq = 0
        self._invoice_numbers = 0

    # ---- time ---------------------------------------------------------------------------

    @locked
    def now(self) -> int:
        """Sandbox time: what subscriptions, invoices and events run on (the test clock moves it)."""
        return self._pinned if self._pinned is not None else int(time.time()) + self.offset

    @staticmethod
    def wall() -> int:
        """Real time: what checkout sessions and account links run on, as in Stripe."""
        return int(time.time())

    def _expiring(self, session: Obj) -> None:
        heapq.heappush(self._expiries, (session["expires_at"], session["id"]))

    @locked
    def sweep(self) -> None:
        """Expires the open checkout sessions whose expires_at has passed (run before each request)."""
        wall = self.wall()
        while self._expiries and self._expiries[0][0] <= wall:
            _, session_id = heapq.heappop(self._expiries)
            session = self.objects[session_id]
            if session["status"] == "open":
                self._expire(session)

    def _expire(self, session: Obj) -> None:
        session["status"] = "expired"
        session["url"] = None
        self._emit("checkout.session.expired", session)

    # ---- storage ------------------------------------------------------------------------

    def _new(
        self,
        object_type: str,
        prefix: str,
        account: str | None,
        fields: Obj,
        *,
        object_id: str | None = None,
        livemode: bool = True,
    ) -> Obj:
        """A stored object; `livemode=False` for the kinds whose objects have no `livemode` field (accounts)."""
        self._seq += 1
        obj: Obj = {"id": object_id or new_id(prefix), "object": object_type}
        obj.update(fields)
        obj.setdefault("created", self.now())
        if livemode:
            obj.setdefault("livemode", False)
        obj["_account"] = account
        obj["_seq"] = self._seq
        self.objects[obj["id"]] = obj
        self.index.setdefault(object_type, []).append(obj["id"])
        return obj

    def _find(self, object_type: str, object_id: str | None, account: str | None) -> Obj | None:
        obj = self.objects.get(object_id or "")
        if obj is None or obj["object"] != object_type or obj["_account"] != account or obj.get("_deleted"):
            return None
        return obj

    def _get(
        self, object_type: str, object_id: str, account: str | None, *, param: str = "id", status: int = 404
    ) -> Obj:
        obj = self._find(object_type, object_id, account)
        if obj is None:
            error = no_such(object_type, object_id, param)
            error.status = status
            raise error
        return obj

    def _any(self, object_type: str, object_id: str) -> Obj:
        """Any account's object (for the sandbox's own controls and pages)."""
        obj = self.objects.get(object_id)
        if obj is None or obj["object"] != object_type or obj.get("_deleted"):
            raise no_such(object_type, object_id)
        return obj

    @locked
    def get(self, object_id: str) -> Obj:
        obj = self.objects.get(object_id)
        if obj is None:
            raise no_such("object", object_id)
        return public(obj)

    def _list(self, object_type: str, account: str | None, p: Params, path: str, match: Callable[[Obj], bool]) -> Obj:
        limit = p.int("limit", minimum=1, maximum=100) or 10
        starting_after, ending_before = p.str("starting_after"), p.str("ending_before")
        found = [
            obj
            for oid in reversed(self.index.get(object_type, []))
            if (obj := self.objects[oid])["_account"] == account and not obj.get("_deleted") and match(obj)
        ]
        if starting_after:
            ids = [o["id"] for o in found]
            if starting_after not in ids:
                raise no_such(object_type, starting_after, "starting_after")
            found = found[ids.index(starting_after) + 1 :]
            page = found[:limit]
        elif ending_before:
            ids = [o["id"] for o in found]
            if ending_before not in ids:
                raise no_such(object_type, ending_before, "ending_before")
            found = found[: ids.index(ending_before)]
            page = found[-limit:]
        else:
            page = found[:limit]
        return {"object": "list", "data": [public(o) for o in page], "has_more": len(found) > len(page), "url": path}

    # ---- answering a request: expand[] -------------------------------------------------------

    def answer(self, call: Callable[..., Obj], returns: str, account: str | None, p: Params, *ids: str) -> Obj:
        """One API request: its `expand[]` paths checked first (a bad one answers 400 and changes
        nothing), then the request, then its answer expanded (see expand.py)."""
        paths = expand.paths(p)
        expand.check(returns, paths)
        body = call(self, account, p, *ids)
        return expand.apply(
            body,
            returns,
            paths,
            lambda kind, object_id: self._expanded(kind, object_id, account),
            lambda method, holder: getattr(self, method)(holder, account),
        )

    def _expanded(self, kind: str, object_id: str, account: str | None) -> Obj | None:
        obj = self._find(kind, object_id, account)
        return public(obj) if obj is not None else None

    # ---- events -------------------------------------------------------------------------

    def _emit(self, event_type: str, obj: Obj, *, account: str | None = None, previous: Obj | None = None) -> Obj:
        account = account if account is not None else obj["_account"]
        data: Obj = {"object": public(obj)}
        if previous:
            data["previous_attributes"] = previous
        fields: Obj = {
            "api_version": API_VERSION,
            "data": data,
            "pending_webhooks": 0,
            "request": dict(self.request),
            "type": event_type,
        }
        if account:
            fields["account"] = account
        event = self._new("event", "evt_", account, fields)
        self.on_event(event)
        return event

    @locked
    def events(self, event_type: str | None = None) -> list[Obj]:
        return [
            public(self.objects[e])
            for e in self.index.get("event", [])
            if event_type is None or self.objects[e]["type"] == event_type
        ]

    def retrieve_event(self, account: str | None, event_id: str) -> Obj:
        return public(self._get("event", event_id, account))

    def list_events(self, account: str | None, p: Params) -> Obj:
        p.only("limit", "starting_after", "ending_before", "type", "types", "created", "delivery_success")
        event_type = p.str("type")
        types = [t for t in (p.data.get("types") or {}).values()] if isinstance(p.data.get("types"), dict) else []

        def match(e: Obj) -> bool:
            if event_type and not fnmatch.fnmatchcase(e["type"], event_type):
                return False
            return not types or e["type"] in types

        return self._list("event", account, p, "/v1/events", match)

    # ---- idempotency ----------------------------------------------------------------------
    # As Stripe: the first answer to a key (once the endpoint began: success or error, a 500
    # too) is saved with its parameters and replayed for IDEMPOTENCY_TTL of real time; later the
    # key is forgotten and a request with it is a new one. Keys keep to the wall clock, as in
    # Stripe (its test clocks do not age them): `age_idempotency_keys` moves them on instead.

    def replay(self, account: str | None, key: str, method: str, path: str, params: Obj) -> Obj | None:
        """The stored response of an earlier request with this key, or None (call `remember` after)."""
        saved = self.idempotency.get((account, key))
        if saved is not None and self.wall() - saved["saved_at"] >= IDEMPOTENCY_TTL:
            del self.idempotency[(account, key)]  # pruned: the key may be used again
            saved = None
        if saved is None:
            return None
        if (saved["method"], saved["path"], saved["params"]) != (method, path, params):
            raise SandboxError(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                f"Try using a key other than '{key}' if you meant to execute a different request.",
                type="idempotency_error",
            )
        return saved

    def remember(
        self, account: str | None, key: str, method: str, path: str, params: Obj, status: int, body: Obj
    ) -> None:
        self.idempotency[(account, key)] = {
            "method": method,
            "path": path,
            "params": params,
            "status": status,
            "body": body,
            "saved_at": self.wall(),
        }

    @locked
    def age_idempotency_keys(self, seconds: int) -> int:
        """Every saved key becomes `seconds` older (past IDEMPOTENCY_TTL: forgotten on its next
        use), without moving anything else. Returns how many keys are saved."""
        if seconds < 0:
            raise SandboxError("seconds must not be negative", param="seconds")
        for saved in self.idempotency.values():
            saved["saved_at"] -= seconds
        return len(self.idempotency)

    # ---- injected failures ------------------------------------------------------------------

    @locked
    def fail_next(self, method: str, path: str, status: int = 500) -> None:
        """The next API request `method path` fails inside its endpoint, before changing anything,
        with Stripe's `api_error` and this status: what a Stripe outage answers. Saved under its
        idempotency key like any answer, so a retry with the key gets the same error."""
        if not 500 <= status <= 599:
            raise SandboxError("status must be a 5xx", param="status")
        self._faults.append((method.upper(), path, status))

    def take_fault(self, method: str, path: str) -> int | None:
        for index, (f_method, f_path, status) in enumerate(self._faults):
            if (f_method, f_path) == (method, path):
                del self._faults[index]
                return status
        return None

    def _update_metadata(self, obj: Obj, metadata: dict[str, str] | None) -> None:
        """Stripe's update rule: keys are merged, a key sent empty is removed, `metadata=` empties it."""
        if metadata is None:
            return
        if not metadata:
            obj["metadata"] = {}
            return
        for key, value in metadata.items():
            if value == "":
                obj["metadata"].pop(key, None)
            else:
                obj["metadata"][key] = value

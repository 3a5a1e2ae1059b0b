"""Webhook deliveries: signed like Stripe signs them, retried on failure, never blocking the API.

Each endpoint with a URL has one worker task on the server's event loop that POSTs events in
the order they were created; a failed attempt (non-2xx, connection error, timeout) is put back
in the queue after the next of `retry_delays`, so later events do not wait for it (Stripe
promises no order either). An endpoint without a URL is "manual": its deliveries wait in a list
until a test takes them, signed at that moment.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Stripe's `Stripe-Signature` header: `t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload" under the secret>`."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode("utf-8"), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


@dataclass(frozen=True)
class Delivery:
    payload: bytes
    headers: dict[str, str]
    event_id: str
    type: str


@dataclass
class _Item:
    event_id: str
    type: str
    payload: bytes
    attempt: int = 0


@dataclass
class Endpoint:
    id: str
    url: str | None
    secret: str
    connect: bool
    events: tuple[str, ...] | None = None  # enabled event types (patterns like "invoice.*"); None: all
    manual: list[_Item] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def wants(self, event: dict[str, Any]) -> bool:
        if ("account" in event) != self.connect:
            return False
        return self.events is None or any(fnmatch.fnmatchcase(event["type"], p) for p in self.events)


class Deliverer:
    def __init__(self, retry_delays: Iterable[float] = (1, 5, 25, 125), timeout: float = 10.0) -> None:
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self.endpoints: dict[str, Endpoint] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._queues: dict[str, asyncio.Queue[_Item]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._early: list[tuple[Endpoint, _Item]] = []  # emitted before the loop runs
        self._idle = threading.Condition()
        self._pending = 0

    # ---- endpoints (called from any thread) ------------------------------------------------------

    def add_endpoint(self, url: str | None, secret: str, *, connect: bool, events: Iterable[str] | None = None) -> str:
        endpoint_id = "we_" + secrets.token_hex(12)
        self.endpoints[endpoint_id] = Endpoint(endpoint_id, url, secret, connect, tuple(events) if events else None)
        return endpoint_id

    def remove_endpoint(self, endpoint_id: str) -> None:
        self.endpoints.pop(endpoint_id)

    def on_event(self, event: dict[str, Any]) -> None:
        """Queues an event for every endpoint that wants it (runs under the state's lock: must not block)."""
        targets = [ep for ep in self.endpoints.values() if ep.wants(event)]
        event["pending_webhooks"] = sum(1 for ep in targets if ep.url)
        payload = json.dumps({k: v for k, v in event.items() if not k.startswith("_")}, indent=2).encode()
        for ep in targets:
            item = _Item(event["id"], event["type"], payload)
            if ep.url is None:
                ep.manual.append(item)
                continue
            with self._idle:
                self._pending += 1
            if self._loop is None:
                self._early.append((ep, item))
            else:
                self._loop.call_soon_threadsafe(self._put, ep, item)

    def take(self, endpoint_id: str) -> list[Delivery]:
        """The deliveries queued for a manual endpoint, signed now; the queue is emptied."""
        ep = self.endpoints[endpoint_id]
        items, ep.manual = ep.manual, []
        return [Delivery(i.payload, self._headers(ep, i.payload), i.event_id, i.type) for i in items]

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no delivery to a URL is waiting for an attempt (delivered, or given up)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    # ---- the worker side (on the server's event loop) --------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        early, self._early = self._early, []
        for ep, item in early:
            self._put(ep, item)

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        self._loop, self._client, self._workers, self._queues = None, None, [], {}
        with self._idle:
            self._pending = 0
            self._idle.notify_all()

    def _put(self, ep: Endpoint, item: _Item) -> None:
        queue = self._queues.get(ep.id)
        if queue is None:
            queue = self._queues[ep.id] = asyncio.Queue()
            self._workers.append(asyncio.create_task(self._work(ep, queue)))
        queue.put_nowait(item)

    async def _work(self, ep: Endpoint, queue: asyncio.Queue[_Item]) -> None:
        assert self._loop is not None
        while True:
            item = await queue.get()
            if ep.id not in self.endpoints:
                self._finished()
                continue
            status, error = await self._attempt(ep, item)
            ok = status is not None and 200 <= status < 300
            ep.attempts.append(
                {
                    "event_id": item.event_id,
                    "type": item.type,
                    "attempt": item.attempt + 1,
                    "status": status,
                    "error": error,
                    "ok": ok,
                    "at": time.time(),
                }
            )
            if ok or item.attempt >= len(self.retry_delays):
                self._finished()
            else:
                delay = self.retry_delays[item.attempt]
                item.attempt += 1
                self._loop.call_later(delay, queue.put_nowait, item)

    async def _attempt(self, ep: Endpoint, item: _Item) -> tuple[int | None, str | None]:
        assert self._client is not None and ep.url is not None
        try:
            response = await self._client.post(ep.url, content=item.payload, headers=self._headers(ep, item.payload))
        except (httpx.HTTPError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None

    def _finished(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    @staticmethod
    def _headers(ep: Endpoint, payload: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": sign(payload, ep.secret),
        }

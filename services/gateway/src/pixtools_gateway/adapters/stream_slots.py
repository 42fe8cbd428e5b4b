"""Slots for a tenant's open progress streams, shared by every replica through Redis or kept in this process.

In Redis each tenant has a sorted set of slot ids scored by when each slot lapses. An open stream renews its
slot every `ttl_s / 3` seconds; a closed stream removes it. A replica that crashes stops renewing, so its
slots lapse after `ttl_s` and are dropped by the next claim: no slot leaks for longer than that. While Redis
fails, slots are counted in this process, as the rate limits are.
"""

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from pixtools_gateway.adapters.rate_limits import REDIS_CONNECT_TIMEOUT_S, REDIS_TIMEOUT_S, StorageDown

# Drop the lapsed slots, count the rest, and add this one when there is room: one atomic step.
_CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local open = redis.call('ZCARD', KEYS[1])
if open >= tonumber(ARGV[3]) then
  return -1
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return open + 1
"""


class StreamSlots(Protocol):
    """Counts open streams per tenant."""

    async def claim(self, tenant: str, limit: int) -> str | None:
        """A new slot's id, or None when the tenant has `limit` streams open."""
        ...

    async def release(self, tenant: str, slot: str) -> None:
        """Free a slot; freeing it twice changes nothing."""
        ...

    async def close(self) -> None:
        """Stop renewing and let go of connections."""
        ...


class LocalStreamSlots:
    """Stream slots of this process alone."""

    def __init__(self) -> None:
        self._open: dict[str, set[str]] = defaultdict(set)

    async def claim(self, tenant: str, limit: int) -> str | None:
        """A new slot's id, or None when the tenant has `limit` streams open."""
        if len(self._open[tenant]) >= limit:
            return None
        slot = uuid.uuid4().hex
        self._open[tenant].add(slot)
        return slot

    async def release(self, tenant: str, slot: str) -> None:
        """Free a slot."""
        self._open[tenant].discard(slot)

    async def close(self) -> None:
        """Nothing to let go of."""


class RedisStreamSlots:
    """Stream slots shared by every replica; a slot lapses `ttl_s` after its replica stopped renewing it."""

    def __init__(self, redis_url: str, *, ttl_s: float, retry_s: float) -> None:
        self._redis = Redis.from_url(
            redis_url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
        )
        self._claim = self._redis.register_script(_CLAIM)
        self._ttl_s = ttl_s
        self._health = StorageDown(retry_s)
        self._held: dict[str, str] = {}  # slot id -> tenant, renewed together
        self._local = LocalStreamSlots()  # while Redis fails
        self._held_locally: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None

    async def claim(self, tenant: str, limit: int) -> str | None:
        """A new slot's id, or None when the tenant has `limit` streams open (in this process, while Redis fails)."""
        if self._health.down:
            return await self._claim_locally(tenant, limit)
        slot = uuid.uuid4().hex
        now = time.time()
        try:
            opened = await self._claim(
                keys=[_key(tenant)], args=[now, now + self._ttl_s, limit, slot, int(self._ttl_s * 2000)]
            )
        except (RedisError, OSError) as error:
            self._health.failed("streams", error)
            return await self._claim_locally(tenant, limit)
        if int(opened) < 0:
            return None
        self._held[slot] = tenant
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew())
        return slot

    async def _claim_locally(self, tenant: str, limit: int) -> str | None:
        slot = await self._local.claim(tenant, limit)
        if slot is not None:
            self._held_locally.add(slot)
        return slot

    async def release(self, tenant: str, slot: str) -> None:
        """Free a slot; an unreachable Redis lets it lapse instead."""
        if slot in self._held_locally:
            self._held_locally.discard(slot)
            await self._local.release(tenant, slot)
            return
        if self._held.pop(slot, None) is None:
            return
        with contextlib.suppress(RedisError, OSError):
            await self._redis.zrem(_key(tenant), slot)

    async def close(self) -> None:
        """Stop renewing; the slots still held lapse on their own."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await self._redis.aclose()

    async def _renew(self) -> None:
        """Push every held slot's lapse time forward, until none is held."""
        while self._held:
            await asyncio.sleep(self._ttl_s / 3)
            lapse = time.time() + self._ttl_s
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for slot, tenant in list(self._held.items()):
                        # No XX: a slot lost with a restarted Redis comes back on its next renewal.
                        pipe.zadd(_key(tenant), {slot: lapse})
                        pipe.pexpire(_key(tenant), int(self._ttl_s * 2000))
                    await pipe.execute()
            except (RedisError, OSError) as error:
                self._health.failed("streams", error)


def _key(tenant: str) -> str:
    return f"pixtools-limits:streams:{tenant}"


def stream_slots(redis_url: str | None, *, ttl_s: float, retry_s: float) -> StreamSlots:
    """Slots counted in Redis when the gateway has one, otherwise in this process."""
    if redis_url:
        return RedisStreamSlots(redis_url, ttl_s=ttl_s, retry_s=retry_s)
    return LocalStreamSlots()

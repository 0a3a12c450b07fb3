"""Instance liveness and the cleanup of instances that died (spec §8).

Each instance proves it is alive with a key that expires unless renewed
(``P:alive:<instance>``, ``instance_ttl``), is listed in ``P:instances``, and
lists the connections that hold sessions on it (``P:conns:<instance>``: a hash
of connection id to ``company agent``). A connection is listed *before* its
``hello`` is applied and unlisted only after its disconnection is recorded, so
a session is never held without being listed.

Every instance sweeps: an instance whose alive key is gone died without a word
(SIGKILL, a lost machine), and each of its listed connections gets
``disconnected``/``server-lost``. Exactly once, without locks: the write is
refused for a connection that no longer holds its session (the console already
came back elsewhere, or another sweeper got there first), so only one
``server-lost`` is ever recorded per session. An instance starting with no
other alive sweeps at once: the first one up cleans after the last one down.

If Redis loses a company's data (restarted without its disk; on a cluster,
one node of several), the instances holding sessions of that company see at
their next beat that its epoch key is gone — a company with a live session
always has one — and put back the sessions they really hold: each gets
``connected`` again, with the same session id and its last status; the
company's log starts over under a new epoch. An instance whose own listing of
connections is gone lists them again.

These keys are global, not a company's: they carry no ``{company}`` hash tag,
and each command touches one key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.errors import Refused, StaleConnection, StoreUnavailable
from server.hub import Hub
from server.store import Store, now_ms

__all__ = ["Liveness", "instance_of"]

log = logging.getLogger("presence.instances")

STORE_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError, StoreUnavailable)
#: Companies whose data one beat checks (an EXISTS each): all of them each
#: beat up to this many, else in turn, each every few beats.
EPOCHS_PER_BEAT: Final = 500
#: How long a sweeper waits for a silent instance to answer before burying it.
PROBE_PATIENCE: Final = 1.0


def instance_of(conn_id: str) -> str:
    """The instance a connection id belongs to (``<instance>/<random>``)."""
    return conn_id.partition("/")[0]


class Liveness:
    def __init__(self, store: Store, hub: Hub, ttl: float, session_ttl: int) -> None:
        self.store = store
        self.hub = hub
        self.instance = store.instance
        self.ttl = ttl
        #: How long a session lost with its instance stays resumable.
        self.session_ttl = session_ttl
        self.keys = store.keys
        #: Where the next beat's check of companies' epochs starts.
        self._next_check = 0
        #: What to do when Redis lost companies' data: put this instance's
        #: sessions of those companies back.
        self.on_data_lost: Callable[[set[str]], Awaitable[None]] | None = None
        #: Ghost sessions cleaned by this instance (for the metrics).
        self.cleaned = 0

    async def prove_alive(self) -> set[str]:
        """Renew this instance's proof; the companies it holds sessions of whose
        data Redis has lost (their epoch is gone), of the next
        :data:`EPOCHS_PER_BEAT` in turn: with thousands of companies a beat
        checking them all stalled the event loop (the bench's tenants scenario
        saw acks wait behind it at 5,000 companies), so each is checked every
        few beats instead."""
        companies = self.hub.companies()
        start = self._next_check % len(companies) if companies else 0
        checked = (companies[start:] + companies[:start])[:EPOCHS_PER_BEAT]
        self._next_check = start + len(checked)
        async with self.store.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.alive(self.instance), "1", px=int(self.ttl * 1000))
            pipe.sadd(self.keys.instances(), self.instance)
            pipe.exists(self.keys.conns(self.instance))
            for company in checked:
                pipe.exists(self.keys.epoch(company))
            _, _, listed, *present = await pipe.execute()
        if companies and not listed:
            log.warning("liveness: this instance's listing was lost; listing its connections again")
            held = [
                part
                for c in self.hub.connections()
                for part in (c.conn_id, f"{c.company} {c.agent}")
            ]
            await self.store.redis.hset(self.keys.conns(self.instance), items=held)
        return {company for company, there in zip(checked, present, strict=True) if not there}

    async def is_alive(self, instance: str) -> bool:
        return bool(await self.store.redis.exists(self.keys.alive(instance)))

    async def hold(self, conn_id: str, company: str, agent: str) -> None:
        await self.store.redis.hset(self.keys.conns(self.instance), conn_id, f"{company} {agent}")

    async def release(self, conn_id: str) -> None:
        """Unlist a connection whose disconnection is recorded (or was never ours)."""
        # Best effort: a listing left behind is found stale by a sweeper, and
        # the store refuses to record anything for it.
        with contextlib.suppress(*STORE_ERRORS):
            await self.store.redis.hdel(self.keys.conns(self.instance), conn_id)

    async def run(self) -> None:
        """Renew this instance's proof, and sweep for dead ones, until cancelled.

        Two loops: cleaning after a dead instance (hundreds of writes, slow while
        Redis recovers) must never delay this instance's own renewal, or its key
        would lapse and a peer would bury it alive.
        """
        await asyncio.gather(self._renew(), self._sweep())

    async def _renew(self) -> None:
        restoring: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    lost = await self.prove_alive()
                except STORE_ERRORS as exc:
                    log.warning("liveness: store unavailable (%s)", exc)
                    lost = set()
                if lost and self.on_data_lost is not None and not restoring:
                    log.warning(
                        "Redis lost the data of %d companies: restoring the sessions held here",
                        len(lost),
                    )
                    # Beside the renewals, not in their way: thousands of sessions
                    # take a while to put back, and the proof must go on meanwhile.
                    restoring = asyncio.create_task(self._restore(self.on_data_lost, lost))
                if restoring is not None and restoring.done():
                    restoring = None
                await asyncio.sleep(self.ttl / 5)
        finally:
            if restoring is not None:
                restoring.cancel()

    async def _restore(
        self, restore: Callable[[set[str]], Awaitable[None]], companies: set[str]
    ) -> None:
        try:
            await restore(companies)
        except STORE_ERRORS as exc:
            log.warning("restoring sessions: store unavailable (%s)", exc)

    async def _sweep(self) -> None:
        while True:
            try:
                await self.sweep()
            except STORE_ERRORS as exc:
                log.warning("sweep: store unavailable (%s)", exc)
            await asyncio.sleep(self.ttl / 5)

    async def sweep(self) -> int:
        """Clean every dead instance's sessions; how many ``server-lost`` recorded."""
        members = cast(set[str], await self.store.redis.smembers(self.keys.instances()))
        cleaned = 0
        for instance in sorted(members - {self.instance}):
            if not await self.is_alive(instance) and not await self.answers(instance):
                cleaned += await self.clean(instance)
        return cleaned

    async def answers(self, instance: str) -> bool:
        """Whether ``instance`` answers on its control channel. Alive keys expire
        during a Redis outage longer than ``instance_ttl`` although nobody died:
        an instance that answers is alive, and renews its key at its next beat."""
        return await self.hub.holds(instance, "", patience=PROBE_PATIENCE) is not None

    async def clean(self, instance: str) -> int:
        redis = self.store.redis
        key = self.keys.conns(instance)
        held = cast(dict[str, str], await redis.hgetall(key))
        cleaned = 0
        for conn_id, where in held.items():
            company, _, agent = where.partition(" ")
            try:
                await self.store.disconnect(
                    company,
                    agent,
                    reason="server-lost",
                    now=now_ms(),
                    conn=conn_id,
                    session_ttl=self.session_ttl,
                )
            except (StaleConnection, Refused):
                pass  # the console came back elsewhere, or another sweeper was first
            else:
                cleaned += 1
            await redis.hdel(key, conn_id)
        if not await redis.hlen(key):
            await redis.srem(self.keys.instances(), instance)
        if cleaned:
            log.warning("instance %s is gone: %d sessions marked server-lost", instance, cleaned)
        self.cleaned += cleaned
        return cleaned

    async def leave(self) -> None:
        """Stop proving life: at once gone to the sweepers, who clean whatever a
        drain could not record (the rest was unlisted as it was recorded)."""
        await self.store.redis.delete(self.keys.alive(self.instance))

"""Retention: events older than ``retention_days`` leave the log.

Every instance runs the loop; a short lease in Redis lets one of them do each
round, so N instances don't trim N times. Trimming is idempotent, so a lease
that lapses mid-round costs only repeated work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from server.store import REDIS_ERRORS, Store

__all__ = ["ROUND_SECONDS", "retain", "trim_all"]

log = logging.getLogger("presence.retention")

#: Between two rounds; the lease lasts one round.
ROUND_SECONDS: Final = 600


async def trim_all(store: Store, retention_days: float, now_ms: int) -> int:
    """Trim every company's log to ``retention_days``; how many companies."""
    before_ms = now_ms - int(retention_days * 86_400_000)
    companies = await store.companies()
    for company in companies:
        await store.trim(company, before_ms)
    return len(companies)


async def retain(store: Store, retention_days: float) -> None:
    """Run rounds until cancelled."""
    lease = store.keys.retention_lease()
    while True:
        try:
            if await store.redis.set(lease, store.instance, nx=True, ex=ROUND_SECONDS):
                count = await trim_all(store, retention_days, time.time_ns() // 1_000_000)
                log.info("retention: trimmed %d companies to %g days", count, retention_days)
        except REDIS_ERRORS as exc:
            log.warning("retention round skipped: %s", exc)
        await asyncio.sleep(ROUND_SECONDS)

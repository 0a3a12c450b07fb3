"""Retention trims the log (and the per-agent index) by age, nothing newer."""

from __future__ import annotations

import time

from server.retention import trim_all
from server.store import ORIGIN, Store

DAY_MS = 86_400_000


async def test_trims_what_is_older_than_the_retention_only(store: Store) -> None:
    now = time.time_ns() // 1_000_000
    for company in ("acme", "globex"):
        await store.hello(company, "a-1", conn="t/1", now=now)
        await store.set_status(company, "a-1", "break", by_user=True, now=now, conn="t/1")
    # Found in the registry the hellos filled, not by scanning the keyspace.
    assert sorted(await store.companies()) == ["acme", "globex"]
    assert await trim_all(store, retention_days=30, now_ms=now) == 2
    assert len(await store.events("acme")) == 3  # a month's retention keeps today
    assert await store.recoverable_after("acme", ORIGIN)

    # A month and a day later, all of it is past retention.
    assert await trim_all(store, retention_days=30, now_ms=now + 31 * DAY_MS) == 2
    for company in ("acme", "globex"):
        assert await store.events(company) == []
        events, _ = await store.log(company, agent="a-1")
        assert events == []  # the agent's index went with the log
        assert not await store.recoverable_after(company, ORIGIN)
    # The state the log left behind is still served.
    state = await store.state("acme", "a-1")
    assert state is not None and state.status == "break"

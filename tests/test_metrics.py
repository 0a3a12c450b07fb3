"""``GET /metrics``: Prometheus text from a real server, as a scraper reads it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from tests.clients import open_agent, open_monitor
from tests.scraping import sample, scrape
from tests.servers import RunningServer
from tests.timing import eventually, seconds


async def until_sample(server: RunningServer, name: str, value: float, **labels: str) -> None:
    """Wait for a sample: the server ends a socket on its own time."""

    async def shows() -> bool:
        return sample(await scrape(server), name, **labels) == value

    await eventually(shows, seconds(5))


async def test_metrics_before_any_traffic(server: RunningServer) -> None:
    samples = await scrape(server)
    for kind in ("agent", "monitor"):
        assert sample(samples, "presence_connections", kind=kind) == 0
    for where in ("script", "pubsub", "feed"):
        assert sample(samples, "presence_redis_errors_total", where=where) == 0
    assert sample(samples, "presence_monitor_queue_depth") == 0
    assert sample(samples, "presence_deferred_disconnections") == 0
    assert sample(samples, "presence_ghost_sessions_cleaned_total") == 0
    assert sample(samples, "presence_pubsub_lag_seconds_count") == 0


async def test_an_agents_connection_events_and_writes(server: RunningServer) -> None:
    agent, welcome = await open_agent(server)
    assert welcome["state"]["status"] == "busy"
    ack = await agent.request({"t": "status", "value": "break", "ref": 1})
    assert ack["t"] == "ack" and ack["state"]["status"] == "break"

    samples = await scrape(server)
    assert sample(samples, "presence_connections", kind="agent") == 1
    assert sample(samples, "presence_events_total", type="status-changed", value="connected") == 1
    assert sample(samples, "presence_events_total", type="status-changed", value="busy") == 1
    assert sample(samples, "presence_events_total", type="status-changed-user", value="break") == 1
    for op in ("hello", "status"):
        count = sample(samples, "presence_script_seconds_count", op=op)
        assert count is not None and count > 0, op
    assert sample(samples, "presence_script_seconds_bucket", op="status", le="+Inf") == sample(
        samples, "presence_script_seconds_count", op="status"
    )

    await agent.ws.close()
    await until_sample(server, "presence_connections", 0, kind="agent")
    samples = await scrape(server)
    assert (
        sample(samples, "presence_events_total", type="status-changed", value="disconnected") == 1
    )


async def test_a_monitor_is_counted(server: RunningServer) -> None:
    monitor = await open_monitor(server)
    await monitor.subscribe()
    samples = await scrape(server)
    assert sample(samples, "presence_connections", kind="monitor") == 1
    assert sample(samples, "presence_connections", kind="agent") == 0
    await monitor.ws.close()
    await until_sample(server, "presence_connections", 0, kind="monitor")


async def test_pubsub_lag_of_another_instances_changes(
    start_server: Callable[..., Awaitable[RunningServer]],
) -> None:
    holder, other = await start_server(), await start_server()
    agent, _ = await open_agent(holder)
    # The agent's own changes concern only its instance: nothing is published.
    # A supervisor's change through the other instance reaches the holder.
    async with httpx.AsyncClient(base_url=other.http_url, timeout=seconds(5)) as http:
        response = await http.post(
            "/v1/agents/a-1/status",
            json={"value": "meal"},
            headers={"authorization": f"Bearer {other.token('sup', role='supervisor')}"},
        )
    assert response.status_code == 200, response.text
    await until_sample(holder, "presence_pubsub_lag_seconds_count", 1)
    assert sample(await scrape(holder), "presence_pubsub_lag_seconds_bucket", le="+Inf") == 1
    assert sample(await scrape(other), "presence_pubsub_lag_seconds_count") == 0
    await agent.ws.close()

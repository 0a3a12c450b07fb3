"""What an instance logs at the default level: what an operator needs, not a line per
socket or request (an instance restarting takes thousands of sockets a minute)."""

from __future__ import annotations

import json

import httpx

from tests.clients import raw_agent
from tests.processes import presence_server
from tests.servers import process_env, token
from tests.timing import seconds


async def test_sockets_and_requests_leave_no_line_per_connection(
    redis_url: str, key_prefix: str
) -> None:
    async with presence_server(process_env(redis_url, key_prefix)) as server:
        started = len(server.log)
        agents = [(await raw_agent(server.agent_url, f"a-{n}"))[0] for n in range(20)]
        headers = {"Authorization": f"Bearer {token('sofia', 'supervisor')}"}
        async with httpx.AsyncClient(base_url=server.http_url, timeout=seconds(5)) as http:
            for _ in range(20):
                assert (await http.get("/v1/agents", headers=headers)).status_code == 200
        for agent in agents:
            await agent.ws.close()
        await server.stop()
    logged = server.log[started:]
    assert not [line for line in logged if "WebSocket" in line or '"GET ' in line], logged
    # What it did say: the drain of the SIGTERM, and nothing per socket.
    assert len(logged) < 10, logged


async def test_json_logs_are_one_object_per_line(redis_url: str, key_prefix: str) -> None:
    env = process_env(redis_url, key_prefix, log_format="json")
    async with presence_server(env) as server:
        agent, _ = await raw_agent(server.agent_url, "a-1")
        await agent.ws.close()
        await server.stop()
    entries = [json.loads(line) for line in server.log if line.strip()]
    assert entries, "it logged nothing"
    for entry in entries:
        assert set(entry) >= {"ts", "level", "logger", "message"}, entry
        assert entry["ts"].endswith("Z") and entry["level"] in {"debug", "info", "warning"}
    messages = [entry["message"] for entry in entries]
    assert any(" ready (key prefix " in message for message in messages), messages
    # uvicorn's own lines come through the same handler.
    assert any(entry["logger"].startswith("uvicorn") for entry in entries), entries

"""Admission: an instance holds at most ``max_connections`` sockets; past that, a new
one is refused at the handshake (HTTP 503, Retry-After) and the sockets it holds are
left alone. (The storm of 5,000 against 2,000 is bench/scenarios/admission.py.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from websockets.exceptions import InvalidStatus

from client_sdk import AgentConsole
from tests.clients import open_agent, open_monitor
from tests.servers import RunningServer
from tests.timing import eventually, seconds


async def test_past_the_limit_a_socket_is_refused_with_503_and_the_others_carry_on(
    start_server: Callable[..., Awaitable[RunningServer]],
) -> None:
    server = await start_server(max_connections=2)
    agent, _ = await open_agent(server, "a-1")
    monitor = await open_monitor(server)
    for attempt in (lambda: open_agent(server, "a-2"), lambda: open_monitor(server)):
        with pytest.raises(InvalidStatus) as refused:
            await attempt()
        response = refused.value.response
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert b"store-unavailable" in response.body
    # The two it holds work as before.
    ack = await agent.request({"t": "status", "value": "break", "ref": 1})
    assert ack["t"] == "ack" and ack["state"]["status"] == "break"
    await monitor.subscribe()
    # A slot freed is a slot taken, once the server has finished with the closed socket.
    await agent.ws.close()

    consoles: list[AgentConsole] = []

    async def taken() -> bool:
        console = AgentConsole(server.agent_url, server.token("a-2"))
        try:
            await console.connect()
        except InvalidStatus:
            return False
        consoles.append(console)
        return True

    await eventually(taken, seconds(5))
    assert consoles[0].session is not None
    await consoles[0].close()
    await monitor.ws.close()


async def test_no_limit_by_default(server: RunningServer) -> None:
    assert server.settings.max_connections == 0
    agents = [(await open_agent(server, f"a-{n}"))[0] for n in range(5)]
    for agent in agents:
        await agent.ws.close()

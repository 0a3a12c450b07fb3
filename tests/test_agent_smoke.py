from __future__ import annotations

import json

from websockets.asyncio.client import connect

from server.store import Store
from tests.servers import RunningServer


async def test_hello_welcome_status_bye(server: RunningServer, store: Store) -> None:
    async with connect(server.agent_url, subprotocols=["presence.v1.json"]) as ws:
        await ws.send(json.dumps({"t": "hello", "token": server.token("a-1")}))
        welcome = json.loads(await ws.recv())
        assert welcome["t"] == "welcome", welcome
        await ws.send(json.dumps({"t": "status", "value": "break", "ref": 1}))
        ack = json.loads(await ws.recv())
        assert ack["t"] == "ack" and ack["event"]["type"] == "status-changed-user", ack
        await ws.send(json.dumps({"t": "bye", "ref": 2}))
        bye = json.loads(await ws.recv())
        assert bye["event"]["reason"] == "client-closed"
    events = await store.events("acme")
    assert [e.value for e in events] == ["connected", "busy", "break", "disconnected"]

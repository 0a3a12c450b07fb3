"""Durability ``replicated``: a change is acknowledged only once a replica has it.

Against a real master and replica (the Sentinel group's, addressed directly),
with the server as a process; a replica that stops answering is a real one
stopped with SIGSTOP.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest

from tests.clients import raw_agent
from tests.processes import presence_server
from tests.servers import process_env
from tests.timing import seconds
from tests.topologies import Node, SentinelGroup

pytest_plugins = ["tests.topologies"]
pytestmark = pytest.mark.sentinel

#: Short, so a write nobody confirms gives up within the test's patience.
STORE_RETRY = 2.0


@contextlib.contextmanager
def stopped(node: Node) -> Iterator[None]:
    """``node`` frozen (SIGSTOP) for the block: alive, connected, silent."""
    assert node.pid is not None
    os.kill(node.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(node.pid, signal.SIGCONT)


async def replica_of(group: SentinelGroup) -> Node:
    master = await group.master()
    (replica,) = [node for node in group.servers if node is not master and node.alive]
    return replica


async def test_every_ack_is_on_the_replica_already(
    sentinel_group: SentinelGroup, key_prefix: str
) -> None:
    master = await sentinel_group.master()
    replica = await replica_of(sentinel_group)
    env = process_env(master.url, key_prefix, durability="replicated")
    async with presence_server(env) as server, replica.client() as on_replica:
        agent, _ = await raw_agent(server.agent_url, "a-1")
        for ref, value in enumerate(["available", "break", "meal", "training"] * 3):
            ack = await agent.request({"t": "status", "value": value, "ref": ref})
            assert ack["t"] == "ack", ack
            entry_id = ack["event"]["id"]
            # Read at once from the replica: WAIT already saw it there.
            found = await on_replica.xrange(
                f"{key_prefix}{{acme}}:events", min=entry_id, max=entry_id
            )
            assert found, f"acked {entry_id} is not on the replica"


async def test_no_ack_while_no_replica_confirms(
    sentinel_group: SentinelGroup, key_prefix: str
) -> None:
    master = await sentinel_group.master()
    replica = await replica_of(sentinel_group)
    env = process_env(
        master.url, key_prefix, durability="replicated", store_retry=seconds(STORE_RETRY)
    )
    async with presence_server(env) as server:
        agent, _ = await raw_agent(server.agent_url, "a-1")
        with stopped(replica):
            answer = await agent.request({"t": "status", "value": "available", "ref": 1})
            assert answer["t"] == "error" and answer["code"] == "store-unavailable", answer
        # Once the replica answers again, so does the server, and the change a
        # retry brings back is the one first applied, not a second one.
        again = await agent.request({"t": "status", "value": "available", "ref": 2})
        assert again["t"] == "ack", again
        assert again["state"]["status"] == "available"


async def test_local_durability_acks_without_a_replica(
    sentinel_group: SentinelGroup, key_prefix: str
) -> None:
    master = await sentinel_group.master()
    replica = await replica_of(sentinel_group)
    async with presence_server(process_env(master.url, key_prefix)) as server:
        agent, _ = await raw_agent(server.agent_url, "a-1")
        with stopped(replica):
            ack = await agent.request({"t": "status", "value": "available", "ref": 1})
            assert ack["t"] == "ack", ack

"""A Redis Cluster and a Sentinel group for the tests, run from ``redis-server`` on PATH.

PYTEST_DONT_REWRITE: a test module imports from this module before naming it a
plugin (below), and pytest would fail the run, unable to rewrite its asserts then.

Every process listens on a free port of 127.0.0.1, keeps its files in a private
temporary directory, dies with the test run (``die_with_parent``) and is stopped
by its pid at the end. Every deadline is scaled (``tests.timing.seconds``),
Redis' own failure detection included, so a loaded machine sees no spurious
failover.

:class:`RedisCluster`: ``masters`` shards of one master and ``replicas``
replicas each; shard ``i`` serves the ``i``-th ``16384 / masters`` of the slots.
:class:`SentinelGroup`: a master, its replicas and three sentinels watching it.
Both start with ``with`` (or ``async with`` inside an event loop), and offer the
addresses the product takes and the faults the tests need (``kill_master``,
``migrate_slot``, ``failover``), each returning once the topology has settled.

A test module takes them as fixtures by naming this module a plugin, and marks
its tests, so that ``-m "not cluster and not sentinel"`` leaves them out::

    pytest_plugins = ["tests.topologies"]

    @pytest.mark.cluster
    async def test_x(redis_cluster: RedisCluster) -> None: ...

    @pytest.mark.sentinel
    async def test_y(sentinel_group: SentinelGroup) -> None: ...

Each fixture is one topology for the whole session (3 masters with a replica
each; 1 master, 1 replica, 3 sentinels), handed to each test healthy: after the
test, killed servers are started again (as replicas), slots moved by
``migrate_slot`` go home and the data is flushed. Masters may have changed
places, so a test asks (``master_of``, ``master_address``), never assumes.
Without ``redis-server`` on PATH the tests are skipped, except in CI (``CI`` set),
where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot as _key_slot
from redis.exceptions import RedisError

from server.embedded import die_with_parent
from tests.timing import seconds

HOST = "127.0.0.1"
SLOTS = 16384

#: How long a topology may take to form, and to settle after a fault.
START_WITHIN = 30.0
SETTLE_WITHIN = 30.0
#: Sentinel's failover after a kill may lose an election and retry after twice
#: the failover timeout.
SENTINEL_SETTLE_WITHIN = 60.0

T = TypeVar("T")


def redis_server_binary() -> str:
    """``redis-server`` from PATH. Without one the calling test is skipped, or fails in CI."""
    found = shutil.which("redis-server")
    if found is None:
        reason = (
            "the Cluster and Sentinel tests need redis-server on PATH "
            "(apt-get install redis-server)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must install it", pytrace=False)
        pytest.skip(reason)
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports of 127.0.0.1 (each held until all are found)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((HOST, 0))
            ports.append(sock.getsockname()[1])
        return ports


def key_slot(key: str | bytes) -> int:
    """The cluster slot of ``key`` (its hash tag's, if it has one)."""
    return _key_slot(key.encode() if isinstance(key, str) else key)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end in a private event loop (for ``with`` outside one),
    leaving the thread's current event loop, if any, alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _settle(check: Callable[[], Awaitable[str | None]], within: float, what: str) -> None:
    """Wait until ``check`` finds nothing wrong (returns ``None``), checking every
    50 ms: the state of other processes, with no event to await. Fails after
    ``within`` seconds with what it found wrong last."""
    problem: str | None = "not checked yet"
    try:
        async with asyncio.timeout(within):
            while True:
                try:
                    problem = await check()
                except (RedisError, OSError) as error:
                    problem = f"{type(error).__name__}: {error}"
                if problem is None:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError(f"{what}: not after {within:.0f} s: {problem}") from None


class NodeExited(RuntimeError):
    """A server process ended when it should be running."""


@dataclass(eq=False)
class Node:
    """One ``redis-server`` process: a port and a directory of its own; it can be
    killed and started again on both."""

    name: str
    port: int
    directory: Path
    command: list[str]
    #: A cluster node's shard (the master it was created with and its replicas).
    shard: int = 0
    #: A cluster node's id (kept across restarts in its nodes.conf), and its bus port.
    node_id: str = ""
    bus_port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self, *extra: str) -> None:
        """Start the process (``extra``: more arguments); :meth:`answering` waits for it."""
        assert not self.alive, f"{self.name} is running already"
        with open(self.directory / "stderr.log", "ab") as stderr:
            self.process = subprocess.Popen(
                [*self.command, *extra],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                preexec_fn=die_with_parent,
            )

    def kill(self) -> None:
        """SIGKILL, by pid; returns once it is gone."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()

    def client(self, *, decode: bool = True) -> aioredis.Redis:
        """A client of this server alone, with short scaled timeouts and no retries
        (for ``async with``)."""
        return aioredis.Redis(
            host=HOST,
            port=self.port,
            decode_responses=decode,
            socket_timeout=seconds(5),
            socket_connect_timeout=seconds(2),
            retry=Retry(NoBackoff(), 0),
        )

    async def answering(self) -> None:
        async def check() -> str | None:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise NodeExited(f"{self.name} exited ({code}):\n{self.log_tail()}")
            async with self.client() as client:
                await client.ping()
            return None

        await _settle(check, seconds(10), f"{self.name} answering on {self.port}")

    def log_tail(self, lines: int = 20) -> str:
        tails = []
        for log in ("server.log", "stderr.log"):
            path = self.directory / log
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                tails.append(f"--- {self.name} {log} (pid {self.pid}, port {self.port})")
                tails.extend(text)
        return "\n".join(tails)


def _server_command(binary: str, port: int, directory: Path, *args: str) -> list[str]:
    """A data server on ``port`` that keeps nothing on disk (but a cluster's nodes.conf)."""
    return [
        binary,
        "--port", str(port),
        "--bind", HOST,
        "--dir", str(directory),
        "--logfile", str(directory / "server.log"),
        "--daemonize", "no",
        "--save", "",
        "--appendonly", "no",
        # A replica's first sync starts at once (Redis 7 waits 5 s for more replicas).
        "--repl-diskless-sync", "yes",
        "--repl-diskless-sync-delay", "0",
        *args,
    ]  # fmt: skip


class _Topology:
    """Processes in one temporary directory, stopped together."""

    kind = "topology"

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.directory = Path()
        self.binary = ""

    @property
    def processes(self) -> list[Node]:
        raise NotImplementedError

    def _make_directory(self) -> None:
        self.binary = redis_server_binary()
        self._tmp = tempfile.TemporaryDirectory(prefix=f"presence-test-{self.kind}-")
        self.directory = Path(self._tmp.name)

    def _node_directory(self, name: str) -> Path:
        path = self.directory / name
        path.mkdir()
        return path

    async def _start(self) -> None:
        raise NotImplementedError

    async def astart(self) -> None:
        """Start everything and wait until it has formed; stop what it started if that
        fails. Once more, on other ports, if a process exited as it started (a port
        found free may be someone else's by then)."""
        for attempt in range(2):
            try:
                await self._start()
                return
            except BaseException as error:
                logs = self.logs()
                self.stop()
                if isinstance(error, NodeExited) and attempt == 0:
                    continue
                if isinstance(error, Exception):
                    message = f"the {self.kind} did not start: {error}\n{logs}"
                    raise RuntimeError(message) from error
                raise

    def start(self) -> None:
        """:meth:`astart` outside an event loop."""
        _run(self.astart())

    def stop(self) -> None:
        """Kill every process by its pid and delete the directory."""
        for node in self.processes:
            node.kill()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def logs(self) -> str:
        return "\n".join(node.log_tail() for node in self.processes)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()

    async def heal(self) -> None:
        raise NotImplementedError

    async def flush(self) -> None:
        raise NotImplementedError

    async def reset(self) -> None:
        """Healthy and empty again (:meth:`heal`, then flush); failing that, stopped
        and started anew, and the failure raised."""
        try:
            await self.heal()
            await self.flush()
        except Exception:
            self.stop()
            await self.astart()
            raise


# ---------------------------------------------------------------------- cluster


@dataclass(frozen=True)
class _Entry:
    """One line of ``CLUSTER NODES``."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    connected: bool
    slots: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, line: str) -> _Entry:
        fields = line.split()
        address = fields[1].split("@")[0]
        slots = []
        for item in fields[8:]:
            if item.startswith("["):
                continue  # a slot being migrated or imported
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        return cls(
            node_id=fields[0],
            port=int(address.rsplit(":", 1)[1] or 0),
            flags=frozenset(fields[2].split(",")),
            master_id=None if fields[3] == "-" else fields[3],
            connected=fields[7] == "connected",
            slots=tuple(sorted(slots)),
        )


_TROUBLE = frozenset({"fail", "fail?", "handshake", "noaddr"})


class RedisCluster(_Topology):
    """``masters`` shards of a master and ``replicas`` replicas each, on loopback.

    Not to be confused with ``redis.asyncio.cluster.RedisCluster``, the client:
    import this one as ``tests.topologies.RedisCluster`` or by another name.
    """

    kind = "cluster"

    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        super().__init__()
        self.masters = masters
        self.replicas = replicas
        #: Every node, shard by shard: node ``i * (1 + replicas)`` is shard ``i``'s first master.
        self.nodes: list[Node] = []
        #: The shard each slot moved by :meth:`migrate_slot` came from.
        self._homes: dict[int, int] = {}
        #: Redis' own failure detection (a master unreachable this long fails over).
        self.node_timeout_ms = round(seconds(2) * 1000)

    @property
    def processes(self) -> list[Node]:
        return self.nodes

    # The addresses the product takes.

    @property
    def startup_nodes(self) -> list[str]:
        """Every node as ``host:port``."""
        return [node.address for node in self.nodes]

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...``: every node."""
        return "redis+cluster://" + ",".join(self.startup_nodes)

    def shard(self, index: int) -> list[Node]:
        """Shard ``index``'s nodes, alive or not, in the order they were created."""
        size = 1 + self.replicas
        return self.nodes[index * size : (index + 1) * size]

    # Start and stop.

    def _start_nodes(self) -> None:
        self._make_directory()
        self._homes.clear()
        count = self.masters * (1 + self.replicas)
        ports = free_ports(2 * count)
        self.nodes = []
        for index in range(count):
            shard, member = divmod(index, 1 + self.replicas)
            name = f"shard{shard}-{'master' if member == 0 else f'replica{member}'}"
            directory = self._node_directory(name)
            port, bus = ports[2 * index], ports[2 * index + 1]
            command = _server_command(
                self.binary, port, directory,
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(directory / "nodes.conf"),
                # The bus port is one of ours: port + 10000 may be out of range or taken.
                "--cluster-port", str(bus),
                "--cluster-node-timeout", str(self.node_timeout_ms),
            )  # fmt: skip
            node = Node(name, port, directory, command, shard=shard, bus_port=bus)
            self.nodes.append(node)
            node.spawn()

    async def _start(self) -> None:
        """What ``redis-cli --cluster create`` does, with the roles and slot ranges
        fixed: shard ``i``'s first node serves the ``i``-th range, the others
        replicate it."""
        self._start_nodes()
        for node in self.nodes:
            await node.answering()
            async with node.client() as client:
                node.node_id = await client.execute_command("CLUSTER", "MYID")
        for index in range(self.masters):
            master = self.shard(index)[0]
            low, high = index * SLOTS // self.masters, (index + 1) * SLOTS // self.masters - 1
            async with master.client() as client:
                await client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
                # Distinct epochs before they meet, as redis-cli sets them.
                await client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        async with self.nodes[0].client() as client:
            for node in self.nodes[1:]:
                await client.execute_command("CLUSTER", "MEET", HOST, node.port, node.bus_port)
        await _settle(self._everyone_met, seconds(START_WITHIN), "the cluster's nodes meeting")
        for index in range(self.masters):
            master, *replicas = self.shard(index)
            for replica in replicas:
                async with replica.client() as client:
                    await client.execute_command("CLUSTER", "REPLICATE", master.node_id)
        await _settle(self._problem, seconds(START_WITHIN), "the cluster forming")

    async def _everyone_met(self) -> str | None:
        for node in self.nodes:
            async with node.client() as client:
                text = await client.execute_command("CLUSTER", "NODES")
            entries = [_Entry.parse(line) for line in text.splitlines() if line.strip()]
            known = {entry.node_id for entry in entries if not entry.flags & _TROUBLE}
            if known != {other.node_id for other in self.nodes}:
                return f"{node.name} knows {len(known)} of {len(self.nodes)} nodes"
        return None

    # What it looks like now.

    async def _views(self) -> dict[Node, list[_Entry]]:
        views = {}
        for node in self.nodes:
            if node.alive:
                async with node.client() as client:
                    text = await client.execute_command("CLUSTER", "NODES")
                views[node] = [_Entry.parse(line) for line in text.splitlines() if line.strip()]
        return views

    async def _problem(self) -> str | None:
        """What keeps the cluster from being settled, or ``None``: every live node
        says ``cluster_state:ok`` with every slot served, all of them see the same
        owners and roles, no live node is failing in anyone's view, no slot is on
        a dead node, and every live replica's link to its master is up."""
        alive = [node for node in self.nodes if node.alive]
        alive_ids = {node.node_id for node in alive}
        by_id = {node.node_id: node for node in self.nodes}
        reference: tuple[object, ...] | None = None
        for node in alive:
            async with node.client() as client:
                info = await client.execute_command("CLUSTER", "INFO")
                role = await client.execute_command("ROLE")
                text = await client.execute_command("CLUSTER", "NODES")
            if "cluster_state:ok" not in info or f"cluster_slots_ok:{SLOTS}" not in info:
                return f"{node.name}: {' '.join(info.split()[:3])}"
            if role[0] == "slave" and role[3] != "connected":
                return f"{node.name}: replica link {role[3]}"
            entries = [_Entry.parse(line) for line in text.splitlines() if line.strip()]
            for entry in entries:
                if entry.node_id in alive_ids and (
                    entry.flags & _TROUBLE or not (entry.connected or "myself" in entry.flags)
                ):
                    return f"{node.name} sees {by_id[entry.node_id].name} as {entry}"
            owners = {entry.node_id: entry.slots for entry in entries if entry.slots}
            dead = set(owners) - alive_ids
            if dead:
                return f"{node.name} sees slots on dead {[by_id[i].name for i in dead]}"
            roles = {
                entry.node_id: entry.master_id for entry in entries if entry.node_id in alive_ids
            }
            state = (owners, roles)
            if reference is None:
                reference = state
            elif state != reference:
                return f"{node.name} disagrees with {alive[0].name}"
        return None

    async def settled(self, within: float = SETTLE_WITHIN) -> None:
        """Wait until the cluster has settled (see :meth:`_problem`), ``within`` scaled."""
        await _settle(self._problem, seconds(within), "the cluster settling")

    async def _owners(self) -> dict[int, Node]:
        """Each slot's master, as the first live node sees it."""
        node = next(node for node in self.nodes if node.alive)
        by_id = {node.node_id: node for node in self.nodes}
        async with node.client() as client:
            text = await client.execute_command("CLUSTER", "NODES")
        owners = {}
        for line in text.splitlines():
            if line.strip():
                entry = _Entry.parse(line)
                for low, high in entry.slots:
                    for slot in range(low, high + 1):
                        owners[slot] = by_id[entry.node_id]
        return owners

    async def master_of(self, slot: int) -> Node:
        """The master serving ``slot`` now."""
        return (await self._owners())[slot]

    async def shard_of(self, slot: int) -> int:
        """The shard serving ``slot`` now."""
        return (await self.master_of(slot)).shard

    async def hash_tag_on(self, shard: int, prefix: str = "company") -> str:
        """A hash tag (``prefix-N``, without braces) whose slot ``shard`` serves now."""
        owners = await self._owners()
        return next(
            tag
            for tag in (f"{prefix}-{n}" for n in range(100_000))
            if owners[key_slot(tag)].shard == shard
        )

    async def _master_of_shard(self, shard: int) -> Node:
        owners = await self._owners()
        masters = {node for node in owners.values() if node.shard == shard}
        if len(masters) != 1:
            raise RuntimeError(f"shard {shard} has masters {[n.name for n in masters]}")
        return masters.pop()

    # Faults.

    async def kill_master(self, slot: int | None = None, *, shard: int | None = None) -> Node:
        """SIGKILL the master serving ``slot`` (or shard ``shard``'s master); return
        once a replica has taken over and the cluster has settled. The killed node."""
        if slot is not None and shard is None:
            master = await self.master_of(slot)
        elif shard is not None and slot is None:
            master = await self._master_of_shard(shard)
        else:
            raise TypeError("kill_master takes a slot or a shard")
        if not any(node.alive and node is not master for node in self.shard(master.shard)):
            raise RuntimeError(f"{master.name} has no live replica to take over")
        master.kill()
        await self.settled()
        return master

    async def migrate_slot(
        self, slot: int, to_shard: int, *, batch: int = 100, pause: float = 0.0
    ) -> None:
        """Move ``slot`` and its keys to shard ``to_shard``'s master, as an operator
        would: IMPORTING on the target, MIGRATING on the source, MIGRATE of its keys
        ``batch`` at a time (``pause`` seconds apart: a slow migration, for a
        test of what happens meanwhile), then SETSLOT NODE on the target, the
        source and every other master; return once every node agrees."""
        source = await self.master_of(slot)
        target = await self._master_of_shard(to_shard)
        if source is target:
            return
        self._homes.setdefault(slot, source.shard)
        # Keys as bytes, whatever they hold.
        async with source.client(decode=False) as src, target.client() as dst:
            await dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
            await src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
            while keys := await src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
                await src.execute_command(
                    "MIGRATE", HOST, target.port, "", 0, round(seconds(10) * 1000),
                    "KEYS", *keys,
                )  # fmt: skip
                await asyncio.sleep(pause)
            await dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
            await src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        owners = set((await self._owners()).values())
        for master in owners - {source, target}:
            async with master.client() as client:
                await client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)

        async def moved() -> str | None:
            for node, entries in (await self._views()).items():
                owner = next(e.node_id for e in entries if any(a <= slot <= b for a, b in e.slots))
                if owner != target.node_id:
                    return f"{node.name} has slot {slot} elsewhere"
            return await self._problem()

        await _settle(moved, seconds(SETTLE_WITHIN), f"slot {slot} moving to {target.name}")

    async def heal(self) -> None:
        """Start killed nodes again (each rejoins as a replica of whoever took its
        slots), move slots :meth:`migrate_slot` moved back home; once settled."""
        for node in self.nodes:
            if not node.alive:
                node.spawn()
        for node in self.nodes:
            await node.answering()
        await self.settled()
        for slot, home in sorted(self._homes.items()):
            await self.migrate_slot(slot, home)
        self._homes.clear()

    async def flush(self) -> None:
        for node in set((await self._owners()).values()):
            async with node.client() as client:
                await client.flushall()


# --------------------------------------------------------------------- sentinel


def _pairs(reply: Sequence[Any] | dict[str, Any]) -> dict[str, Any]:
    """A sentinel's reply about an instance: a map, or in RESP2 a flat list of pairs."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


class SentinelGroup(_Topology):
    """A master, ``replicas`` replicas and ``sentinels`` sentinels watching them
    under ``master_name`` (quorum ``quorum``)."""

    kind = "sentinel"

    def __init__(
        self,
        master_name: str = "presence",
        replicas: int = 1,
        sentinels: int = 3,
        quorum: int = 2,
    ) -> None:
        super().__init__()
        self.master_name = master_name
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.quorum = quorum
        #: The data servers: ``servers[0]`` is the first master.
        self.servers: list[Node] = []
        self.sentinels: list[Node] = []
        self.down_after_ms = round(seconds(1) * 1000)
        self.failover_timeout_ms = round(seconds(3) * 1000)

    @property
    def processes(self) -> list[Node]:
        return [*self.servers, *self.sentinels]

    # The addresses the product takes.

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of each sentinel, as ``redis.asyncio.sentinel.Sentinel`` takes them."""
        return [(HOST, node.port) for node in self.sentinels]

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/<master name>``."""
        hosts = ",".join(node.address for node in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.master_name}"

    # Start and stop.

    async def _start(self) -> None:
        self._make_directory()
        ports = free_ports(1 + self.replica_count + self.sentinel_count)
        master_port = ports[0]
        self.servers = []
        for index, port in enumerate(ports[: 1 + self.replica_count]):
            name = "master" if index == 0 else f"replica{index}"
            directory = self._node_directory(name)
            node = Node(name, port, directory, _server_command(self.binary, port, directory))
            self.servers.append(node)
            node.spawn(*(("--replicaof", HOST, str(master_port)) if index else ()))
        for node in self.servers:
            await node.answering()
        # The sentinels find the replicas in the master's INFO, which they ask for
        # as they connect and then every 10 s: start them once the replicas are linked.
        await _settle(
            lambda: self._replication_problem(self.servers[0]),
            seconds(START_WITHIN),
            "the replicas syncing",
        )
        self.sentinels = []
        for index, port in enumerate(ports[1 + self.replica_count :]):
            directory = self._node_directory(f"sentinel{index}")
            config = directory / "sentinel.conf"
            config.write_text(
                "\n".join(
                    [
                        f"port {port}",
                        f"bind {HOST}",
                        f"dir {directory}",
                        f"logfile {directory / 'server.log'}",
                        "daemonize no",
                        f"sentinel monitor {self.master_name} {HOST} {master_port} {self.quorum}",
                        f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}",
                        f"sentinel failover-timeout {self.master_name} {self.failover_timeout_ms}",
                        f"sentinel parallel-syncs {self.master_name} 1",
                        "",
                    ]
                )
            )
            node = Node(
                f"sentinel{index}", port, directory, [self.binary, str(config), "--sentinel"]
            )
            self.sentinels.append(node)
            node.spawn()
        for node in self.sentinels:
            await node.answering()
        await self.settled(START_WITHIN)

    # What it looks like now.

    async def _replication_problem(self, master: Node) -> str | None:
        """Is ``master`` a master, and every other live server its replica, linked?"""
        async with master.client() as client:
            role = await client.execute_command("ROLE")
        if role[0] != "master":
            return f"{master.name} is a {role[0]}"
        for node in self.servers:
            if node is master or not node.alive:
                continue
            async with node.client() as client:
                role = await client.execute_command("ROLE")
            if role[0] != "slave" or int(role[2]) != master.port or role[3] != "connected":
                return f"{node.name}: {role[:4]}, not a linked replica of {master.name}"
        return None

    async def _sentinel_problem(self, master: Node) -> str | None:
        """Does every sentinel name ``master``, flag it a healthy master with no
        failover going on, see each live replica healthy, and see the others,
        enough for a quorum?"""
        name = self.master_name
        replicas = {node.port for node in self.servers if node.alive and node is not master}
        sentinels = {node.port for node in self.sentinels}
        for sentinel in self.sentinels:
            async with sentinel.client() as client:
                address = await client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
                flags = _pairs(await client.execute_command("SENTINEL", "MASTER", name))["flags"]
                seen = [
                    _pairs(entry)
                    for entry in await client.execute_command("SENTINEL", "REPLICAS", name)
                ]
                peers = [
                    _pairs(entry)
                    for entry in await client.execute_command("SENTINEL", "SENTINELS", name)
                ]
                quorum = await client.execute_command("SENTINEL", "CKQUORUM", name)
            if address is None or int(address[1]) != master.port:
                return f"{sentinel.name} names {address} the master, not {master.name}"
            if flags != "master":
                return f"{sentinel.name} flags the master {flags}"
            healthy = {int(entry["port"]) for entry in seen if entry["flags"] == "slave"}
            if not replicas <= healthy:
                return f"{sentinel.name} sees replicas {[(e['port'], e['flags']) for e in seen]}"
            others = {int(entry["port"]) for entry in peers if entry["flags"] == "sentinel"}
            if others != sentinels - {sentinel.port}:
                return f"{sentinel.name} sees sentinels {[(e['port'], e['flags']) for e in peers]}"
            if not str(quorum).startswith("OK"):
                return f"{sentinel.name}: {quorum}"
        return None

    async def _master(self) -> Node | None:
        """The live server that says it is a master, if exactly one does."""
        masters = []
        for node in self.servers:
            if node.alive:
                async with node.client() as client:
                    if (await client.execute_command("ROLE"))[0] == "master":
                        masters.append(node)
        return masters[0] if len(masters) == 1 else None

    async def _problem(self, not_on: Node | None = None) -> str | None:
        master = await self._master()
        if master is None or master is not_on:
            return f"the master is {master.name if master else 'none or several'}"
        return await self._replication_problem(master) or await self._sentinel_problem(master)

    async def settled(self, within: float = SENTINEL_SETTLE_WITHIN) -> None:
        """Wait until one live server is master, the others its linked replicas, and
        every sentinel agrees and sees the rest (``within`` scaled)."""
        await _settle(self._problem, seconds(within), "the sentinel group settling")

    async def master_address(self) -> tuple[str, int]:
        """``(host, port)`` of the master, as the first sentinel names it."""
        async with self.sentinels[0].client() as client:
            host, port = await client.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
            )
        return host, int(port)

    async def master(self) -> Node:
        """The master's server now."""
        _, port = await self.master_address()
        return next(node for node in self.servers if node.port == port)

    # Faults.

    async def failover(self, *, demote: bool = True) -> tuple[str, int]:
        """``SENTINEL FAILOVER``; return once a replica is master, the old master its
        replica and every sentinel agrees. The new master's address.

        The sentinels name the new master within about a second, but make the old
        one, still running, its replica only once their next INFO to it (every 10 s)
        finds it a master: until then clients can still write to it. ``demote`` (the
        default) does that for them as soon as they name the new master;
        ``demote=False`` waits for them (11 s here)."""
        old = await self.master()
        async with self.sentinels[0].client() as client:
            await client.execute_command("SENTINEL", "FAILOVER", self.master_name)
        if demote:

            async def named() -> str | None:
                for sentinel in self.sentinels:
                    async with sentinel.client() as client:
                        address = await client.execute_command(
                            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
                        )
                    if int(address[1]) == old.port:
                        return f"{sentinel.name} still names {old.name}"
                return None

            await _settle(named, seconds(SENTINEL_SETTLE_WITHIN), "the sentinels' failover")
            _, port = await self.master_address()
            async with old.client() as client:
                await client.execute_command("REPLICAOF", HOST, port)
        await _settle(
            lambda: self._problem(not_on=old),
            seconds(SENTINEL_SETTLE_WITHIN),
            "the sentinels' failover",
        )
        return await self.master_address()

    async def kill_master(self) -> Node:
        """SIGKILL the master; return once the sentinels have promoted a replica and
        agree on it. The killed server."""
        old = await self.master()
        if not any(node.alive and node is not old for node in self.servers):
            raise RuntimeError(f"{old.name} has no live replica to take over")
        old.kill()
        await _settle(
            lambda: self._problem(not_on=old),
            seconds(SENTINEL_SETTLE_WITHIN),
            "the sentinels' failover after a kill",
        )
        return old

    async def heal(self) -> None:
        """Start killed servers again, as replicas of the master; once settled."""
        master = await self.master()
        for node in self.servers:
            if not node.alive:
                node.spawn("--replicaof", HOST, str(master.port))
                await node.answering()
        await self.settled()

    async def flush(self) -> None:
        async with (await self.master()).client() as client:
            await client.flushall()


# --------------------------------------------------------------------- fixtures


def _require_marker(request: pytest.FixtureRequest, marker: str) -> None:
    if request.node.get_closest_marker(marker) is None:
        pytest.fail(
            f"{request.node.nodeid} uses {request.fixturename}: mark it @pytest.mark.{marker}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def _redis_cluster_session() -> Iterator[RedisCluster]:
    with RedisCluster(masters=3, replicas=1) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def _sentinel_group_session() -> Iterator[SentinelGroup]:
    with SentinelGroup() as group:
        yield group


@pytest.fixture
async def redis_cluster(
    request: pytest.FixtureRequest, _redis_cluster_session: RedisCluster
) -> AsyncIterator[RedisCluster]:
    """The session's cluster (3 masters, a replica each), settled; after the test,
    healed, slots moved back, flushed. For tests marked ``cluster``."""
    _require_marker(request, "cluster")
    yield _redis_cluster_session
    await _redis_cluster_session.reset()


@pytest.fixture
async def sentinel_group(
    request: pytest.FixtureRequest, _sentinel_group_session: SentinelGroup
) -> AsyncIterator[SentinelGroup]:
    """The session's sentinel group (a master, a replica, 3 sentinels), settled;
    after the test, healed and flushed. For tests marked ``sentinel``."""
    _require_marker(request, "sentinel")
    yield _sentinel_group_session
    await _sentinel_group_session.reset()

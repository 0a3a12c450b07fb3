"""The servers tests talk to, and what a test needs to know about them.

:class:`RunningServer` is a server in the test's own process and event loop
(conftest's ``start_server`` and ``server`` fixtures start them). The rest is for
servers run as real processes (``tests.processes``) on a Redis of the test's:
their secret, tokens it signs, the instance id a process logged, and
:func:`run_server`.
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final

from server.auth import issue
from server.config import Settings
from tests.processes import Addresses, ServerProcess, presence_server
from tests.redis_server import RedisProcess
from tests.timing import seconds


@dataclass
class RunningServer(Addresses):
    """A server instance on a free port, its secret, and a way to mint tokens."""

    settings: Settings
    secret: str
    port: int

    def token(
        self,
        sub: str,
        *,
        company: str = "acme",
        role: str = "agent",
        segments: tuple[str, ...] = (),
        ttl: int = 3600,
    ) -> str:
        return issue(
            self.secret,
            company=company,
            sub=sub,
            role=role,
            segments=segments,
            ttl=ttl,
            now=int(time.time()),
        )


#: The token secret of every server process a test starts.
SECRET = "instances-test-secret-" + "s" * 32


def token(sub: str, role: str = "agent", company: str = "acme") -> str:
    """A token of company ``acme`` for a server process (signed with :data:`SECRET`)."""
    return issue(SECRET, company=company, sub=sub, role=role, now=int(time.time()))


#: What a server gives its clients before it gives up on them: the defaults,
#: scaled. The clients of a server process are the test's, in the test's event
#: loop, which answers pings and says hello only as promptly as it runs.
CLIENT_DEADLINES: Final = ("ping_interval", "ping_timeout", "hello_timeout")


def process_env(redis_url: str, key_prefix: str, **settings: Any) -> dict[str, str]:
    """The environment of ``python -m server`` on ``redis_url`` under ``key_prefix``,
    signing with :data:`SECRET`, with :data:`CLIENT_DEADLINES` scaled; ``settings``
    (``instance_ttl=1``) as ``PRESENCE_*``."""
    defaults = Settings()
    scaled = {name: seconds(getattr(defaults, name)) for name in CLIENT_DEADLINES}
    return {
        "PRESENCE_REDIS_URL": redis_url,
        "PRESENCE_KEY_PREFIX": key_prefix,
        "PRESENCE_JWT_SECRET": SECRET,
        "PRESENCE_LOG_LEVEL": "info",
        **{
            f"PRESENCE_{name.upper()}": str(value) for name, value in {**scaled, **settings}.items()
        },
    }


def run_server(redis: RedisProcess, **settings: Any) -> AbstractAsyncContextManager[ServerProcess]:
    """A server process on a private Redis (key prefix ``outage:``), for ``async with``."""
    return presence_server(process_env(redis.url, "outage:", **settings))


def instance_id(server: ServerProcess) -> str:
    """The instance id a server logged at start: the prefix of its connections' ids."""
    line = next(line for line in server.log if " ready (key prefix" in line)
    return line.split("instance ")[1].split(" ")[0] + "/"

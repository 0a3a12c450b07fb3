"""An identity provider's JWKS URL (server/auth.py's RemoteKeySet): fetched,
kept for its lifetime, fetched again for an unknown ``kid`` (rate-limited),
the last good set kept while fetches fail, until it expires.

The identity provider is a real HTTP server on loopback (:class:`IdentityProvider`,
in a thread); time, where a test is about hours of it, is a :class:`Clock` the
key set reads.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from server.auth import RemoteKeySet, TokenError, Tokens, UnknownKey, issue
from tests.test_auth import SECRET, ec_key, jwk, jwks, rsa_key, signed
from tests.timing import eventually, seconds


class IdentityProvider:
    """Serves :attr:`document` as JSON at :attr:`url`, with :attr:`cache_control`;
    counts the requests. :meth:`stop` and it stops answering (connections refused);
    ``silent`` and it accepts connections but never answers."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = jwks()
        self.cache_control: str | None = None
        self.silent = False
        self.requests = 0
        self.port = 0
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/realms/acme/protocol/openid-connect/certs"

    def start(self) -> None:
        """Listen (again: on the same port, once it has a port)."""
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.requests += 1
                if provider.silent:
                    provider._release.wait(seconds(30))
                    return
                body = json.dumps(provider.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if provider.cache_control is not None:
                    self.send_header("Cache-Control", provider.cache_control)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(seconds(10))
        self._server = None


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    provider.start()
    yield provider
    provider.stop()


class Clock:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def remotes() -> AsyncIterator[list[RemoteKeySet]]:
    """Key sets to close after the test (a fetch may still be under way)."""
    made: list[RemoteKeySet] = []
    yield made
    for remote in made:
        await remote.close()


def tokens_of(remotes: list[RemoteKeySet], url: str, **options: Any) -> Tokens:
    remote = RemoteKeySet(url, **{"timeout": seconds(5), **options})
    remotes.append(remote)
    return Tokens(remote=remote)


async def test_a_kid_rotated_at_the_identity_provider_is_fetched_on_first_sight(
    idp: IdentityProvider, remotes: list[RemoteKeySet]
) -> None:
    old, new = ec_key("old"), ec_key("new")
    idp.document = jwks(jwk(old, "2024-05"))
    tokens = tokens_of(remotes, idp.url, min_interval=0)
    assert tokens.remote is not None and await tokens.remote.refresh()
    before = signed(old, kid="2024-05")
    assert tokens.verify(before).sub == "a-1"
    # The provider rotates: the new key signs, the old one is withdrawn.
    idp.document = jwks(jwk(new, "2024-06"))
    after = signed(new, kid="2024-06", sub="a-2")
    assert (await tokens.verify_fresh(after)).sub == "a-2"
    assert idp.requests == 2
    # A withdrawn key verifies nothing more, not even tokens it verified before.
    with pytest.raises(UnknownKey, match="unknown kid '2024-05'"):
        await tokens.verify_fresh(before)


async def test_the_synchronous_path_refuses_an_unknown_kid_and_fetches_meanwhile(
    idp: IdentityProvider, remotes: list[RemoteKeySet]
) -> None:
    """The HTTP API verifies synchronously: the first request with a new kid is
    refused, and the fetch it started serves the next."""
    first, second = rsa_key("first"), rsa_key("second")
    idp.document = jwks(jwk(first, "k1"))
    tokens = tokens_of(remotes, idp.url, min_interval=0)
    assert tokens.remote is not None and await tokens.remote.refresh()
    idp.document = jwks(jwk(first, "k1"), jwk(second, "k2"))
    token = signed(second, kid="k2")
    with pytest.raises(UnknownKey):
        tokens.verify(token)
    fetch = tokens.remote.in_flight
    assert fetch is not None and await fetch
    assert tokens.verify(token).sub == "a-1"


async def test_unknown_kids_fetch_the_key_set_at_most_once_per_interval(
    idp: IdentityProvider, remotes: list[RemoteKeySet], clock: Clock
) -> None:
    key, new = ec_key(), ec_key("new")
    idp.document = jwks(jwk(key, "k1"))
    tokens = tokens_of(remotes, idp.url, min_interval=30, clock=clock)
    assert tokens.remote is not None and await tokens.remote.refresh()

    async def flood(count: int) -> None:
        garbage = [signed(key, kid=f"made-up-{n}") for n in range(count)]
        refused = await asyncio.gather(
            *(tokens.verify_fresh(token) for token in garbage), return_exceptions=True
        )
        assert all(isinstance(outcome, UnknownKey) for outcome in refused), refused

    await flood(50)
    assert idp.requests == 1  # the last fetch was just now: none
    clock.now += 30
    await flood(50)
    await flood(50)
    assert idp.requests == 2  # one for all of them
    # The price: a key published within the interval waits for its end.
    idp.document = jwks(jwk(key, "k1"), jwk(new, "k2"))
    clock.now += 10
    with pytest.raises(UnknownKey):
        await tokens.verify_fresh(signed(new, kid="k2"))
    clock.now += 20
    assert (await tokens.verify_fresh(signed(new, kid="k2"))).sub == "a-1"
    assert idp.requests == 3


async def test_an_expired_key_set_verifies_nothing(
    idp: IdentityProvider, remotes: list[RemoteKeySet], clock: Clock
) -> None:
    key = rsa_key()
    idp.document = jwks(jwk(key, "k1"))
    tokens = tokens_of(
        remotes, idp.url, min_interval=10, max_stale=3600, clock=clock, timeout=seconds(0.3)
    )
    remote = tokens.remote
    assert remote is not None and await remote.refresh()
    verified = signed(key, kid="k1")
    assert tokens.verify(verified).sub == "a-1"

    # The provider stops answering: the last good set still serves...
    idp.silent = True
    clock.now += 1800
    assert not await remote.refresh()  # timed out
    idp.stop()
    assert not await remote.refresh()  # refused
    assert remote.failures == 2
    assert tokens.verify(verified).sub == "a-1"
    assert tokens.verify(signed(key, kid="k1", sub="a-2")).sub == "a-2"
    # ...until it is older than max_stale: then its keys verify nothing, cached or not.
    clock.now += 1801
    assert remote.expired()
    for token in (verified, signed(key, kid="k1", sub="a-3")):
        with pytest.raises(TokenError, match="key set has expired"):
            await tokens.verify_fresh(token)
    # Back: the set is fetched again and its tokens are good again.
    idp.silent = False
    idp.start()
    assert await remote.refresh()
    assert tokens.verify(verified).sub == "a-1"


async def test_secrets_and_files_still_verify_when_the_key_set_expired(
    idp: IdentityProvider, remotes: list[RemoteKeySet], clock: Clock
) -> None:
    key = ec_key()
    idp.document = jwks(jwk(key, "k1"))
    remote = RemoteKeySet(idp.url, max_stale=100, clock=clock, timeout=seconds(5))
    remotes.append(remote)
    tokens = Tokens(secrets=[SECRET], remote=remote)
    assert await remote.refresh()
    idp.stop()
    clock.now += 101
    assert remote.expired()
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(signed(key, kid="k1"))
    token = issue(SECRET, company="acme", sub="a-9", role="agent", now=int(time.time()))
    assert tokens.verify(token).sub == "a-9"


async def test_a_provider_down_at_start_is_fetched_once_it_answers(
    idp: IdentityProvider, remotes: list[RemoteKeySet], clock: Clock
) -> None:
    key = ec_key()
    idp.document = jwks(jwk(key, "k1"))
    idp.stop()
    tokens = tokens_of(remotes, idp.url, min_interval=30, clock=clock)
    assert tokens.remote is not None and not await tokens.remote.refresh()
    token = signed(key, kid="k1")
    with pytest.raises(UnknownKey):
        await tokens.verify_fresh(token)
    idp.start()
    clock.now += 30
    assert (await tokens.verify_fresh(token)).sub == "a-1"


@pytest.mark.parametrize(
    ("cache_control", "max_stale", "lifetime"),
    [
        (None, 86400, 300),  # the configured ttl
        ("no-cache", 86400, 300),
        ("public, max-age=120", 86400, 120),
        ("public, max-age=15, stale-while-revalidate=15", 86400, 60),  # the floor
        ("max-age=604800", 86400, 3600),  # the ceiling
        ("max-age=3600", 1000, 500),  # half of max_stale: refreshed before it expires
    ],
)
async def test_cache_control_max_age_sets_the_lifetime_within_bounds(
    idp: IdentityProvider,
    remotes: list[RemoteKeySet],
    clock: Clock,
    cache_control: str | None,
    max_stale: float,
    lifetime: float,
) -> None:
    idp.document = jwks(jwk(ec_key(), "k1"))
    idp.cache_control = cache_control
    tokens = tokens_of(remotes, idp.url, ttl=300, max_stale=max_stale, clock=clock)
    assert tokens.remote is not None and await tokens.remote.refresh()
    assert tokens.remote.refetch_at == clock.now + lifetime


async def test_run_fetches_again_when_the_lifetime_ends(
    idp: IdentityProvider, remotes: list[RemoteKeySet]
) -> None:
    key = ec_key()
    idp.document = jwks(jwk(ec_key("zero"), "k0"))
    tokens = tokens_of(remotes, idp.url, ttl=seconds(0.1))
    assert tokens.remote is not None
    runner = asyncio.create_task(tokens.run())
    try:
        # A key published later is picked up without a token asking for it.
        idp.document = jwks(jwk(key, "k1"))

        async def fetched_again() -> bool:
            return idp.requests >= 3

        await eventually(fetched_again, seconds(10))
        assert tokens.verify(signed(key, kid="k1")).sub == "a-1"
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert tokens.remote.in_flight is None


async def test_a_set_without_a_usable_key_is_a_failed_fetch(
    idp: IdentityProvider, remotes: list[RemoteKeySet]
) -> None:
    key = ec_key()
    idp.document = jwks(jwk(key, "k1"))
    tokens = tokens_of(remotes, idp.url, min_interval=0)
    assert tokens.remote is not None and await tokens.remote.refresh()
    for document in ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, {"error": "oops"}):
        idp.document = document
        assert not await tokens.remote.refresh()
        assert tokens.verify(signed(key, kid="k1")).sub == "a-1"  # the last good set

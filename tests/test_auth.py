"""Token verification (server/auth.py), including the cache of verified tokens."""

from __future__ import annotations

import math
import time

import pytest

from server.auth import TokenError, issue, verify
from tests.timing import seconds

SECRET = "test-secret-" + "x" * 32


def test_a_verified_token_is_served_again_until_it_expires() -> None:
    # exp counts whole seconds from the current one: at least seconds(1) of life is
    # left for the first two checks, however late in its second the token is made.
    now = int(time.time())
    ttl = 1 + math.ceil(seconds(1))
    token = issue(SECRET, company="acme", sub="a-1", role="agent", now=now, ttl=ttl)
    assert verify(token, SECRET).sub == "a-1"
    assert verify(token, SECRET).sub == "a-1"  # from the cache
    time.sleep(max(0.0, now + ttl - time.time()) + 0.01)  # the behaviour is time itself
    with pytest.raises(TokenError, match="expired"):
        verify(token, SECRET)
    with pytest.raises(TokenError, match="expired"):
        verify(token, SECRET)


def test_the_cache_is_per_secret() -> None:
    token = issue(SECRET, company="acme", sub="a-1", role="agent", now=int(time.time()))
    assert verify(token, SECRET).company == "acme"
    with pytest.raises(TokenError, match="invalid token"):
        verify(token, "another-secret-" + "y" * 32)

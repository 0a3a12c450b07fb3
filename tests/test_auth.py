"""Token verification (server/auth.py), including the cache of verified tokens."""

from __future__ import annotations

import time

import pytest

from server.auth import TokenError, issue, verify

SECRET = "test-secret-" + "x" * 32


def test_a_verified_token_is_served_again_until_it_expires() -> None:
    # Expiring on the next whole second: the second check is after it.
    now = int(time.time())
    token = issue(SECRET, company="acme", sub="a-1", role="agent", now=now, ttl=1)
    assert verify(token, SECRET).sub == "a-1"
    assert verify(token, SECRET).sub == "a-1"  # from the cache
    time.sleep(max(0.0, now + 1 - time.time()) + 0.01)  # the behaviour is time itself
    with pytest.raises(TokenError, match="expired"):
        verify(token, SECRET)
    with pytest.raises(TokenError, match="expired"):
        verify(token, SECRET)


def test_the_cache_is_per_secret() -> None:
    token = issue(SECRET, company="acme", sub="a-1", role="agent", now=int(time.time()))
    assert verify(token, SECRET).company == "acme"
    with pytest.raises(TokenError, match="invalid token"):
        verify(token, "another-secret-" + "y" * 32)

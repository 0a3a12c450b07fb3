"""The SDK's reconnect policy: pure functions, no sockets."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest

from client_sdk.backoff import exponential_backoff, should_reconnect
from client_sdk.protocol import CloseCode


def take(delays: Iterator[float], n: int) -> list[float]:
    return list(itertools.islice(delays, n))


def test_ceilings_double_from_half_a_second_up_to_thirty() -> None:
    # A random() at its top makes every delay its ceiling.
    delays = take(exponential_backoff(random=lambda: 1.0), 10)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_full_jitter_scales_the_ceiling() -> None:
    assert take(exponential_backoff(random=lambda: 0.0), 5) == [0.0] * 5
    assert take(exponential_backoff(random=lambda: 0.5), 4) == [0.25, 0.5, 1.0, 2.0]


def test_jitter_stays_within_bounds() -> None:
    rng = random.Random(1732400000)
    ceilings = [min(30.0, 0.5 * 2**n) for n in range(200)]
    delays = take(exponential_backoff(random=rng.random), 200)
    assert all(0 <= delay < ceiling for delay, ceiling in zip(delays, ceilings, strict=True))
    # Jitter really spreads them: not all at the ceiling, nor all at zero.
    assert len(set(delays)) == 200


def test_random_is_drawn_once_per_delay() -> None:
    draws: list[float] = []

    def recorded() -> float:
        draws.append(0.5)
        return 0.5

    delays = exponential_backoff(random=recorded)
    assert draws == []  # nothing drawn before the first attempt
    take(delays, 7)
    assert len(draws) == 7


def test_custom_parameters() -> None:
    delays = exponential_backoff(initial=1.0, factor=3.0, cap=10.0, random=lambda: 1.0)
    assert take(delays, 5) == [1.0, 3.0, 9.0, 10.0, 10.0]
    constant = exponential_backoff(initial=2.0, factor=1.0, cap=2.0, random=lambda: 1.0)
    assert take(constant, 3) == [2.0, 2.0, 2.0]


def test_never_exceeds_the_cap_however_long() -> None:
    delays = take(exponential_backoff(random=lambda: 1.0), 5000)
    assert max(delays) == 30.0


def test_default_randomness_is_bounded() -> None:
    assert all(0 <= delay < 30.0 for delay in take(exponential_backoff(), 50))


@pytest.mark.parametrize(
    ("initial", "factor", "cap"),
    [(0.0, 2.0, 30.0), (-1.0, 2.0, 30.0), (0.5, 0.9, 30.0), (40.0, 2.0, 30.0)],
)
def test_bad_parameters_are_refused_at_once(initial: float, factor: float, cap: float) -> None:
    with pytest.raises(ValueError, match="initial"):
        exponential_backoff(initial, factor, cap)


@pytest.mark.parametrize(
    "code",
    [
        None,  # transport lost, no close frame at all
        CloseCode.GOING_AWAY,
        1006,  # what websockets reports for a lost transport
        CloseCode.MESSAGE_TOO_BIG,
        1011,
        1013,
        4000,
        CloseCode.TOO_SLOW,
        CloseCode.RATE_LIMITED,
        4499,
        3000,
        5000,
    ],
)
def test_reconnects_after(code: int | None) -> None:
    assert should_reconnect(code) is True


@pytest.mark.parametrize(
    "code",
    [
        CloseCode.NORMAL,  # the server's answer to our bye
        CloseCode.PROTOCOL_ERROR,
        CloseCode.UNAUTHORIZED,
        CloseCode.FORBIDDEN,
        CloseCode.REPLACED,
        CloseCode.KICKED,
        CloseCode.TOKEN_EXPIRED,
        4999,
    ],
)
def test_stops_after(code: int) -> None:
    assert should_reconnect(code) is False


def test_every_terminal_code_stops_and_the_range_below_reconnects() -> None:
    assert not any(should_reconnect(code) for code in range(4500, 5000))
    assert all(should_reconnect(code) for code in range(4000, 4500))

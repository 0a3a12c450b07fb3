"""The console's reconnect policy, as pure functions.

Whether to reconnect depends only on the close code (spec §4)::

    None, 1006        transport lost, no close frame          reconnect
    1000              the server's answer to our ``bye``       stop
    1001              server going away                        reconnect
    4000–4499         e.g. 4100 too-slow, 4129 rate-limited    reconnect
    4500–4999         terminal: 4501 unauthorized, 4509        stop
                      replaced, 4510 kicked, 4511 expired, …
    anything else     e.g. 1011, 1013 try again later          reconnect

How long to wait before each attempt is exponential backoff with full jitter:
attempt *n* waits a uniformly random time in ``[0, min(cap, initial·factorⁿ))``,
so that a thousand consoles dropped by one failing instance don't all come back
in the same instant.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterator

from presence_protocol import CloseCode, is_terminal

__all__ = ["exponential_backoff", "should_reconnect"]


def exponential_backoff(
    initial: float = 0.5,
    factor: float = 2.0,
    cap: float = 30.0,
    *,
    random: Callable[[], float] = _random.random,
) -> Iterator[float]:
    """An endless series of delays, in seconds, before each reconnect attempt.

    ``random`` returns a float in ``[0, 1)``; inject one to make the series
    deterministic.
    """
    # Checked here rather than in the generator, whose body would only run at the
    # first attempt, long after the console was built.
    if not 0 < initial <= cap or factor < 1:
        raise ValueError("need 0 < initial <= cap and factor >= 1")

    def delays() -> Iterator[float]:
        ceiling = initial
        while True:
            yield random() * ceiling
            ceiling = min(cap, ceiling * factor)

    return delays()


def should_reconnect(close_code: int | None) -> bool:
    """Whether a connection that ended with ``close_code`` should be reopened.

    ``None`` means the transport was lost without a close frame.
    """
    if close_code is None:
        return True
    # The server closes with 1000 only once the session ended, after our bye.
    if close_code == CloseCode.NORMAL:
        return False
    return not is_terminal(close_code)

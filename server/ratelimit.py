"""Per-connection rate limit: a token bucket, plus a count of refusals that
tells a burst (answered with ``rate-limited`` errors) from sustained abuse
(the connection is closed with 4129). Time is passed in; nothing here sleeps.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["RateLimiter", "Verdict"]


class Verdict(enum.Enum):
    ALLOW = "allow"
    REFUSE = "refuse"
    #: Refusals kept coming faster than they are forgiven: close the connection.
    CLOSE = "close"


@dataclass(slots=True)
class RateLimiter:
    rate: float
    burst: int
    tokens: float = field(init=False)
    strikes: float = field(default=0.0, init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def check(self, now: float) -> Verdict:
        elapsed = 0.0 if self.updated is None else max(0.0, now - self.updated)
        self.updated = now
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        # One refusal is forgiven per second: a client that keeps over the rate
        # piles strikes up; one that bursts once does not.
        self.strikes = max(0.0, self.strikes - elapsed)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return Verdict.ALLOW
        self.strikes += 1.0
        return Verdict.CLOSE if self.strikes > self.burst else Verdict.REFUSE

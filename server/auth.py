"""Tokens (spec §7): HS256 JWTs carrying who is calling and for which company.

Claims: ``sub`` (agent id or service name), ``company``, ``role``
(``agent``, ``supervisor``, ``acd``, ``admin``), ``segments`` (agents only) and
``exp`` (required). The company of every request is the token's, never the URL's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import jwt

from presence_protocol import IDENTIFIER
from server.errors import PresenceServerError

__all__ = ["ROLES", "Identity", "TokenError", "issue", "verify"]

ROLES: Final = frozenset({"agent", "supervisor", "acd", "admin"})
ALGORITHM: Final = "HS256"
#: Year 9999: any later expiry is a mistake, not a long-lived token.
MAX_EXP: Final = 253_402_300_800


class TokenError(PresenceServerError):
    """Raised when a token is missing, malformed, badly signed, expired or lacks a claim."""


@dataclass(frozen=True, slots=True)
class Identity:
    sub: str
    company: str
    role: str
    segments: tuple[str, ...]
    exp: int


#: Tokens already verified, until their ``exp``: an ACD or a dashboard sends
#: the same token with every request, and checking its signature each time was
#: a tenth of the server's CPU under the claim load. Bounded; emptied when full.
_verified: dict[tuple[str, str], Identity] = {}
VERIFIED_CACHE_SIZE: Final = 4096


def verify(token: object, secret: str) -> Identity:
    """The identity of a valid ``token`` signed with ``secret``."""
    if not isinstance(token, str) or not token:
        raise TokenError("no token")
    known = _verified.get((token, secret))
    if known is not None:
        if time.time() < known.exp:
            return known
        del _verified[token, secret]
        raise TokenError("invalid token: Signature has expired")
    identity = _verify(token, secret)
    if len(_verified) >= VERIFIED_CACHE_SIZE:
        _verified.clear()
    _verified[token, secret] = identity
    return identity


def _verify(token: str, secret: str) -> Identity:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except (jwt.PyJWTError, ValueError) as exc:
        # ValueError: text PyJWT cannot even encode (a lone surrogate).
        raise TokenError(f"invalid token: {exc}") from None
    company, sub, role = claims.get("company"), claims.get("sub"), claims.get("role")
    segments, exp = claims.get("segments", []), claims["exp"]
    if not (isinstance(company, str) and IDENTIFIER.fullmatch(company)):
        raise TokenError("the token's company is missing or malformed")
    if not (isinstance(sub, str) and IDENTIFIER.fullmatch(sub)):
        raise TokenError("the token's sub is malformed")
    if not (isinstance(role, str) and role in ROLES):
        raise TokenError("the token's role is missing or unknown")
    # PyJWT takes any number; the server schedules the token's end, so keep it sane.
    if not (isinstance(exp, int | float) and 0 < exp < MAX_EXP):
        raise TokenError("the token's exp is out of range")
    if not (
        isinstance(segments, list)
        and all(isinstance(s, str) and IDENTIFIER.fullmatch(s) for s in segments)
    ):
        raise TokenError("the token's segments must be a list of identifiers")
    return Identity(sub, company, role, tuple(dict.fromkeys(segments)), int(exp))


def issue(
    secret: str,
    *,
    company: str,
    sub: str,
    role: str,
    now: int,
    ttl: int = 3600,
    segments: tuple[str, ...] = (),
) -> str:
    """A signed token valid for ``ttl`` seconds from ``now`` (Unix seconds)."""
    claims: dict[str, Any] = {"sub": sub, "company": company, "role": role, "exp": now + ttl}
    if segments:
        claims["segments"] = list(segments)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)

"""Tokens (spec §7): JWTs carrying who is calling and for which company.

Claims: ``sub`` (agent id or service name), ``company``, ``role``
(``agent``, ``supervisor``, ``acd``, ``admin``), ``segments`` (agents only) and
``exp`` (required). The company of every request is the token's, never the URL's.
Other claims (``iat``, ``scope``, an identity provider's own) are ignored.

What verifies them (:class:`Tokens`):

- HS256 secrets, several at once so that one can be rotated without downtime
  (:func:`issue` signs development tokens with the first);
- RS256 and ES256 public keys: PEM files, JWKS files, and a JWKS URL fetched and
  cached (:class:`RemoteKeySet`), so that a server can hold no key able to mint.

The key decides the algorithm, never the token's header: each key verifies one
algorithm (``algorithms=[key.algorithm]``), so ``none`` is refused and so is an
HS256 token "signed" with an RSA key's public PEM. A token whose ``kid`` names a
key is verified by that key alone; one without a ``kid``, or whose ``kid`` no key
has, by the unnamed keys (the secrets, PEM files given no kid, JWKs without
one). When none of those verifies a token carrying an unknown ``kid``, the JWKS
URL is fetched again, at most once every ``jwks_min_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from presence_protocol import IDENTIFIER
from server.errors import PresenceServerError

if TYPE_CHECKING:
    from jwt.types import Options

    from server.config import Settings

__all__ = [
    "ROLES",
    "Identity",
    "Key",
    "RemoteKeySet",
    "TokenError",
    "Tokens",
    "UnknownKey",
    "issue",
    "load_key_file",
    "parse_jwks",
]

log = logging.getLogger("presence.auth")

ROLES: Final = frozenset({"agent", "supervisor", "acd", "admin"})
#: What :func:`issue` signs with, and what every secret verifies.
ALGORITHM: Final = "HS256"
#: The one algorithm each kind of public key verifies.
PUBLIC_ALGORITHMS: Final = {"RSA": "RS256", "EC": "ES256"}
#: RSA keys shorter than this are refused when loaded.
MIN_RSA_BITS: Final = 2048
#: Year 9999: any later expiry is a mistake, not a long-lived token.
MAX_EXP: Final = 253_402_300_800
#: Bounds of a JWKS response's ``Cache-Control: max-age``, in seconds: an
#: identity provider saying 15 s does not make every instance fetch four times a
#: minute, and one saying a week does not keep a withdrawn key for a week.
JWKS_MIN_MAX_AGE: Final = 60.0
JWKS_MAX_MAX_AGE: Final = 3600.0
#: The least seconds between two attempts to fetch a key set that failed.
JWKS_RETRY_FLOOR: Final = 1.0
#: Seconds one fetch of a key set may take, all of it.
JWKS_FETCH_TIMEOUT: Final = 5.0
#: Tokens already verified, until their ``exp``: an ACD or a dashboard sends
#: the same token with every request, and checking its signature each time was
#: a tenth of the server's CPU under the claim load. Bounded; emptied when full.
VERIFIED_CACHE_SIZE: Final = 4096


class TokenError(PresenceServerError):
    """Raised when a token is missing, malformed, badly signed, expired or lacks a claim."""


class UnknownKey(TokenError):
    """Raised for a token whose ``kid`` names no key (the key set may be refetched)."""


class _NotVerified(TokenError):
    """No key offered verified the signature (or allowed the token's algorithm)."""


@dataclass(frozen=True, slots=True)
class Identity:
    sub: str
    company: str
    role: str
    segments: tuple[str, ...]
    exp: int


@dataclass(frozen=True, slots=True, eq=False)
class Key:
    """One key and the one algorithm it verifies. Compared by identity: a key
    fetched again is another key (the cache of verified tokens tells them apart)."""

    algorithm: str
    key: str | rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    kid: str | None
    #: Where it came from, for messages: ``secret 2``, a file, a URL.
    origin: str


# Loading keys ---------------------------------------------------------------


def _public_key(key: object, origin: str) -> Key:
    """``key`` as a :class:`Key` without a kid, if it is an RSA or P-256 public key."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"{origin}: a {key.key_size}-bit RSA key (at least {MIN_RSA_BITS})")
        return Key("RS256", key, None, origin)
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"{origin}: an EC key on {key.curve.name} (ES256 needs P-256)")
        return Key("ES256", key, None, origin)
    raise ValueError(f"{origin}: not an RSA or EC public key ({type(key).__name__})")


def _jwk(jwk: Mapping[str, Any], origin: str) -> Key:
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ValueError("its kid is not a string")
    if "d" in jwk or "k" in jwk:
        raise ValueError("it is a private or symmetric key, which can mint tokens")
    kty = jwk.get("kty")
    algorithm = PUBLIC_ALGORITHMS.get(kty) if isinstance(kty, str) else None
    if algorithm is None:
        raise ValueError(f"kty {kty!r}: only RSA and EC keys verify tokens")
    if jwk.get("alg", algorithm) != algorithm:
        raise ValueError(f"alg {jwk.get('alg')!r}: {kty} keys verify {algorithm} tokens here")
    try:
        public = jwt.PyJWK(dict(jwk), algorithm).key
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    key = _public_key(public, origin)
    return Key(key.algorithm, key.key, kid, origin)


def parse_jwks(
    document: object, origin: str, warn: Callable[[str], None] | None = None
) -> list[Key]:
    """The keys of a JWKS that verify RS256 or ES256 signatures. Keys for
    encryption (``use: enc``) are left out silently, others that cannot be used
    with a warning (logged, or given to ``warn``); a document with no usable key
    is a :class:`ValueError`."""
    warn = warn or log.warning
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{origin}: not a JWKS (no list of keys)")
    keys: list[Key] = []
    kids: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            warn(f"{origin}: key {index} skipped: not an object")
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = _jwk(entry, origin)
        except ValueError as exc:
            warn(f"{origin}: key {entry.get('kid', index)!r} skipped: {exc}")
            continue
        if key.kid is not None:
            if key.kid in kids:
                warn(f"{origin}: key {key.kid!r} skipped: its kid is another key's")
                continue
            kids.add(key.kid)
        keys.append(key)
    if not keys:
        raise ValueError(f"{origin}: no key in it verifies RS256 or ES256 tokens")
    return keys


def load_key_file(entry: str) -> list[Key]:
    """The keys of one ``--jwt-public-keys`` entry: ``PATH`` or ``KID=PATH``.

    A JWKS file (JSON) gives its keys with their kids; a PEM file (a public key
    or a certificate) one key, with the kid the entry gives it, else none.
    """
    kid: str | None
    kid, equals, path = entry.partition("=")
    if not equals:
        kid, path = None, entry
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"{"):
        if kid is not None:
            raise ValueError(f"{entry}: a JWKS file names its keys; drop {kid}=")
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from None
        return parse_jwks(document, path)
    if b"PRIVATE KEY-----" in data:
        raise ValueError(f"{path}: a private key; give the server only the public key")
    public: object
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            public = x509.load_pem_x509_certificate(data).public_key()
        else:
            public = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"{path}: not a PEM public key or certificate: {exc}") from None
    key = _public_key(public, path)
    return [Key(key.algorithm, key.key, kid or None, path)]


# A key set at a URL -----------------------------------------------------------

_MAX_AGE: Final = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class RemoteKeySet:
    """An identity provider's JWKS, fetched from its URL and kept.

    - Fetched at start, then again when its lifetime ends: the response's
      ``Cache-Control: max-age`` within [:data:`JWKS_MIN_MAX_AGE`,
      :data:`JWKS_MAX_MAX_AGE`], else ``ttl``; never longer than half of
      ``max_stale``.
    - Fetched again when a token names a ``kid`` it lacks (:meth:`want`), but at
      most once every ``min_interval`` seconds however many such tokens come:
      a flood of made-up kids makes the server fetch once per interval.
    - A fetch that fails (no answer within :data:`JWKS_FETCH_TIMEOUT`, an HTTP
      error, no usable key in the answer) keeps the last good set, and is
      retried every ``min_interval`` seconds (at least :data:`JWKS_RETRY_FLOOR`).
    - A set not fetched successfully for ``max_stale`` seconds has **expired**:
      its keys verify nothing until a fetch succeeds again.

    Nothing here blocks: the fetches are tasks; the lookups are synchronous and
    only read what the last fetch installed.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 300.0,
        min_interval: float = 30.0,
        max_stale: float = 86400.0,
        timeout: float = JWKS_FETCH_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"the JWKS URL must be http(s)://, not {url!r}")
        if not (ttl > 0 and min_interval >= 0 and max_stale > 0 and timeout > 0):
            raise ValueError("the JWKS ttl, max stale and timeout must be > 0, min interval >= 0")
        self.url = url
        self.ttl, self.min_interval, self.max_stale = ttl, min_interval, max_stale
        self.timeout = timeout
        self.clock = clock
        self._named: dict[str, Key] = {}
        self._unnamed: tuple[Key, ...] = ()
        self._current: frozenset[Key] = frozenset()
        #: When the last successful fetch ended (``clock``); ``None``: never.
        self.fetched_at: float | None = None
        #: When the set is due to be fetched again (``clock``).
        self.refetch_at = -math.inf
        self._last_attempt = -math.inf
        self._fetch: asyncio.Task[bool] | None = None
        #: Fetches attempted, and those that failed (for the logs and the tests).
        self.fetches = 0
        self.failures = 0
        self._warned: set[str] = set()

    # The lookups (synchronous, in the request's path) ------------------------

    def expired(self) -> bool:
        """Fetched once, but not successfully for more than ``max_stale`` seconds."""
        return self.fetched_at is not None and self.clock() - self.fetched_at > self.max_stale

    def named(self, kid: str) -> Key | None:
        return None if self.expired() else self._named.get(kid)

    def unnamed(self) -> tuple[Key, ...]:
        return () if self.expired() else self._unnamed

    def holds(self, key: Key) -> bool:
        """Whether ``key`` still verifies: in the current set, which has not expired."""
        return key in self._current and not self.expired()

    def want(self) -> None:
        """Fetch the set again, unless a fetch is under way or the last one
        began less than ``min_interval`` seconds ago."""
        if self.in_flight is not None:
            return
        if self.clock() - self._last_attempt < self.min_interval:
            return
        with contextlib.suppress(RuntimeError):  # no event loop: nothing to fetch with
            self._start()

    @property
    def in_flight(self) -> asyncio.Task[bool] | None:
        """The fetch under way, if any."""
        return self._fetch if self._fetch is not None and not self._fetch.done() else None

    # Fetching -------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Fetch now (or join the fetch under way), whatever the rate limit:
        whether the set was fetched."""
        return await asyncio.shield(self.in_flight or self._start())

    async def run(self) -> None:
        """Keep the set fresh until cancelled: the first fetch at once, then
        when the set's lifetime ends, or ``min_interval`` after a failure."""
        try:
            while True:
                now = self.clock()
                if now >= self.refetch_at:
                    await self.refresh()
                    continue
                await asyncio.sleep(self.refetch_at - now)
        finally:
            await self.close()

    async def close(self) -> None:
        """Cancel a fetch under way."""
        if self._fetch is not None:
            self._fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetch

    def _start(self) -> asyncio.Task[bool]:
        task = asyncio.get_running_loop().create_task(self._fetch_once(), name="presence-jwks")
        self._last_attempt = self.clock()
        self.fetches += 1
        self._fetch = task
        return task

    async def _fetch_once(self) -> bool:
        # Here, not at the top: a server without a JWKS URL never loads httpx
        # (tests/test_vocabulary.py keeps the SDK's HTTP client out of the server).
        import httpx

        try:
            async with asyncio.timeout(self.timeout):
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.get(self.url, headers={"Accept": "application/json"})
                    response.raise_for_status()
                    document = response.json()
            keys = parse_jwks(document, self.url, self._warn_once)
        except Exception as exc:  # httpx's errors, a timeout, not JSON, no usable key...
            self.failures += 1
            self.refetch_at = self.clock() + max(self.min_interval, JWKS_RETRY_FLOOR)
            self._log_failure(exc)
            return False
        self._install(keys, self._lifetime(response.headers.get("cache-control", "")))
        return True

    def _warn_once(self, message: str) -> None:
        """Log a skipped key once, not at every fetch."""
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def _log_failure(self, exc: BaseException) -> None:
        reason = str(exc) or type(exc).__name__
        if self.fetched_at is None:
            log.warning("no key set from %s yet: %s; tokens it signs are refused", self.url, reason)
        elif self.expired():
            log.error(
                "the key set from %s has expired (last fetched %.0f s ago, at most %.0f): %s; "
                "tokens it signs are refused",
                self.url,
                self.clock() - self.fetched_at,
                self.max_stale,
                reason,
            )
        else:
            log.warning(
                "the key set from %s could not be fetched: %s; still using the one fetched "
                "%.0f s ago",
                self.url,
                reason,
                self.clock() - self.fetched_at,
            )

    def _lifetime(self, cache_control: str) -> float:
        match = _MAX_AGE.search(cache_control)
        if match is None:
            lifetime = self.ttl
        else:
            lifetime = min(max(float(match[1]), JWKS_MIN_MAX_AGE), JWKS_MAX_MAX_AGE)
        return min(lifetime, self.max_stale / 2)

    def _install(self, keys: Sequence[Key], lifetime: float) -> None:
        named = {key.kid: key for key in keys if key.kid is not None}
        if self.fetched_at is None or named.keys() != self._named.keys():
            log.info("key set from %s: kids %s", self.url, ", ".join(sorted(named)) or "none")
        self._named = named
        self._unnamed = tuple(key for key in keys if key.kid is None)
        self._current = frozenset(keys)
        self.fetched_at = self.clock()
        self.refetch_at = self.fetched_at + lifetime


# Verifying ------------------------------------------------------------------


def _secret_keys(secrets: Iterable[str]) -> list[Key]:
    return [Key(ALGORITHM, secret, None, f"secret {n}") for n, secret in enumerate(secrets, 1)]


class Tokens:
    """Every key a server verifies tokens with, and the tokens it verified."""

    def __init__(
        self,
        *,
        secrets: Sequence[str] = (),
        keys: Sequence[Key] = (),
        remote: RemoteKeySet | None = None,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        if any(not secret for secret in secrets):
            raise ValueError("an empty HS256 secret")
        if not (secrets or keys or remote):
            raise ValueError("no secret and no public key: nothing would verify tokens")
        self.secrets = tuple(secrets)
        self.remote = remote
        self.issuer, self.audience = issuer, audience
        self._named: dict[str, Key] = {}
        for key in keys:
            if key.kid is not None:
                if key.kid in self._named:
                    raise ValueError(f"kid {key.kid!r} names two keys ({key.origin})")
                self._named[key.kid] = key
        self._unnamed = (*_secret_keys(secrets), *(key for key in keys if key.kid is None))
        self._static = frozenset((*self._unnamed, *self._named.values()))
        self._options: Options = {
            "require": ["exp", "sub"],
            "verify_aud": audience is not None,
            "verify_iat": False,  # an identity provider's clock may run ahead
        }
        self._verified: dict[str, tuple[Identity, Key]] = {}

    @classmethod
    def configured(cls, settings: Settings, secrets: Sequence[str]) -> Tokens:
        """The keys ``settings`` name (files read now: a bad one fails here),
        and ``secrets``."""
        keys = [key for entry in settings.jwt_public_keys for key in load_key_file(entry)]
        remote = None
        if settings.jwks_url:
            remote = RemoteKeySet(
                settings.jwks_url,
                ttl=settings.jwks_ttl,
                min_interval=settings.jwks_min_interval,
                max_stale=settings.jwks_max_stale,
            )
        tokens = cls(
            secrets=secrets,
            keys=keys,
            remote=remote,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        if (keys or remote) and settings.jwt_audience is None:
            log.warning(
                "public keys but no --jwt-audience: tokens the identity provider issues to any "
                "of its applications are accepted"
            )
        return tokens

    async def run(self) -> None:
        """Keep the JWKS URL's key set fresh, if there is one, until cancelled."""
        if self.remote is not None:
            await self.remote.run()

    def verify(self, token: object, *, refetch: bool = True) -> Identity:
        """The identity of a valid ``token``. For a ``kid`` no key has, the JWKS
        URL is fetched again in the background (rate-limited; not at all unless
        ``refetch``) and the token refused: :meth:`verify_fresh` waits for that
        fetch instead."""
        if not isinstance(token, str) or not token:
            raise TokenError("no token")
        known = self._verified.get(token)
        if known is not None:
            identity, key = known
            if time.time() >= identity.exp:
                del self._verified[token]
                raise TokenError("invalid token: Signature has expired")
            if key in self._static or (self.remote is not None and self.remote.holds(key)):
                return identity
            del self._verified[token]  # its key was withdrawn, or its set expired
        identity, key = self._verify(token, refetch)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (identity, key)
        return identity

    async def verify_fresh(self, token: object) -> Identity:
        """:meth:`verify`, but a token with an unknown ``kid`` waits for the key
        set's fetch that it started (or one under way) and is tried again."""
        try:
            return self.verify(token)
        except UnknownKey:
            fetch = self.remote.in_flight if self.remote is not None else None
            if fetch is None:
                raise
        await asyncio.shield(fetch)
        return self.verify(token, refetch=False)  # one fetch per token is enough

    def _verify(self, token: str, refetch: bool) -> tuple[Identity, Key]:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError) as exc:
            raise TokenError(f"invalid token: {exc}") from None
        kid = header.get("kid")
        if kid is not None:
            if not isinstance(kid, str):
                raise TokenError("invalid token: its kid is not a string")
            key = self._named.get(kid) or (self.remote.named(kid) if self.remote else None)
            if key is not None:
                return self._decode(token, (key,))
        unnamed = self._unnamed + (self.remote.unnamed() if self.remote else ())
        try:
            return self._decode(token, unnamed)
        except _NotVerified:
            if kid is None:
                raise
        shown = repr(kid[:40])
        if self.remote is None:
            raise UnknownKey(f"invalid token: unknown kid {shown}")
        if self.remote.expired():
            raise TokenError("invalid token: the identity provider's key set has expired")
        if refetch:
            self.remote.want()
        raise UnknownKey(f"invalid token: unknown kid {shown}")

    def _decode(self, token: str, keys: Sequence[Key]) -> tuple[Identity, Key]:
        """The claims of ``token`` as verified by the first of ``keys`` that
        verifies its signature, each with its own algorithm only."""
        if not keys:
            raise _NotVerified("invalid token: no key here verifies tokens without a kid")
        failure: jwt.PyJWTError | None = None
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.algorithm],
                    options=self._options,
                    issuer=self.issuer,
                    audience=self.audience,
                )
            except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError) as exc:
                failure = exc
                continue
            except (jwt.PyJWTError, ValueError) as exc:
                # The signature was good (PyJWT checks claims after it), or the
                # token is malformed for every key. ValueError: text PyJWT cannot
                # even encode (a lone surrogate).
                raise TokenError(f"invalid token: {exc}") from None
            return _identity(claims), key
        raise _NotVerified(f"invalid token: {failure}")


def _identity(claims: Mapping[str, Any]) -> Identity:
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

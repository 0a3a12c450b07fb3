"""Settings: one table gives each option its flag, its ``PRESENCE_*`` variable,
its default and its help, so ``--help``, the environment and the README agree.

Precedence: command-line flag, then environment variable, then default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from server.logs import FORMATS

__all__ = [
    "DURABILITIES",
    "OPTIONS",
    "Settings",
    "add_arguments",
    "default_data_dir",
    "settings_from",
]


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "presence-server"


def _origins(text: str) -> tuple[str, ...]:
    return tuple(origin.strip() for origin in text.split(",") if origin.strip())


def _optional(text: str) -> str | None:
    return text or None


def _list(text: str) -> tuple[str, ...]:
    """Comma-separated values, blanks around them dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


#: What an acknowledgement promises: written on the master (``local``), or also
#: on a replica (``replicated``).
DURABILITIES: Final = ("local", "replicated")


def _log_format(text: str) -> str:
    if text not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {text!r}")
    return text


def _durability(text: str) -> str:
    if text not in DURABILITIES:
        raise ValueError(f"durability must be one of {', '.join(DURABILITIES)}, not {text!r}")
    return text


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str | None = None
    jwt_secret: tuple[str, ...] = ()
    jwt_public_keys: tuple[str, ...] = ()
    jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwks_ttl: float = 300.0
    jwks_min_interval: float = 30.0
    jwks_max_stale: float = 86400.0
    data_dir: Path = field(default_factory=default_data_dir)
    key_prefix: str = "presence:"
    redis_connections: int = 32
    ping_interval: float = 10.0
    ping_timeout: float = 10.0
    session_ttl: int = 120
    hello_timeout: float = 5.0
    max_message_size: int = 4096
    rate_limit: float = 20.0
    rate_burst: int = 40
    allowed_origins: tuple[str, ...] = ()
    monitor_queue: int = 1000
    close_grace: float = 5.0
    retention_days: float = 30.0
    instance_ttl: float = 5.0
    store_retry: float = 5.0
    durability: str = "local"
    drain_timeout: float = 10.0
    log_level: str = "info"
    log_format: str = "text"
    max_connections: int = 0


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    parse: Callable[[str], Any]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "PRESENCE_" + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("host", str, "address to listen on"),
    Option("port", int, "port to listen on (0: any free port)"),
    Option(
        "redis_url",
        _optional,
        "Redis to use, e.g. redis://host:6379/0, or its sentinels and master name: "
        "redis+sentinel://host:26379,host:26379/<master name>; unset: start a private "
        "embedded Valkey keeping its data in the data dir",
    ),
    Option(
        "jwt_secret",
        _list,
        "HS256 secrets for tokens, comma-separated: each verifies tokens (rotation: add the new "
        "one, then drop the old), the first signs dev tokens; unset: none with public keys "
        "configured, else one generated once and kept in the data dir",
    ),
    Option(
        "jwt_public_keys",
        _list,
        "comma-separated files of RS256/ES256 public keys: PEM (a public key or certificate; "
        "KID=PATH gives it a kid, else it verifies tokens with none or one no key has) or JWKS",
    ),
    Option(
        "jwks_url",
        _optional,
        "an identity provider's JWKS URL: its keys verify RS256/ES256 tokens by kid; fetched at "
        "start, when its lifetime ends and on an unknown kid",
    ),
    Option("jwt_issuer", _optional, "the iss tokens must carry; unset: not checked"),
    Option(
        "jwt_audience",
        _optional,
        "the aud tokens must carry (one of their aud); unset: not checked",
    ),
    Option(
        "jwks_ttl",
        float,
        "seconds the JWKS URL's keys are kept when its response has no Cache-Control max-age "
        "(a max-age counts within 60-3600 s)",
    ),
    Option(
        "jwks_min_interval",
        float,
        "least seconds between two fetches of the JWKS URL for unknown kids, or after a failure",
    ),
    Option(
        "jwks_max_stale",
        float,
        "seconds the JWKS URL's last good key set is used while fetches fail; then its tokens "
        "are refused",
    ),
    Option("data_dir", Path, "where the embedded Valkey and the generated secret live"),
    Option("key_prefix", str, "prefix of every Redis key and channel"),
    Option(
        "redis_connections",
        int,
        "Redis connections per instance at most; beyond, requests wait for a free one",
    ),
    Option("ping_interval", float, "seconds between the server's WebSocket pings"),
    Option("ping_timeout", float, "seconds to wait for a pong before heartbeat-timeout"),
    Option("session_ttl", int, "seconds a disconnected session stays resumable"),
    Option("hello_timeout", float, "seconds a new connection has to send hello"),
    Option("max_message_size", int, "largest frame accepted from an agent, in bytes"),
    Option("rate_limit", float, "frames per second each connection may send, sustained"),
    Option("rate_burst", int, "frames a connection may send at once above the rate"),
    Option(
        "allowed_origins",
        _origins,
        "comma-separated Origin values allowed to open WebSockets; empty: any",
    ),
    Option(
        "monitor_queue",
        int,
        "events a live monitor may have undelivered before it is closed with 4100",
    ),
    Option(
        "close_grace",
        float,
        "seconds a close frame may wait for a peer that stopped reading; then the socket is "
        "dropped",
    ),
    Option("retention_days", float, "days of events the log keeps; older ones are trimmed"),
    Option(
        "instance_ttl",
        float,
        "seconds an instance stays alive in Redis without renewing; then another instance "
        "records server-lost for its sessions",
    ),
    Option("store_retry", float, "seconds a write keeps retrying through Redis errors"),
    Option(
        "durability",
        _durability,
        "local: acknowledge a change once the Redis master has it; replicated: once a replica "
        "has it too (WAIT), else store-unavailable",
    ),
    Option(
        "drain_timeout",
        float,
        "seconds SIGTERM waits for sessions to be recorded as server-shutdown and closed",
    ),
    Option("log_level", str, "debug, info, warning or error"),
    Option(
        "log_format",
        _log_format,
        "text (for people) or json (one object per line, for a log pipeline)",
    ),
    Option(
        "max_connections",
        int,
        "sockets this instance holds at most; past it, new ones get HTTP 503 at the handshake "
        "and try again elsewhere or later (0: no limit)",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    for option in OPTIONS:
        default = getattr(defaults, option.name)
        shown = ",".join(default) if isinstance(default, tuple) else default
        parser.add_argument(
            option.flag,
            dest=option.name,
            metavar=option.env,
            help=f"{option.help} [env {option.env}; default: {shown!s}]",
        )


def settings_from(
    arguments: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from parsed flags over ``PRESENCE_*`` variables over defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw = getattr(arguments, option.name, None) if arguments is not None else None
        if raw is None:
            raw = environ.get(option.env)
        if raw is not None:
            values[option.name] = option.parse(raw)
    return Settings(**values)

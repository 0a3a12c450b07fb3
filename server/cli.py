"""``presence-server``: run the server, or print a development token.

presence-server [options]                 run (every option also PRESENCE_*)
presence-server token --company C --sub A --role agent [--segments s1,s2] [--ttl S] [--url [BASE]]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from typing import Final

from server import logs
from server.app import PresenceServer, create_app, uvicorn_config
from server.auth import ROLES, issue
from server.config import Settings, add_arguments, settings_from

__all__ = ["main"]

log = logging.getLogger("presence")


#: Allocations between young collections (CPython's default is 700).
GC_YOUNG_THRESHOLD: Final = 20_000


def load_secrets(settings: Settings) -> tuple[str, ...]:
    """The configured HS256 secrets (the first signs dev tokens); else none when
    public keys verify tokens (the server then holds nothing that can mint them);
    else the one kept in the data dir (made once)."""
    if settings.jwt_secret:
        return settings.jwt_secret
    if settings.jwt_public_keys or settings.jwks_url:
        return ()
    path = settings.data_dir / "jwt-secret"
    if path.exists():
        return (path.read_text().strip(),)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")
    log.warning("no PRESENCE_JWT_SECRET set: generated one and kept it in %s", path)
    return (secret,)


def tune_garbage_collector() -> None:
    """Keep the collector's pauses out of the latency tail.

    A full collection walks every live object: with the server's modules and a
    few thousand sockets that took up to ~120 ms under churn, stalling every
    socket at once; with this, the churn bench's servers ran one full collection
    where they ran four or five (``bench/probes`` logs them). What is loaded by now is
    never garbage, so it is frozen out of all collections; and the young
    generation is collected less often, so short-lived objects die by
    reference count before they can be promoted and trigger full collections.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(settings: Settings) -> None:
    jwt_secrets = load_secrets(settings)
    embedded = None
    redis_url = settings.redis_url
    if redis_url is None:
        from server.embedded import EmbeddedValkey

        embedded = EmbeddedValkey(settings.data_dir)
        redis_url = embedded.start()
    # uvicorn drains on SIGTERM, then re-raises it under the handler it found:
    # make that an orderly exit, so the embedded store is stopped too.
    signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        app = create_app(settings, redis_url=redis_url, secret=jwt_secrets)
        config = uvicorn_config(app, settings)
        config.load()  # imports the protocol modules, so the freeze below covers them
        # The process's business, not the app's: an app run inside another
        # process (the tests) must not freeze that process's objects.
        tune_garbage_collector()
        PresenceServer(config, app).run()
    finally:
        if embedded is not None:
            embedded.stop()


#: The page a token of each role opens (server/pages.py).
PAGE_OF_ROLE: Final = {"agent": "/console", "supervisor": "/monitor", "admin": "/monitor"}


def _reachable(host: str) -> str:
    """An address a browser on this machine can open, for a server listening on ``host``."""
    return {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)


def token_command(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="presence-server token",
        description="Print a signed token for development, with the server's (first) secret.",
    )
    parser.add_argument("--company", required=True)
    parser.add_argument("--sub", required=True, help="agent id or service name")
    parser.add_argument("--role", required=True, choices=sorted(ROLES))
    parser.add_argument("--segments", default="", help="comma-separated, for agents")
    parser.add_argument("--ttl", type=int, default=8 * 3600, help="seconds (default 8 h)")
    parser.add_argument(
        "--jwt-secret",
        dest="jwt_secret",
        metavar="PRESENCE_JWT_SECRET",
        help="comma-separated HS256 secrets: the first signs",
    )
    parser.add_argument("--data-dir", dest="data_dir", metavar="PRESENCE_DATA_DIR")
    parser.add_argument(
        "--url",
        nargs="?",
        const="",
        metavar="BASE",
        help="print a link to the role's page (console for agents, Live Monitor for supervisors "
        "and admins) with the token in its fragment; BASE defaults to this server's address",
    )
    args = parser.parse_args(argv)
    settings = settings_from(args)
    segments = tuple(s.strip() for s in args.segments.split(",") if s.strip())
    jwt_secrets = load_secrets(settings)
    if not jwt_secrets:
        parser.exit(
            2,
            "presence-server token: no HS256 secret to sign with: this server verifies tokens "
            "with public keys only (PRESENCE_JWT_PUBLIC_KEYS, PRESENCE_JWKS_URL); get tokens "
            "from the identity provider, or set PRESENCE_JWT_SECRET for development\n",
        )
    token = issue(
        jwt_secrets[0],
        company=args.company,
        sub=args.sub,
        role=args.role,
        segments=segments,
        ttl=args.ttl,
        now=int(time.time()),
    )
    if args.url is None:
        print(token)
        return
    if args.role not in PAGE_OF_ROLE:
        parser.error(f"no page is for the {args.role} role; drop --url to print the token")
    base = args.url.rstrip("/") or f"http://{_reachable(settings.host)}:{settings.port}"
    # In the fragment, never the query string: a browser never sends it, so no log holds it.
    print(f"{base}{PAGE_OF_ROLE[args.role]}#token={token}")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["token"]:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        token_command(argv[1:])
        return
    parser = argparse.ArgumentParser(
        prog="presence-server",
        description="Agent presence server for contact centers. "
        "'presence-server token --help' prints development tokens.",
    )
    add_arguments(parser)
    settings = settings_from(parser.parse_args(argv))
    logs.configure(settings.log_level, settings.log_format)
    serve(settings)

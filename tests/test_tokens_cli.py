"""Token settings as a user runs the server (``python -m server``): a secret
rotated across restarts, a server that holds no secret when an identity
provider's keys verify its tokens, and ``presence-server token``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt

from server.auth import issue
from server.store import Store
from tests.processes import presence_server
from tests.servers import process_env
from tests.test_auth import NEW_SECRET, OLD_SECRET, ec_key, jwk, jwks, signed
from tests.test_tokens_e2e import hello
from tests.test_tokens_jwks import IdentityProvider, idp  # noqa: F401 - the fixture


def agent_token(secret: str, sub: str) -> str:
    return issue(secret, company="acme", sub=sub, role="agent", now=int(time.time()))


async def test_a_secret_is_rotated_across_restarts_without_a_refused_token(
    redis_url: str, key_prefix: str, store: Store
) -> None:
    old, new = agent_token(OLD_SECRET, "a-1"), agent_token(NEW_SECRET, "a-2")
    for secrets, accepted in (
        (OLD_SECRET, {"a-1"}),
        (f"{NEW_SECRET},{OLD_SECRET}", {"a-1", "a-2"}),  # the issuers switch meanwhile
        (NEW_SECRET, {"a-2"}),  # the old one's tokens are gone
    ):
        env = {**process_env(redis_url, key_prefix), "PRESENCE_JWT_SECRET": secrets}
        async with presence_server(env) as server:
            for sub, token in (("a-1", old), ("a-2", new)):
                answer = await hello(server.agent_url, token)
                if sub in accepted:
                    assert isinstance(answer, dict) and answer["t"] == "welcome", (secrets, answer)
                else:
                    assert answer == 4501, (secrets, sub)


async def test_with_an_identity_providers_keys_the_server_holds_no_secret(
    redis_url: str,
    key_prefix: str,
    store: Store,
    tmp_path: Path,
    idp: IdentityProvider,  # noqa: F811 - the fixture
) -> None:
    key = ec_key()
    idp.document = jwks(jwk(key, "k1"))
    env = process_env(redis_url, key_prefix)
    del env["PRESENCE_JWT_SECRET"]
    env |= {"PRESENCE_JWKS_URL": idp.url, "PRESENCE_DATA_DIR": str(tmp_path)}
    async with presence_server(env) as server:
        answer = await hello(server.agent_url, signed(key, kid="k1"))
        assert isinstance(answer, dict) and answer["t"] == "welcome", answer
        # What the data dir's secret would have signed: nothing verifies it.
        assert await hello(server.agent_url, agent_token("anything-" + "z" * 32, "a-2")) == 4501
    assert not (tmp_path / "jwt-secret").exists()
    assert not any("generated one" in line for line in server.log)
    # And no development token can be made for it.
    result = token_command(env)
    assert result.returncode == 2 and result.stdout == ""
    assert "no HS256 secret to sign with" in result.stderr
    assert not (tmp_path / "jwt-secret").exists()


def token_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PRESENCE_")}
    command = [sys.executable, "-m", "server", "token", "--company", "acme", "--sub", "a-1"]
    return subprocess.run(
        [*command, "--role", "agent"], capture_output=True, text=True, env={**inherited, **env}
    )


def test_token_signs_with_the_first_secret() -> None:
    result = token_command({"PRESENCE_JWT_SECRET": f" {NEW_SECRET} , {OLD_SECRET}"})
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert jwt.decode(token, NEW_SECRET, algorithms=["HS256"])["sub"] == "a-1"
    # With public keys configured too, a configured secret still signs.
    both = token_command(
        {"PRESENCE_JWT_SECRET": NEW_SECRET, "PRESENCE_JWKS_URL": "https://idp.example.com/certs"}
    )
    assert both.returncode == 0, both.stderr
    assert jwt.decode(both.stdout.strip(), NEW_SECRET, algorithms=["HS256"])["role"] == "agent"

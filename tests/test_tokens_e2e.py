"""Tokens from an identity provider against a real server: a console's hello,
a supervisor's monitor and HTTP API calls authorized by RS256 and ES256 tokens,
from a PEM file and from a JWKS URL whose keys rotate."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from client_sdk.protocol import JSON
from tests.servers import RunningServer
from tests.test_auth import claims, ec_key, forged, jwk, jwks, public_pem, rsa_key, signed, write
from tests.test_tokens_jwks import IdentityProvider, idp  # noqa: F401 - the fixture
from tests.timing import seconds

ISSUER = "https://idp.example.com/realms/contact-center"
AUDIENCE = "presence"

Start = Callable[..., Awaitable[RunningServer]]


async def hello(url: str, token: str) -> dict[str, Any] | int:
    """The server's answer to a hello with ``token``: its welcome, else its close code."""
    async with connect(url, subprotocols=[JSON]) as ws:
        await ws.send(json.dumps({"t": "hello", "token": token}))
        try:
            welcome: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), seconds(5)))
        except ConnectionClosed as closed:
            if closed.rcvd is None:  # no close frame: not an answer
                raise
            return closed.rcvd.code
        await ws.send(json.dumps({"t": "bye"}))
        await asyncio.wait_for(ws.recv(), seconds(5))
        return welcome


async def agents(server: RunningServer, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=seconds(5)) as http:
        return await http.get("/v1/agents", headers={"Authorization": f"Bearer {token}"})


async def test_rs256_tokens_from_a_pem_file_open_sockets_and_call_the_api(
    start_server: Start, tmp_path: Path
) -> None:
    key = rsa_key()
    pem = public_pem(key)
    server = await start_server(
        jwt_public_keys=(write(tmp_path / "idp.pem", pem),),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    ours = {"iss": ISSUER, "aud": [AUDIENCE, "account"], "scope": "openid"}
    welcome = await hello(server.agent_url, signed(key, kid="x1", segments=["sales"], **ours))
    assert isinstance(welcome, dict) and welcome["t"] == "welcome", welcome
    assert welcome["state"]["segments"] == ["sales"]
    supervisor = signed(key, kid="x1", sub="sup-1", role="supervisor", **ours)
    monitor = await hello(server.monitor_url, supervisor)
    assert isinstance(monitor, dict) and monitor["t"] == "welcome", monitor
    response = await agents(server, supervisor)
    assert response.status_code == 200, response.text
    assert [agent["agent"] for agent in response.json()["agents"]] == ["a-1"]

    # Refused: another audience, another issuer, and HS256 "signed" with the public key.
    refused = [
        signed(key, sub="sup-1", role="supervisor", iss=ISSUER, aud="account"),
        signed(key, sub="sup-1", role="supervisor", iss="https://evil.example.com", aud=AUDIENCE),
        forged({"alg": "HS256", "typ": "JWT"}, claims(role="supervisor", **ours), pem),
        forged({"alg": "none", "typ": "JWT"}, claims(role="supervisor", **ours), None),
    ]
    for token in refused:
        response = await agents(server, token)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
        assert await hello(server.monitor_url, token) == 4501


async def test_es256_tokens_from_a_jwks_url_follow_its_key_rotation(
    start_server: Start,
    idp: IdentityProvider,  # noqa: F811 - the fixture
) -> None:
    first, second, third = ec_key("first"), ec_key("second"), ec_key("third")
    idp.document = jwks(jwk(first, "2024-05"))
    server = await start_server(jwks_url=idp.url, jwks_min_interval=0)
    welcome = await hello(server.agent_url, signed(first, kid="2024-05"))
    assert isinstance(welcome, dict) and welcome["t"] == "welcome", welcome
    assert (await agents(server, signed(first, kid="2024-05", role="acd", sub="router"))).is_success
    fetched = idp.requests

    # The provider rotates: a hello with the new kid waits for the key set's fetch.
    idp.document = jwks(jwk(second, "2024-06"))
    welcome = await hello(server.agent_url, signed(second, kid="2024-06", sub="a-2"))
    assert isinstance(welcome, dict) and welcome["t"] == "welcome", welcome
    assert idp.requests == fetched + 1
    # The withdrawn key verifies nothing more.
    assert await hello(server.agent_url, signed(first, kid="2024-05", sub="a-4")) == 4501

    # Again; the HTTP API verifies synchronously: refused, and the set fetched meanwhile...
    idp.document = jwks(jwk(second, "2024-06"), jwk(third, "2024-07"))
    acd = signed(third, kid="2024-07", role="acd", sub="router")
    assert (await agents(server, acd)).status_code == 401
    # ...that a hello waits for, if it is still under way; then the API takes the token.
    welcome = await hello(server.agent_url, signed(third, kid="2024-07", sub="a-3"))
    assert isinstance(welcome, dict) and welcome["t"] == "welcome", welcome
    response = await agents(server, acd)
    assert response.status_code == 200, response.text
    assert {agent["agent"] for agent in response.json()["agents"]} == {"a-1", "a-2", "a-3"}
    # A kid the provider never published stays unknown.
    assert await hello(server.agent_url, signed(third, kid="2099-01", sub="a-5")) == 4501
    assert (await agents(server, signed(third, kid="2099-01", role="acd"))).status_code == 401

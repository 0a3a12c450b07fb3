"""The browser client's vocabulary (``server/web/sdk/vocabulary.js``): what
``python -m presence_protocol.javascript`` prints, and served at ``/sdk/``."""

from __future__ import annotations

from importlib import resources

import httpx

from presence_protocol import CloseCode, ErrorCode
from presence_protocol.javascript import render
from tests.servers import RunningServer
from tests.timing import seconds


def test_the_shipped_vocabulary_is_the_generated_one() -> None:
    shipped = resources.files("server").joinpath("web/sdk/vocabulary.js").read_text()
    assert shipped == render(), (
        "server/web/sdk/vocabulary.js differs from presence_protocol/vocabulary.py: "
        "run `python -m presence_protocol.javascript > server/web/sdk/vocabulary.js`"
    )


def test_every_code_is_in_the_module() -> None:
    module = render()
    for close in CloseCode:
        assert f"  {close.name}: {close.value}," in module
    for error in ErrorCode:
        assert f'  {error.name}: "{error.value}",' in module


async def test_the_server_serves_it_as_a_module(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=seconds(5)) as http:
        response = await http.get("/sdk/vocabulary.js")
        missing = await http.get("/sdk/nothing.js")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in {
        "text/javascript",
        "application/javascript",
    }
    assert response.text == render()
    assert missing.status_code == 404

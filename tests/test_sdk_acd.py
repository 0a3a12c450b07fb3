"""AcdClient against a scripted HTTP transport: requests as sent, answers and failures
as a server, a proxy or the network would give them."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from client_sdk import AcdClient, Change, ConnectionLost, ErrorCode, ProtocolError, RequestError

STATE = {"agent": "a-1", "activity": "occupying", "routable": False}
EVENT = {"id": "5-1", "agent": "a-1", "type": "acd", "value": "occupying", "reason": None}


def client_for(
    answer: Callable[[httpx.Request], httpx.Response], sent: list[httpx.Request] | None = None
) -> AcdClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if sent is not None:
            sent.append(request)
        return answer(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AcdClient("http://presence:8080/", "acd-token", client=http)


def answering(status: int, body: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body)


def failing(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc

    return answer


async def test_available_asks_for_routable_agents_longest_idle_first() -> None:
    sent: list[httpx.Request] = []
    acd = client_for(answering(200, {"agents": [STATE]}), sent)
    assert await acd.available() == [STATE]
    assert await acd.available(segment="sales", limit=3) == [STATE]
    assert [(r.method, r.url.path, dict(r.url.params)) for r in sent] == [
        ("GET", "/v1/agents", {"routable": "true", "order": "idle"}),
        (
            "GET",
            "/v1/agents",
            {"routable": "true", "order": "idle", "segment": "sales", "limit": "3"},
        ),
    ]
    assert all(r.headers["authorization"] == "Bearer acd-token" for r in sent)


async def test_reads() -> None:
    sent: list[httpx.Request] = []
    stats = {"total": 1, "routable": 0, "longest_idle": None}
    acd = client_for(
        lambda r: httpx.Response(200, json=STATE if "agents" in r.url.path else stats), sent
    )
    assert await acd.agent("a-1") == STATE
    assert await acd.stats() == stats
    assert await acd.stats(segment="sales") == stats
    assert [str(r.url) for r in sent] == [
        "http://presence:8080/v1/agents/a-1",
        "http://presence:8080/v1/stats",
        "http://presence:8080/v1/stats?segment=sales",
    ]


async def test_changes_send_the_spec_bodies() -> None:
    sent: list[httpx.Request] = []
    answer = {"event": EVENT, "events": [EVENT], "state": STATE}
    acd = client_for(answering(200, answer), sent)
    claimed = await acd.claim()
    assert claimed == Change(event=EVENT, events=[EVENT], state=STATE) and claimed.agent == "a-1"
    await acd.claim(segment="sales", exclude=["a-2", "a-3"])
    await acd.occupy("a-1")
    await acd.release("a-1")
    await acd.release("a-1", reason="client-abandoned")
    await acd.timeout("a-1")
    assert [(r.method, r.url.path, json.loads(r.content)) for r in sent] == [
        ("POST", "/v1/acd/claim", {}),
        ("POST", "/v1/acd/claim", {"segment": "sales", "exclude": ["a-2", "a-3"]}),
        ("POST", "/v1/agents/a-1/acd", {"value": "occupying"}),
        ("POST", "/v1/agents/a-1/acd", {"value": "releasing"}),
        ("POST", "/v1/agents/a-1/acd", {"value": "releasing", "reason": "client-abandoned"}),
        ("POST", "/v1/agents/a-1/acd", {"value": "timeout"}),
    ]


async def test_nothing_changed_is_a_null_event() -> None:
    acd = client_for(answering(200, {"event": None, "events": [], "state": STATE}))
    assert (await acd.timeout("a-1")).event is None


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, ErrorCode.NO_AGENT_AVAILABLE),
        (409, ErrorCode.ACD_MODE),
        (409, ErrorCode.INVALID_TRANSITION),
        (401, ErrorCode.UNAUTHORIZED),
        (503, ErrorCode.STORE_UNAVAILABLE),
    ],
)
async def test_an_error_body_raises_its_code(status: int, code: ErrorCode) -> None:
    acd = client_for(answering(status, {"error": {"code": str(code), "message": "why"}}))
    with pytest.raises(RequestError) as refused:
        await acd.claim()
    assert refused.value.code is code and refused.value.status == status
    assert refused.value.message == "why"


async def test_an_unknown_code_stays_readable() -> None:
    acd = client_for(answering(409, {"error": {"code": "agent-on-fire", "message": "hot"}}))
    with pytest.raises(RequestError) as refused:
        await acd.claim()
    assert refused.value.code is ErrorCode.INTERNAL and refused.value.status == 409
    assert refused.value.message == "agent-on-fire: hot"


@pytest.mark.parametrize(
    ("status", "code"), [(503, ErrorCode.STORE_UNAVAILABLE), (502, ErrorCode.INTERNAL)]
)
async def test_an_error_without_the_spec_body(status: int, code: ErrorCode) -> None:
    acd = client_for(lambda request: httpx.Response(status, text="<html>Bad Gateway</html>"))
    with pytest.raises(RequestError) as refused:
        await acd.stats()
    assert refused.value.code is code and refused.value.status == status
    assert "Bad Gateway" in refused.value.message


@pytest.mark.parametrize(
    "answer",
    [
        lambda request: httpx.Response(200, text="not json"),
        answering(200, ["a list"]),
        answering(200, {"event": EVENT, "state": STATE}),
        answering(200, {"event": "occupying", "events": [], "state": STATE}),
    ],
)
async def test_a_malformed_answer_is_a_protocol_error(
    answer: Callable[[httpx.Request], httpx.Response],
) -> None:
    with pytest.raises(ProtocolError):
        await client_for(answer).claim()


async def test_a_malformed_agent_list_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        await client_for(answering(200, {"agents": "a-1"})).available()


async def test_transport_failures() -> None:
    refused = client_for(failing(httpx.ConnectError("connection refused")))
    with pytest.raises(ConnectionLost) as lost:
        await refused.claim()
    assert isinstance(lost.value.__cause__, httpx.ConnectError)
    slow = client_for(failing(httpx.ReadTimeout("slow")))
    with pytest.raises(TimeoutError):
        await slow.claim()


async def test_a_refused_connection_is_connection_lost() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = bound.getsockname()[1]
        async with AcdClient(f"http://127.0.0.1:{port}", "t") as acd:
            with pytest.raises(ConnectionLost):
                await acd.stats()


async def test_a_token_callable_is_called_for_each_request() -> None:
    sent: list[httpx.Request] = []
    tokens = iter(["t1", "t2"])

    async def fresh() -> str:
        return next(tokens)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=STATE)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    acd = AcdClient("http://presence:8080", fresh, client=http)
    await acd.agent("a-1")
    await acd.agent("a-1")
    assert [r.headers["authorization"] for r in sent] == ["Bearer t1", "Bearer t2"]


async def test_arguments_are_checked_before_sending() -> None:
    sent: list[httpx.Request] = []
    acd = client_for(answering(200, STATE), sent)
    with pytest.raises(ValueError, match="agent id"):
        await acd.agent("../config")
    with pytest.raises(ValueError, match="agent id"):
        await acd.release("a 1")
    with pytest.raises(TypeError, match="exclude"):
        await acd.claim(exclude="a-1")
    assert sent == []
    with pytest.raises(ValueError, match="http"):
        AcdClient("ws://presence:8080", "t")
    with pytest.raises(ValueError, match="timeout"):
        AcdClient("http://presence:8080", "t", timeout=0)


async def test_a_given_client_stays_open() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(answering(200, STATE)))
    async with AcdClient("http://presence:8080", "t", client=http) as acd:
        await acd.agent("a-1")
    assert not http.is_closed
    await http.aclose()


async def test_its_own_client_closes_with_it() -> None:
    async with AcdClient("http://presence:8080", "t") as acd:
        pass
    await acd.close()  # idempotent
    assert acd._http.is_closed

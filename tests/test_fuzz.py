"""Property-based tests of the wire protocol (spec §4), with Hypothesis.

The codec is fuzzed directly: :func:`decode` returns a map with a string ``t``
or raises :class:`FrameError`, whatever it is given. The endpoint is fuzzed over
real sockets, one server per test: every frame gets the answer (or the close
code) a small model of spec §4 predicts, never an internal error, an abort or
silence, while a well-behaved console on the same server carries on.

Hypothesis runs the live properties in a worker thread and hands each example
to the test's event loop, so the loop (the server's and the clients') never
stalls between examples and the checks after the last example are awaited in
the test itself. ``derandomize`` makes every run try the same examples.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from client_sdk.protocol import (
    ACTIVITY_VALUES,
    DEFAULT_STATUSES,
    JSON,
    MSGPACK,
    STATUS_VALUE,
    ErrorCode,
    FrameError,
    decode,
)
from tests.clients import RawAgent, open_agent
from tests.servers import RunningServer
from tests.timing import seconds

LIMIT: Final = 4096  # max_message_size, of the servers here too
TYPES: Final = ("hello", "status", "activity", "ping", "bye", "teleport", "")
STATUS_CHOICES: Final = (*DEFAULT_STATUSES, "available", "nap", "Not A Slug", "connected", "x" * 33)
ACTIVITY_CHOICES: Final = (*sorted(ACTIVITY_VALUES), "occupying", "IN-CALL")
SPEC_ERROR_CODES: Final = frozenset(code.value for code in ErrorCode)
#: Same examples every run: a failure here is a bug, never bad luck.
DETERMINISTIC: Final = settings(derandomize=True, database=None, deadline=None)


@dataclass(frozen=True)
class Signed:
    """Stands for a token signed with the server's secret: an agent's, with
    ``claims`` overriding its claims. :func:`render` signs it."""

    claims: dict[str, Any] = field(default_factory=dict)


VALID: Final = Signed()


# Strategies.


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each as often as its weight (``a | b`` is far from even)."""
    pool = [strategy for weight, strategy in options for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


def documents(scalars: st.SearchStrategy[Any], keys: st.SearchStrategy[Any]) -> Any:
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    )


ANY_TEXT = st.text(max_size=24)  # lone surrogates included: JSON carries them escaped
UTF8_TEXT = st.text(st.characters(codec="utf-8"), max_size=24)
MSGPACK_INTS = st.integers(-(2**63), 2**64 - 1)
BEYOND_64_BITS = st.integers(min_value=2**64) | st.integers(max_value=-(2**63) - 1)
#: Values both codecs carry and both decoders accept.
TAME = documents(st.none() | st.booleans() | MSGPACK_INTS | st.floats() | UTF8_TEXT, UTF8_TEXT)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | BEYOND_64_BITS | st.floats() | ANY_TEXT
# json.dumps turns int, float, bool and None keys into strings.
JSON_KEYS = ANY_TEXT | st.integers() | st.floats() | st.booleans() | st.none()
JSON_DOCS = documents(JSON_SCALARS, JSON_KEYS)
MSGPACK_SCALARS = (
    st.none() | st.booleans() | MSGPACK_INTS | st.floats() | ANY_TEXT | st.binary(max_size=24)
)
# Keys msgpack carries but the decoder refuses (anything but str and bytes).
MSGPACK_KEYS = MSGPACK_SCALARS | st.tuples(MSGPACK_SCALARS, MSGPACK_SCALARS)
MSGPACK_DOCS = documents(MSGPACK_SCALARS, MSGPACK_KEYS)


def jwt_shaped(header: Any, claims: Any, signature: bytes) -> str:
    """Three base64url segments, as a token has, signed by nobody."""

    def segment(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join(
        [
            segment(json.dumps(header).encode()),
            segment(json.dumps(claims).encode()),
            segment(signature),
        ]
    )


ALGORITHMS = st.sampled_from(["HS256", "none", "RS256", "HS512"])
TOKENS = weighted(
    (4, st.just(VALID)),
    (1, st.none() | TAME),
    (
        1,
        st.builds(jwt_shaped, st.fixed_dictionaries({"alg": ALGORITHMS}) | TAME, TAME, st.binary()),
    ),
    # Signed, so only the claims can be wrong.
    (
        1,
        st.builds(
            Signed,
            st.dictionaries(
                st.sampled_from(["sub", "company", "role", "segments", "exp"]),
                weighted((1, TAME), (1, st.sampled_from(["supervisor", "a b", "", 0]))),
                max_size=2,
            ),
        ),
    ),
)


def framelike(
    wild: st.SearchStrategy[Any],
    keys: st.SearchStrategy[Any],
    refs: st.SearchStrategy[Any],
    text: st.SearchStrategy[str],
) -> st.SearchStrategy[dict[Any, Any]]:
    """Maps that look like frames: a ``t``, the fields of §4 with any types, and noise.

    Mostly decodable (tame values under str keys), so that the frames reach the
    handlers; now and then ``wild`` (odd keys, invalid UTF-8…).
    """
    values = weighted((3, TAME), (1, wild))
    fields = st.fixed_dictionaries(
        {"t": weighted((6, st.sampled_from(TYPES)), (1, values))},
        optional={
            "value": weighted((1, st.sampled_from(STATUS_CHOICES + ACTIVITY_CHOICES)), (1, values)),
            "ref": weighted((3, refs), (1, values)),
            "token": weighted((1, TOKENS), (1, values)),
            "session": weighted((3, text), (1, values)),
            "status": weighted((2, st.sampled_from(STATUS_CHOICES)), (1, values)),
            "client": values,
        },
    )
    noise = weighted(
        (3, st.dictionaries(UTF8_TEXT, TAME, max_size=2)),
        (1, st.dictionaries(keys, wild, max_size=3)),
    )
    return st.builds(lambda extra, known: {**extra, **known}, noise, fields)


JSON_FRAMELIKE = framelike(JSON_DOCS, JSON_KEYS, st.integers() | BEYOND_64_BITS, ANY_TEXT)
MSGPACK_FRAMELIKE = framelike(MSGPACK_DOCS, MSGPACK_KEYS, MSGPACK_INTS, UTF8_TEXT)


def packb(value: Any) -> bytes:
    # surrogatepass lets a str carry what becomes invalid UTF-8 on the wire.
    packed: bytes = msgpack.packb(value, use_bin_type=True, unicode_errors="surrogatepass")
    return packed


def dumps(value: Any) -> str:
    """JSON as a console would send it: UTF-8 when it can be, else ASCII escapes."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(value)  # a lone surrogate goes as a \\ud800 escape
    return text


def repeat_to(unit: bytes | str, size: int) -> bytes | str:
    """``unit`` repeated to ``size`` bytes on the wire (or just over, for multibyte text)."""
    width = len(unit.encode()) if isinstance(unit, str) else len(unit)
    return unit * -(-size // width)


@dataclass(frozen=True)
class Frame:
    """One frame to send: ``body`` encoded by ``codec`` ("json", "msgpack" or "raw")."""

    codec: str
    body: Any
    #: The subprotocol of the connection it goes on (answers come in that one).
    conn: str = JSON
    #: Pad a map body with a ``pad`` field to this many bytes on the wire.
    pad_to: int | None = None
    pad_char: str = "x"


NEAR_LIMIT = st.integers(LIMIT - 6, LIMIT + 6)
PAD_TO = weighted((4, st.none()), (1, NEAR_LIMIT))
PAD_CHAR = st.sampled_from(["x", "é", "😀"])
CONNS = st.sampled_from([JSON, MSGPACK])
RAW_BODIES = (
    st.binary(max_size=64)
    | st.text(st.characters(codec="utf-8"), max_size=64)
    | st.builds(repeat_to, st.binary(min_size=1, max_size=4), NEAR_LIMIT)
    | st.builds(repeat_to, st.sampled_from(["{", "é", "😀", "\x00"]), NEAR_LIMIT)
)
JSON_FRAMES = st.builds(Frame, st.just("json"), JSON_FRAMELIKE, CONNS, PAD_TO, PAD_CHAR)
MSGPACK_FRAMES = st.builds(Frame, st.just("msgpack"), MSGPACK_FRAMELIKE, CONNS, PAD_TO, PAD_CHAR)
FRAMES = weighted(
    (4, JSON_FRAMES),
    (4, MSGPACK_FRAMES),
    (1, st.builds(Frame, st.just("raw"), RAW_BODIES, CONNS)),
    (1, st.builds(Frame, st.sampled_from(["json", "msgpack"]), TAME, CONNS)),
)


def as_hello(frame: Frame, token: Any) -> Frame:
    if not isinstance(frame.body, dict):
        return frame
    body = {**frame.body, "t": "hello", "token": token}
    return Frame(frame.codec, body, frame.conn, frame.pad_to, frame.pad_char)


#: First frames: mostly hellos, half of those with a valid token; some anything.
FIRST_FRAMES = weighted(
    (3, st.builds(as_hello, JSON_FRAMES, TOKENS)),
    (2, st.builds(as_hello, MSGPACK_FRAMES, TOKENS)),
    (1, FRAMES),
)


def has_lone_surrogate(text: str) -> bool:
    return text != text.encode("utf-8", "replace").decode()


def wire_size(payload: bytes | str) -> int:
    return len(payload.encode() if isinstance(payload, str) else payload)


def render(frame: Frame, sign: Callable[[dict[str, Any]], str]) -> bytes | str:
    """The payload to send: a text frame if str, a binary frame if bytes."""
    if frame.codec == "raw":
        payload: bytes | str = frame.body
        return payload
    encoder = dumps if frame.codec == "json" else packb
    message = frame.body
    if isinstance(message, dict) and isinstance(message.get("token"), Signed):
        message = {**message, "token": sign(message["token"].claims)}
    if frame.pad_to is None or not isinstance(message, dict):
        return encoder(message)
    pad = ""
    for _ in range(4):  # the pad's own header may grow: converge on the size
        message = {**message, "pad": pad}
        gap = frame.pad_to - wire_size(encoder(message))
        if gap == 0:
            break
        pad = frame.pad_char * max(0, len(pad) + gap // len(frame.pad_char.encode()))
    return encoder(message)


# 1. The decoder.


def decodes_or_refuses(data: bytes | str) -> dict[str, Any] | None:
    """``decode(data)``, checked; None for a FrameError. Any other exception escapes."""
    try:
        message = decode(data)
    except FrameError:
        return None
    assert isinstance(message, dict), message
    assert isinstance(message.get("t"), str), message
    return message


def plain(value: Any, *, bytes_keys: bool) -> bool:
    """Whether every map key is a str (or bytes) and no str holds a lone surrogate."""
    if isinstance(value, str):
        return not has_lone_surrogate(value)
    if isinstance(value, list | tuple):
        return all(plain(item, bytes_keys=bytes_keys) for item in value)
    if isinstance(value, dict):
        key_types = (str, bytes) if bytes_keys else str
        return all(
            isinstance(key, key_types)
            and plain(key, bytes_keys=bytes_keys)
            and plain(item, bytes_keys=bytes_keys)
            for key, item in value.items()
        )
    return True


@DETERMINISTIC
@given(st.binary())
@example(b"\x91" * 100_000)  # nested past msgpack's stack
@example(b"\xd4\xff\x00")  # a timestamp extension of the wrong length
@example(b"\xdf\xff\xff\xff\xff")  # a map announcing 2**32 - 1 pairs
def test_decode_arbitrary_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


@DETERMINISTIC
@given(st.text())
@example("[" * 100_000)  # nested past Python's recursion limit
@example("9" * 5000)  # past int's digit limit
def test_decode_arbitrary_text(data: str) -> None:
    decodes_or_refuses(data)


def without_signed(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("token"), Signed):
        return {**value, "token": "a token"}
    return value


@DETERMINISTIC
@given(MSGPACK_FRAMELIKE | MSGPACK_DOCS, st.binary(max_size=8), st.integers(0, 3))
def test_decode_msgpack_values(value: Any, tail: bytes, cut: int) -> None:
    value = without_signed(value)
    packed = packb(value)
    message = decodes_or_refuses(packed)
    if (
        isinstance(value, dict)
        and isinstance(value.get("t"), str)
        and plain(value, bytes_keys=True)
    ):
        assert message is not None and message["t"] == value["t"], value
    # Trailing garbage and truncation are refused, not half-read.
    decodes_or_refuses(packed + tail)
    decodes_or_refuses(packed[: len(packed) - cut])


@DETERMINISTIC
@given(JSON_FRAMELIKE | JSON_DOCS, st.booleans())
def test_decode_json_values(value: Any, ascii_only: bool) -> None:
    value = without_signed(value)
    message = decodes_or_refuses(json.dumps(value, ensure_ascii=ascii_only))
    if (
        isinstance(value, dict)
        and isinstance(value.get("t"), str)
        and plain(value, bytes_keys=False)
    ):
        assert message is not None and message["t"] == value["t"], value


# 2–4. The live endpoint.


@dataclass(frozen=True)
class Expected:
    """One thing the server may do with a frame."""

    #: The answer's ``t`` → the error codes allowed if that ``t`` is "error".
    answers: dict[str, frozenset[str]] = field(default_factory=dict)
    ref: Any = None
    #: The close code that must follow the answer.
    close_after: int | None = None
    #: The close codes allowed instead of an answer.
    close_instead: frozenset[int] = frozenset()

    def allows(self, reply: dict[str, Any]) -> bool:
        kind = reply["t"]
        return (
            kind in self.answers
            and (kind != "error" or reply["code"] in self.answers["error"])
            and (kind == "welcome" or reply["ref"] == self.ref)
        )


#: What the server may do with a frame: any one of these.
Allowed = tuple[Expected, ...]


def answer(kind: str, *codes: str, ref: Any = None, close_after: int | None = None) -> Expected:
    return Expected({kind: frozenset(codes)}, ref, close_after)


def closes(*codes: int) -> Expected:
    return Expected(close_instead=frozenset(codes))


def fits_msgpack(number: int) -> bool:
    return -(2**63) <= number < 2**64


def expected_after_hello(payload: bytes | str) -> Allowed:
    """Spec §4's answer to a frame on an authenticated connection."""
    if wire_size(payload) > LIMIT:
        return (closes(1009),)
    try:
        message = decode(payload)
    except FrameError:
        return (answer("error", ErrorCode.BAD_REQUEST),)
    ref = message.get("ref")
    if ref is not None and (not isinstance(ref, int) or isinstance(ref, bool)):
        return (answer("error", ErrorCode.BAD_REQUEST),)
    kind, value = message["t"], message.get("value")
    if kind == "ping":
        expected = answer("pong", ref=ref)
    elif kind == "bye":
        expected = answer("ack", ref=ref, close_after=1000)
    elif kind == "status" and isinstance(value, str) and STATUS_VALUE.fullmatch(value):
        if value == "available" or value in DEFAULT_STATUSES:
            expected = answer("ack", ref=ref)
        else:
            expected = answer("error", ErrorCode.UNKNOWN_STATUS, ref=ref)
    elif kind == "activity" and isinstance(value, str) and value in ACTIVITY_VALUES:
        # Whether the transition is allowed depends on the activity so far.
        expected = Expected(
            {"ack": frozenset(), "error": frozenset({ErrorCode.INVALID_TRANSITION})}, ref
        )
    else:
        expected = answer("error", ErrorCode.BAD_REQUEST, ref=ref)
    if ref is not None and not fits_msgpack(ref):
        # Only a JSON frame carries such a ref; §4 does not say whether a server
        # must echo it (a msgpack connection cannot) or may refuse it.
        return (expected, answer("error", ErrorCode.BAD_REQUEST))
    return (expected,)


def expected_first(frame: Frame, payload: bytes | str) -> Allowed:
    """Spec §4's answer to the first frame of a connection (no Authorization header)."""
    if wire_size(payload) > LIMIT:
        return (closes(1009),)
    try:
        message = decode(payload)
    except FrameError:
        return (closes(4500),)
    session, status = message.get("session"), message.get("status")
    if (
        message["t"] != "hello"
        or (session is not None and not isinstance(session, str))
        or (status is not None and not (isinstance(status, str) and STATUS_VALUE.fullmatch(status)))
    ):
        return (closes(4500),)
    token = frame.body.get("token") if isinstance(frame.body, dict) else None
    if not isinstance(token, Signed):
        return (closes(4501),)  # missing, not a string, or not signed with the secret
    if status is None or status == "available" or status in DEFAULT_STATUSES:
        allowed: Allowed = (answer("welcome"),)
    else:
        allowed = (answer("error", ErrorCode.UNKNOWN_STATUS, close_after=4500),)
    if token.claims:  # signed, but maybe for no agent: 4501 bad claims, 4503 another role
        allowed += (closes(4501, 4503),)
    if session is not None and has_lone_surrogate(session):
        # Not a session id any server made: an unknown session (§4), or a protocol error.
        allowed += (closes(4500),)
    return allowed


async def check_answers(
    agent: RawAgent, allowed: Allowed, payload: bytes | str
) -> dict[str, Any] | None:
    """Hold what the server does with ``payload`` to ``allowed``; the answer, if any."""
    try:
        reply = await agent.recv()  # bounded: a hang fails
    except ConnectionClosed:
        code, reason = agent.ws.close_code, agent.ws.close_reason
        assert any(code in expected.close_instead for expected in allowed), (
            f"closed {code} {reason!r} on {payload!r}; allowed: {allowed}"
        )
        return None
    fitting = [expected for expected in allowed if expected.allows(reply)]
    assert fitting, (payload, reply, allowed)
    if reply["t"] == "error":
        assert reply["code"] in SPEC_ERROR_CODES and isinstance(reply["message"], str)
    if fitting[0].close_after is not None:
        code, reason = await agent.closed()
        assert code == fitting[0].close_after, (payload, code, reason)
    return reply


class ErrorLog(logging.Handler):
    """Collects the server's ERROR records (uvicorn's loggers do not propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __str__(self) -> str:
        formatter = logging.Formatter("%(name)s: %(message)s")
        return "\n".join(formatter.format(record) for record in self.records)


@pytest.fixture
async def fuzz_server(start_server: Callable[..., Awaitable[RunningServer]]) -> RunningServer:
    """A server whose rate limit and heartbeat stay out of the fuzzing's way."""
    return await start_server(
        rate_limit=10_000,
        rate_burst=10_000,
        ping_interval=seconds(30),
        ping_timeout=seconds(30),
        max_message_size=LIMIT,
    )


@pytest.fixture
def server_errors(fuzz_server: RunningServer) -> Iterator[ErrorLog]:
    # Only once the server started: uvicorn's logging setup replaces its loggers' handlers.
    handler = ErrorLog()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def signer(server: RunningServer, agent: str) -> Callable[[dict[str, Any]], str]:
    """Signs an agent's claims, overridden by ``claims``, with the server's secret."""

    def sign(claims: dict[str, Any]) -> str:
        base = {"sub": agent, "company": "acme", "role": "agent", "exp": int(time.time()) + 3600}
        return jwt.encode({**base, **claims}, server.secret, algorithm="HS256")

    return sign


async def run_property(
    strategy: st.SearchStrategy[Frame],
    check: Callable[[Frame], Awaitable[None]],
    *,
    max_examples: int,
    examples: tuple[Frame, ...] = (),
) -> None:
    """Run ``check`` on ``examples``, then on Hypothesis', each in this event loop."""
    loop = asyncio.get_running_loop()

    @settings(
        DETERMINISTIC,
        max_examples=max_examples,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def prop(frame: Frame) -> None:
        future = asyncio.run_coroutine_threadsafe(check(frame), loop)
        try:
            future.result(seconds(30))
        finally:
            future.cancel()

    for frame in examples:
        prop = example(frame)(prop)
    await asyncio.to_thread(prop)


#: Frames that once broke the server after hello, tried first.
AFTER_HELLO_REGRESSIONS: Final = (
    Frame("json", {"t": "activity", "value": []}),  # `value in ACTIVITY_VALUES`: unhashable
    Frame("json", {"t": "ping", "ref": 2**64}, MSGPACK),  # a ref msgpack cannot echo
)


class Fuzzer:
    """The fuzzed consoles (an agent per subprotocol) and a well-behaved one."""

    STEADY_EVERY: Final = 10

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.agents: dict[str, RawAgent] = {}
        self.examples = 0
        self.steady: RawAgent | None = None

    async def start(self) -> None:
        self.steady, _ = await open_agent(self.server, "steady", subprotocol=MSGPACK)

    async def agent(self, subprotocol: str) -> RawAgent:
        if subprotocol not in self.agents:
            name = "fuzz-json" if subprotocol == JSON else "fuzz-msgpack"
            self.agents[subprotocol], _ = await open_agent(
                self.server, name, subprotocol=subprotocol
            )
        return self.agents[subprotocol]

    async def drop(self, subprotocol: str) -> None:
        agent = self.agents.pop(subprotocol, None)
        if agent is not None:
            await agent.ws.close()

    async def check(self, frame: Frame) -> None:
        agent = await self.agent(frame.conn)
        payload = render(frame, signer(self.server, "someone"))
        try:
            await agent.ws.send(payload)
            await check_answers(agent, expected_after_hello(payload), payload)
        except BaseException:
            await self.drop(frame.conn)  # in whatever state it is: start afresh
            raise
        if agent.ws.close_code is not None:
            await self.drop(frame.conn)
        self.examples += 1
        if self.examples % self.STEADY_EVERY == 0:
            assert self.steady is not None
            pong = await self.steady.request({"t": "ping", "ref": self.examples})
            assert pong == {"t": "pong", "ref": self.examples}

    async def finish(self) -> None:
        assert self.steady is not None
        ack = await self.steady.request({"t": "status", "value": "break", "ref": 1})
        assert ack["t"] == "ack" and ack["ref"] == 1, ack
        assert ack["event"]["value"] == "break" and ack["state"]["status"] == "break"
        await self.steady.ws.close()

    async def close(self) -> None:
        for subprotocol in list(self.agents):
            await self.drop(subprotocol)
        if self.steady is not None:
            await self.steady.ws.close()


async def assert_fresh_hello_works(server: RunningServer) -> None:
    fresh, welcome = await open_agent(server, "fresh")
    assert welcome["resumed"] is False
    assert await fresh.request({"t": "ping", "ref": 2}) == {"t": "pong", "ref": 2}
    await fresh.ws.close()


async def test_fuzzed_frames_after_hello(
    fuzz_server: RunningServer, server_errors: ErrorLog
) -> None:
    fuzzer = Fuzzer(fuzz_server)
    await fuzzer.start()
    try:
        await run_property(FRAMES, fuzzer.check, max_examples=150, examples=AFTER_HELLO_REGRESSIONS)
        await fuzzer.finish()
    finally:
        await fuzzer.close()
    await assert_fresh_hello_works(fuzz_server)
    assert not server_errors.records, str(server_errors)


#: First frames that once broke the server, tried first.
FIRST_FRAME_REGRESSIONS: Final = (
    Frame("json", {"t": "hello", "token": "\ud800"}),  # jwt encodes it: UnicodeEncodeError
    Frame("json", {"t": "hello", "token": VALID, "session": "\ud800"}),  # cjson refuses \ud800
    Frame("json", {"t": "hello", "token": Signed({"role": []})}),  # `role in ROLES`: unhashable
    Frame("json", {"t": "hello", "token": Signed({"exp": 10**400})}),  # exp - time(): overflow
)


async def test_fuzzed_first_frames(fuzz_server: RunningServer, server_errors: ErrorLog) -> None:
    connections = 0

    async def check(frame: Frame) -> None:
        nonlocal connections
        connections += 1
        payload = render(frame, signer(fuzz_server, f"gate-{connections}"))
        allowed = expected_first(frame, payload)
        ws = await connect(fuzz_server.agent_url, subprotocols=[frame.conn])
        agent = RawAgent(ws, frame.conn)
        try:
            await ws.send(payload)
            reply = await check_answers(agent, allowed, payload)
            if reply is not None and reply["t"] == "welcome":
                # A session really opened: the connection serves.
                try:
                    pong = await agent.request({"t": "ping", "ref": 1})
                except ConnectionClosed:
                    code = agent.ws.close_code
                    raise AssertionError(f"closed {code} after welcome to {payload!r}") from None
                assert pong == {"t": "pong", "ref": 1}
        finally:
            await ws.close()

    await run_property(FIRST_FRAMES, check, max_examples=30, examples=FIRST_FRAME_REGRESSIONS)
    await assert_fresh_hello_works(fuzz_server)
    assert not server_errors.records, str(server_errors)

"""The shared wire codec: both subprotocols round-trip; anything else is a FrameError."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from client_sdk.protocol import JSON, MSGPACK, SUBPROTOCOLS, FrameError, decode, encode, is_terminal

# Values both codecs carry unchanged: no tuples (they come back as lists), no NaN
# (never equal to itself), integers within msgpack's 64 bits.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)
messages = st.builds(
    lambda kind, fields: {**fields, "t": kind},
    st.text(min_size=1),
    st.dictionaries(st.text(), values, max_size=6),
)


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
@given(message=messages)
def test_round_trip(subprotocol: str, message: dict[str, Any]) -> None:
    assert decode(encode(message, subprotocol)) == message


def test_frame_kinds() -> None:
    message = {"t": "status", "value": "break", "ref": 7}
    text = encode(message, JSON)
    assert isinstance(text, str)
    assert text == '{"t":"status","value":"break","ref":7}'
    assert isinstance(encode(message, MSGPACK), bytes)


def test_json_keeps_non_ascii_text() -> None:
    assert encode({"t": "x", "reason": "Razón"}, JSON) == '{"t":"x","reason":"Razón"}'


def test_text_frames_are_json_and_binary_frames_msgpack() -> None:
    message = {"t": "ping", "ref": 1}
    assert decode(json.dumps(message)) == message
    assert decode(msgpack.packb(message)) == message
    # The frame's kind decides the codec, never its content.
    with pytest.raises(FrameError):
        decode(json.dumps(message).encode())


@pytest.mark.parametrize("value", [[], [{"t": "x"}], "t", 7, 1.5, None, True])
@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
def test_a_frame_must_be_a_map(subprotocol: str, value: object) -> None:
    data = json.dumps(value) if subprotocol == JSON else msgpack.packb(value)
    with pytest.raises(FrameError, match="must be a map"):
        decode(data)


@pytest.mark.parametrize("message", [{}, {"ref": 1}, {"t": 1}, {"t": None}, {"t": ["x"]}])
@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
def test_a_frame_needs_a_string_t(subprotocol: str, message: dict[str, Any]) -> None:
    with pytest.raises(FrameError, match="string 't'"):
        decode(encode(message, subprotocol))


def test_bytes_t_is_not_a_string_t() -> None:
    with pytest.raises(FrameError, match="string 't'"):
        decode(msgpack.packb({"t": b"ping"}, use_bin_type=True))
    # A bytes *key* "t" is not the key "t" either.
    with pytest.raises(FrameError, match="string 't'"):
        decode(msgpack.packb({b"t": "ping"}, use_bin_type=True))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x81\xa1t",  # a map cut short
        b"\x81\xa1t\xa1x\x00",  # one map, then extra bytes
        b"\xdd\xff\xff\xff\xff",  # an array claiming 4 billion items
        b"\x81\x01\xa1x",  # an integer key
        b"\x81\xc0\xa1x",  # a nil key
        b"\xc7\x01\xff\x00",  # a timestamp of the wrong length
        b"\xff\xfe\xfd",
    ],
)
def test_garbage_bytes(data: bytes) -> None:
    with pytest.raises(FrameError):
        decode(data)


@pytest.mark.parametrize("data", ["", "{", '{"t": "x",}', "{'t': 'x'}", "\x00", "1" * 5000])
def test_garbage_text(data: str) -> None:
    with pytest.raises(FrameError):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x81\xa1t\xa2\xff\xfe",  # in a value
        b"\x81\xa2\xff\xfe\xa1x",  # in a key
    ],
)
def test_invalid_utf8_in_msgpack_strings(data: bytes) -> None:
    with pytest.raises(FrameError):
        decode(data)


def test_deeply_nested_json() -> None:
    with pytest.raises(FrameError, match="nested too deeply"):
        decode("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FrameError, match="nested too deeply"):
        decode('{"t": "x", "v": ' + "[" * 100_000 + "]" * 100_000 + "}")


def test_deeply_nested_msgpack() -> None:
    with pytest.raises(FrameError):
        decode(b"\x91" * 100_000 + b"\xc0")
    with pytest.raises(FrameError):
        decode(b"\x82\xa1t\xa1x\xa1v" + b"\x91" * 100_000 + b"\xc0")


@given(data=st.binary(max_size=64))
def test_any_bytes_decode_to_a_frame_or_raise_frame_error(data: bytes) -> None:
    try:
        message = decode(data)
    except FrameError:
        return
    assert isinstance(message, dict)
    assert isinstance(message["t"], str)


@given(data=st.text(max_size=64))
def test_any_text_decodes_to_a_frame_or_raises_frame_error(data: str) -> None:
    try:
        message = decode(data)
    except FrameError:
        return
    assert isinstance(message["t"], str)


def test_terminal_range() -> None:
    assert [is_terminal(code) for code in (1000, 4499, 4500, 4999, 5000)] == [
        False,
        False,
        True,
        True,
        False,
    ]

"""The shared vocabulary stands alone, and the server does not load the SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest

from presence_protocol import CloseCode, is_stream_id, is_terminal, stream_id_key


def loaded_after(statement: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after ``statement``."""
    script = f"{statement}\nimport sys\nprint(' '.join({{m.split('.')[0] for m in sys.modules}}))"
    output = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    return set(output.split())


def test_the_vocabulary_imports_nothing_of_the_project_nor_any_codec() -> None:
    loaded = loaded_after("import presence_protocol.vocabulary")
    assert not loaded & {"server", "client_sdk", "msgpack", "websockets", "redis"}


def test_the_server_loads_neither_the_sdk_nor_its_http_client() -> None:
    loaded = loaded_after("import server.app")
    assert "server" in loaded
    assert not loaded & {"client_sdk", "httpx"}


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("0-0", True),
        ("1732400000000-3", True),
        (f"{2**64 - 1}-{2**64 - 1}", True),
        (f"{2**64}-0", False),  # Redis refuses a part over 64 bits
        ("1-" + "9" * 21, False),
        ("٣-1", False),  # a non-ASCII digit: int() would take it, Redis would not
        ("1", False),
        ("1-2-3", False),
        ("-1-2", False),
        ("", False),
        (17, False),
    ],
)
def test_stream_ids(text: object, valid: bool) -> None:
    assert is_stream_id(text) is valid


def test_stream_ids_order_as_numbers() -> None:
    assert stream_id_key("5-10") > stream_id_key("5-9")
    assert stream_id_key("10-0") > stream_id_key("9-99")


def test_every_close_code_the_server_sends_is_named_and_classified() -> None:
    reconnect = {CloseCode.GOING_AWAY, CloseCode.SERVICE_RESTART, CloseCode.TRY_AGAIN_LATER}
    assert not any(is_terminal(code) for code in reconnect | {CloseCode.TOO_SLOW})
    assert all(is_terminal(code) for code in CloseCode if code >= 4500)

"""Pins the SDK's public API, so that changing it is a decision, not an accident."""

from __future__ import annotations

import client_sdk
from client_sdk import acd, backoff, console, errors, monitor

PUBLIC = {
    "AcdClient",
    "Ack",
    "AgentConsole",
    "Change",
    "CloseCode",
    "ConnectionLost",
    "Cursor",
    "ErrorCode",
    "LiveMonitor",
    "MonitorEvent",
    "PresenceError",
    "ProtocolError",
    "RequestError",
    "Resnapshot",
    "SessionClosed",
    "Welcome",
    "apply_event",
    "apply_snapshot",
    "exponential_backoff",
    "should_reconnect",
}


def test_package_exports() -> None:
    assert set(client_sdk.__all__) == PUBLIC
    assert len(client_sdk.__all__) == len(PUBLIC)


def test_every_export_resolves() -> None:
    for name in client_sdk.__all__:
        assert getattr(client_sdk, name) is not None, name


def test_modules_export_only_what_the_package_reexports() -> None:
    for module in (acd, backoff, console, errors, monitor):
        assert set(module.__all__) <= PUBLIC, module.__name__
        for name in module.__all__:
            assert getattr(module, name) is getattr(client_sdk, name), name


def test_errors_share_one_root() -> None:
    for name in ("ConnectionLost", "ProtocolError", "RequestError", "SessionClosed"):
        assert issubclass(getattr(client_sdk, name), client_sdk.PresenceError), name

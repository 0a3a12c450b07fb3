"""The console and Live Monitor pages in a real Chromium, against a real server process
and Redis: each page in its own browser (its own context: storage, sockets).

Screenshots land in test-artefacts/.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from client_sdk import apply_event, apply_snapshot
from tests.browser import chromium, console_errors, needs_browser, screenshot, text_of, wait_for
from tests.clients import raw_agent
from tests.processes import ServerProcess, presence_server
from tests.redis_server import free_port
from tests.servers import process_env, token
from tests.timing import seconds

pytestmark = needs_browser


Started = AbstractAsyncContextManager[ServerProcess]
ServerAt = Callable[..., Started]


@pytest.fixture
def server_at(redis_url: str, key_prefix: str) -> ServerAt:
    """Starts a server process on ``port`` (a free one unless given), with ``settings``."""

    def start(
        port: int | None = None, **settings: Any
    ) -> AbstractAsyncContextManager[ServerProcess]:
        return presence_server(process_env(redis_url, key_prefix, **settings), port=port)

    return start


@pytest.fixture
def browsers() -> Iterator[tuple[WebDriver, WebDriver]]:
    """Two browsers: the agent's and the supervisor's."""
    with chromium() as agent, chromium() as supervisor:
        yield agent, supervisor


def open_console(driver: WebDriver, base: str, agent: str) -> str:
    """The console page of ``agent``, once welcomed: its session id."""
    driver.get(f"{base}/console#token={token(agent)}")
    return str(wait_for(driver, lambda d: d.execute_script("return document.body.dataset.session")))


def open_monitor(driver: WebDriver, base: str, role: str = "supervisor") -> None:
    driver.get(f"{base}/monitor#token={token('sofia', role)}")
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.snapshots") == "1")


def cell(driver: WebDriver, agent: str, column: str) -> str:
    return text_of(driver, f"tr[data-agent='{agent}'] td.{column}")


def page_data(driver: WebDriver, name: str) -> Any:
    return driver.execute_script(f"return document.body.dataset.{name}")


def set_status(console: WebDriver, value: str) -> None:
    console.find_element("css selector", f"button[data-status='{value}']").click()
    wait_for(console, lambda d: page_data(d, "status") == value)


async def agents_served(server: ServerProcess) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=seconds(5)) as http:
        response = await http.get(
            f"{server.http_url}/v1/agents",
            headers={"Authorization": f"Bearer {token('sofia', 'supervisor')}"},
        )
    return {state["agent"]: state for state in response.json()["agents"]}


def monitor_view(driver: WebDriver) -> dict[str, dict[str, Any]]:
    """The monitor page's fold, as JSON: what it would render."""
    text = driver.execute_script(
        "const rows = document.querySelectorAll('tr[data-agent]');"
        "return JSON.stringify(Object.fromEntries([...rows].map(r => [r.dataset.agent, "
        "{status: r.querySelector('td.status').textContent, "
        "connection: r.querySelector('td.connection').textContent}])));"
    )
    return dict(json.loads(text))


async def test_a_status_set_in_the_console_shows_on_the_monitor(
    server_at: ServerAt,
    browsers: tuple[WebDriver, WebDriver],
    request: pytest.FixtureRequest,
) -> None:
    console, monitor = browsers
    async with server_at() as server:
        open_console(console, server.http_url, "a-1")
        open_monitor(monitor, server.http_url)
        wait_for(monitor, lambda d: cell(d, "a-1", "status") == "Ocupado")  # the initial status
        set_status(console, "break")
        wait_for(monitor, lambda d: cell(d, "a-1", "status") == "Descanso")
        assert cell(monitor, "a-1", "connection") == "En línea"
        assert text_of(monitor, "[data-counter=status-break] b") == "1"
        assert monitor.execute_script("return location.hash") == "", (
            "the token left the address bar"
        )
        screenshot(console, request, "console")
        screenshot(monitor, request, "monitor")
        for driver in browsers:
            assert [e for e in console_errors(driver) if "favicon" not in e["message"]] == []


async def test_both_pages_recover_when_the_server_restarts(
    server_at: ServerAt,
    browsers: tuple[WebDriver, WebDriver],
    request: pytest.FixtureRequest,
) -> None:
    console, monitor = browsers
    port = free_port()
    async with server_at(port) as server:
        session = open_console(console, server.http_url, "a-1")
        set_status(console, "meal")
        open_monitor(monitor, server.http_url)
        wait_for(monitor, lambda d: cell(d, "a-1", "status") == "Comida")
    # Drained: the console saw 1001, the monitor too; both are retrying.
    wait_for(console, lambda d: text_of(d, "#link-state") == "Reconectando…")
    wait_for(
        monitor,
        lambda d: d.find_element("id", "link-state").get_attribute("data-state") == "reconnecting",
    )
    screenshot(monitor, request, "monitor-reconnecting")
    async with server_at(port) as server:
        wait_for(console, lambda d: page_data(d, "resumed") == "true", within=30)
        assert page_data(console, "session") == session
        assert page_data(console, "status") == "meal", "the status carried over"
        wait_for(
            monitor,
            lambda d: d.find_element("id", "link-state").get_attribute("data-state") == "resumed",
            within=30,
        )
        # Recovered from its cursor: no second snapshot, and every missed event folded.
        assert page_data(monitor, "snapshots") == "1"
        served = await agents_served(server)
        assert served["a-1"]["connection"] == "online" and served["a-1"]["session"] == session
        wait_for(monitor, lambda d: cell(d, "a-1", "connection") == "En línea")
        assert set(monitor_view(monitor)) == set(served)
        log = console.find_element("id", "log").text
        assert f"Sesión {session} reanudada (reconnected)" in log
        screenshot(console, request, "console-resumed")
        screenshot(monitor, request, "monitor-resumed")


async def test_a_reload_of_the_console_resumes_its_session(
    server_at: ServerAt, browsers: tuple[WebDriver, WebDriver]
) -> None:
    console, _ = browsers
    async with server_at() as server:
        session = open_console(console, server.http_url, "a-1")
        console.refresh()  # the token is kept for the tab: no fragment needed
        wait_for(console, lambda d: page_data(d, "resumed") == "true")
        assert page_data(console, "session") == session


async def test_the_monitor_forces_a_status_and_kicks_after_confirming(
    server_at: ServerAt,
    browsers: tuple[WebDriver, WebDriver],
    request: pytest.FixtureRequest,
) -> None:
    console, monitor = browsers
    async with server_at() as server:
        open_console(console, server.http_url, "a-1")
        open_monitor(monitor, server.http_url)
        wait_for(monitor, lambda d: cell(d, "a-1", "connection") == "En línea")

        Select(
            monitor.find_element("css selector", "tr[data-agent='a-1'] select.force")
        ).select_by_value("training")
        wait_for(monitor, lambda d: d.find_elements("css selector", "dialog#confirm[open]"))
        screenshot(monitor, request, "confirm")
        assert cell(monitor, "a-1", "status") == "Ocupado", "nothing changes before confirming"
        monitor.find_element("id", "confirm-ok").click()
        wait_for(monitor, lambda d: cell(d, "a-1", "status") == "Capacitación")
        wait_for(console, lambda d: page_data(d, "status") == "training")

        monitor.find_element("css selector", "tr[data-agent='a-1'] button.kick").click()
        wait_for(monitor, lambda d: d.find_elements("css selector", "dialog#confirm[open]"))
        monitor.find_element("id", "confirm-ok").click()
        wait_for(console, lambda d: page_data(d, "closeCode") == "4510")
        wait_for(monitor, lambda d: cell(d, "a-1", "connection") == "Desconectado")
        assert text_of(console, "#link-state") == "Desconectado"
        served = await agents_served(server)
        assert served["a-1"]["connection"] == "offline"
        screenshot(console, request, "console-kicked")


async def test_hostile_labels_render_as_text(
    server_at: ServerAt,
    browsers: tuple[WebDriver, WebDriver],
    request: pytest.FixtureRequest,
) -> None:
    console, monitor = browsers
    hostile = '<img src=x onerror="window.pwned=1">"\''
    async with server_at() as server:
        async with httpx.AsyncClient(timeout=seconds(5)) as http:
            configured = await http.put(
                f"{server.http_url}/v1/config",
                headers={"Authorization": f"Bearer {token('root', 'admin')}"},
                json={"statuses": [{"value": "x-ray", "label": hostile}, {"value": "busy"}]},
            )
        assert configured.status_code == 200, configured.text
        open_console(console, server.http_url, "a.1_-x")
        set_status(console, "x-ray")
        open_monitor(monitor, server.http_url)
        wait_for(monitor, lambda d: cell(d, "a.1_-x", "status") == hostile)
        assert text_of(console, "#status") == hostile
        for driver in browsers:
            assert driver.execute_script("return window.pwned") is None
            assert driver.find_elements("css selector", "main img") == []
        screenshot(monitor, request, "monitor")


async def test_the_origin_allowlist_applies_to_the_pages(
    server_at: ServerAt, browsers: tuple[WebDriver, WebDriver]
) -> None:
    allowed, refused = browsers
    port = free_port()
    async with server_at(port, allowed_origins=f"http://127.0.0.1:{port}"):
        assert open_console(allowed, f"http://127.0.0.1:{port}", "a-1")
        # Another origin for the browser, the same server: the handshake is refused (403).
        refused.get(f"http://localhost:{port}/console#token={token('a-2')}")
        wait_for(refused, lambda d: page_data(d, "closeCode") is not None)
        assert page_data(refused, "session") is None
        assert text_of(refused, "#notice")


async def test_the_fold_of_presence_js_is_the_python_sdks(
    server_at: ServerAt, browsers: tuple[WebDriver, WebDriver]
) -> None:
    """applySnapshot/applyEvent and apply_snapshot/apply_event, on the same sequences."""
    driver, _ = browsers
    states = [
        {
            "agent": f"a-{n}",
            "status": "available",
            "segments": ["sales"] if n % 2 else [],
            "version": f"1-{n}",
        }
        for n in range(4)
    ]
    changes = [
        {"agent": "a-1", "status": "break", "segments": ["sales"], "version": "2-0"},
        {"agent": "a-2", "status": "busy", "segments": ["sales"], "version": "2-1"},  # joins sales
        {"agent": "a-3", "status": "meal", "segments": [], "version": "2-2"},  # leaves sales
        {"agent": "a-9", "status": "available", "segments": [], "version": "2-3"},  # new, outside
        {"agent": "a-1", "status": "available", "segments": ["sales", "vip"], "version": "2-4"},
    ]
    expected: dict[str, list[Any]] = {}
    for segment in (None, "sales"):
        view = apply_snapshot(s for s in states if segment is None or segment in s["segments"])
        folds = []
        for change in changes:
            view = apply_event(view, {"event": {}, "state": change}, segment=segment)
            folds.append(sorted(view.items()))
        expected[str(segment)] = folds
    async with server_at() as server:
        driver.get(f"{server.http_url}/ui/favicon.svg")  # a page of the origin, to import from
        script = """
            const [states, changes, done] = arguments;
            import("/sdk/presence.js").then(({applySnapshot, applyEvent}) => {
              const out = {};
              for (const segment of [null, "sales"]) {
                const shown = (s) => segment === null || s.segments.includes(segment);
                let view = applySnapshot(states.filter(shown));
                out[String(segment === null ? "None" : segment)] = changes.map(change => {
                  view = applyEvent(view, {event: {}, state: change}, {segment});
                  return [...view.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1);
                });
              }
              done(JSON.stringify(out));
            }, (error) => done(String(error)));
        """
        got = json.loads(driver.execute_async_script(script, states, changes))
    assert got == json.loads(json.dumps(expected))


async def test_the_monitor_filters_sorts_counts_and_flags_time_over_a_threshold(
    server_at: ServerAt,
    browsers: tuple[WebDriver, WebDriver],
    request: pytest.FixtureRequest,
) -> None:
    _, monitor = browsers
    statuses = {"b-2": "break", "a-1": "available", "c-3": "meal"}
    async with server_at() as server:
        agents = [
            (await raw_agent(server.agent_url, agent, status=status))[0]
            for agent, status in statuses.items()
        ]
        try:
            open_monitor(monitor, server.http_url)
            wait_for(monitor, lambda d: len(monitor_view(d)) == 3)

            def counter(name: str) -> str:
                return text_of(monitor, f"[data-counter={name}] b")

            assert (counter("online"), counter("routable"), counter("status-break")) == (
                "3",
                "1",
                "1",
            )

            def order() -> list[str]:
                rows = monitor.find_elements("css selector", "tr[data-agent]")
                return [row.get_attribute("data-agent") or "" for row in rows if row.is_displayed()]

            Select(monitor.find_element("id", "sort")).select_by_value("agent")
            assert order() == ["a-1", "b-2", "c-3"]
            Select(monitor.find_element("id", "state-filter")).select_by_value("routable")
            assert order() == ["a-1"]
            Select(monitor.find_element("id", "state-filter")).select_by_value("")
            monitor.find_element("id", "search").send_keys("c-")
            assert order() == ["c-3"]
            monitor.find_element("id", "search").clear()
            monitor.find_element("id", "search").send_keys(" ")  # input event with no filter
            wait_for(monitor, lambda d: len(order()) == 3)

            # A threshold of 0 minutes for break: b-2's row stands out, the others don't.
            monitor.find_element("id", "thresholds").click()
            field = monitor.find_element(
                "css selector", "dialog#thresholds-dialog input[name=break]"
            )
            field.clear()
            field.send_keys("0")
            screenshot(monitor, request, "thresholds")
            monitor.find_element(
                "css selector", "dialog#thresholds-dialog button[value=ok]"
            ).click()
            wait_for(monitor, lambda d: d.find_elements("css selector", "tr.over"))
            over = monitor.find_elements("css selector", "tr.over")
            assert [row.get_attribute("data-agent") for row in over] == ["b-2"]
            screenshot(monitor, request, "over")
        finally:
            for agent in agents:
                await agent.ws.close()

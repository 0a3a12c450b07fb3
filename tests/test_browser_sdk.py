"""presence.js's clients in Chromium, against a real server process: acks and refusals
with the spec's codes, tokens refreshed after 4511, and the page's life (pagehide,
pageshow, online) steering reconnects."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from server.auth import issue
from tests.browser import chromium, needs_browser, wait_for
from tests.processes import presence_server
from tests.redis_server import free_port
from tests.servers import SECRET, process_env, token
from tests.timing import seconds

pytestmark = needs_browser

# Builds a ConsoleClient on window.console1, with the options the test gives as JSON (and a
# backoff of fixed delays, in seconds, when it gives "delays"); counts getToken's calls.
START_CONSOLE = """
const [options, done] = arguments;
import("/sdk/presence.js").then(async ({ConsoleClient}) => {
  window.tokens = options.tokens;
  window.tokenCalls = 0;
  window.events = [];
  const delays = options.delays;
  const client = new ConsoleClient(`ws://${location.host}/v1/agent`, {
    getToken: async () => window.tokens[Math.min(window.tokenCalls++, window.tokens.length - 1)],
    backoff: delays ? function* () { for (;;) yield delays; } : undefined,
    storage: null,
  });
  window.console1 = client;
  for (const type of ["connection", "welcome", "closed"]) {
    client.addEventListener(type, (event) => window.events.push([type, event.detail.status ?? null,
      event.detail.resumed ?? null, event.detail.code ?? null]));
  }
  try {
    const welcome = await client.connect();
    done(JSON.stringify({session: welcome.session}));
  } catch (error) {
    done(JSON.stringify({error: error.code}));
  }
});
"""

# Runs `await <expression>` on window.console1: {value} or {code} of the rejection.
AWAIT = """
const [expression, done] = arguments;
const client = window.console1;
Promise.resolve().then(() => eval(expression)).then(
  (value) => done(JSON.stringify({value: value ?? null})),
  (error) => done(JSON.stringify({code: error.code ?? String(error)})),
);
"""


@pytest.fixture
def driver() -> Iterator[WebDriver]:
    with chromium() as browser:
        yield browser


def run(driver: WebDriver, script: str, *arguments: Any) -> Any:
    return json.loads(driver.execute_async_script(script, *arguments))


def console(driver: WebDriver) -> Any:
    return driver.execute_script(
        "const c = window.console1; return {status: c.status, session: c.session, "
        "closeCode: c.closeCode, tokenCalls: window.tokenCalls, events: window.events};"
    )


async def test_requests_resolve_with_acks_and_reject_with_the_specs_codes(
    redis_url: str, key_prefix: str, driver: WebDriver
) -> None:
    async with presence_server(process_env(redis_url, key_prefix)) as server:
        driver.get(f"{server.http_url}/ui/favicon.svg")  # a document of the server's origin
        assert "session" in run(driver, START_CONSOLE, {"tokens": [token("a-1")]})
        ack = run(driver, AWAIT, "client.setStatus('break')")["value"]
        assert ack["event"]["value"] == "break" and ack["state"]["status"] == "break"
        assert run(driver, AWAIT, "client.setStatus('break')")["value"]["event"] is None
        assert run(driver, AWAIT, "client.setStatus('no-such')") == {"code": "unknown-status"}
        assert run(driver, AWAIT, "client.report('end-call')") == {"code": "invalid-transition"}
        assert run(driver, AWAIT, "client.ping()")["value"] >= 0
        assert run(driver, AWAIT, "client.bye()") == {"value": None}
        assert console(driver)["status"] == "closed"
        assert run(driver, AWAIT, "client.setStatus('busy')") == {"code": "closed"}


async def test_a_bad_token_rejects_connect_with_unauthorized(
    redis_url: str, key_prefix: str, driver: WebDriver
) -> None:
    async with presence_server(process_env(redis_url, key_prefix)) as server:
        driver.get(f"{server.http_url}/ui/favicon.svg")
        assert run(driver, START_CONSOLE, {"tokens": ["not-a-token"]}) == {"error": "unauthorized"}
        state = console(driver)
        assert state["status"] == "closed" and state["closeCode"] == 4501
        assert state["tokenCalls"] == 1, "a terminal close is never retried"


async def test_get_token_is_asked_again_after_4511_and_the_session_resumes(
    redis_url: str, key_prefix: str, driver: WebDriver
) -> None:
    async with presence_server(process_env(redis_url, key_prefix)) as server:
        driver.get(f"{server.http_url}/ui/favicon.svg")
        # Minted last, so it is still good at hello however slowly the server started.
        lifetime = max(3, round(seconds(3)))
        short = issue(
            SECRET, company="acme", sub="a-1", role="agent", ttl=lifetime, now=int(time.time())
        )
        opened = run(driver, START_CONSOLE, {"tokens": [short, token("a-1")], "delays": 0.05})
        # The short token expires: 4511; getToken gives the long one; the session goes on.
        wait_for(driver, lambda d: console(d)["tokenCalls"] >= 2, within=15)
        wait_for(driver, lambda d: ["welcome", None, True, None] in console(d)["events"])
        state = console(driver)
        assert ["connection", "reconnecting", None, 4511] in state["events"]
        assert state["status"] == "open" and state["session"] == opened["session"]
        assert ["connection", "open", True, None] in state["events"], "resumed, not a new session"


async def test_pagehide_closes_resumably_and_pageshow_reconnects(
    redis_url: str, key_prefix: str, driver: WebDriver
) -> None:
    async with presence_server(process_env(redis_url, key_prefix)) as server:
        driver.get(f"{server.http_url}/ui/favicon.svg")
        session = run(driver, START_CONSOLE, {"tokens": [token("a-1")], "delays": 600})["session"]
        driver.execute_script("window.dispatchEvent(new PageTransitionEvent('pagehide'))")
        assert console(driver)["status"] == "reconnecting"
        driver.execute_script(
            "window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))"
        )
        # At once, not after the backoff's 600 s.
        wait_for(driver, lambda d: console(d)["status"] == "open")
        assert console(driver)["session"] == session
        assert ["connection", "open", True, None] in console(driver)["events"]


async def test_online_cuts_the_reconnect_wait_short(
    redis_url: str, key_prefix: str, driver: WebDriver
) -> None:
    port = free_port()
    env = process_env(redis_url, key_prefix)
    async with presence_server(env, port=port) as server:
        driver.get(f"{server.http_url}/ui/favicon.svg")
        session = run(driver, START_CONSOLE, {"tokens": [token("a-1")], "delays": 600})["session"]
    wait_for(driver, lambda d: console(d)["status"] == "reconnecting")
    async with presence_server(env, port=port):
        driver.execute_script("window.dispatchEvent(new Event('offline'))")
        driver.execute_script("window.dispatchEvent(new Event('online'))")
        wait_for(driver, lambda d: console(d)["status"] == "open")
        assert console(driver)["session"] == session


START_MONITOR = """
const [monitorToken, done] = arguments;
import("/sdk/presence.js").then(async ({MonitorClient}) => {
  window.monitorEvents = [];
  const monitor = new MonitorClient(`ws://${location.host}/v1/monitor`, {
    token: monitorToken,
    backoff: function* () { for (;;) yield 0.05; },
  });
  window.monitor1 = monitor;
  const note = (type, entry) =>
    monitor.addEventListener(type, (e) => window.monitorEvents.push(entry(e)));
  note("snapshot", (e) => ["snapshot", e.detail.agents.size]);
  note("change", (e) => ["change", e.detail.event.value]);
  note("connection", (e) => ["connection", e.detail.status, e.detail.resumed ?? null,
    e.detail.code ?? null]);
  monitor.connect().then(() => done("{}"), (error) => done(JSON.stringify({error: error.code})));
});
"""


def monitor_events(driver: WebDriver) -> list[list[Any]]:
    return list(driver.execute_script("return window.monitorEvents"))


async def test_a_monitor_resnapshots_when_its_cursor_is_gone(
    redis_url: str, key_prefix: str, redis_client: Any, driver: WebDriver
) -> None:
    port = free_port()
    env = process_env(redis_url, key_prefix)
    async with presence_server(env, port=port) as server:
        driver.get(f"{server.http_url}/ui/favicon.svg")
        assert run(driver, START_CONSOLE, {"tokens": [token("a-1")]}).get("session")
        assert run(driver, START_MONITOR, token("sofia", "supervisor")) == {}
        assert run(driver, AWAIT, "client.setStatus('break')")["value"]["event"]["value"] == "break"
        wait_for(driver, lambda d: ["change", "break"] in monitor_events(d))
    # The company's log is lost while the monitor is away: its cursor names nothing any more.
    wait_for(driver, lambda d: ["connection", "reconnecting", None, 1001] in monitor_events(d))
    async for key in redis_client.scan_iter(match=f"{key_prefix}{{acme}}*"):
        await redis_client.delete(key)
    async with presence_server(env, port=port):
        fresh = ["connection", "open", False, None]
        wait_for(driver, lambda d: monitor_events(d).count(fresh) == 2)
        snapshots = [e for e in monitor_events(driver) if e[0] == "snapshot"]
        assert len(snapshots) == 2 and snapshots[0] == ["snapshot", 1]
        # The console came back too, as a new session (its own was lost): the view follows.
        online = "return window.monitor1.agents.get('a-1')?.connection === 'online'"
        wait_for(driver, lambda d: d.execute_script(online))


async def test_a_console_gives_up_on_a_server_that_stopped_answering(
    redis_url: str, key_prefix: str, driver: WebDriver
) -> None:
    """A frozen server (SIGSTOP) keeps the TCP connection open and says nothing: the page
    pings, hears nothing, reopens; once the server runs again the session resumes."""
    heartbeat = {"ping_interval": seconds(1), "ping_timeout": seconds(1)}
    async with presence_server(process_env(redis_url, key_prefix, **heartbeat)) as server:
        driver.get(f"{server.http_url}/ui/favicon.svg")
        options = {"tokens": [token("a-1")], "delays": 0.05}
        session = run(driver, START_CONSOLE, options)["session"]
        server.process.send_signal(signal.SIGSTOP)
        try:
            wait_for(driver, lambda d: console(d)["status"] == "reconnecting")
        finally:
            server.process.send_signal(signal.SIGCONT)
        wait_for(driver, lambda d: ["connection", "open", True, None] in console(d)["events"])
        assert console(driver)["session"] == session


async def test_a_monitor_resnapshots_after_1012_when_the_log_is_recreated(
    redis_url: str, key_prefix: str, redis_client: Any, driver: WebDriver
) -> None:
    async with presence_server(process_env(redis_url, key_prefix)) as server:
        driver.get(f"{server.http_url}/ui/favicon.svg")
        assert run(driver, START_CONSOLE, {"tokens": [token("a-1")]}).get("session")
        assert run(driver, START_MONITOR, token("sofia", "supervisor")) == {}
        # The log is lost under a running server; the next change starts a new one, whose
        # epoch the feed notices: its monitors are closed with 1012.
        async for key in redis_client.scan_iter(match=f"{key_prefix}{{acme}}*"):
            await redis_client.delete(key)
        assert run(driver, START_CONSOLE, {"tokens": [token("b-2")]}).get("session")
        wait_for(driver, lambda d: ["connection", "reconnecting", None, 1012] in monitor_events(d))
        wait_for(driver, lambda d: [e[0] for e in monitor_events(d)].count("snapshot") == 2)
        has_b2 = "return window.monitor1.agents.has('b-2')"
        wait_for(driver, lambda d: d.execute_script(has_b2))

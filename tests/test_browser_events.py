"""The Eventos de conexión page (/events) in a real browser, against a server process and Redis:
the seed's columns (Ejecutivo first for the company), the rows the API serves, one agent's view,
paging by the API's ``next``, the CSV download byte for byte the API's export, Spanish and
English, the glossary's tooltips, and a company's hostile status label shown as text."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from server.store import Store
from tests.browser import chromium, console_errors, needs_browser, screenshot, wait_for
from tests.clients import raw_agent
from tests.invariants import check_company
from tests.processes import ServerProcess, presence_server
from tests.servers import process_env, token
from tests.timing import eventually, seconds

pytestmark = needs_browser

ZONE: Final = "America/Santiago"
#: A status label an admin could give: markup, quotes and a handler that would set window.pwned.
HOSTILE: Final = '<img src=x onerror="window.pwned=1">"\''
COLUMNS_ES: Final = ["Fecha", "Tipo", "Valor", "Razón de desconexión", "ID sesión"]
COLUMNS_EN: Final = ["Date", "Type", "Value", "Disconnect reason", "Session ID"]

ROWS_JS: Final = """return [...document.querySelectorAll('table#events tbody tr.event')]
    .map(row => [...row.cells].map(cell => cell.textContent))"""
BUSY_JS: Final = "return document.querySelector('table#events')?.getAttribute('aria-busy')"
HEADER_JS: Final = (
    "return [...document.querySelectorAll('table#events thead th')].map(th => th.textContent)"
)


@dataclass
class Seeded:
    server: ServerProcess
    supervisor: str
    events: list[dict[str, Any]]

    def page(self, fragment: str = "") -> str:
        """The page's URL, the supervisor's token and ``fragment`` in its fragment."""
        return f"{self.server.http_url}/events#" + "&".join(
            filter(None, [f"token={self.supervisor}", fragment])
        )


async def company_events(http: httpx.AsyncClient, supervisor: str) -> list[dict[str, Any]]:
    answer = await http.get("/v1/events", headers={"Authorization": f"Bearer {supervisor}"})
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


@asynccontextmanager
async def seeded(redis_url: str, key_prefix: str) -> AsyncIterator[Seeded]:
    """A server process and a small log: three agents' sessions over real WebSockets, a status of
    the company's own with a hostile label, a call, a kick; every socket closed again before the
    browser opens, so nothing waits on this event loop while Selenium blocks it."""
    admin, supervisor = token("boss", "admin"), token("sup-1", "supervisor")
    async with (
        presence_server(process_env(redis_url, key_prefix)) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        config = await http.get("/v1/config", headers={"Authorization": f"Bearer {admin}"})
        statuses = [*config.json()["statuses"], {"value": "siesta", "label": HOSTILE}]
        answer = await http.put(
            "/v1/config",
            json={"statuses": statuses},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert answer.status_code == 200, answer.text

        a1, _ = await raw_agent(server.agent_url, "a-1", status="available")
        for ref, frame in enumerate(
            [
                {"t": "status", "value": "break"},
                {"t": "status", "value": "available"},
                {"t": "activity", "value": "in-call"},
                {"t": "activity", "value": "end-call"},
            ],
            start=1,
        ):
            assert (await a1.request({**frame, "ref": ref}))["t"] == "ack"
        await a1.send({"t": "bye"})
        await a1.closed()

        b2, _ = await raw_agent(server.agent_url, "b-2")
        for ref, value in enumerate(["meal", "siesta"], start=1):
            assert (await b2.request({"t": "status", "value": value, "ref": ref}))["t"] == "ack"
        await b2.ws.close()

        c3, _ = await raw_agent(server.agent_url, "c-3", status="available")
        kicked = await http.post(
            "/v1/agents/c-3/disconnect", headers={"Authorization": f"Bearer {supervisor}"}
        )
        assert kicked.status_code == 200, kicked.text
        await c3.closed()

        async def all_recorded() -> bool:
            events = await company_events(http, supervisor)
            return [event["value"] for event in events].count("disconnected") == 3

        await eventually(all_recorded, seconds(10))
        yield Seeded(server, supervisor, await company_events(http, supervisor))


def stamp(ms: int, zone: str) -> str:
    return datetime.fromtimestamp(ms // 1000, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def expected_rows(events: list[dict[str, Any]], zone: str, *, company: bool) -> list[list[str]]:
    rows = [
        [stamp(e["ts"], zone), e["type"], e["value"], e["reason"] or "", e["session"] or ""]
        for e in events
    ]
    return [[e["agent"], *row] for e, row in zip(events, rows, strict=True)] if company else rows


def rows_when(driver: WebDriver, count: int) -> list[list[str]]:
    """The table's event rows once there are ``count`` of them and nothing is loading."""

    def ready(d: WebDriver) -> list[list[str]] | None:
        if d.execute_script(BUSY_JS) != "false":
            return None
        rows: list[list[str]] = d.execute_script(ROWS_JS)
        return rows if len(rows) == count else None

    found = wait_for(driver, ready)
    assert found is not None
    return found


def header(driver: WebDriver) -> list[str]:
    found: list[str] = driver.execute_script(HEADER_JS)
    return found


@contextmanager
def downloads(driver: WebDriver) -> Iterator[Path]:
    """A fresh directory Chrome saves downloads into, for the block."""
    with tempfile.TemporaryDirectory(prefix="presence-downloads-") as directory:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": directory}
        )
        yield Path(directory)


def downloaded(driver: WebDriver, directory: Path) -> Path:
    """Click #download and wait for the whole file in ``directory``."""
    driver.find_element("css selector", "#download").click()

    def done(_: WebDriver) -> Path | None:
        files = [p for p in directory.iterdir() if not p.name.endswith(".crdownload")]
        partial = [p for p in directory.iterdir() if p.name.endswith(".crdownload")]
        return files[0] if files and not partial else None

    found = wait_for(driver, done)
    assert found is not None
    return found


async def api_csv(
    server: ServerProcess, supervisor: str, path: str, **params: str
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        answer = await http.get(
            path,
            params={"format": "csv", **params},
            headers={"Authorization": f"Bearer {supervisor}"},
        )
    assert answer.status_code == 200, answer.text
    return answer


async def test_the_company_log_pages_by_next_and_downloads_the_apis_csv_in_both_languages(
    redis_url: str, key_prefix: str, store: Store, request: pytest.FixtureRequest
) -> None:
    async with seeded(redis_url, key_prefix) as log:
        events = log.events
        assert len(events) > 10
        with chromium(height=1900) as driver:  # tall: the screenshots show the legend too
            driver.get(log.page(f"limit=5&tz={ZONE}"))
            # The seed's columns, the agent first for the whole company.
            wait_for(driver, lambda d: header(d) == ["Ejecutivo", *COLUMNS_ES])
            assert rows_when(driver, 5) == expected_rows(events[:5], ZONE, company=True)
            # The token left the address bar; the page's own filters stayed.
            assert "token=" not in driver.current_url
            assert "limit=5" in driver.current_url
            assert driver.find_element("css selector", "#more").is_displayed()
            # Page by page, by the API's next, to the end of the log.
            for shown in range(10, len(events) + 5, 5):
                driver.find_element("css selector", "#more").click()
                rows = rows_when(driver, min(shown, len(events)))
            assert rows == expected_rows(events, ZONE, company=True)
            assert not driver.find_element("css selector", "#more").is_displayed()
            # Each cell's description from the glossary, as its tooltip.
            first = driver.find_element("css selector", "table#events tr.event")
            assert first.find_element("css selector", "td.value").get_attribute("title") == (
                "Ejecutivo conectado"
            )
            assert first.find_element("css selector", "td.type").get_attribute("title") == (
                "Estado cambiado por sistema"
            )
            kick = driver.find_elements("css selector", "tr[data-value=disconnected] td.reason")[-1]
            assert kick.text == "kicked"
            assert kick.get_attribute("title") == "Un supervisor desconectó al ejecutivo"
            legend = driver.find_element("css selector", "#legend").text
            assert "Ejecutivo ha rechazado una llamada" in legend
            driver.execute_script("window.scrollTo(0, 0)")
            screenshot(driver, request, "es")

            # The CSV is the API's own export, byte for byte.
            with downloads(driver) as directory:
                saved = downloaded(driver, directory)
                spanish = await api_csv(
                    log.server, log.supervisor, "/v1/events", tz=ZONE, lang="es"
                )
                assert saved.read_bytes() == spanish.content
                assert saved.name == "eventos-de-conexion-acme.csv"

            # English: the columns and the CSV follow; the choice is remembered in the tab.
            driver.find_element("css selector", "#lang button[data-lang=en]").click()
            wait_for(driver, lambda d: header(d) == ["Agent", *COLUMNS_EN])
            assert rows_when(driver, len(events)) == expected_rows(events, ZONE, company=True)
            value = driver.find_element("css selector", "table#events tr.event td.value")
            assert value.get_attribute("title") == "agent connected: a new session"
            driver.execute_script("window.scrollTo(0, 0)")
            screenshot(driver, request, "en")
            with downloads(driver) as directory:
                saved = downloaded(driver, directory)
                english = await api_csv(
                    log.server, log.supervisor, "/v1/events", tz=ZONE, lang="en"
                )
                assert saved.read_bytes() == english.content
                assert english.content.startswith(b"Agent,Date,Type,Value,Disconnect reason")
            driver.refresh()
            wait_for(driver, lambda d: header(d) == ["Agent", *COLUMNS_EN])
            assert driver.execute_script("return document.documentElement.lang") == "en"
            assert console_errors(driver) == []
    await check_company(store, "acme")


async def test_one_agents_view_its_filters_and_its_csv(
    redis_url: str, key_prefix: str, request: pytest.FixtureRequest
) -> None:
    async with seeded(redis_url, key_prefix) as log:
        mine = [event for event in log.events if event["agent"] == "a-1"]
        with chromium() as driver:
            # The fragment opens one agent's events: no agent column.
            driver.get(log.page(f"agent=a-1&tz={ZONE}"))
            wait_for(driver, lambda d: header(d) == COLUMNS_ES)
            assert rows_when(driver, len(mine)) == expected_rows(mine, ZONE, company=False)
            assert "a-1" in driver.find_element("css selector", ".scope").text
            screenshot(driver, request, "agent")
            with downloads(driver) as directory:
                saved = downloaded(driver, directory)
                answer = await api_csv(
                    log.server, log.supervisor, "/v1/agents/a-1/events", tz=ZONE, lang="es"
                )
                assert saved.read_bytes() == answer.content
                assert saved.name == "eventos-de-conexion-acme-a-1.csv"

            # Type and Value filter the loaded rows, in the page.
            Select(driver.find_element("css selector", "select[name=value]")).select_by_value(
                "break"
            )
            assert rows_when(driver, 1) == expected_rows(
                [e for e in mine if e["value"] == "break"], ZONE, company=False
            )
            Select(driver.find_element("css selector", "select[name=value]")).select_by_value("")
            Select(driver.find_element("css selector", "select[name=type]")).select_by_value(
                "status-changed-user"
            )
            users = [e for e in mine if e["type"] == "status-changed-user"]
            assert rows_when(driver, len(users)) == expected_rows(users, ZONE, company=False)
            assert "type=status-changed-user" in driver.current_url
            Select(driver.find_element("css selector", "select[name=type]")).select_by_value("")
            rows_when(driver, len(mine))

            # A range with nothing in it, through the API's from/to.
            for name, moment in (("from", "2001-02-03T04:05"), ("to", "2001-02-04T04:05")):
                field = driver.find_element("css selector", f"input[name={name}]")
                driver.execute_script(
                    "arguments[0].value = arguments[1];"
                    "arguments[0].dispatchEvent(new Event('input', {bubbles: true}))",
                    field,
                    moment,
                )
            driver.find_element("css selector", "#apply").click()
            wait_for(
                driver, lambda d: "No hay eventos" in d.find_element("css selector", "#events").text
            )
            assert "from=2001-02-03T04%3A05" in driver.current_url

            # Back to the whole company from the agent's view, then one agent by its cell.
            driver.find_element("css selector", "button.chip:last-child").click()
            rows_when(driver, len(mine))
            driver.find_element("css selector", "#whole-company").click()
            wait_for(driver, lambda d: header(d)[0] == "Ejecutivo")
            rows_when(driver, len(log.events))
            driver.find_element(
                "css selector", "table#events tr.event:last-child td.agent button"
            ).click()
            wait_for(driver, lambda d: header(d) == COLUMNS_ES)
            kicked = [e for e in log.events if e["agent"] == "c-3"]
            assert rows_when(driver, len(kicked)) == expected_rows(kicked, ZONE, company=False)

            assert console_errors(driver) == []

            # An agent never seen: the API's refusal is shown, not swallowed.
            driver.get(f"{log.server.http_url}/events#agent=nobody")
            notice = wait_for(
                driver, lambda d: d.find_elements("css selector", ".notice.bad[data-source=events]")
            )
            assert "nobody" in notice[0].text and "not-found" in notice[0].text
            assert [e["source"] for e in console_errors(driver)] == ["network"]  # the 404 itself


async def test_a_hostile_status_label_is_only_text(
    redis_url: str, key_prefix: str, request: pytest.FixtureRequest
) -> None:
    async with seeded(redis_url, key_prefix) as log:
        siesta = [e for e in log.events if e["value"] == "siesta"]
        assert len(siesta) == 1
        with chromium() as driver:
            driver.get(log.page(f"value=siesta&tz={ZONE}"))
            assert rows_when(driver, 1) == expected_rows(siesta, ZONE, company=True)
            cell = driver.find_element("css selector", "table#events tr.event td.value")
            assert cell.get_attribute("title") == HOSTILE
            wait_for(driver, lambda d: HOSTILE in d.find_element("css selector", "#legend").text)
            options = driver.find_element("css selector", "select[name=value]").text
            assert HOSTILE in options
            assert driver.execute_script("return window.pwned") is None
            assert driver.find_elements("css selector", "main img") == []
            screenshot(driver, request, "hostile")
            assert console_errors(driver) == []

            # A hostile agent id can't be in the log, but a link can carry one: text again, and
            # the API's refusal shown.
            driver.get(f"{log.server.http_url}/events#agent={quote(HOSTILE)}")
            notice = wait_for(
                driver, lambda d: d.find_elements("css selector", ".notice.bad[data-source=events]")
            )
            assert "bad-request" in notice[0].text
            assert HOSTILE in driver.find_element("css selector", ".scope").text
            assert driver.execute_script("return window.pwned") is None
            assert driver.find_elements("css selector", "main img") == []

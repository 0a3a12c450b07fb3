"""The pages as files and HTTP responses (no browser): what they are served with, and
that nothing in them could run inline. The browser tests (test_browser_*.py) show
them working."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.servers import RunningServer
from tests.timing import seconds

WEB = Path(__file__).parent.parent / "server" / "web"
PAGES = sorted(WEB.glob("ui/*.html"))


class _Markup(HTMLParser):
    """Collects what CSP would have to allow: inline scripts, handlers, styles."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}>")
        if tag == "script":
            if names.get("src"):
                self.scripts.append(names["src"] or "")
            else:
                self._in_script = True
        if tag == "style":
            self.inline.append("<style>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("<script> with a body")


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_pages_hold_no_inline_script_or_style(page: Path) -> None:
    markup = _Markup()
    markup.feed(page.read_text())
    assert markup.inline == []
    assert markup.scripts == [f"/ui/{page.stem}.js"]
    assert (WEB / "ui" / f"{page.stem}.js").exists()


def test_scripts_never_parse_data_as_markup() -> None:
    """Agent ids and labels are data: the scripts build elements and set text, never
    HTML from strings."""
    for script in [*WEB.glob("ui/*.js"), *WEB.glob("sdk/*.js")]:
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{script.name} uses {sink}"


def test_the_package_ships_every_web_file() -> None:
    pyproject = tomllib.loads((WEB.parent.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["server"]
    for path in WEB.rglob("*"):
        if path.is_file():
            relative = str(path.relative_to(WEB.parent))
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} not shipped"


async def test_pages_are_served_with_a_policy_that_forbids_inline_script(
    server: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=seconds(5)) as http:
        home = await http.get("/")
        responses = {path: await http.get(path) for path in ("/monitor", "/events", "/console")}
        asset = await http.get("/ui/monitor.js")
        sdk = await http.get("/sdk/presence.js")
        missing = await http.get("/ui/nothing.js")
    assert home.status_code in (302, 307) and home.headers["location"] == "/monitor"
    for path, response in {**responses, "/ui/monitor.js": asset, "/sdk/presence.js": sdk}.items():
        assert response.status_code == 200, path
        policy = dict(
            directive.strip().split(" ", 1)
            for directive in response.headers["content-security-policy"].split(";")
        )
        assert policy["script-src"] == "'self'", path
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert policy["frame-ancestors"] == "'none'"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert responses["/monitor"].headers["content-type"].startswith("text/html")
    assert re.match(r"(text|application)/javascript", asset.headers["content-type"])
    assert missing.status_code == 404
    # Consoles of other origins import the client; the pages stay this origin's.
    assert sdk.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in asset.headers

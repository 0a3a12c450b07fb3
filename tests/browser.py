"""A real browser for the pages' tests: Debian's headless Chromium, driven by Selenium
through Debian's chromedriver, named by path so that nothing is downloaded at test time.

Without the two packages the browser tests skip, saying how to get them; with
``PRESENCE_TEST_REQUIRE_BROWSER=1`` (``.ci/run`` sets it, having installed them)
they fail instead, so that CI can't pass by skipping them.

Each test's screenshots go to ``test-artefacts/`` (``PRESENCE_TEST_ARTEFACTS``
moves it; git ignores it): look at them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.timing import seconds

CHROMIUM = Path(os.environ.get("PRESENCE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("PRESENCE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARTEFACTS = Path(
    os.environ.get("PRESENCE_TEST_ARTEFACTS", Path(__file__).parent.parent / "test-artefacts")
)

_MISSING = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
_WHY = (
    f"no browser ({', '.join(_MISSING)} missing): the browser tests need Debian's chromium and "
    "chromium-driver (apt-get install chromium chromium-driver); .ci/run installs them"
)

if _MISSING and os.environ.get("PRESENCE_TEST_REQUIRE_BROWSER") == "1":
    raise RuntimeError(_WHY)

#: A module's ``pytestmark`` when it drives the browser: marked ``browser`` (CI runs these
#: once, on the default store: they test the pages, not the topology), skipped without one.
needs_browser = [pytest.mark.browser, pytest.mark.skipif(bool(_MISSING), reason=_WHY)]

T = TypeVar("T")


@contextmanager
def chromium(width: int = 1440, height: int = 900) -> Iterator[WebDriver]:
    """A headless Chromium of its own profile: a separate browser context, with its own
    sessionStorage and cookies."""
    profile = tempfile.mkdtemp(prefix="presence-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
        # Root in a container has no user namespaces for the sandbox.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_script_timeout(seconds(30))
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], T], within: float = 10) -> T:
    """What ``condition`` returns once truthy, polled every 50 ms, within scaled seconds."""
    return WebDriverWait(driver, seconds(within), poll_frequency=0.05).until(condition)


def text_of(driver: WebDriver, selector: str) -> str:
    """The text of the first element matching ``selector``; "" while there is none."""
    found = driver.find_elements("css selector", selector)
    return found[0].text if found else ""


def screenshot(driver: WebDriver, request: pytest.FixtureRequest, name: str) -> Path:
    """Save the page as ``test-artefacts/<test>-<name>.png``."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    path = ARTEFACTS / f"{test}-{name}.png"
    driver.save_screenshot(str(path))
    return path


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """The page's console messages at level SEVERE (uncaught errors, CSP refusals)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]

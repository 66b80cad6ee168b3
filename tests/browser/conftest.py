"""Playwright driving Debian's Chromium (/usr/bin/chromium, installed by
devstack/bootstrap.sh) headless against the web client Envoy serves.

A missing browser fails these tests (it never skips them). After a failed
test its page's screenshot is in tests/browser/failures/ (ignored by git)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, sync_playwright

from tests.conftest import EDGE_URL

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
FAILURES = Path(__file__).resolve().parent / "failures"
PHONE = {"width": 375, "height": 740}


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="package")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="package")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run devstack/bootstrap.sh (it installs Debian's chromium)")
    # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
    browser = playwright_session.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    yield browser
    browser.close()


class Console:
    """Errors the page logged (a CSP violation, a failed script) fail the test."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def record(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not _expected_api_refusal(message.text):
            self.errors.append(message.text)


def _expected_api_refusal(text: str) -> bool:
    # The browser logs every 4xx answer of fetch(); the tests provoke some on purpose.
    return bool(re.search(r"Failed to load resource: the server responded with a status of 4\d\d", text))


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """The public API, for what a scenario sets up or checks behind the browser."""
    with httpx.Client(base_url=EDGE_URL, timeout=15.0) as client:
        yield client


@pytest.fixture
def console() -> Console:
    return Console()


def _context(browser: Browser, console: Console, **options) -> BrowserContext:
    context = browser.new_context(**{"base_url": EDGE_URL, **options})
    context.set_default_timeout(10_000)
    context.on("console", console.record)
    context.on("weberror", lambda error: console.errors.append(str(error.error)))
    return context


def _screenshot_on_failure(request: pytest.FixtureRequest, page: Page) -> None:
    failed = any(
        getattr(request.node, f"report_{when}", None) and getattr(request.node, f"report_{when}").failed
        for when in ("setup", "call")
    )
    if failed:
        FAILURES.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
        page.screenshot(path=str(FAILURES / f"{name}.png"), full_page=True)


@pytest.fixture
def page(browser: Browser, console: Console, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = _context(browser, console)
    page = context.new_page()
    yield page
    _screenshot_on_failure(request, page)
    context.close()


@pytest.fixture
def phone_page(browser: Browser, console: Console, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = _context(browser, console, viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    yield page
    _screenshot_on_failure(request, page)
    context.close()

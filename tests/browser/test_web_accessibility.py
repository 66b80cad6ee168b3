"""axe-core (web/'s devDependency, installed by the web build) finds no
serious or critical accessibility violation on the client's pages."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.accounts import PASSWORD, post_as
from tests.conftest import EDGE_URL, unique_username

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def audited(page: Page) -> Page:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: build the web client first (make web, or make up)")
    # An init script is not subject to the page's Content-Security-Policy.
    page.add_init_script(path=str(AXE))
    return page


def _serious_violations(page: Page) -> list[str]:
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_log_in_and_sign_up_pages(audited: Page):
    audited.goto("/")
    expect(audited.get_by_role("heading", name="Log in to Aviary")).to_be_visible()
    assert _serious_violations(audited) == []
    # The dark palette (prefers-color-scheme) keeps enough contrast too.
    audited.emulate_media(color_scheme="dark")
    assert _serious_violations(audited) == []
    audited.emulate_media(color_scheme="light")
    audited.goto("/signup")
    audited.get_by_label("Username").fill("a")
    audited.get_by_label("Password").fill(PASSWORD)
    audited.get_by_role("button", name="Sign up").click()
    expect(audited.get_by_role("alert")).to_be_visible()
    assert _serious_violations(audited) == []


def test_the_home_timeline(audited: Page):
    username = unique_username("ax")
    r = httpx.post(f"{EDGE_URL}/v1/accounts", json={"username": username, "password": PASSWORD}, timeout=15.0)
    assert r.status_code == 200, r.text
    post_as(username, "checked by axe #a11y")
    audited.goto("/")
    audited.get_by_label("Username").fill(username)
    audited.get_by_label("Password").fill(PASSWORD)
    audited.get_by_role("button", name="Log in").click()
    expect(audited.get_by_role("list", name="Home timeline")).to_contain_text("checked by axe")
    assert _serious_violations(audited) == []

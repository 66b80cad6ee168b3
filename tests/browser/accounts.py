"""Accounts and posts made through the API for the browser scenarios."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import EDGE_URL, unique_username

PASSWORD = "correct horse battery"


class Person:
    """An account signed up through the API; its display name is its username in capitals."""

    def __init__(self, http: httpx.Client, prefix: str, role: str = "USER") -> None:
        self.username = unique_username(prefix)
        self.name = self.username.upper()
        body = {"username": self.username, "password": PASSWORD, "displayName": self.name, "role": role}
        r = http.post("/v1/accounts", json=body)
        assert r.status_code == 200, r.text
        self.id = r.json()["user"]["id"]
        self.token = r.json()["accessToken"]
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def post(self, http: httpx.Client, text: str) -> str:
        """Posts `text`; its id."""
        r = http.post("/v1/posts", json={"text": text}, headers=self.auth)
        assert r.status_code == 200, r.text
        return r.json()["id"]


def log_in(page: Page, username: str, *, live: bool = False) -> None:
    """Logs in through the form; `live`: also waits for the tab's one live stream to answer."""
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    if live:
        with page.expect_response(lambda r: "/v1/events:watch" in r.url and r.ok):
            page.get_by_role("button", name="Log in").click()
    else:
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1, name="Home")).to_be_visible()


def post_as(username: str, text: str) -> None:
    with httpx.Client(base_url=EDGE_URL, timeout=15.0) as http:
        session = http.post("/v1/sessions", json={"username": username, "password": PASSWORD})
        assert session.status_code == 200, session.text
        token = session.json()["accessToken"]
        created = http.post("/v1/posts", json={"text": text}, headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 200, created.text
        wait_for_home_timeline(http, token, {created.json()["id"]})


def wait_for_home_timeline(http: httpx.Client, token: str, post_ids: set[str]) -> None:
    """Posts reach their author's home timeline through fanout, a moment after they are created."""
    deadline = time.monotonic() + 15
    while True:
        r = http.get("/v1/timelines/home", params={"pageSize": 100}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        missing = post_ids - {p["id"] for p in r.json()["posts"]}
        if not missing:
            return
        assert time.monotonic() < deadline, f"not in the home timeline after 15 s: {sorted(missing)}"
        time.sleep(0.2)

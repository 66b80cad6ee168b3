"""Accounts and posts made through the API for the browser scenarios."""

from __future__ import annotations

import time

import httpx

from tests.conftest import EDGE_URL

PASSWORD = "correct horse battery"


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

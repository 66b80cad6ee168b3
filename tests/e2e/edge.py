"""Small HTTP/JSON client helpers for end-to-end tests through Envoy."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from tests.conftest import unique_username

PASSWORD = "correct horse battery"


@dataclass
class Account:
    id: str
    username: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def sign_up(http: httpx.Client, prefix: str = "e") -> Account:
    username = unique_username(prefix)
    r = http.post("/v1/accounts", json={"username": username, "password": PASSWORD, "displayName": username.upper()})
    assert r.status_code == 200, r.text
    body = r.json()
    return Account(id=body["user"]["id"], username=username, token=body["accessToken"])


def follow(http: httpx.Client, who: Account, whom: Account) -> None:
    r = http.put(f"/v1/users/me/following/{whom.id}", headers=who.auth)
    assert r.status_code == 200, r.text


def unfollow(http: httpx.Client, who: Account, whom: Account) -> None:
    r = http.delete(f"/v1/users/me/following/{whom.id}", headers=who.auth)
    assert r.status_code == 200, r.text


def post(http: httpx.Client, author: Account, text: str) -> dict:
    r = http.post("/v1/posts", json={"text": text}, headers=author.auth)
    assert r.status_code == 200, r.text
    return r.json()


def home_ids(http: httpx.Client, reader: Account, page_size: int = 100) -> list[str]:
    r = http.get("/v1/timelines/home", params={"pageSize": page_size}, headers=reader.auth)
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json()["posts"]]


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """Polls predicate() until truthy or the deadline; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def error_message(response: httpx.Response) -> str:
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"], f"error without message: {response.text}"
    return body["message"]

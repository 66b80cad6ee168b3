"""Small HTTP/JSON client helpers for end-to-end tests through Envoy."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from tests.conftest import EDGE_URL, unique_username

PASSWORD = "correct horse battery"
# Access tokens live 15 minutes: an account kept longer (a module's fixture)
# refreshes its session before then.
REFRESH_AFTER_SECONDS = 10 * 60


@dataclass
class Account:
    id: str
    username: str
    token: str
    refresh_token: str = ""
    token_since: float = field(default_factory=time.monotonic)

    @classmethod
    def signed_up(cls, username: str, body: dict) -> "Account":
        """The account of a sign-up's (or log-in's) answer."""
        return cls(
            id=body["user"]["id"], username=username, token=body["accessToken"], refresh_token=body["refreshToken"]
        )

    @property
    def auth(self) -> dict[str, str]:
        if self.refresh_token and time.monotonic() - self.token_since > REFRESH_AFTER_SECONDS:
            self._refresh()
        return {"Authorization": f"Bearer {self.token}"}

    def _refresh(self) -> None:
        r = httpx.post(f"{EDGE_URL}/v1/sessions:refresh", json={"refreshToken": self.refresh_token}, timeout=15.0)
        assert r.status_code == 200, r.text
        body = r.json()
        self.token, self.refresh_token, self.token_since = body["accessToken"], body["refreshToken"], time.monotonic()


def sign_up(http: httpx.Client, prefix: str = "e") -> Account:
    username = unique_username(prefix)
    r = http.post("/v1/accounts", json={"username": username, "password": PASSWORD, "displayName": username.upper()})
    assert r.status_code == 200, r.text
    return Account.signed_up(username, r.json())


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

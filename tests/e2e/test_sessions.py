"""Sessions you can end, through Envoy: short-lived access tokens, rotating
refresh tokens (a reused one kills its family), log-out, password changes that
end every other session, and live streams that end with their token."""

from __future__ import annotations

import threading
import time

import httpx
import jwt
import pytest

from services.kit.server.auth import TokenIssuer
from tests.conftest import unique_username
from tests.e2e.edge import PASSWORD, error_message

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "plum velvet lantern"
ACCESS_TOKEN_SECONDS = 900  # the devstack runs with the default


class Session:
    """One log-in of an account: its current access and refresh tokens."""

    def __init__(self, username: str, body: dict) -> None:
        self.username = username
        self.user_id = body["user"]["id"]
        self.access_token = body["accessToken"]
        self.refresh_token = body["refreshToken"]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def session_id(self) -> str:
        return jwt.decode(self.access_token, options={"verify_signature": False})["sid"]


def sign_up(http: httpx.Client) -> Session:
    username = unique_username("ss")
    r = http.post("/v1/accounts", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return Session(username, r.json())


def log_in(http: httpx.Client, username: str, password: str = PASSWORD) -> Session:
    r = http.post("/v1/sessions", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return Session(username, r.json())


def refresh(http: httpx.Client, refresh_token: str) -> httpx.Response:
    return http.post("/v1/sessions:refresh", json={"refreshToken": refresh_token})


def refreshed(http: httpx.Client, session: Session) -> Session:
    """`session` with its tokens rotated."""
    r = refresh(http, session.refresh_token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refreshToken"] != session.refresh_token
    session.access_token, session.refresh_token = body["accessToken"], body["refreshToken"]
    return session


def change_password(http: httpx.Client, session: Session, current: str, new: str) -> httpx.Response:
    return http.post(
        "/v1/users/me:changePassword",
        json={"currentPassword": current, "newPassword": new},
        headers=session.auth,
    )


def whoami(http: httpx.Client, session: Session) -> httpx.Response:
    return http.get("/v1/users/me", headers=session.auth)


def test_sign_up_and_log_in_each_start_a_session_with_a_15_minute_access_token(http):
    signed_up = sign_up(http)
    logged_in = log_in(http, signed_up.username)
    r = http.post("/v1/sessions", json={"username": signed_up.username, "password": PASSWORD})
    body = r.json()
    assert body["expiresIn"] == ACCESS_TOKEN_SECONDS
    assert body["user"]["username"] == signed_up.username
    claims = jwt.decode(body["accessToken"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == ACCESS_TOKEN_SECONDS
    assert len({signed_up.session_id, logged_in.session_id, claims["sid"]}) == 3
    assert len({signed_up.refresh_token, logged_in.refresh_token, body["refreshToken"]}) == 3


def test_refresh_rotates_and_the_old_refresh_token_is_refused(http):
    session = log_in(http, sign_up(http).username)
    first_sid, old = session.session_id, session.refresh_token

    r = refresh(http, old)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["expiresIn"] == ACCESS_TOKEN_SECONDS
    assert body["user"]["id"] == session.user_id
    assert body["refreshToken"] != old
    session.access_token, session.refresh_token = body["accessToken"], body["refreshToken"]
    assert session.session_id == first_sid  # the same session, new tokens
    assert whoami(http, session).json()["id"] == session.user_id

    # Once its successor has been used, the old token is a second holder's.
    refreshed(http, session)
    again = refresh(http, old)
    assert again.status_code == 401
    assert "already used" in error_message(again)
    assert refresh(http, session.refresh_token).status_code == 401


def test_a_refresh_whose_answer_was_lost_is_answered_again(http):
    """A page reloaded mid-refresh: the server rotated, the client kept only
    the old token. Presented again before its successor is used, it gets a
    new pair, and the successor that never arrived stops working."""
    session = log_in(http, sign_up(http).username)
    old = session.refresh_token
    lost = refresh(http, old)
    assert lost.status_code == 200, lost.text

    refreshed(http, session)
    assert session.refresh_token not in (old, lost.json()["refreshToken"])
    assert whoami(http, session).status_code == 200
    assert refresh(http, lost.json()["refreshToken"]).status_code == 401
    # The answer that did arrive goes on working.
    refreshed(http, session)
    assert whoami(http, session).status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(http):
    account = sign_up(http)
    session = log_in(http, account.username)
    stolen = session.refresh_token
    newest = refreshed(http, refreshed(http, session)).refresh_token

    assert refresh(http, stolen).status_code == 401
    # The legitimate holder's newest token dies with the family...
    assert refresh(http, newest).status_code == 401
    # ...but the account's other sessions live on.
    refreshed(http, account)


def test_log_out_stops_the_refresh_token_at_once(http):
    account = sign_up(http)
    session = log_in(http, account.username)

    r = http.delete("/v1/sessions/current", headers=session.auth)
    assert r.status_code == 200, r.text
    assert refresh(http, session.refresh_token).status_code == 401
    # Logging out again is no error; the account's other session is untouched.
    assert http.delete("/v1/sessions/current", headers=session.auth).status_code == 200
    refreshed(http, account)


def test_log_out_needs_a_token(http):
    assert http.delete("/v1/sessions/current").status_code == 401


def test_changing_the_password_keeps_the_callers_session_and_ends_the_others(http):
    caller = sign_up(http)
    other = log_in(http, caller.username)

    r = change_password(http, caller, PASSWORD, NEW_PASSWORD)
    assert r.status_code == 200, r.text
    assert r.json()["revokedSessions"] == 1

    assert refresh(http, other.refresh_token).status_code == 401
    refreshed(http, caller)
    assert whoami(http, caller).status_code == 200
    assert http.post("/v1/sessions", json={"username": caller.username, "password": PASSWORD}).status_code == 401
    log_in(http, caller.username, NEW_PASSWORD)


def test_a_wrong_current_password_is_refused_and_changes_nothing(http):
    caller = sign_up(http)
    other = log_in(http, caller.username)

    r = change_password(http, caller, "not the password", NEW_PASSWORD)
    assert r.status_code == 403
    assert error_message(r).startswith("current_password: ")
    assert [v["field"] for d in r.json()["details"] for v in d.get("fieldViolations", [])] == ["currentPassword"]

    refreshed(http, other)
    log_in(http, caller.username, PASSWORD)


@pytest.mark.parametrize(
    ("current", "new", "field"),
    [
        ("", NEW_PASSWORD, "currentPassword"),
        (PASSWORD, "", "newPassword"),
        (PASSWORD, "short", "newPassword"),
        (PASSWORD, "password123", "newPassword"),  # a common password
        (PASSWORD, PASSWORD, "newPassword"),  # unchanged
    ],
)
def test_a_bad_password_change_is_400_naming_the_field(http, current, new, field):
    caller = sign_up(http)
    r = change_password(http, caller, current, new)
    assert r.status_code == 400, r.text
    assert [v["field"] for d in r.json()["details"] for v in d.get("fieldViolations", [])] == [field]
    log_in(http, caller.username, PASSWORD)


def test_changing_the_password_needs_a_token(http):
    r = http.post("/v1/users/me:changePassword", json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD})
    assert r.status_code == 401


@pytest.mark.parametrize("token", ["x" * 43, "not even the right shape", "a" * 500])
def test_a_refresh_token_never_issued_is_401(http, token):
    r = refresh(http, token)
    assert r.status_code == 401
    assert "log in again" in error_message(r)


def test_a_refresh_without_a_token_is_400(http):
    r = http.post("/v1/sessions:refresh", json={})
    assert r.status_code == 400
    assert [v["field"] for d in r.json()["details"] for v in d.get("fieldViolations", [])] == ["refreshToken"]


@pytest.mark.parametrize("path", ["/v1/notifications:watch", "/v1/timelines/home:watch", "/v1/conversations:watch"])
def test_a_live_stream_ends_when_its_access_token_expires(http, edge_url, path):
    account = sign_up(http)
    lifetime = 3
    # Minted with the devstack's signing key, as identity would, but short-lived.
    token, expires_at = TokenIssuer.from_settings(ttl_seconds=lifetime).issue(int(account.user_id), account.username)
    opened, ended = threading.Event(), threading.Event()

    def watch() -> None:
        try:
            with httpx.Client(base_url=edge_url, timeout=httpx.Timeout(10.0, read=30.0)) as client:
                with client.stream("GET", path, headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status_code == 200
                    opened.set()
                    for _ in r.iter_lines():
                        pass
        except httpx.HTTPError:
            pass  # ended by a reset rather than a clean end: still ended
        finally:
            ended.set()

    threading.Thread(target=watch, daemon=True).start()
    assert opened.wait(5), "the stream did not open"
    assert ended.wait(lifetime + 10), "the stream outlived its token"
    # The expiry is whole seconds from a truncated `now`: compare with it, not with the lifetime.
    assert time.time() >= expires_at - 0.1, "the stream ended before its token expired"

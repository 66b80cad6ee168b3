"""Bad input gets the right 4xx with a readable JSON message and writes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import unique_username
from tests.e2e.edge import PASSWORD, error_message, follow, post, sign_up

pytestmark = pytest.mark.e2e


def _own_posts(http, account) -> list[dict]:
    r = http.get(f"/v1/users/{account.id}/posts")
    assert r.status_code == 200, r.text
    return r.json()["posts"]


@pytest.mark.parametrize(
    "text, expected_field",
    [("", "text"), ("   \n\t ", "text"), ("x" * 281, "text"), ("é" * 281, "text")],
    ids=["empty", "whitespace", "281-ascii", "281-accented"],
)
def test_invalid_post_text_is_rejected_and_nothing_written(http, text, expected_field):
    author = sign_up(http, "b")
    r = http.post("/v1/posts", json={"text": text}, headers=author.auth)
    assert r.status_code == 400, r.text
    assert expected_field in error_message(r)
    assert _own_posts(http, author) == []
    assert http.get(f"/v1/users/{author.id}").json()["postCount"] == 0


def test_exactly_280_code_points_is_accepted(http):
    author = sign_up(http, "b")
    text = "🐦" * 280  # 280 code points, 1120 UTF-8 bytes
    created = post(http, author, text)
    assert created["text"] == text


def test_follow_yourself_is_rejected(http):
    me = sign_up(http, "b")
    r = http.put(f"/v1/users/me/following/{me.id}", headers=me.auth)
    assert r.status_code == 400, r.text
    assert "yourself" in error_message(r)
    profile = http.get(f"/v1/users/{me.id}").json()
    assert profile["followingCount"] == 0 and profile["followerCount"] == 0


def test_follow_unknown_user_is_404_and_writes_nothing(http):
    me = sign_up(http, "b")
    r = http.put("/v1/users/me/following/999999999999", headers=me.auth)
    assert r.status_code == 404, r.text
    assert "999999999999" in error_message(r)
    assert http.get(f"/v1/users/{me.id}").json()["followingCount"] == 0
    assert http.get(f"/v1/users/{me.id}/following").json()["users"] == []


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/users/abc"),
        ("GET", "/v1/posts/12x"),
        ("GET", "/v1/posts/-5"),
        ("GET", "/v1/users/99999999999999999999999/posts"),
        ("PUT", "/v1/users/me/following/not-a-number"),
        ("DELETE", "/v1/posts/0x10"),
    ],
)
def test_malformed_ids_are_400_naming_the_field(http, method, path):
    me = sign_up(http, "b")
    r = http.request(method, path, headers=me.auth)
    assert r.status_code == 400, r.text
    message = error_message(r)
    assert "_id" in message and "64-bit id" in message


def test_unknown_post_and_user_are_404(http):
    assert http.get("/v1/posts/123456789").status_code == 404
    r = http.get("/v1/users/123456789")
    assert r.status_code == 404
    assert "123456789" in error_message(r)
    assert http.get("/v1/users:lookup", params={"username": unique_username("nobody")}).status_code == 404


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/v1/posts", {"text": "no token"}),
        ("GET", "/v1/timelines/home", None),
        ("PUT", "/v1/users/me/following/1", None),
        ("DELETE", "/v1/posts/1", None),
    ],
)
def test_missing_token_is_401(http, method, path, body):
    r = http.request(method, path, json=body)
    assert r.status_code == 401, r.text
    assert error_message(r)


def test_forged_or_tampered_token_is_401(http):
    me = sign_up(http, "b")
    header, payload, signature = me.token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    r = http.post("/v1/posts", json={"text": "forged"}, headers={"Authorization": f"Bearer {tampered}"})
    assert r.status_code == 401
    # Public reads accept no token but still reject a bad one.
    assert http.get(f"/v1/users/{me.id}", headers={"Authorization": "Bearer not.a.jwt"}).status_code == 401
    assert _own_posts(http, me) == []


def test_wrong_password_and_unknown_user_log_in_fail_alike(http):
    me = sign_up(http, "b")
    wrong = http.post("/v1/sessions", json={"username": me.username, "password": "not the password"})
    unknown = http.post("/v1/sessions", json={"username": unique_username("nobody"), "password": PASSWORD})
    assert wrong.status_code == 401 and unknown.status_code == 401
    assert error_message(wrong) == error_message(unknown)
    ok = http.post("/v1/sessions", json={"username": me.username.upper(), "password": PASSWORD})
    assert ok.status_code == 200, ok.text
    assert ok.json()["user"]["id"] == me.id and ok.json()["accessToken"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"username": "ab", "password": PASSWORD}, "username"),
        ({"username": "has space", "password": PASSWORD}, "username"),
        ({"username": "x" * 16, "password": PASSWORD}, "username"),
        ({"username": "okname_1", "password": "short"}, "password"),
        ({"username": "okname_2"}, "password"),
    ],
)
def test_bad_sign_up_is_400_and_creates_nothing(http, body, field):
    r = http.post("/v1/accounts", json=body)
    assert r.status_code == 400, r.text
    assert field in error_message(r)
    assert http.get("/v1/users:lookup", params={"username": body["username"]}).status_code == 404


def test_duplicate_username_is_409_case_insensitively(http):
    me = sign_up(http, "b")
    r = http.post("/v1/accounts", json={"username": me.username.upper(), "password": PASSWORD})
    assert r.status_code == 409, r.text
    assert "taken" in error_message(r)


def test_delete_someone_elses_post_is_403_and_keeps_it(http):
    author, other = sign_up(http, "b"), sign_up(http, "b")
    created = post(http, author, "mine")
    r = http.delete(f"/v1/posts/{created['id']}", headers=other.auth)
    assert r.status_code == 403, r.text
    assert http.get(f"/v1/posts/{created['id']}").status_code == 200


def test_follow_is_idempotent(http):
    a, b = sign_up(http, "b"), sign_up(http, "b")
    follow(http, a, b)
    follow(http, a, b)
    assert http.get(f"/v1/users/{b.id}").json()["followerCount"] == 1
    assert [u["id"] for u in http.get(f"/v1/users/{b.id}/followers").json()["users"]] == [a.id]

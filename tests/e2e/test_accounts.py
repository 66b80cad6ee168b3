"""Abuse-resistant accounts through Envoy with the devstack's settings: log-in
back-off per account name, password rules at sign-up. (Low per-address limits
and spoofed address headers: tests/integration/test_identity_throttle.py.)"""

from __future__ import annotations

import time

import pytest

from services.identity.throttle import Limits
from tests.conftest import unique_username
from tests.e2e.edge import PASSWORD, error_message, sign_up

# The devstack runs identity with the per-account defaults.
FREE_FAILURES = Limits().login_free_failures


def log_in(http, username: str, password: str):
    return http.post("/v1/sessions", json={"username": username, "password": password})


def test_wrong_passwords_for_one_account_get_429_while_another_account_logs_in(http):
    victim, bystander = sign_up(http, "vi"), sign_up(http, "by")
    answers = [log_in(http, victim.username, f"not it {i}") for i in range(20)]

    assert [r.status_code for r in answers[:FREE_FAILURES]] == [401] * FREE_FAILURES
    later = answers[FREE_FAILURES:]
    assert {r.status_code for r in later} <= {401, 429}
    # Each refusal locks the name again, twice as long: only a very slow run
    # could see a lock run out between two attempts, and then only a few times.
    throttled = [r for r in later if r.status_code == 429]
    assert len(throttled) >= len(later) - 3, [r.status_code for r in later]
    for r in throttled:
        assert 1 <= int(r.headers["retry-after"]) <= Limits().login_backoff_cap_seconds
        assert r.json()["code"] == 8
        assert error_message(r).startswith("too many failed log-ins for this username; try again in ")

    # The same client address logs in to another account at once.
    assert log_in(http, bystander.username, PASSWORD).status_code == 200

    # After the back-off the owner gets in, and that clears the failures.
    locked = log_in(http, victim.username, PASSWORD)
    if locked.status_code == 429:
        time.sleep(int(locked.headers["retry-after"]))
        locked = log_in(http, victim.username, PASSWORD)
    assert locked.status_code == 200, locked.text
    assert log_in(http, victim.username, "one typo").status_code == 401
    assert log_in(http, victim.username, PASSWORD).status_code == 200


def test_a_name_without_an_account_backs_off_the_same_way(http):
    ghost = unique_username("gh")
    answers = [log_in(http, ghost, "not it") for _ in range(FREE_FAILURES + 1)]
    assert [r.status_code for r in answers[:FREE_FAILURES]] == [401] * FREE_FAILURES
    assert error_message(answers[0]) == "username or password is incorrect"
    assert answers[-1].status_code == 429
    assert error_message(answers[-1]).startswith("too many failed log-ins for this username")


@pytest.mark.parametrize(
    "password,problem",
    [
        ("12345678", "is on a list of common or breached passwords"),
        ("password", "is on a list of common or breached passwords"),
        ("Qwertyuiop", "is on a list of common or breached passwords"),
        ("        ", "is one character or a short pattern repeated"),
        ("abcdefghij", "is on a list of common or breached passwords"),
        ("1234567", "must be 8 to 128 characters, got 7"),
    ],
)
def test_guessable_or_short_passwords_are_refused_at_sign_up_naming_password(http, password, problem):
    username = unique_username("pw")
    r = http.post("/v1/accounts", json={"username": username, "password": password})
    assert r.status_code == 400, r.text
    assert error_message(r) == f"password: {problem}" or error_message(r).startswith(f"password: {problem};")
    violations = [d for d in r.json().get("details", []) if d.get("@type", "").endswith("google.rpc.BadRequest")]
    assert violations and violations[0]["fieldViolations"][0]["field"] == "password"
    # Nothing was written: the name is still free.
    assert http.get("/v1/users:lookup", params={"username": username}).status_code == 404


def test_the_username_itself_is_refused_as_the_password(http):
    username = unique_username("Me")
    r = http.post("/v1/accounts", json={"username": username, "password": username.lower()})
    assert r.status_code == 400
    assert error_message(r).startswith("password: must not be the username")


def test_a_long_passphrase_without_digits_or_capitals_is_fine(http):
    r = http.post("/v1/accounts", json={"username": unique_username("ok"), "password": "purple monkey dishwasher"})
    assert r.status_code == 200, r.text

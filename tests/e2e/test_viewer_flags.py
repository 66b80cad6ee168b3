"""Viewer flags on profiles, end to end through Envoy: GetUser and LookupUser
tell a signed-in caller whether they follow, are followed by, block or mute
the user; signed out or looking at oneself, every flag is false."""

from __future__ import annotations

import datetime

import pytest

from tests.e2e.edge import Account, follow, sign_up, unfollow, wait_until

pytestmark = pytest.mark.e2e

FLAGS = ("followedByMe", "followsMe", "blockedByMe", "mutedByMe")


def flags(profile: dict) -> dict[str, bool]:
    """The viewer flags as a dict; proto JSON leaves false ones out."""
    return {flag: profile.get(flag, False) for flag in FLAGS}


def profile(http, viewer: Account | None, whom: Account) -> dict:
    r = http.get(f"/v1/users/{whom.id}", headers=viewer.auth if viewer else {})
    assert r.status_code == 200, r.text
    return r.json()


def looked_up(http, viewer: Account | None, whom: Account) -> dict:
    r = http.get("/v1/users:lookup", params={"username": whom.username}, headers=viewer.auth if viewer else {})
    assert r.status_code == 200, r.text
    return r.json()


def test_follows_show_in_each_direction_for_the_viewer_only(http):
    me, them, stranger = sign_up(http, "vf"), sign_up(http, "vf"), sign_up(http, "vf")
    assert flags(profile(http, me, them)) == dict.fromkeys(FLAGS, False)

    follow(http, me, them)
    assert flags(profile(http, me, them)) == {**dict.fromkeys(FLAGS, False), "followedByMe": True}
    assert flags(profile(http, them, me))["followsMe"] is True
    assert flags(profile(http, them, me))["followedByMe"] is False
    # Another viewer, and nobody at all, see no flags about the pair.
    assert flags(profile(http, stranger, them)) == dict.fromkeys(FLAGS, False)
    assert flags(profile(http, None, them)) == dict.fromkeys(FLAGS, False)

    follow(http, them, me)
    assert flags(looked_up(http, me, them))["followedByMe"] is True
    assert flags(looked_up(http, me, them))["followsMe"] is True

    unfollow(http, me, them)
    assert flags(profile(http, me, them))["followedByMe"] is False
    assert flags(profile(http, me, them))["followsMe"] is True


def test_answers_are_the_viewers_own_even_when_asked_in_turn(http):
    """The profile is read by two viewers back to back: no viewer's flags
    leak into another's answer through a cache."""
    target, fan, other = sign_up(http, "vf"), sign_up(http, "vf"), sign_up(http, "vf")
    follow(http, fan, target)
    for _ in range(3):
        assert flags(profile(http, fan, target))["followedByMe"] is True
        assert flags(profile(http, other, target))["followedByMe"] is False
        assert flags(looked_up(http, other, target))["followedByMe"] is False


def test_block_and_mute_show_and_lift(http):
    me, them = sign_up(http, "vf"), sign_up(http, "vf")
    follow(http, me, them)
    assert http.put(f"/v1/users/me/mutes/{them.id}", json={}, headers=me.auth).status_code == 200
    seen = flags(profile(http, me, them))
    assert seen["mutedByMe"] is True and seen["followedByMe"] is True
    # The muted user is not told.
    assert flags(profile(http, them, me))["mutedByMe"] is False

    assert http.delete(f"/v1/users/me/mutes/{them.id}", headers=me.auth).status_code == 200
    assert flags(profile(http, me, them))["mutedByMe"] is False

    assert http.put(f"/v1/users/me/blocks/{them.id}", headers=me.auth).status_code == 200
    seen = flags(looked_up(http, me, them))
    # A block ends the follow.
    assert seen == {**dict.fromkeys(FLAGS, False), "blockedByMe": True}
    assert flags(profile(http, them, me))["blockedByMe"] is False

    assert http.delete(f"/v1/users/me/blocks/{them.id}", headers=me.auth).status_code == 200
    assert flags(profile(http, me, them))["blockedByMe"] is False


def test_a_timed_mute_shows_until_it_ends(http):
    me, them = sign_up(http, "vf"), sign_up(http, "vf")
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    ends = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert http.put(f"/v1/users/me/mutes/{them.id}", json={"expiresAt": ends}, headers=me.auth).status_code == 200
    assert flags(profile(http, me, them))["mutedByMe"] is True
    assert wait_until(lambda: not flags(profile(http, me, them))["mutedByMe"], timeout=6.0)


def test_own_profile_carries_no_flags(http):
    me, fan = sign_up(http, "vf"), sign_up(http, "vf")
    follow(http, fan, me)
    r = http.get("/v1/users/me", headers=me.auth)
    assert r.status_code == 200, r.text
    assert flags(r.json()) == dict.fromkeys(FLAGS, False)
    assert flags(profile(http, me, me)) == dict.fromkeys(FLAGS, False)

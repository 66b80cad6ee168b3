"""Account deletion in the social graph, media and conversations, end to end
through Envoy (POST /v1/users/me:delete): the account's follows vanish from
both sides' counts and lists, its media URLs 404, its messages stay in the
other participant's history from a "Deleted account", the one-to-one takes no
new message (412), and nobody can follow it or start a conversation with it."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests import media_files
from tests.e2e.edge import PASSWORD, error_message, follow, sign_up, wait_until

pytestmark = pytest.mark.e2e

# Deletion is applied by each service's consumer of identity.events.v1; the
# conversations sender cache holds a summary up to 10 s.
SETTLE_SECONDS = 30.0


def delete_account(http, account):
    return http.post("/v1/users/me:delete", json={"password": PASSWORD}, headers=account.auth)


def profile_counts(http, user) -> tuple[int, int]:
    r = http.get(f"/v1/users/{user.id}")
    assert r.status_code == 200, r.text
    body = r.json()
    return body.get("followerCount", 0), body.get("followingCount", 0)


def listed(http, user, which: str) -> list[str]:
    r = http.get(f"/v1/users/{user.id}/{which}", params={"pageSize": 100})
    assert r.status_code == 200, r.text
    return [u["id"] for u in r.json().get("users", [])]


def upload_png(http, account) -> dict:
    r = http.post("/v1/media", content=media_files.png(), headers={"Content-Type": "image/png", **account.auth})
    assert r.status_code == 200, r.text
    return r.json()


def fetched(http, url: str) -> int:
    return http.get(urlparse(url).path).status_code


def create_conversation(http, who, *others):
    return http.post("/v1/conversations", json={"participantIds": [o.id for o in others]}, headers=who.auth)


def send(http, who, conversation_id: str, text: str, **fields):
    body = {"text": text, **fields}
    return http.post(f"/v1/conversations/{conversation_id}/messages", json=body, headers=who.auth)


def history(http, who, conversation_id: str) -> list[dict]:
    r = http.get(f"/v1/conversations/{conversation_id}/messages", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json().get("messages", [])


def test_a_deleted_accounts_follows_media_and_messages(http):
    leaving, fan, idol, friend = (sign_up(http, p) for p in ("del", "fan", "idl", "fri"))
    follow(http, fan, leaving)
    follow(http, leaving, idol)
    follow(http, fan, idol)
    assert profile_counts(http, fan) == (0, 2) and profile_counts(http, idol) == (2, 0)
    item = upload_png(http, leaving)
    assert fetched(http, item["url"]) == 200
    r = create_conversation(http, leaving, friend)
    assert r.status_code == 200, r.text
    pair = r.json()["id"]
    r = send(http, leaving, pair, "my last message", mediaIds=[item["mediaId"]])
    assert r.status_code == 200, r.text
    assert r.json()["sender"]["username"] == leaving.username
    assert send(http, friend, pair, "see you").status_code == 200

    r = delete_account(http, leaving)
    assert r.status_code == 200, r.text

    # Follows vanish from both sides' counts and lists.
    assert wait_until(lambda: profile_counts(http, idol) == (1, 0), SETTLE_SECONDS), profile_counts(http, idol)
    assert wait_until(lambda: profile_counts(http, fan) == (0, 1), SETTLE_SECONDS), profile_counts(http, fan)
    assert listed(http, idol, "followers") == [fan.id]
    assert listed(http, fan, "following") == [idol.id]
    # Its media URLs 404, and its metadata is gone.
    assert wait_until(lambda: fetched(http, item["url"]) == 404, SETTLE_SECONDS)
    assert http.get(f"/v1/media/{item['mediaId']}").status_code == 404

    # Its message stays in the friend's history, from a deleted account.
    def last_words() -> dict:
        return next(m for m in history(http, friend, pair) if m["text"] == "my last message")

    def shown_as_deleted() -> bool:
        sender = last_words().get("sender", {})
        return sender.get("displayName") == "Deleted account" and not sender.get("username")

    assert wait_until(shown_as_deleted, SETTLE_SECONDS), last_words()
    assert last_words()["senderId"] == leaving.id
    # The conversation now holds only the friend, and takes no new message.
    assert wait_until(lambda: _participants(http, friend, pair) == [friend.id], SETTLE_SECONDS)
    r = send(http, friend, pair, "hello?")
    assert r.status_code == 412, r.text
    assert "deleted" in error_message(r)

    # Nobody can follow it or start a conversation with it.
    r = http.put(f"/v1/users/me/following/{leaving.id}", headers=fan.auth)
    assert r.status_code == 404, r.text
    # Nor block, mute or unfollow it, though graph saw it exist a moment ago.
    for method, path in (
        ("PUT", f"/v1/users/me/blocks/{leaving.id}"),
        ("PUT", f"/v1/users/me/mutes/{leaving.id}"),
        ("DELETE", f"/v1/users/me/following/{leaving.id}"),
    ):
        r = http.request(method, path, headers=fan.auth)
        assert r.status_code == 404, (method, path, r.text)
    r = create_conversation(http, friend, leaving)
    assert r.status_code == 404, r.text
    assert "participantIds[0]" in error_message(r) or "participant_ids[0]" in error_message(r)


def _participants(http, who, conversation_id: str) -> list[str]:
    r = http.get("/v1/conversations", params={"pageSize": 100}, headers=who.auth)
    assert r.status_code == 200, r.text
    return next(c["participantIds"] for c in r.json()["conversations"] if c["id"] == conversation_id)

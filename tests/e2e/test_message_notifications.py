"""Notices of direct messages through Envoy: one NOTIFICATION_KIND_MESSAGE
notice per conversation (conversationId set) for every participant but the
sender, naming the senders and moving to the top with each new message;
none from a sender the recipient blocks or mutes."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.edge import Account, follow, sign_up, wait_until
from tests.e2e.test_notifications import Watcher

pytestmark = pytest.mark.e2e

DEADLINE = 10.0


def conversation(http: httpx.Client, owner: Account, *others: Account) -> str:
    r = http.post("/v1/conversations", json={"participantIds": [o.id for o in others]}, headers=owner.auth)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def send(http: httpx.Client, who: Account, conversation_id: str, text: str) -> httpx.Response:
    return http.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text}, headers=who.auth)


def notifications(http: httpx.Client, who: Account) -> list[dict]:
    r = http.get("/v1/notifications", params={"pageSize": 50}, headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json().get("notifications", [])


def message_notices(http: httpx.Client, who: Account, conversation_id: str) -> list[dict]:
    return [
        n
        for n in notifications(http, who)
        if n["kind"] == "NOTIFICATION_KIND_MESSAGE" and n.get("conversationId") == conversation_id
    ]


def test_a_message_notifies_the_others_once_per_conversation_naming_the_senders(http):
    alice, bob, carol = sign_up(http, "ma"), sign_up(http, "mb"), sign_up(http, "mc")
    cid = conversation(http, alice, bob, carol)
    assert send(http, alice, cid, "hello both").status_code == 200

    for who in (bob, carol):
        found = wait_until(lambda: message_notices(http, who, cid), timeout=DEADLINE)
        assert found, f"{who.username} was not notified"
        assert found[0]["text"] == f"{alice.username.upper()} sent you a message"
        assert found[0]["actorIds"] == [alice.id] and not found[0]["read"]
    assert not message_notices(http, alice, cid)  # not the sender

    # Something else lands on carol's inbox in between; the next message moves
    # the conversation's one notice back to the top, naming both senders.
    follow(http, alice, carol)
    assert wait_until(lambda: notifications(http, carol)[0]["kind"] == "NOTIFICATION_KIND_FOLLOW", timeout=DEADLINE)
    first_id = message_notices(http, carol, cid)[0]["id"]
    assert send(http, bob, cid, "hi all").status_code == 200

    def grouped() -> list[dict]:
        found = message_notices(http, carol, cid)
        return found if found and found[0]["actorIds"] == [bob.id, alice.id] else []

    (notice,) = wait_until(grouped, timeout=DEADLINE) or [None]
    assert notice, f"not grouped: {message_notices(http, carol, cid)}"
    assert notice["text"] == f"{bob.username.upper()} and {alice.username.upper()} sent you messages"
    assert notice["id"] != first_id and notifications(http, carol)[0]["id"] == notice["id"]
    # The same sender again moves it up too, and it stays one notice.
    assert send(http, alice, cid, "one more").status_code == 200
    assert wait_until(
        lambda: (found := message_notices(http, carol, cid)) and found[0]["actorIds"] == [alice.id, bob.id],
        timeout=DEADLINE,
    )
    assert len(message_notices(http, carol, cid)) == 1


def test_a_read_message_notice_gives_way_to_a_new_one_for_the_next_message(http):
    alice, bob = sign_up(http, "ma"), sign_up(http, "mb")
    cid = conversation(http, alice, bob)
    assert send(http, alice, cid, "first").status_code == 200
    assert wait_until(lambda: message_notices(http, bob, cid), timeout=DEADLINE)
    r = http.post("/v1/notifications:markRead", json={}, headers=bob.auth)
    assert r.status_code == 200, r.text
    old = message_notices(http, bob, cid)[0]
    assert old["read"]

    assert send(http, alice, cid, "second").status_code == 200
    fresh = wait_until(lambda: [n for n in message_notices(http, bob, cid) if n["id"] != old["id"]], timeout=DEADLINE)
    assert fresh and not fresh[0]["read"]
    assert len(message_notices(http, bob, cid)) == 1  # it replaced the read one


def test_no_notice_from_a_muted_or_blocked_sender(http):
    alice, bob, carol = sign_up(http, "ma"), sign_up(http, "mb"), sign_up(http, "mc")
    cid = conversation(http, alice, bob, carol)
    r = http.put(f"/v1/users/me/mutes/{alice.id}", json={}, headers=carol.auth)
    assert r.status_code == 200, r.text
    assert send(http, alice, cid, "can you hear me").status_code == 200
    assert wait_until(lambda: message_notices(http, bob, cid), timeout=DEADLINE)
    # Messages of one conversation are applied in order: once bob's later
    # message shows for carol, alice's earlier one was handled (and made nothing).
    assert send(http, bob, cid, "I can").status_code == 200
    found = wait_until(lambda: message_notices(http, carol, cid), timeout=DEADLINE)
    assert found and found[0]["actorIds"] == [bob.id]

    # A notice made before a block is hidden from then on; the blocked sender cannot write.
    dave, eve = sign_up(http, "md"), sign_up(http, "me")
    pair = conversation(http, eve, dave)
    assert send(http, eve, pair, "hey").status_code == 200
    assert wait_until(lambda: message_notices(http, dave, pair), timeout=DEADLINE)
    assert http.get("/v1/notifications", headers=dave.auth).json()["unreadCount"] == 1
    r = http.put(f"/v1/users/me/blocks/{eve.id}", headers=dave.auth)
    assert r.status_code == 200, r.text
    assert not message_notices(http, dave, pair)
    # The unread count agrees with the list: the hidden notice is not counted.
    r = http.get("/v1/notifications", headers=dave.auth)
    assert r.status_code == 200, r.text
    assert r.json().get("unreadCount", 0) == 0 and not r.json().get("notifications")
    assert send(http, eve, pair, "still there?").status_code == 403


def test_a_message_notice_arrives_live_with_its_conversation_and_moves_up_under_a_new_id(http, edge_url):
    alice, bob = sign_up(http, "ma"), sign_up(http, "mb")
    cid = conversation(http, alice, bob)
    watcher = Watcher(edge_url, bob.token)
    try:
        assert send(http, alice, cid, "live one").status_code == 200
        event = watcher.next(timeout=DEADLINE)
        assert event is not None, "no notice arrived live"
        first = event["notification"]
        assert first["kind"] == "NOTIFICATION_KIND_MESSAGE" and first["conversationId"] == cid
        assert first["text"] == f"{alice.username.upper()} sent you a message"
        # Read, then another message: a new notice replaces the read one.
        assert http.post("/v1/notifications:markRead", json={}, headers=bob.auth).status_code == 200
        assert send(http, alice, cid, "live two").status_code == 200
        event = watcher.next(timeout=DEADLINE)
        assert event is not None, "the second message made no live notice"
        assert event["notification"]["conversationId"] == cid and event.get("replacesId") == first["id"]
        assert event["notification"]["id"] != first["id"] and not event["notification"]["read"]
    finally:
        watcher.close()

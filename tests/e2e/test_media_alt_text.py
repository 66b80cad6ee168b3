"""Alt text on media, end to end through Envoy: set at upload with the
`altText` query parameter, returned by GetMedia and wherever media is
hydrated (posts, the home timeline, messages)."""

from __future__ import annotations

import pytest

from tests import media_files
from tests.e2e.edge import error_message, follow, sign_up, wait_until

pytestmark = pytest.mark.e2e

HERON = "A grey heron standing on one leg in shallow water.\nReeds behind it — früh am Morgen."


def upload(http, account, alt_text: str | None = None):
    params = {"altText": alt_text} if alt_text is not None else {}
    headers = {"Content-Type": "image/png", **account.auth}
    return http.post("/v1/media", params=params, content=media_files.png(), headers=headers)


def test_alt_text_is_stored_with_the_upload_and_read_back(http):
    me = sign_up(http, "al")
    r = upload(http, me, f"  {HERON}  ")
    assert r.status_code == 200, r.text
    assert r.json()["altText"] == HERON
    got = http.get(f"/v1/media/{r.json()['mediaId']}")
    assert got.status_code == 200 and got.json()["altText"] == HERON

    plain = upload(http, me)
    assert plain.status_code == 200 and plain.json().get("altText", "") == ""


def test_alt_text_of_1000_characters_is_kept_and_1001_refused(http):
    me = sign_up(http, "al")
    longest = "ä" * 1000
    r = upload(http, me, longest)
    assert r.status_code == 200, r.text
    assert r.json()["altText"] == longest
    r = upload(http, me, "a" * 1001)
    assert r.status_code == 400, r.text
    assert "alt_text" in error_message(r) and "1000" in error_message(r)
    r = upload(http, me, "bell\x07")
    assert r.status_code == 400 and "alt_text" in error_message(r), r.text


def test_posts_and_the_home_timeline_carry_the_alt_text(http):
    author, reader = sign_up(http, "al"), sign_up(http, "al")
    follow(http, reader, author)
    media_id = upload(http, author, HERON).json()["mediaId"]
    r = http.post("/v1/posts", json={"text": "look", "mediaIds": [media_id]}, headers=author.auth)
    assert r.status_code == 200, r.text
    post = r.json()
    assert post["media"][0]["altText"] == HERON
    assert http.get(f"/v1/posts/{post['id']}").json()["media"][0]["altText"] == HERON

    def home_media():
        page = http.get("/v1/timelines/home", headers=reader.auth).json().get("posts", [])
        return [m for p in page if p["id"] == post["id"] for m in p.get("media", [])]

    assert wait_until(lambda: home_media(), timeout=5.0)
    assert home_media()[0]["altText"] == HERON


def test_messages_carry_the_alt_text(http):
    a, b = sign_up(http, "al"), sign_up(http, "al")
    r = http.post("/v1/conversations", json={"participantIds": [b.id]}, headers=a.auth)
    assert r.status_code == 200, r.text
    cid = r.json()["id"]
    media_id = upload(http, a, HERON).json()["mediaId"]
    body = {"text": "", "mediaIds": [media_id], "clientMessageId": f"alt-{media_id}"}
    r = http.post(f"/v1/conversations/{cid}/messages", json=body, headers=a.auth)
    assert r.status_code == 200, r.text
    listed = http.get(f"/v1/conversations/{cid}/messages", headers=b.auth).json()["messages"][0]
    assert listed["media"][0]["altText"] == HERON

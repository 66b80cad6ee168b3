"""Media end to end through Envoy: upload (raw body), fetch by URL, posts and avatars.

Uploads are `POST /v1/media` with the file as the body and its type as
Content-Type; each Media has a `url` Envoy serves from the object store.
"""

from __future__ import annotations

import io
import time
from urllib.parse import urlparse

import pytest
from PIL import Image

from services.kit.server import ids
from services.kit.settings import load
from services.media.settings import MediaSettings
from services.media.store import KEYSPACE, ObjectStoreSettings, s3_client
from services.media.validation import IMAGE_TYPES, MiB, sniff
from tests import media_files
from tests.e2e.edge import error_message, post, sign_up

pytestmark = [pytest.mark.e2e, pytest.mark.serial]


def upload(http, account, content_type: str, data: bytes):
    headers = {"Content-Type": content_type, **(account.auth if account else {})}
    return http.post("/v1/media", content=data, headers=headers)


def uploaded(http, account, content_type: str, data: bytes) -> dict:
    r = upload(http, account, content_type, data)
    assert r.status_code == 200, r.text
    return r.json()


def fetch(http, url: str):
    """GET a media url through the edge the tests talk to (the url's path on it)."""
    return http.get(urlparse(url).path)


def _own_posts(http, account) -> list[dict]:
    r = http.get(f"/v1/users/{account.id}/posts")
    assert r.status_code == 200, r.text
    return r.json()["posts"]


@pytest.fixture(scope="module")
def stored():
    """Probes of what the media service stored for an owner: (metadata row ids, object keys)."""
    from devstack.backends import cassandra_session

    settings = ObjectStoreSettings.from_settings(load(MediaSettings))
    s3 = s3_client(settings)
    cluster, session = cassandra_session(KEYSPACE)

    def probe(owner_id: str, since_ms: int) -> tuple[list[int], list[str]]:
        rows = [
            r.media_id
            for r in session.execute(
                f"SELECT media_id FROM {KEYSPACE}.media WHERE owner_id = %s ALLOW FILTERING", (int(owner_id),)
            )
        ]
        floor = ids.min_id_at(since_ms)
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket)
            for o in page.get("Contents", [])
            if int(o["Key"].split(".")[0]) >= floor
        ]
        mine = [
            k for k in keys if s3.head_object(Bucket=settings.bucket, Key=k)["Metadata"].get("owner-id") == owner_id
        ]
        return rows, mine

    yield probe
    cluster.shutdown()
    s3.close()


# -- upload and fetch -------------------------------------------------------------------


@pytest.mark.parametrize("content_type", sorted(media_files.SAMPLES))
def test_upload_then_fetch_the_same_bytes_by_url(http, edge_url, content_type):
    me = sign_up(http, "md")
    data = media_files.SAMPLES[content_type]()
    item = uploaded(http, me, content_type, data)
    assert item["mediaId"].isdigit() and item["ownerId"] == me.id
    assert item["contentType"] == content_type
    assert urlparse(item["url"]).path.startswith("/media/" + item["mediaId"] + ".")
    if edge_url == "http://127.0.0.1:8080":
        assert item["url"].startswith(edge_url + "/media/")

    got = fetch(http, item["url"])  # no token: media is public
    assert got.status_code == 200
    assert len(got.content) == int(item["sizeBytes"])
    if content_type in IMAGE_TYPES:
        assert got.content == data  # the samples carry no metadata: stored as sent
    else:
        assert sniff(got.content) == content_type and media_files.SECRET_TEXT.encode() not in got.content
    assert got.headers["content-type"] == content_type
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in got.headers["cache-control"]
    assert not any(h.startswith("x-amz-") for h in got.headers)

    meta = http.get(f"/v1/media/{item['mediaId']}")  # metadata is public too
    assert meta.status_code == 200 and meta.json() == item


def test_a_15_mib_video_passes_the_edge_and_ranges_work(http):
    me = sign_up(http, "md")
    item = uploaded(http, me, "video/mp4", media_files.video(size=15 * MiB))
    stored = fetch(http, item["url"]).content
    assert item["sizeBytes"] == str(len(stored)) and sniff(stored) == "video/mp4"  # the padding is gone
    part = http.get(urlparse(item["url"]).path, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == stored[:100]


def test_a_photo_comes_back_from_its_url_without_its_gps_position(http):
    me = sign_up(http, "md")
    sent = media_files.photo("JPEG", width=120, height=80)
    assert Image.open(io.BytesIO(sent)).getexif().get_ifd(0x8825)  # it does carry a position
    item = uploaded(http, me, "image/jpeg", sent)
    got = fetch(http, item["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(got.content))
    image.load()
    assert image.size == (120, 80)
    assert dict(image.getexif()) == {} and image.getexif().get_ifd(0x8825) == {}
    assert media_files.SECRET_TEXT.encode() not in got.content


def test_a_video_comes_back_without_its_gps_position(http):
    me = sign_up(http, "md")
    sent = media_files.video("video/mp4")
    assert media_files.SECRET_ISO6709.encode() in sent
    got = fetch(http, uploaded(http, me, "video/mp4", sent)["url"])
    assert got.status_code == 200 and sniff(got.content) == "video/mp4"
    assert media_files.SECRET_ISO6709.encode() not in got.content


def test_media_paths_are_read_only_and_never_list_the_bucket(http):
    me = sign_up(http, "md")
    item = uploaded(http, me, "image/png", media_files.png())
    path = urlparse(item["url"]).path
    # Media paths are read-only: writing methods are 405 (the edge's rule for a wrong method).
    assert http.delete(path).status_code == 405
    assert http.put(path, content=b"x", headers=me.auth).status_code == 405
    assert http.get("/media/").status_code == 404
    assert http.get("/media/../v1/users/me").status_code in (400, 401, 404)
    assert fetch(http, item["url"]).content == media_files.png()
    missing = http.get("/media/1.png")
    assert missing.status_code == 404


def test_batch_get_media_is_internal(http):
    me = sign_up(http, "md")
    r = http.post(
        "/aviary.media.v1.MediaService/BatchGetMedia",
        content=b"\x00\x00\x00\x00\x00",
        headers={**me.auth, "content-type": "application/grpc"},
    )
    assert r.status_code == 404 or r.headers.get("grpc-status") not in (None, "0")


def test_upload_needs_a_token(http):
    r = upload(http, None, "image/png", media_files.png())
    assert r.status_code == 401
    assert error_message(r)


# -- refused uploads -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type, data, field",
    [
        ("text/plain", b"hello there", "file.content_type"),
        ("application/octet-stream", media_files.png(), "file.content_type"),
        ("image/jpeg", media_files.png(), "file"),
        ("image/png", b"definitely not a picture", "file"),
        ("video/mp4", media_files.webm(), "file"),
        ("image/png", b"", "file"),
        ("video/mp4", media_files.mp4()[:40], "file"),
        ("image/png", media_files.png()[:33] + media_files.png()[-12:], "file"),
    ],
    ids=[
        "text",
        "octet-stream",
        "png-as-jpeg",
        "text-as-png",
        "webm-as-mp4",
        "empty",
        "mp4-header-only",
        "png-without-pixels",
    ],
)
def test_wrong_media_is_400_and_stores_nothing(http, stored, content_type, data, field):
    me = sign_up(http, "md")
    since = int(time.time() * 1000) - 1000
    r = upload(http, me, content_type, data)
    assert r.status_code == 400, r.text
    assert error_message(r).startswith(field + ":")
    assert stored(me.id, since) == ([], [])


def test_an_oversized_image_is_400_naming_the_limit_and_stores_nothing(http, stored):
    me = sign_up(http, "md")
    since = int(time.time() * 1000) - 1000
    r = upload(http, me, "image/png", media_files.png(size=5 * MiB + 1))
    assert r.status_code == 400, r.text
    message = error_message(r)
    assert message.startswith("file:") and "5 MiB" in message
    assert stored(me.id, since) == ([], [])


def test_a_body_beyond_the_edge_limit_is_413_and_stores_nothing(http, stored):
    me = sign_up(http, "md")
    since = int(time.time() * 1000) - 1000
    r = upload(http, me, "video/mp4", media_files.mp4(size=20 * MiB))
    assert r.status_code == 413, r.text
    message = error_message(r)
    assert message.startswith("file:") and "15 MiB" in message
    assert stored(me.id, since) == ([], [])


# -- posts -------------------------------------------------------------------------------


def test_post_with_media_shows_them_in_order_with_urls(http):
    me = sign_up(http, "md")
    first = uploaded(http, me, "image/png", media_files.png())
    second = uploaded(http, me, "video/webm", media_files.video("video/webm"))
    r = http.post(
        "/v1/posts", json={"text": "look #media", "mediaIds": [second["mediaId"], first["mediaId"]]}, headers=me.auth
    )
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["mediaIds"] == [second["mediaId"], first["mediaId"]]
    assert created["media"] == [second, first]

    assert http.get(f"/v1/posts/{created['id']}").json()["media"] == [second, first]
    listed = _own_posts(http, me)
    assert listed[0]["id"] == created["id"] and listed[0]["media"] == [second, first]
    assert fetch(http, created["media"][1]["url"]).content == media_files.png()


def test_posts_without_media_have_an_empty_media_list(http):
    me = sign_up(http, "md")
    assert post(http, me, "plain")["media"] == []


def test_someone_elses_media_cannot_be_posted(http):
    owner, thief = sign_up(http, "md"), sign_up(http, "md")
    item = uploaded(http, owner, "image/png", media_files.png())
    r = http.post("/v1/posts", json={"text": "mine now", "mediaIds": [item["mediaId"]]}, headers=thief.auth)
    assert r.status_code == 403, r.text
    assert "media_ids" in error_message(r)
    assert _own_posts(http, thief) == []
    assert http.get(f"/v1/users/{thief.id}").json()["postCount"] == 0


@pytest.mark.parametrize("media_id", ["12345", "not-an-id"], ids=["unknown", "malformed"])
def test_unknown_media_ids_are_400_and_no_post_is_created(http, media_id):
    me = sign_up(http, "md")
    own = uploaded(http, me, "image/png", media_files.png())
    r = http.post("/v1/posts", json={"text": "ghost media", "mediaIds": [own["mediaId"], media_id]}, headers=me.auth)
    assert r.status_code == 400, r.text
    assert "media_ids" in error_message(r)
    assert _own_posts(http, me) == []


# -- avatars ------------------------------------------------------------------------------


def test_avatar_from_an_uploaded_image(http):
    me = sign_up(http, "md")
    image = uploaded(http, me, "image/jpeg", media_files.jpeg())
    r = http.patch("/v1/users/me", json={"avatarMediaId": image["mediaId"]}, headers=me.auth)
    assert r.status_code == 200, r.text
    assert r.json()["avatarUrl"] == image["url"]
    profile = http.get(f"/v1/users/{me.id}").json()
    assert profile["avatarUrl"] == image["url"]
    assert fetch(http, profile["avatarUrl"]).content == media_files.jpeg()
    # Other fields are untouched; an empty id clears the avatar.
    assert profile["displayName"] == me.username.upper()
    r = http.patch("/v1/users/me", json={"avatarMediaId": ""}, headers=me.auth)
    assert r.status_code == 200 and r.json()["avatarUrl"] == ""


def test_bad_avatars_are_refused_and_change_nothing(http):
    me, other = sign_up(http, "md"), sign_up(http, "md")
    mine = uploaded(http, me, "image/png", media_files.png())
    http.patch("/v1/users/me", json={"avatarMediaId": mine["mediaId"]}, headers=me.auth).raise_for_status()
    video = uploaded(http, me, "video/mp4", media_files.video())
    theirs = uploaded(http, other, "image/png", media_files.png())
    for media_id, status in ((video["mediaId"], 400), (theirs["mediaId"], 403), ("12345", 400), ("x", 400)):
        r = http.patch("/v1/users/me", json={"avatarMediaId": media_id}, headers=me.auth)
        assert r.status_code == status, (media_id, r.text)
        assert "avatar_media_id" in error_message(r)
    assert http.get(f"/v1/users/{me.id}").json()["avatarUrl"] == mine["url"]


# -- media service outage ----------------------------------------------------------------------


def test_with_the_media_service_down_posts_stay_readable_but_media_ids_are_not_accepted_unchecked(http):
    from tests.e2e.fanout_support import devstack

    me = sign_up(http, "md")
    item = uploaded(http, me, "image/png", media_files.png())
    with_media = http.post("/v1/posts", json={"text": "before", "mediaIds": [item["mediaId"]]}, headers=me.auth)
    assert with_media.status_code == 200, with_media.text
    devstack("down", "media")
    try:
        r = http.post("/v1/posts", json={"text": "during", "mediaIds": [item["mediaId"]]}, headers=me.auth)
        assert r.status_code == 503, r.text
        assert "media" in error_message(r)
        assert upload(http, me, "image/png", media_files.png()).status_code == 503
        # Reads degrade (at worst without `media`), plain posts still work.
        read = http.get(f"/v1/posts/{with_media.json()['id']}")
        assert read.status_code == 200 and read.json()["mediaIds"] == [item["mediaId"]]
        post(http, me, "plain text still posts")
        assert [p["text"] for p in _own_posts(http, me)] == ["plain text still posts", "before"]
        # The bytes come from the object store through Envoy, not from the media service.
        assert fetch(http, item["url"]).content == media_files.png()
    finally:
        devstack("up", "media")
    assert http.get(f"/v1/media/{item['mediaId']}").status_code == 200
    # Once media is back, posts' checks reach it again straight away.
    after = http.post("/v1/posts", json={"text": "after", "mediaIds": [item["mediaId"]]}, headers=me.auth)
    assert after.status_code == 200, after.text

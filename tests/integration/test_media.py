"""media against the real stack: the media process over gRPC, versitygw (S3) and Cassandra.

Every test signs up its own user. What the service stored is checked in the
backends themselves: the metadata row in aviary_media.media and the object in
the bucket (bytes, content type, owner), and that a refused upload left
neither behind.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import time

import grpc
import httpx
import pytest
from botocore.exceptions import ClientError
from cassandra import Unavailable
from google.api import httpbody_pb2
from PIL import Image

from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.media.v1 import media_pb2, media_pb2_grpc
from devstack.backends import cassandra_session
from services.kit.server import ids
from services.kit.settings import load
from services.media.servicer import MediaServicer
from services.media.settings import MediaSettings
from services.media.store import KEYSPACE, MediaRecord, ObjectStore, ObjectStoreSettings, s3_client
from services.media.validation import IMAGE_TYPES, MiB, sniff
from tests import media_files
from devstack.mesh_channels import open_channel

PASSWORD = "correct horse battery"
RPC_TIMEOUT = 15.0
S3 = ObjectStoreSettings.from_settings(load(MediaSettings))


@pytest.fixture(scope="module")
def identity():
    with open_channel("identity") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield identity_pb2_grpc.IdentityServiceStub(channel)


@pytest.fixture(scope="module")
def media():
    options = [("grpc.max_send_message_length", 64 * MiB)]
    with open_channel("media", options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield media_pb2_grpc.MediaServiceStub(channel)


@pytest.fixture(scope="module")
def s3():
    client = s3_client(S3)
    yield client
    client.close()


@pytest.fixture(scope="module")
def cql():
    cluster, session = cassandra_session(KEYSPACE)
    yield session
    cluster.shutdown()


class Account:
    def __init__(self, user: identity_pb2.User, token: str) -> None:
        self.id = user.id
        self.auth = (("authorization", f"Bearer {token}"),)


def sign_up(identity) -> Account:
    resp = identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=f"m_{secrets.token_hex(4)}", password=PASSWORD),
        timeout=RPC_TIMEOUT,
    )
    return Account(resp.user, resp.access_token)


def upload(media, who: Account | None, content_type: str, data: bytes) -> media_pb2.Media:
    return media.UploadMedia(
        media_pb2.UploadMediaRequest(file=httpbody_pb2.HttpBody(content_type=content_type, data=data)),
        metadata=who.auth if who else (),
        timeout=RPC_TIMEOUT,
    )


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def rows_of(cql, owner: Account) -> list:
    return list(
        cql.execute(f"SELECT media_id FROM {KEYSPACE}.media WHERE owner_id = %s ALLOW FILTERING", (int(owner.id),))
    )


def objects_of(s3, owner: Account, since_ms: int) -> list[str]:
    """Keys of objects minted since `since_ms` (keys are <time-ordered id>.<ext>) that `owner` uploaded."""
    floor = ids.min_id_at(since_ms)
    keys, token = [], None
    while True:
        page = s3.list_objects_v2(Bucket=S3.bucket, **({"ContinuationToken": token} if token else {}))
        keys += [o["Key"] for o in page.get("Contents", []) if int(o["Key"].split(".")[0]) >= floor]
        if not page.get("IsTruncated"):
            break
        token = page["NextContinuationToken"]
    return [k for k in keys if s3.head_object(Bucket=S3.bucket, Key=k)["Metadata"].get("owner-id") == owner.id]


# -- uploads ---------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", sorted(media_files.SAMPLES))
def test_upload_stores_the_object_then_the_row(identity, media, s3, cql, content_type):
    owner = sign_up(identity)
    data = media_files.SAMPLES[content_type]()
    before_ms = int(time.time() * 1000)
    item = upload(media, owner, content_type, data)

    assert item.media_id.isdigit() and item.owner_id == owner.id
    obj = s3.get_object(Bucket=S3.bucket, Key=item.url.rsplit("/", 1)[1])
    stored = obj["Body"].read()
    assert (item.content_type, item.size_bytes) == (content_type, len(stored))
    if content_type in IMAGE_TYPES:
        assert stored == data  # the samples carry no metadata: stored as sent
    else:
        assert sniff(stored) == content_type and media_files.SECRET_TEXT.encode() not in stored  # remuxed, untagged
    assert before_ms - 5_000 <= item.create_time.ToMilliseconds() <= int(time.time() * 1000) + 5_000
    key = item.url.rsplit("/", 1)[1]
    assert key.startswith(item.media_id + ".")

    row = cql.execute(f"SELECT * FROM {KEYSPACE}.media WHERE media_id = %s", (int(item.media_id),)).one()
    assert (row.owner_id, row.content_type, row.size_bytes, row.object_key) == (
        int(owner.id),
        content_type,
        len(stored),
        key,
    )

    assert obj["ContentType"] == content_type
    assert obj["Metadata"]["owner-id"] == owner.id
    assert "immutable" in obj["CacheControl"]
    # The probes test_refused_uploads_store_nothing relies on do see a stored upload.
    assert [r.media_id for r in rows_of(cql, owner)] == [int(item.media_id)]
    assert objects_of(s3, owner, before_ms - 1000) == [key]


def test_get_and_batch_get(identity, media):
    owner = sign_up(identity)
    a = upload(media, owner, "image/png", media_files.png())
    b = upload(media, owner, "video/mp4", media_files.video())
    # Reads need no token: media metadata is public like the bytes.
    assert media.GetMedia(media_pb2.GetMediaRequest(media_id=a.media_id), timeout=RPC_TIMEOUT) == a
    batch = media.BatchGetMedia(
        media_pb2.BatchGetMediaRequest(media_ids=[b.media_id, "12345", a.media_id, b.media_id]), timeout=RPC_TIMEOUT
    )
    assert list(batch.media) == [b, a]  # requested order, unknown left out, repeats once

    err = rpc_error(media.GetMedia, media_pb2.GetMediaRequest(media_id="12345"), timeout=RPC_TIMEOUT)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(media.GetMedia, media_pb2.GetMediaRequest(media_id="nope"), timeout=RPC_TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "media_id" in err.details()
    err = rpc_error(media.BatchGetMedia, media_pb2.BatchGetMediaRequest(media_ids=["1"] * 201), timeout=RPC_TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "media_ids" in err.details()


def test_upload_needs_a_valid_token(identity, media):
    err = rpc_error(upload, media, None, "image/png", media_files.png())
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    forged = Account(identity_pb2.User(id="1"), "not-a-jwt")
    err = rpc_error(upload, media, forged, "image/png", media_files.png())
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "content_type, data, field, says",
    [
        ("text/plain", b"hello", "file.content_type", "not allowed"),
        ("", media_files.png(), "file.content_type", "required"),
        ("image/png", b"", "file", "empty"),
        ("image/jpeg", media_files.png(), "file", "looks like image/png"),
        ("image/png", b"just some text", "file", "not a recognizable"),
        ("image/png", media_files.png(size=5 * MiB + 1), "file", "at most 5 MiB"),
        ("video/mp4", media_files.mp4(size=15 * MiB + 1), "file", "at most 15 MiB"),
        ("video/mp4", media_files.mp4()[:40], "file", "has no video stream"),
        ("video/mp4", media_files.video()[:3000], "file", "not a readable video/mp4"),
        ("image/png", media_files.png()[:33] + media_files.png()[-12:], "file", "could not be decoded"),
        ("image/gif", b"GIF89a" + b"\x00" * 20, "file", "not a valid image/gif"),
    ],
    ids=[
        "text",
        "no-type",
        "empty",
        "png-as-jpeg",
        "text-as-png",
        "image-too-big",
        "video-too-big",
        "mp4-header-only",
        "cut-mp4",
        "png-without-pixels",
        "gif-garbage",
    ],
)
def test_refused_uploads_store_nothing(identity, media, s3, cql, content_type, data, field, says):
    owner = sign_up(identity)
    since = int(time.time() * 1000) - 1000
    err = rpc_error(upload, media, owner, content_type, data)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field}:") and says in err.details()
    assert rows_of(cql, owner) == []
    assert objects_of(s3, owner, since) == []


def test_uploads_right_at_the_limits_are_accepted(identity, media):
    owner = sign_up(identity)
    # Both are padded to the limit; the padding is what stripping takes out again.
    assert upload(media, owner, "image/png", media_files.png(size=5 * MiB)).size_bytes == len(media_files.png())
    video = upload(media, owner, "video/mp4", media_files.video(size=15 * MiB))
    assert 0 < video.size_bytes < len(media_files.video())


def test_a_photo_is_stored_without_its_gps_position(identity, media, s3):
    owner = sign_up(identity)
    sent = media_files.photo("JPEG", width=60, height=40)
    item = upload(media, owner, "image/jpeg", sent)
    stored = s3.get_object(Bucket=S3.bucket, Key=item.url.rsplit("/", 1)[1])["Body"].read()
    assert item.size_bytes == len(stored) < len(sent)
    image = Image.open(io.BytesIO(stored))
    assert image.size == (60, 40) and dict(image.getexif()) == {} and image.getexif().get_ifd(0x8825) == {}
    assert media_files.SECRET_TEXT.encode() not in stored


# -- the bucket ------------------------------------------------------------------------


def test_bucket_allows_anonymous_reads_of_objects_and_nothing_else(identity, media, s3):
    owner = sign_up(identity)
    item = upload(media, owner, "image/gif", media_files.gif())
    key = item.url.rsplit("/", 1)[1]
    base = f"{S3.endpoint}/{S3.bucket}"
    with httpx.Client(timeout=10) as http:
        got = http.get(f"{base}/{key}")
        assert got.status_code == 200 and got.content == media_files.gif()
        assert got.headers["content-type"] == "image/gif"
        assert http.get(f"{base}/").status_code == 403  # no listing
        assert http.put(f"{base}/{key}", content=b"overwrite").status_code == 403
        assert http.delete(f"{base}/{key}").status_code == 403
        assert http.get(f"{base}/{key}?acl").status_code == 403
    assert s3.get_object(Bucket=S3.bucket, Key=key)["Body"].read() == media_files.gif()


async def test_bucket_setup_is_idempotent():
    store = ObjectStore(S3)
    await store.start()  # the bucket exists already: no error, policy re-applied
    await store.start()
    await store.stop()


# -- nothing half-written ---------------------------------------------------------------


class _FailingMetadata:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def insert(self, record: MediaRecord) -> None:
        raise self.exc


async def test_an_object_whose_row_cannot_be_written_is_deleted_again(s3):
    servicer = MediaServicer(load(MediaSettings))
    await servicer.objects.start()
    servicer.metadata = _FailingMetadata(
        Unavailable("cassandra down", consistency=1, required_replicas=1, alive_replicas=0)
    )
    media_id = servicer.ids.next_id()
    record = MediaRecord(
        media_id=media_id,
        owner_id=1,
        content_type="image/png",
        size_bytes=len(media_files.png()),
        object_key=f"{media_id}.png",
        created_at_ms=ids.timestamp_ms(media_id),
    )
    try:
        with pytest.raises(Unavailable):
            await servicer._write(record, media_files.png())
        with pytest.raises(ClientError) as caught:
            await asyncio.to_thread(s3.head_object, Bucket=S3.bucket, Key=record.object_key)
        assert caught.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    finally:
        await servicer.objects.stop()

"""media removes a deleted account's uploads when identity's AccountDeleted
arrives (consumer group media-accounts): rows, objects and owner index, uploads
made before the owner index existed included; gone accounts cannot upload."""

from __future__ import annotations

import asyncio
import secrets

import grpc
import httpx
import pytest
from google.api import httpbody_pb2

from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.media.v1 import media_pb2, media_pb2_grpc
from devstack.backends import cassandra_session
from services.kit.server import ids
from services.kit.settings import load
from services.media.settings import MediaSettings
from services.media.store import KEYSPACE, OWNER_INDEX_BACKFILL, MetadataStore, ObjectStoreSettings, s3_client
from services.media.validation import MiB
from tests import media_files
from tests.integration.account_events import account_deleted, mark_back, mark_gone, publish, wait_until
from devstack.mesh_channels import open_channel

SETTINGS = load(MediaSettings)
S3 = ObjectStoreSettings.from_settings(SETTINGS)


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
def cql():
    cluster, session = cassandra_session(KEYSPACE)
    yield session
    cluster.shutdown()


@pytest.fixture(scope="module")
def s3():
    client = s3_client(S3)
    yield client
    client.close()


class Account:
    def __init__(self, created) -> None:
        self.id = created.user.id
        self.auth = (("authorization", f"Bearer {created.access_token}"),)


def sign_up(identity) -> Account:
    request = identity_pb2.CreateAccountRequest(username=f"m_{secrets.token_hex(4)}", password="correct horse battery")
    return Account(identity.CreateAccount(request, timeout=15))


def upload(media, who: Account, content_type: str, data: bytes) -> media_pb2.Media:
    request = media_pb2.UploadMediaRequest(file=httpbody_pb2.HttpBody(content_type=content_type, data=data))
    return media.UploadMedia(request, metadata=who.auth, timeout=15)


def exists(media, media_id: str) -> bool:
    try:
        media.GetMedia(media_pb2.GetMediaRequest(media_id=media_id), timeout=10)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND
        return False
    return True


def served(url: str) -> int:
    with httpx.Client(timeout=10) as http:
        return http.get(url).status_code


def old_upload(cql, s3, owner: Account) -> tuple[int, str]:
    """An upload as stored before the owner index existed: object and media row, no index row."""
    media_id = ids.IdGenerator(1023).next_id()
    key = f"{media_id}.png"
    s3.put_object(Bucket=S3.bucket, Key=key, Body=media_files.png(), ContentType="image/png")
    cql.execute(
        f"INSERT INTO {KEYSPACE}.media (media_id, owner_id, content_type, size_bytes, object_key, created_at) "
        "VALUES (%s, %s, 'image/png', 1, %s, toTimestamp(now()))",
        (media_id, int(owner.id), key),
    )
    return media_id, key


def fill_owner_index_again() -> int:
    async def run() -> int:
        store = MetadataStore(SETTINGS)
        await store.start()
        try:
            return await store.fill_owner_index()
        finally:
            await store.stop()

    return asyncio.run(run())


def test_a_deleted_accounts_uploads_are_gone_and_their_urls_404(identity, media, cql, s3):
    owner, other = sign_up(identity), sign_up(identity)
    mine = [
        upload(media, owner, "image/png", media_files.png()),
        upload(media, owner, "video/mp4", media_files.video()),
    ]
    theirs = upload(media, other, "image/gif", media_files.gif())
    # An upload from before the owner index: the one-off backfill copies it in.
    legacy_id, legacy_key = old_upload(cql, s3, owner)
    cql.execute(f"DELETE FROM {KEYSPACE}.backfills WHERE name = %s", (OWNER_INDEX_BACKFILL,))
    assert fill_owner_index_again() >= 3
    assert fill_owner_index_again() == 0  # recorded as done
    owned = cql.execute(f"SELECT media_id FROM {KEYSPACE}.media_by_owner WHERE owner_id = %s", (int(owner.id),))
    assert sorted(r.media_id for r in owned) == sorted([legacy_id, *(int(m.media_id) for m in mine)])
    assert all(served(m.url) == 200 for m in mine)

    event = account_deleted(owner.id, "owner")
    publish(event)

    wait_until(lambda: not any(exists(media, m.media_id) for m in mine))
    wait_until(
        lambda: (
            not cql.execute(
                f"SELECT media_id FROM {KEYSPACE}.media_by_owner WHERE owner_id = %s", (int(owner.id),)
            ).all()
        )
    )
    assert [served(m.url) for m in mine] == [404, 404]
    assert not cql.execute(f"SELECT media_id FROM {KEYSPACE}.media WHERE media_id = %s", (legacy_id,)).all()
    with pytest.raises(Exception):
        s3.head_object(Bucket=S3.bucket, Key=legacy_key)
    # Someone else's upload stays.
    assert exists(media, theirs.media_id) and served(theirs.url) == 200

    # Redelivered: nothing left to do, nothing fails, the other upload still stays.
    publish(event)
    publish(account_deleted(other.id, "other"), key=owner.id)  # behind it on the same partition
    wait_until(lambda: not exists(media, theirs.media_id))
    assert served(theirs.url) == 404


def test_a_gone_account_cannot_upload(identity, media):
    gone = sign_up(identity)
    mark_gone(gone.id)
    try:

        def refused() -> grpc.StatusCode | None:
            try:
                upload(media, gone, "image/png", media_files.png())
            except grpc.RpcError as err:
                return err.code()
            return None

        assert wait_until(refused) == grpc.StatusCode.PERMISSION_DENIED
    finally:
        mark_back(gone.id)


def test_an_upload_racing_the_deletion_is_removed_once_the_account_shows_as_gone(identity, media):
    owner = sign_up(identity)
    first = upload(media, owner, "image/png", media_files.png())
    publish(account_deleted(owner.id, "owner"))
    wait_until(lambda: not exists(media, first.media_id))
    # Identity has not marked the account gone yet: this upload gets through
    # after the first removal, as one racing the deletion would.
    late = upload(media, owner, "image/png", media_files.png())
    mark_gone(owner.id)
    try:
        wait_until(lambda: not exists(media, late.media_id), timeout=15)
        assert served(late.url) == 404
    finally:
        mark_back(owner.id)

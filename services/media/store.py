"""Storage for media: bytes in an S3-compatible object store, metadata in Cassandra.

The only code that talks to the bucket or to keyspace `aviary_media`.

Tables:
  media           one partition per media item: owner, type, size, object key
  media_by_owner  one partition per owner: their media ids and object keys
                  (written with the media row; rows from before it existed
                  are copied in once, see fill_owner_index)
  backfills       one-off jobs over existing rows, by name, once done

Objects are written before their metadata row, so a row never points at
nothing; an object whose row could not be written is deleted again (best
effort; a leftover is an unreferenced object, never a broken reference).
Object keys are `<media_id>.<ext>` and never reused, so served objects are
immutable and cacheable for ever.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from services.kit.stores import cql
from services.kit.settings import Settings
from services.media.settings import MediaSettings

log = logging.getLogger(__name__)

KEYSPACE = "aviary_media"

SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.media (
        media_id bigint PRIMARY KEY,
        owner_id bigint,
        content_type text,
        size_bytes bigint,
        object_key text,
        created_at timestamp,
        alt_text text
    )""",
    # Every upload of one owner, so an account's deletion finds them all
    # without scanning the whole table.
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.media_by_owner (
        owner_id bigint,
        media_id bigint,
        object_key text,
        PRIMARY KEY (owner_id, media_id)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.backfills (
        name text PRIMARY KEY,
        done_at timestamp
    )""",
]
# Columns added after their table was first created: (table, column, type).
ADDED_COLUMNS = [("media", "alt_text", "text")]
# The backfill that fills media_by_owner from media (see fill_owner_index).
OWNER_INDEX_BACKFILL = "media_by_owner"
SCAN_PAGE = 1000

_COLUMNS = "media_id, owner_id, content_type, size_bytes, object_key, created_at, alt_text"

# Objects never change once written (keys are never reused).
CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class MediaRecord:
    media_id: int
    owner_id: int
    content_type: str
    size_bytes: int
    object_key: str
    created_at_ms: int
    # What the media shows, for screen readers; empty when none was given.
    alt_text: str = ""


# ----------------------------------------------------------------------------- metadata (Cassandra)


class MetadataStore:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.session: Session | None = None
        self._st: dict[str, PreparedStatement] = {}

    async def start(self) -> None:
        self.session = await cql.connect(self._settings)
        await cql.ensure_keyspace(self.session, KEYSPACE, self._settings.cassandra_rf)
        await cql.apply_schema(self.session, SCHEMA)
        await cql.add_missing_columns(self.session, KEYSPACE, ADDED_COLUMNS)
        ks = KEYSPACE
        queries = {
            "insert": f"INSERT INTO {ks}.media ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            "select": f"SELECT {_COLUMNS} FROM {ks}.media WHERE media_id = ?",
            "select_many": f"SELECT {_COLUMNS} FROM {ks}.media WHERE media_id IN ?",
            "delete": f"DELETE FROM {ks}.media WHERE media_id = ?",
            "put_owned": f"INSERT INTO {ks}.media_by_owner (owner_id, media_id, object_key) VALUES (?, ?, ?)",
            "drop_owned": f"DELETE FROM {ks}.media_by_owner WHERE owner_id = ? AND media_id = ?",
            "owned_after": f"SELECT media_id, object_key FROM {ks}.media_by_owner "
            "WHERE owner_id = ? AND media_id > ? LIMIT ?",
            "scan_after": f"SELECT token(media_id), media_id, owner_id, object_key FROM {ks}.media "
            "WHERE token(media_id) > ? LIMIT ?",
            "backfill_done": f"SELECT done_at FROM {ks}.backfills WHERE name = ?",
            "mark_backfill_done": f"INSERT INTO {ks}.backfills (name, done_at) VALUES (?, ?)",
        }
        prepared = await asyncio.gather(*(cql.prepare(self.session, q) for q in queries.values()))
        self._st = dict(zip(queries, prepared))

    async def stop(self) -> None:
        session, self.session = self.session, None
        await cql.close(session)

    async def insert(self, record: MediaRecord) -> None:
        """The media row and its owner's index row, both or neither (LOGGED batch)."""
        created_at = datetime.datetime.fromtimestamp(record.created_at_ms / 1000, tz=datetime.timezone.utc)
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(
            self._st["insert"],
            (
                record.media_id,
                record.owner_id,
                record.content_type,
                record.size_bytes,
                record.object_key,
                created_at,
                record.alt_text,
            ),
        )
        batch.add(self._st["put_owned"], (record.owner_id, record.media_id, record.object_key))
        await cql.execute(self.session, batch)

    async def get(self, media_id: int) -> MediaRecord | None:
        rows = await cql.execute(self.session, self._st["select"], (media_id,))
        return _record(rows[0]) if rows else None

    async def owned_after(self, owner_id: int, after: int, limit: int) -> list[tuple[int, str]]:
        """(media id, object key) of the owner's uploads with ids above `after`, ascending."""
        rows = await cql.execute(self.session, self._st["owned_after"], (owner_id, after, limit))
        return [(r.media_id, r.object_key) for r in rows]

    async def delete(self, media_id: int) -> None:
        """The media row only: the owner's index row stays until the object is gone too."""
        await cql.execute(self.session, self._st["delete"], (media_id,))

    async def drop_owned(self, owner_id: int, media_id: int) -> None:
        await cql.execute(self.session, self._st["drop_owned"], (owner_id, media_id))

    async def fill_owner_index(self) -> int:
        """Once per keyspace: an owner index row for every media row written
        before media_by_owner existed (new uploads write both). Upserts, so
        replicas starting together or a rerun after a crash do no harm; a
        token-ordered scan of `media`, a page at a time. Returns the rows
        copied (0 when done before)."""
        if await cql.execute(self.session, self._st["backfill_done"], (OWNER_INDEX_BACKFILL,)):
            return 0
        copied, after = 0, -(2**63)
        while True:
            rows = await cql.execute(self.session, self._st["scan_after"], (after, SCAN_PAGE))
            await asyncio.gather(
                *(
                    cql.execute(self.session, self._st["put_owned"], (r.owner_id, r.media_id, r.object_key))
                    for r in rows
                )
            )
            copied += len(rows)
            if len(rows) < SCAN_PAGE:
                break
            after = rows[-1][0]
        now = datetime.datetime.now(datetime.timezone.utc)
        await cql.execute(self.session, self._st["mark_backfill_done"], (OWNER_INDEX_BACKFILL, now))
        return copied

    async def get_many(self, media_ids: list[int]) -> list[MediaRecord | None]:
        """The rows of media_ids in the order asked; None for media that do not exist."""
        rows = await cql.rows_by_key(self.session, self._st["select_many"], media_ids, key_of=lambda row: row.media_id)
        return [_record(rows[media_id]) if media_id in rows else None for media_id in media_ids]


def _record(row) -> MediaRecord:
    created_at = row.created_at
    if created_at.tzinfo is None:  # the driver returns naive UTC datetimes
        created_at = created_at.replace(tzinfo=datetime.timezone.utc)
    return MediaRecord(
        media_id=row.media_id,
        owner_id=row.owner_id,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        object_key=row.object_key,
        created_at_ms=int(created_at.timestamp() * 1000),
        alt_text=row.alt_text or "",
    )


# ----------------------------------------------------------------------------- bytes (S3)


@dataclass(frozen=True)
class ObjectStoreSettings:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    region: str

    @classmethod
    def from_settings(cls, settings: MediaSettings) -> "ObjectStoreSettings":
        return cls(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=settings.bucket,
            region=settings.s3_region,
        )


def public_read_policy(bucket: str) -> str:
    """Anyone may GET an object (that is what a media URL is for); nothing else:
    no listing, no writes, no ACL or policy reads."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicReadObjects",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
    )


def s3_client(settings: ObjectStoreSettings) -> Any:
    """A boto3 S3 client for the configured endpoint (path-style, SigV4)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        region_name=settings.region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=2,
            read_timeout=15,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=32,
        ),
    )


class ObjectStore:
    """The media bucket. boto3 blocks, so every call runs in a worker thread."""

    def __init__(self, settings: ObjectStoreSettings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._client: Any = None

    async def start(self) -> None:
        self._client = await asyncio.to_thread(s3_client, self.settings)
        await asyncio.to_thread(self._ensure_bucket)

    def _ensure_bucket(self) -> None:
        """Creates the bucket and its public-read policy; idempotent, safe under concurrent starts."""
        from botocore.exceptions import ClientError

        try:
            self._client.create_bucket(Bucket=self.bucket)
            log.info("created media bucket", extra={"bucket": self.bucket})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        self._client.put_bucket_policy(Bucket=self.bucket, Policy=public_read_policy(self.bucket))

    async def put(self, key: str, data: bytes, content_type: str, owner_id: int) -> None:
        await asyncio.to_thread(
            self._client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            CacheControl=CACHE_CONTROL,
            # Who uploaded it, on the object itself: audits and orphan sweeps
            # need no metadata row to tell.
            Metadata={"owner-id": str(owner_id)},
        )

    async def delete(self, key: str) -> None:
        """Idempotent: deleting a key that is not there succeeds too."""
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=key)

    async def stop(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

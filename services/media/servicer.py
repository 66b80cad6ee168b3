"""MediaService: uploads (validated, stored in the object store), metadata reads.

Upload order: validate everything (type, size, then the file parsed in full
and stripped of metadata), write the object, then the metadata row.
A failure between the two deletes the object again, so an acknowledged
upload is complete and a failed one leaves nothing that anything refers to.
"""

from __future__ import annotations

import asyncio
import logging

from botocore.exceptions import BotoCoreError, ClientError
from cassandra import Unavailable
from cassandra.cluster import NoHostAvailable
from google.protobuf.timestamp_pb2 import Timestamp

from aviary.events.v1 import events_pb2
from aviary.media.v1 import media_pb2, media_pb2_grpc
from services.kit.events.account_deletions import AccountDeletions
from services.kit.peers import accounts
from services.kit.stores import cql, redis_client
from services.kit.server import auth, ids
from services.kit.server.errors import not_found, permission_denied, unavailable
from services.media import images, validation, videos
from services.media.settings import MediaSettings
from services.media.store import MediaRecord, MetadataStore, ObjectStore, ObjectStoreSettings
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

MAX_BATCH_GET = 200
# Account deletions (identity's AccountDeleted): one group for all replicas.
ACCOUNTS_GROUP = "media-accounts"
# A deleted account's uploads removed per page, and how many at once.
REMOVAL_PAGE = 100
REMOVAL_CONCURRENCY = 8

_OBJECT_ERRORS = (BotoCoreError, ClientError)


def public_base_url(settings: MediaSettings) -> str:
    """Where clients fetch objects: Envoy routes <base>/<key> to the bucket."""
    return settings.public_url.rstrip("/")


class MediaServicer(media_pb2_grpc.MediaServiceServicer):
    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings
        self.limits = validation.Limits.from_settings(settings)
        self.video_tools = videos.Tools.from_settings(settings)
        # Decoding and probing take CPU and memory: this many uploads at a time.
        self._processing = asyncio.Semaphore(settings.processing_concurrency)
        self.metadata = MetadataStore(settings)
        self.objects = ObjectStore(ObjectStoreSettings.from_settings(settings))
        self.ids = ids.IdGenerator(settings.worker_id)
        self.base_url = public_base_url(settings)
        # A suspended or deleted account cannot upload (its access token
        # outlives the deletion by up to its lifetime).
        self.redis = redis_client.client(settings)
        self.gone = accounts.GoneAccounts(self.redis)
        self.second_sweeps = accounts.SecondSweeps(self.gone, self.remove_uploads_of)
        self.account_deletions = AccountDeletions(
            settings.kafka_bootstrap, ACCOUNTS_GROUP, self._on_account_deleted, second_sweeps=self.second_sweeps
        )

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        await asyncio.gather(self.metadata.start(), self._start_objects())

    async def _start_objects(self) -> None:
        # On a fresh machine the object store may still be coming up.
        delay = 0.5
        for attempt in range(12):
            try:
                return await self.objects.start()
            except _OBJECT_ERRORS as exc:
                if attempt == 11:
                    raise
                log.warning("object store not reachable yet; retrying", extra={"error": str(exc)[:300]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        await self.objects.stop()
        await self.metadata.stop()
        await self.redis.aclose()

    # -- account deletion -----------------------------------------------------

    async def consume_account_events(self) -> None:
        """Background job: removes deleted accounts' uploads. The owner index
        is filled from existing rows first (once per keyspace), so a
        deletion finds uploads made before the index existed too."""
        copied = await self.metadata.fill_owner_index()
        if copied:
            log.info("owner index filled from existing media", extra={"media": copied})
        await self.account_deletions.run()

    async def _on_account_deleted(self, event: events_pb2.AccountEvent) -> None:
        await self.remove_uploads_of(event.deleted.user_id)

    async def remove_uploads_of(self, owner_id: int) -> None:
        """Every upload of the owner: its metadata row (hydration stops
        showing it), its object (the URL answers 404), then its index row, the
        bookmark a rerun resumes from. Idempotent."""
        removed = 0
        while page := await self.metadata.owned_after(owner_id, 0, REMOVAL_PAGE):
            for start in range(0, len(page), REMOVAL_CONCURRENCY):
                chunk = page[start : start + REMOVAL_CONCURRENCY]
                await asyncio.gather(*(self._remove_upload(owner_id, media_id, key) for media_id, key in chunk))
            removed += len(page)
        log.info("deleted account's media removed", extra={"owner_id": owner_id, "media": removed})

    async def _remove_upload(self, owner_id: int, media_id: int, object_key: str) -> None:
        await self.metadata.delete(media_id)
        await self.objects.delete(object_key)
        await self.metadata.drop_owned(owner_id, media_id)

    # -- RPCs ---------------------------------------------------------------

    @cql.outage_as_unavailable("media storage")
    async def UploadMedia(self, request: media_pb2.UploadMediaRequest, context) -> media_pb2.Media:
        owner_id = auth.caller_id(context)
        if await self.gone.contains(owner_id):
            raise permission_denied("your account is suspended or deleted: it cannot upload")
        content_type = validation.check_upload(request.file.content_type, request.file.data, self.limits)
        alt_text = validation.check_alt_text(request.alt_text)
        data = await self._cleaned(content_type, request.file.data)

        media_id = self.ids.next_id()
        record = MediaRecord(
            media_id=media_id,
            owner_id=owner_id,
            content_type=content_type,
            size_bytes=len(data),
            object_key=f"{media_id}.{validation.EXTENSIONS[content_type]}",
            created_at_ms=ids.timestamp_ms(media_id),
            alt_text=alt_text,
        )
        # Shielded: a client that goes away mid-upload must not stop the
        # write between the object and its row.
        await asyncio.shield(self._write(record, data))
        log.info(
            "media uploaded",
            extra={
                "media_id": media_id,
                "owner_id": owner_id,
                "content_type": content_type,
                "size_bytes": len(data),
                "uploaded_bytes": len(request.file.data),
            },
        )
        return self._proto(record)

    @cql.outage_as_unavailable("media storage")
    async def GetMedia(self, request: media_pb2.GetMediaRequest, context) -> media_pb2.Media:
        media_id = ids.parse_id(request.media_id, "media_id")
        record = await self.metadata.get(media_id)
        if record is None:
            raise not_found(f"media {media_id} does not exist")
        return self._proto(record)

    @cql.outage_as_unavailable("media storage")
    async def BatchGetMedia(self, request: media_pb2.BatchGetMediaRequest, context) -> media_pb2.BatchGetMediaResponse:
        media_ids = list(dict.fromkeys(ids.parse_ids(request.media_ids, "media_ids", max_items=MAX_BATCH_GET)))
        records = await self.metadata.get_many(media_ids)
        return media_pb2.BatchGetMediaResponse(media=[self._proto(r) for r in records if r is not None])

    # -- helpers ------------------------------------------------------------

    async def _cleaned(self, content_type: str, data: bytes) -> bytes:
        """The upload parsed in full and stripped of metadata: what gets stored."""
        async with self._processing:
            if content_type in validation.IMAGE_TYPES:
                return await asyncio.to_thread(images.clean, content_type, data, self.limits.pixels)
            return await videos.clean(content_type, data, self.video_tools)

    def _proto(self, record: MediaRecord) -> media_pb2.Media:
        created = Timestamp()
        created.FromMilliseconds(record.created_at_ms)
        return media_pb2.Media(
            media_id=str(record.media_id),
            owner_id=str(record.owner_id),
            content_type=record.content_type,
            size_bytes=record.size_bytes,
            url=f"{self.base_url}/{record.object_key}",
            create_time=created,
            alt_text=record.alt_text,
        )

    async def _write(self, record: MediaRecord, data: bytes) -> None:
        """The object first, then its row: a row never points at nothing."""
        try:
            await self.objects.put(record.object_key, data, record.content_type, record.owner_id)
        except _OBJECT_ERRORS as exc:
            log.warning("object write failed", extra={"key": record.object_key, "error": error_text(exc)})
            raise unavailable("media storage is temporarily unavailable; try again") from exc
        try:
            await self.metadata.insert(record)
        except (Unavailable, NoHostAvailable):
            # The row was certainly not written: nothing refers to the object.
            await self._discard_object(record.object_key)
            raise
        # After a timeout the row may or may not exist, so the object stays:
        # an unreferenced object is harmless, a row without its object is not.

    async def _discard_object(self, key: str) -> None:
        try:
            await self.objects.delete(key)
        except Exception:
            log.warning(
                "could not delete an object whose metadata write failed; it is unreferenced",
                extra={"key": key},
                exc_info=True,
            )

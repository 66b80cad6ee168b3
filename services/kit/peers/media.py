"""Whether media ids name the caller's own uploads, asked of the media service.

Posts and products carry media by id; the one rule for both: every id exists
and was uploaded by the writer (products: and is an image). The media service
is asked afresh on every write, never a cache; when it cannot answer, the
write is refused UNAVAILABLE, so unchecked ids are never stored.
"""

from __future__ import annotations

import logging

import grpc

from aviary.media.v1 import media_pb2
from services.kit.peers import clients
from services.kit.peers.lookup import PeerLookup
from services.kit.server.errors import invalid_argument, permission_denied, unavailable

log = logging.getLogger(__name__)

BATCH_GET_LIMIT = 200  # ids BatchGetMedia answers in one call


async def _batch_get(media_ids: list[int], timeout: float) -> list[tuple[int, media_pb2.Media]]:
    response = await clients.media().BatchGetMedia(
        media_pb2.BatchGetMediaRequest(media_ids=[str(i) for i in media_ids]), timeout=timeout
    )
    return [(int(m.media_id), m) for m in response.media]


def lookup(cache_seconds: float, max_entries: int) -> PeerLookup[media_pb2.Media]:
    """Media by id for reads, reused for `cache_seconds` (media never changes once
    uploaded): one per servicer, built at start-up."""
    return PeerLookup(
        _batch_get,
        what="media BatchGetMedia",
        batch=BATCH_GET_LIMIT,
        ttl_seconds=cache_seconds,
        max_entries=max_entries,
    )


async def fetch(media_ids: list[int], timeout: float) -> dict[int, media_pb2.Media]:
    """The media service's records for these ids, asked afresh (absent ids are left out)."""
    found: dict[int, media_pb2.Media] = {}
    for start in range(0, len(media_ids), BATCH_GET_LIMIT):
        found.update(await _batch_get(media_ids[start : start + BATCH_GET_LIMIT], timeout))
    return found


async def check_own_uploads(media_ids: list[int], owner_id: int, timeout: float, *, images_only: bool = False) -> None:
    """INVALID_ARGUMENT / PERMISSION_DENIED naming media_ids[i] unless every id is
    an upload of `owner_id` (and an image, when asked); UNAVAILABLE when the
    media service cannot answer."""
    if not media_ids:
        return
    try:
        found = await fetch(media_ids, timeout)
    except grpc.aio.AioRpcError as exc:
        log.warning("media BatchGetMedia failed", extra={"code": exc.code().name, "details": exc.details()})
        raise unavailable(f"cannot check media_ids right now (media service: {exc.code().name}); try again") from exc
    what = "the image" if images_only else "it"
    for i, media_id in enumerate(media_ids):
        media = found.get(media_id)
        field = f"media_ids[{i}]"
        if media is None:
            raise invalid_argument(field, f"media {media_id} does not exist; upload {what} first (POST /v1/media)")
        if media.owner_id != str(owner_id):
            raise permission_denied(f"{field}: media {media_id} was uploaded by someone else; use your own uploads")
        if images_only and not media.content_type.startswith("image/"):
            raise invalid_argument(field, f"media {media_id} is {media.content_type}, not an image")

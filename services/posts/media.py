"""Media on posts, through the media service (posts never reads its store).

- `check_media_ids`: CreatePost's media ids must exist and belong to the
  author. When the media service cannot answer, the post is refused with
  UNAVAILABLE: unchecked ids are never stored.
- `attach_media`: hydrated posts carry their Media (url, type, size) in
  media_ids order. Reads degrade: with the media service down, posts come
  back without `media` (media_ids are always there) rather than failing.

Media metadata never changes once uploaded, so reads use what was fetched
for a while (AVIARY_POSTS_MEDIA_CACHE_SECONDS); the CreatePost check always
asks the media service.
"""

from __future__ import annotations

import logging

import grpc

from aviary.media.v1 import media_pb2
from aviary.posts.v1 import posts_pb2
from services.kit import clients
from services.kit.config import env_float
from services.kit.errors import invalid_argument, permission_denied, unavailable
from services.posts.lookup import PeerLookup

log = logging.getLogger(__name__)


async def _batch_get_media(media_ids: list[int], timeout: float) -> list[tuple[int, media_pb2.Media]]:
    response = await clients.media().BatchGetMedia(
        media_pb2.BatchGetMediaRequest(media_ids=[str(i) for i in media_ids]), timeout=timeout
    )
    return [(int(m.media_id), m) for m in response.media]


# BatchGetMedia takes at most 200 ids per call.
_media: PeerLookup[media_pb2.Media] = PeerLookup(
    _batch_get_media,
    what="media BatchGetMedia",
    batch=200,
    ttl_seconds=env_float("AVIARY_POSTS_MEDIA_CACHE_SECONDS", 300.0),
    max_entries=100_000,
)


async def check_media_ids(media_ids: list[int], author_id: int, timeout: float) -> None:
    """INVALID_ARGUMENT / PERMISSION_DENIED naming media_ids unless every id is the author's
    own upload; UNAVAILABLE when that cannot be checked right now."""
    if not media_ids:
        return
    seen: set[int] = set()
    for media_id in media_ids:
        if media_id in seen:
            raise invalid_argument("media_ids", f"media {media_id} is listed more than once")
        seen.add(media_id)
    try:
        # Asked afresh, not from the cache: a write is checked by the owner of the data.
        found = await _media.get(media_ids, timeout, cached=False)
    except grpc.aio.AioRpcError as exc:
        log.warning("media BatchGetMedia failed", extra={"code": exc.code().name, "details": exc.details()})
        raise unavailable(f"cannot check media_ids right now (media service: {exc.code().name}); try again") from exc
    for media_id in media_ids:
        media = found.get(media_id)
        if media is None:
            raise invalid_argument("media_ids", f"media {media_id} does not exist; upload it first (POST /v1/media)")
        if media.owner_id != str(author_id):
            raise permission_denied(
                f"media_ids: media {media_id} was uploaded by someone else; a post can only carry your own uploads"
            )


async def attach_media(posts: list[posts_pb2.Post], timeout: float) -> None:
    """Fills `media` of each post (and of an embedded reposted post) in media_ids order.

    Never fails: without the media service, posts simply lack `media`."""
    await _media.attach(posts, "media_ids", "media", timeout)

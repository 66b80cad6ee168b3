"""Media on posts, through the media service (posts never reads its store).

- `check_media_ids`: CreatePost's media ids are listed once each and are
  the author's own uploads (the kit's rule, services.kit.peers.media).
- `attach_media`: hydrated posts carry their Media (url, type, size) in
  media_ids order. Reads degrade: with the media service down, posts come
  back without `media` (media_ids are always there) rather than failing.

Media metadata never changes once uploaded, so reads use what was fetched
for a while (AVIARY_POSTS_MEDIA_CACHE_SECONDS); the CreatePost check always
asks the media service.
"""

from __future__ import annotations

import logging


from aviary.media.v1 import media_pb2
from aviary.posts.v1 import posts_pb2
from services.kit.peers import media
from services.kit.peers.engagement_overlay import with_originals
from services.kit.peers.lookup import PeerLookup
from services.kit.server.errors import invalid_argument

log = logging.getLogger(__name__)


def media_lookup(cache_seconds: float) -> PeerLookup[media_pb2.Media]:
    """Media by id, reused for `cache_seconds`: one per servicer, built at start-up."""
    return media.lookup(cache_seconds, max_entries=100_000)


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
    await media.check_own_uploads(media_ids, author_id, timeout)


async def attach_media(lookup: PeerLookup[media_pb2.Media], posts: list[posts_pb2.Post], timeout: float) -> None:
    """Fills `media` of each post (and of an embedded reposted post) in media_ids order.

    Never fails: without the media service, posts simply lack `media`."""
    await lookup.attach(with_originals(posts), "media_ids", "media", timeout)

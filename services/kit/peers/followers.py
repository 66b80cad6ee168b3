"""Whom a new post goes to: graph's first page of the author's followers, kept per author.

Most posts come from authors who posted a little before, to the same
followers, and asking graph (ListFollowerIds) costs a gRPC hop on both sides
for every post. An answer is kept with the author's followers version from
Redis, read before graph is asked, and the Redis epoch it was read in
(kit/stores/redis_epoch.py), and is used only while both are unchanged.
Graph moves the version before it publishes any follow or unfollow of the
author, and again once a follower count changes (graph/follower_lists.py),
so a kept answer that misses a change is used only before fanout can act
on that change: the follow's backfill or the unfollow's purge comes after
it, as with graph's own kept lists. Only whole answers are kept: a
celebrity's (no ids: its posts are not fanned out) and lists that fit one
page. With Redis unreadable, graph is asked every time and nothing is kept.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter
from redis.exceptions import RedisError

from aviary.graph.v1 import graph_pb2
from services.kit.peers import clients
from services.kit.server.logs import error_text
from services.kit.stores.cache import TtlCache
from services.kit.stores.redis_bulk import BulkRedis
from services.kit.stores.redis_epoch import RedisEpoch

log = logging.getLogger(__name__)

LOOKUPS = Counter(
    "aviary_follower_pages_total", "First pages of followers for new posts, by where they came from", ["result"]
)  # hit | miss | unversioned

# A user's followers version lives this long after its last change (graph sets it).
VERSION_SECONDS = 600
# How long an answer is kept at most: under VERSION_SECONDS, so a version
# never lapses back to "none" while an answer kept under "none" is used.
KEEP_SECONDS = 300.0


def version_key(user_id: int) -> str:
    """Where graph keeps a user's followers version (moved on every change)."""
    return f"graph:followers-version:{{{user_id}}}"


async def current_version(bulk: BulkRedis, epoch: RedisEpoch, user_id: int) -> bytes | None:
    """The user's followers version within the current Redis epoch: what a
    copy of their followers is kept under. None when either cannot be read,
    and then no copy is used or kept."""
    current = epoch.current
    if current is None:
        return None
    try:
        (version,) = await bulk.read([(b"GET", version_key(user_id))])
    except (RedisError, OSError) as exc:
        log.warning("followers version unreadable; no kept copy is used", extra={"error": error_text(exc)})
        return None
    # Read after the version: an epoch that moved meanwhile is not this version's.
    if epoch.current != current:
        return None
    return current + b":" + (version or b"")


class FirstPages:
    """A per-process copy of graph's answers to ListFollowerIds for new posts
    (`skip_celebrity`), one per author."""

    def __init__(
        self, bulk: BulkRedis, epoch: RedisEpoch, *, max_authors: int = 50_000, max_ids_held: int = 2_000_000
    ) -> None:
        """`epoch`: watched by the process (RedisEpoch.watch_forever)."""
        self._bulk = bulk
        self._epoch = epoch
        # Bounded by memory as well as by count: most lists are short.
        self._pages: TtlCache[int, tuple[bytes, graph_pb2.ListFollowerIdsResponse]] = TtlCache(
            KEEP_SECONDS, max_authors, weigh=lambda kept: len(kept[1].follower_ids), max_weight=max_ids_held
        )

    async def for_post(self, author_id: int, page_size: int, timeout: float) -> graph_pb2.ListFollowerIdsResponse:
        """The first page of the author's followers, or a celebrity's answer.
        Never changed by the caller: it may be handed out again."""
        version = await current_version(self._bulk, self._epoch, author_id)
        if version is not None:
            found, _ = self._pages.get_many([author_id])
            kept = found.get(author_id)
            if kept is not None and kept[0] == version:
                LOOKUPS.labels("hit").inc()
                return kept[1]
        LOOKUPS.labels("miss" if version is not None else "unversioned").inc()
        page = await self._ask_graph(author_id, page_size, timeout)
        if version is not None and not page.next_page_token:
            self._pages.put_many([(author_id, (version, page))])
        return page

    async def _ask_graph(self, author_id: int, page_size: int, timeout: float) -> graph_pb2.ListFollowerIdsResponse:
        return await clients.graph().ListFollowerIds(
            graph_pb2.ListFollowerIdsRequest(user_id=str(author_id), page_size=page_size, skip_celebrity=True),
            timeout=timeout,
        )

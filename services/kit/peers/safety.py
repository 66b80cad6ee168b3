"""Whose posts a viewer must not be shown: graph's GetHiddenAuthors, cached per viewer.

Read paths (home timeline, feed, notifications, replies) ask once per read,
not once per post. An answer is kept with the viewer's version from Redis
(graph moves it on every block, unblock, mute and unmute that concerns the
viewer, before answering the caller) and the Redis epoch it was read in
(kit/stores/redis_epoch.py), and used only while both are unchanged: a block
shows on the very next read, and a version lost with a Redis restart or
failover never vouches for an old answer. With Redis unreadable graph is
asked every time and nothing is cached. Mute end times travel with the
answer and are checked at each use, so an expired mute ends on time.

When graph cannot answer, nothing is hidden and the read is served: a
missing filter for a moment is better than a page that fails.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from dataclasses import dataclass
from typing import cast

import grpc
import redis.asyncio as redis
from prometheus_client import Counter

from aviary.graph.v1 import graph_pb2
from aviary.posts.v1 import posts_pb2
from services.kit.peers import accounts, clients
from services.kit.stores.cache import TtlCache
from services.kit.stores.redis_bulk import BulkRedis
from services.kit.stores.redis_epoch import RedisEpoch
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

LOOKUPS = Counter(
    "aviary_hidden_authors_lookups_total", "Hidden-author lookups, by where the answer came from", ["result"]
)

# A viewer's version lives this long after its last change (graph sets it).
VERSION_SECONDS = 600
# How long an answer is kept at most: under VERSION_SECONDS, so a version
# never lapses back to "none" while an answer cached under "none" is held.
# The version and epoch checks make every change show at once; a long keep
# spares most reads a graph call (three partition reads).
CACHE_SECONDS = 300.0
# An epoch read this long ago still vouches for cached answers (about the
# interval of the epoch watches that other processes run).
EPOCH_MAX_AGE_SECONDS = 1.0
# The same for a process without Redis (no version to check): changes show
# within this.
UNVERSIONED_CACHE_SECONDS = 5.0


def version_key(user_id: int) -> str:
    """Where graph keeps a viewer's hidden-authors version (moved on each change)."""
    return f"graph:hidden-version:{{{user_id}}}"


@dataclass(frozen=True)
class Hidden:
    """One viewer's hidden authors: those the viewer blocks, those who block
    the viewer, and those muted until when (None: for good)."""

    blocking: frozenset[int] = frozenset()
    blocked_by: frozenset[int] = frozenset()
    muted_until: tuple[tuple[int, float | None], ...] = ()
    # Suspended and deleted accounts: hidden from every viewer, signed in or not.
    gone: frozenset[int] = frozenset()

    def ids(self, now: float | None = None) -> frozenset[int]:
        """Everyone hidden at `now` (Unix seconds; default: the current time)."""
        at = datetime.datetime.now(datetime.timezone.utc).timestamp() if now is None else now
        muted = {user for user, until in self.muted_until if until is None or until > at}
        return self.blocking | self.blocked_by | muted | self.gone


NOTHING_HIDDEN = Hidden()


class _Unread:
    """No version reply passed: HiddenAuthors reads the version itself."""


UNREAD = _Unread()


class HiddenAuthors:
    """A per-process cache of GetHiddenAuthors answers, one per viewer."""

    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        timeout: float,
        epoch: RedisEpoch | None = None,
        bulk: BulkRedis | None = None,
        max_viewers: int = 50_000,
    ) -> None:
        """`epoch`: a process that already watches its Redis epoch passes it;
        otherwise one is read here, at most every EPOCH_MAX_AGE_SECONDS.
        `bulk`: the process's hiredis connections to the same Redis, if it
        keeps some: the version read on every request costs about half the
        CPU through them."""
        self._redis = redis_client
        self._bulk = bulk
        self._epoch = epoch or (RedisEpoch(redis_client) if redis_client is not None else None)
        self._timeout = timeout
        ttl = CACHE_SECONDS if redis_client is not None else UNVERSIONED_CACHE_SECONDS
        self._cache: TtlCache[int, tuple[bytes, Hidden]] = TtlCache(ttl, max_viewers)
        self.gone_accounts = accounts.GoneAccounts(redis_client, bulk=bulk)

    def version_read(self, viewer: int) -> tuple | None:
        """The command that reads the viewer's version, for a caller to send
        in a round trip of its own and pass the reply to `of`; None when no
        version is read (no Redis, or no viewer)."""
        if self._redis is None or self._epoch is None or viewer <= 0:
            return None
        return (b"GET", version_key(viewer))

    async def of(self, viewer: int, version_reply: bytes | None | _Unread = UNREAD) -> Hidden:
        """The viewer's hidden authors; for no viewer, or when graph cannot
        answer, only the gone (suspended or deleted) accounts.
        `version_reply`: the reply to `version_read`, when the caller sent it."""
        gone = await self.gone_accounts.ids()
        personal = await self._personal(viewer, version_reply) if viewer > 0 else NOTHING_HIDDEN
        return dataclasses.replace(personal, gone=gone) if gone else personal

    async def _personal(self, viewer: int, version_reply: bytes | None | _Unread) -> Hidden:
        version = await self._version(viewer, version_reply)
        found, _ = self._cache.get_many([viewer])
        cached = found.get(viewer)
        if cached is not None and version is not None and cached[0] == version:
            LOOKUPS.labels("hit").inc()
            return cached[1]
        LOOKUPS.labels("miss").inc()
        hidden = await self._ask_graph(viewer)
        if hidden is not None and version is not None:
            self._cache.put_many([(viewer, (version, hidden))])
        return hidden or NOTHING_HIDDEN

    async def _version(self, viewer: int, version_reply: bytes | None | _Unread) -> bytes | None:
        """The viewer's version within the current Redis epoch; None when
        either cannot be read: then graph is asked and nothing is cached. A
        process without Redis keeps answers for the TTL alone."""
        if self._redis is None or self._epoch is None:
            return b""
        epoch = await self._epoch.current_within(EPOCH_MAX_AGE_SECONDS)
        if epoch is None:
            return None
        if not isinstance(version_reply, _Unread):
            return epoch + b"/" + (version_reply or b"")
        try:
            version = await self._read_version(viewer)
        except (redis.RedisError, OSError) as exc:
            log.warning("hidden-authors version unreadable; asking graph", extra={"error": error_text(exc)})
            return None
        return epoch + b"/" + version

    async def _read_version(self, viewer: int) -> bytes:
        if self._bulk is not None:
            command = self.version_read(viewer)
            assert command is not None  # only asked with Redis and a viewer
            return cast("bytes | None", (await self._bulk.read([command]))[0]) or b""
        assert self._redis is not None
        return cast("bytes | None", await self._redis.get(version_key(viewer))) or b""

    async def _ask_graph(self, viewer: int) -> Hidden | None:
        try:
            reply = await clients.graph().GetHiddenAuthors(
                graph_pb2.GetHiddenAuthorsRequest(viewer_id=str(viewer)), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "graph cannot say whom to hide; hiding nobody",
                extra={"viewer_id": viewer, "code": exc.code().name, "details": exc.details()},
            )
            return None
        return from_reply(reply)


def hides_post(post: posts_pb2.Post, ids: frozenset[int]) -> bool:
    """A post by a hidden author, or reposting or quoting one."""
    if _as_id(post.author_id) in ids:
        return True
    return post.HasField("repost_of") and _as_id(post.repost_of.author_id) in ids


def from_reply(reply: graph_pb2.GetHiddenAuthorsResponse) -> Hidden:
    return Hidden(
        blocking=frozenset(reply.blocked_ids),
        blocked_by=frozenset(reply.blocker_ids),
        muted_until=tuple(
            (
                m.user_id,
                m.expires_at.ToDatetime(datetime.timezone.utc).timestamp() if m.HasField("expires_at") else None,
            )
            for m in reply.mutes
        ),
    )


def _as_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0

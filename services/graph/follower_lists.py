"""Recently streamed follower lists, kept in graph's memory.

An author who posts again soon (the common case for the active mid-size
authors fanout spends its time on) would otherwise have the same few
thousand followers read from Cassandra and decoded once per post. A copy is
kept with the version the store held for that list in Redis when the read
began, and is served only while the version is unchanged. Versions change
before any follow or unfollow event is published (GraphStore's outbox hook),
so a copy that misses a change is only ever served before fanout can act on
that change: the follow's backfill or the unfollow's purge comes after it
and sets the timeline right, exactly as with a read from Cassandra made just
before the change.

The list's follower count is kept with it, so the celebrity check of a post
whose author's list is kept reads nothing from Cassandra either. A count
changes apart from the list (after the follow's event is in the outbox,
whose relay may already have moved the version), so every count change
moves the version again once written (GraphStore.adjust_counts): a count
kept under a version is the one that version stands for.

A version read from a Redis that failed over may be older than one already
read (the bump was not yet on the promoted replica), so a version counts
only within the Redis epoch it was read in (kit/stores/redis_epoch.py), and
none does while the epoch is unknown.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from prometheus_client import Counter

from services.kit.peers import followers
from services.kit.stores.cache import TtlCache
from services.kit.stores.redis_bulk import BulkRedis
from services.kit.stores.redis_epoch import RedisEpoch

LOOKUPS = Counter(
    "aviary_graph_follower_lists_total", "Follower streams by where the list came from", ["result"]
)  # hit | count_only | miss | unversioned


@dataclass(frozen=True)
class Kept:
    """What is kept of one user's followers under one version: their count
    (None when it was not read) and their ids (None when they were not all
    read, as for a celebrity, whose list is not streamed)."""

    followers: int | None
    ids: array | None


class FollowerLists:
    def __init__(
        self,
        bulk: BulkRedis,
        epoch: RedisEpoch,
        *,
        ttl_seconds: float,
        max_authors: int,
        max_ids: int,
        max_ids_held: int,
    ) -> None:
        if ttl_seconds >= followers.VERSION_SECONDS:
            # A copy kept under "no version" could outlive a later version
            # that lapsed back to none, and be served though stale.
            raise ValueError(
                f"follower lists may be kept less than {followers.VERSION_SECONDS} s (their version's lifetime), "
                f"not {ttl_seconds} s"
            )
        self._bulk = bulk
        self._epoch = epoch
        # Bounded by memory: at most max_ids_held ids (8 bytes each) over all
        # lists, none longer than max_ids, at most max_authors lists. Lists
        # are mostly short, so a bound on their number alone would keep few
        # of the authors who post.
        self.max_ids = max_ids
        self._lists: TtlCache[int, tuple[bytes, Kept]] = TtlCache(
            ttl_seconds, max_authors, weigh=lambda entry: len(entry[1].ids or ()), max_weight=max_ids_held
        )

    async def version(self, user_id: int) -> bytes | None:
        """The list's current version within the Redis epoch; None when it
        cannot be read (Redis down, or the epoch unknown), and then nothing is
        served from or kept in memory."""
        return await followers.current_version(self._bulk, self._epoch, user_id)

    def get(self, user_id: int, version: bytes | None) -> Kept:
        """What is kept under `version` (nothing for another version)."""
        if version is None:
            LOOKUPS.labels("unversioned").inc()
            return _NOTHING
        found, _ = self._lists.get_many([user_id])
        entry = found.get(user_id)
        if entry is None or entry[0] != version:
            LOOKUPS.labels("miss").inc()
            return _NOTHING
        LOOKUPS.labels("hit" if entry[1].ids is not None else "count_only").inc()
        return entry[1]

    def put(self, user_id: int, version: bytes | None, kept: Kept) -> None:
        """Keeps what was read under `version` (taken before the reads began);
        a list longer than max_ids is left out."""
        if version is None:
            return
        if kept.ids is not None and len(kept.ids) > self.max_ids:
            kept = Kept(kept.followers, None)
        if kept.followers is not None or kept.ids is not None:
            self._lists.put_many([(user_id, (version, kept))])


_NOTHING = Kept(None, None)

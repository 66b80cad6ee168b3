"""An in-process cache of live post rows for the read paths.

Every home-timeline page, post view and profile page hydrates the same
popular posts again and again; the cache absorbs those repeats without a
Cassandra read each. Posts are immutable except for deletion, so staleness
only matters for deletes: a local delete invalidates at once (and refuses a
row read before it finished), a delete served by another replica is evicted
when its event arrives from Kafka, and the TTL bounds what a missed event
could leave behind.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable

from services.kit.stores.cache import lifetime
from services.posts.model import PostRecord

DEFAULT_TTL_SECONDS = 1.0
DEFAULT_MAX_ENTRIES = 50_000


class PostCache:
    def __init__(
        self,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._rows: OrderedDict[int, tuple[float, PostRecord]] = OrderedDict()
        # post_id -> when it was invalidated; lets put() refuse a row that was
        # read before a concurrent local delete finished.
        self._invalidated: dict[int, float] = {}

    def now(self) -> float:
        return self._clock()

    def get(self, post_id: int) -> PostRecord | None:
        entry = self._rows.get(post_id)
        if entry is None:
            return None
        expires, record = entry
        if expires <= self._clock():
            del self._rows[post_id]
            return None
        return record

    def put(self, record: PostRecord, read_started: float) -> None:
        """Caches a live row read at `read_started` (a value of now())."""
        if record.deleted or self._ttl <= 0:
            return
        invalidated_at = self._invalidated.get(record.post_id)
        if invalidated_at is not None and invalidated_at >= read_started:
            return
        self._rows[record.post_id] = (read_started + lifetime(self._ttl), record)
        self._rows.move_to_end(record.post_id)
        while len(self._rows) > self._max:
            self._rows.popitem(last=False)

    def invalidate(self, post_id: int) -> None:
        now = self._clock()
        self._rows.pop(post_id, None)
        self._invalidated[post_id] = now
        self._forget_old_invalidations(now)

    def _forget_old_invalidations(self, now: float) -> None:
        # A read older than the TTL could not be cached anyway, so marks that
        # old are useless; keeps the dict from growing with every delete.
        horizon = now - max(self._ttl, 0.0) * 2
        for post_id in [p for p, at in self._invalidated.items() if at < horizon]:
            del self._invalidated[post_id]

    def __len__(self) -> int:
        return len(self._rows)

"""A tiny in-process TTL cache (used for user summaries in identity and posts).

BatchGetUsers runs on every timeline read, mostly for the same few hundred
authors; a few seconds of caching removes most of those queries. Only found
users are cached: caching "unknown" would hide a user who just signed up.

A cache that is told about changes (`discard`, `clear`) can refuse a fill
that raced one: take `version()` before reading the source and pass it to
`put_many`; if anything was discarded in between, the values read may predate
the change, so they are returned to the caller but not cached.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from typing import Callable, Generic, Hashable, Iterable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Entries filled together (a cold start, a burst of new readers) would all
# lapse together one ttl later and be refetched in one burst, again and again:
# each entry lives a random 80 to 100 % of the ttl instead, so the ttl stays
# the bound on how stale an entry can be.
SPREAD = 0.2


def lifetime(ttl_seconds: float, spread: float = SPREAD, draw: Callable[[], float] = random.random) -> float:
    """How long one entry cached now lives: a random share of the ttl, from (1 - spread) of it to all of it."""
    return ttl_seconds * (1 - spread * draw())


class TtlCache(Generic[K, V]):
    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        weigh: Callable[[V], int] | None = None,
        max_weight: int = 0,
        spread: float = SPREAD,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._ttl = ttl_seconds
        self._spread = spread
        self._draw = draw
        self._max = max_entries
        self._clock = clock
        # Values of very different sizes are bounded by their total weight
        # (`weigh`, e.g. ids held) as well as by count.
        self._weigh = weigh
        self._max_weight = max_weight
        self._weight = 0
        # Insertion order is expiry order within the spread: the size bounds
        # drop the oldest first, and an entry that lapsed behind a younger
        # one is a miss until it is dropped.
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._changes = 0  # discards and clears so far

    def get_many(self, keys: Iterable[K]) -> tuple[dict[K, V], list[K]]:
        """(cached values by key, keys that missed)."""
        now = self._clock()
        found: dict[K, V] = {}
        missing: list[K] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                found[key] = entry[1]
            else:
                missing.append(key)
        return found, missing

    def version(self) -> int:
        """A token for put_many: changes seen so far."""
        return self._changes

    def put_many(self, items: Iterable[tuple[K, V]], *, version: int | None = None) -> None:
        """Caches the items; with `version` (from version(), taken before
        they were read), only when nothing was discarded since."""
        if self._ttl <= 0 or (version is not None and version != self._changes):
            return
        now = self._clock()
        for key, value in items:
            self._drop(key)
            self._entries[key] = (now + lifetime(self._ttl, self._spread, self._draw), value)
            self._weight += self._weight_of(value)
        self._evict()

    def discard(self, key: K) -> None:
        self._drop(key)
        self._changes += 1

    def clear(self) -> None:
        self._entries.clear()
        self._weight = 0
        self._changes += 1

    @property
    def weight(self) -> int:
        """The entries' total weight (0 without `weigh`)."""
        return self._weight

    def _weight_of(self, value: V) -> int:
        return self._weigh(value) if self._weigh is not None else 0

    def _drop(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._weight -= self._weight_of(entry[1])

    def _evict(self) -> None:
        now = self._clock()
        while self._entries:
            key, (expires, _) = next(iter(self._entries.items()))
            within = len(self._entries) <= self._max and (self._weigh is None or self._weight <= self._max_weight)
            if expires > now and within:
                break
            self._drop(key)

    def __len__(self) -> int:
        return len(self._entries)

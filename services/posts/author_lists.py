"""Each author's newest post ids, copied per process for profile pages.

A profile page (ListUserPosts) starts from the author's newest ids in
posts_by_author, and most pages read are first pages. A copy is a prefix of
the author's list, newest first (or the whole list, when the read found
fewer ids than it asked for), and stays one: a post this replica writes or
deletes changes the copy at once, and one written or deleted through another
replica changes it when its event arrives from Kafka. A change to an author
also refuses a copy whose read began before it, since that read may or may
not hold the change. The TTL bounds what a missed event could leave behind;
a deleted post's id left in a copy only shortens a page (rows are read live).
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from prometheus_client import Counter

from services.kit.stores.cache import TtlCache

READS = Counter("aviary_posts_author_list_reads_total", "Profile pages' post ids, by where they came from", ["source"])

# A copy holds at most this many ids: a full page of the largest size, and
# one more to tell whether another page follows.
MAX_IDS_KEPT = 101
# A read that took longer than this is not kept (and changes older than it
# need not be remembered to refuse one).
READ_HORIZON_SECONDS = 10.0


@dataclass
class _Copy:
    ids: list[int]  # newest first
    whole: bool  # the author has no posts beyond these


class AuthorPostIds:
    def __init__(
        self, ttl_seconds: float, max_authors: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._copies: TtlCache[int, _Copy] = TtlCache(ttl_seconds, max_authors, clock)
        # author -> when they last changed, oldest first (pruned past the horizon).
        self._changed: OrderedDict[int, float] = OrderedDict()

    def now(self) -> float:
        return self._clock()

    def page(self, author_id: int, before: int | None, want: int) -> list[int] | None:
        """Up to `want` of the author's ids older than `before`, newest first,
        as a read of posts_by_author would give them; None when the copy
        cannot tell (no copy, or it ends before `want` ids)."""
        found, _ = self._copies.get_many([author_id])
        copy = found.get(author_id)
        if copy is None:
            return None
        ids = copy.ids if before is None else [i for i in copy.ids if i < before]
        if len(ids) >= want or copy.whole:
            return ids[:want]
        return None

    def keep(self, author_id: int, newest: list[int], asked: int, read_started: float) -> None:
        """Copies the author's newest ids, read (asking for `asked`) at
        `read_started`, a value of now(); unless the author changed since."""
        now = self._clock()
        changed = self._changed.get(author_id)
        if now - read_started > READ_HORIZON_SECONDS or (changed is not None and changed >= read_started):
            return
        copy = _Copy(ids=list(newest[:MAX_IDS_KEPT]), whole=len(newest) < asked)
        self._copies.put_many([(author_id, copy)])

    def added(self, author_id: int, post_id: int) -> None:
        """The author's list gained post_id (written here, or its event came)."""
        copy = self._changing(author_id)
        if copy is None or post_id in copy.ids:
            return
        if not copy.whole and (not copy.ids or post_id < copy.ids[-1]):
            return  # beyond the prefix the copy holds (a late repost keeps its early id)
        bisect.insort(copy.ids, post_id, key=lambda i: -i)
        if len(copy.ids) > MAX_IDS_KEPT:
            del copy.ids[MAX_IDS_KEPT:]
            copy.whole = False

    def removed(self, author_id: int, post_id: int) -> None:
        """The author's list lost post_id."""
        copy = self._changing(author_id)
        if copy is not None and post_id in copy.ids:
            copy.ids.remove(post_id)

    def _changing(self, author_id: int) -> _Copy | None:
        now = self._clock()
        self._changed[author_id] = now
        self._changed.move_to_end(author_id)
        while self._changed:
            oldest, at = next(iter(self._changed.items()))
            if now - at <= READ_HORIZON_SECONDS:
                break
            del self._changed[oldest]
        found, _ = self._copies.get_many([author_id])
        return found.get(author_id)

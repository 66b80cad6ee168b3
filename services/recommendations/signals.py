"""The read side: a user's ranked product candidates and author affinities
from three Redis round trips (the user's keys, the global keys, the bought
check) and no call to another service, since the feed asks on every first
page under a tight deadline."""

from __future__ import annotations

import time
from dataclasses import dataclass

from services.recommendations import scoring
from services.recommendations.scoring import Candidate, Decay, Sources
from services.recommendations.settings import RecommendationsSettings
from services.recommendations.store import RecommendationsStore

# Read more than asked from each source: some turn out bought or inactive.
OVERFETCH = 2
# Popular products read at least this many deep (cold start fills from them).
MIN_POPULAR = 100


@dataclass(frozen=True)
class Signals:
    products: list[Candidate]
    authors: list[tuple[int, float]]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class SignalReader:
    def __init__(self, store: RecommendationsStore, settings: RecommendationsSettings) -> None:
        self.store = store
        self.settings = settings
        self.affinity = Decay(settings.epoch_ms, settings.affinity_half_life_ms)
        self.popularity = Decay(settings.epoch_ms, settings.popularity_half_life_ms)

    async def read(self, user_id: int, *, max_products: int, max_authors: int, at_ms: int | None = None) -> Signals:
        now = now_ms() if at_ms is None else at_ms
        depth = max_products * OVERFETCH
        mine = await self.store.read_user(
            user_id, engaged=depth, authors=max_authors, sellers=self.settings.sellers_per_read
        )
        engaged_ids = [p for p, _ in mine.engaged]
        everyone = await self.store.read_global(
            popular=max(depth, MIN_POPULAR),
            newest=depth,
            sellers=mine.sellers,
            per_seller=self.settings.products_per_seller,
            check_inactive=engaged_ids,
        )
        every_id = list(
            dict.fromkeys(
                engaged_ids
                + [p for p, _ in everyone.followed]
                + [p for p, _ in everyone.popular]
                + [p for p, _ in everyone.newest]
            )
        )
        bought = await self.store.bought_among(user_id, every_id)
        sources = Sources(
            engaged=[(p, self.affinity.current(s, now)) for p, s in mine.engaged],
            followed=everyone.followed,
            popular=[(p, self.popularity.current(s, now)) for p, s in everyone.popular],
            newest=everyone.newest,
        )
        products = scoring.rank(
            sources, bought | everyone.inactive, max_products, now, self.settings.newest_half_life_ms
        )
        authors = scoring.author_affinities(mine.authors, self.affinity, now)
        return Signals(products=products, authors=authors)

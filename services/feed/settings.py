"""The feed service's settings (AVIARY_FEED_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.feed import ranking
from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class FeedSettings(Settings):
    cache_seconds: int = setting(
        "AVIARY_FEED_CACHE_SECONDS", 45, "How long a cached ranking lives, renewed by each page read."
    )
    reuse_seconds: int = setting(
        "AVIARY_FEED_REUSE_SECONDS", 30, "A first page within this long of the last build shows the same ranking."
    )
    max_age_seconds: int = setting(
        "AVIARY_FEED_MAX_AGE_SECONDS", 600, "A cached ranking lives at most this long in all, however often read."
    )
    product_every: int = setting(
        "AVIARY_FEED_PRODUCT_EVERY", 5, "A product takes every Nth slot of the feed (0: no products; else 2 or more)."
    )
    max_posts: int = setting("AVIARY_FEED_MAX_POSTS", 100, "Newest home-timeline posts a ranking is built from.")
    signals_timeout_seconds: float = setting(
        "AVIARY_FEED_SIGNALS_TIMEOUT_SECONDS", 0.15, "Deadline of the recommendations' feed signals (else posts only)."
    )
    products_timeout_seconds: float = setting(
        "AVIARY_FEED_PRODUCTS_TIMEOUT_SECONDS", 0.2, "Deadline of hydrating product candidates from the catalog."
    )
    product_cache_seconds: float = setting(
        "AVIARY_FEED_PRODUCT_CACHE_SECONDS", 15.0, "How long a hydrated product is reused by every reader's rankings."
    )
    weight_recency: float = setting("AVIARY_FEED_WEIGHT_RECENCY", 1.0, "Ranking weight of a post's recency.")
    weight_affinity: float = setting(
        "AVIARY_FEED_WEIGHT_AFFINITY", 0.6, "Ranking weight of the reader's affinity to the author."
    )
    weight_engagement: float = setting(
        "AVIARY_FEED_WEIGHT_ENGAGEMENT", 0.4, "Ranking weight of a post's engagement (log scale)."
    )
    recency_half_life_seconds: float = setting(
        "AVIARY_FEED_RECENCY_HALF_LIFE_SECONDS", 3 * 3600.0, "Half-life of a post's recency score."
    )
    fresh_counts: bool = setting(
        "AVIARY_FEED_FRESH_COUNTS", True, "Cached pages get current counts from engagement (else those of the ranking)."
    )

    def __post_init__(self) -> None:
        ranking.checked_every(self.product_every, "AVIARY_FEED_PRODUCT_EVERY")

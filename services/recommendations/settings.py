"""The recommendations service's settings (AVIARY_RECOMMENDATIONS_*), read once at start-up.

Durations are held in the variables' own units (hours, days); the
properties give them in the units the store and the scoring use."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from services.kit.settings import Settings, setting

HOUR_MS = 3_600_000
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class RecommendationsSettings(Settings):
    key_prefix: str = setting(
        "AVIARY_RECOMMENDATIONS_KEY_PREFIX",
        "rec",
        "Redis key prefix (tests use their own to stay apart from the live service).",
    )
    # Decayed scores are stored as w * 2**((t - epoch) / half_life), so they
    # never need rewriting. Moving the epoch rescales every stored score. With
    # a 72 h popularity half-life stored scores stay finite (< 2**1023) for
    # about eight years after the epoch.
    epoch_ms: int = setting(
        "AVIARY_RECOMMENDATIONS_EPOCH_MS",
        1_735_689_600_000,
        "Epoch of the stored decayed scores (unix ms; 2025-01-01).",
    )
    affinity_half_life_hours: int = setting(
        "AVIARY_RECOMMENDATIONS_AFFINITY_HALF_LIFE_HOURS",
        14 * 24,
        "Half-life of a user's product and author affinities.",
    )
    popularity_half_life_hours: int = setting(
        "AVIARY_RECOMMENDATIONS_POPULARITY_HALF_LIFE_HOURS", 72, "Half-life of a product's popularity."
    )
    newest_half_life_hours: int = setting(
        "AVIARY_RECOMMENDATIONS_NEWEST_HALF_LIFE_HOURS",
        7 * 24,
        "New products fade from the cold-start list with this half-life.",
    )
    post_products_ttl_days: int = setting(
        "AVIARY_RECOMMENDATIONS_POST_PRODUCTS_TTL_DAYS",
        30,
        "How long a post's tagged products are remembered (to map likes).",
    )
    untagged_post_ttl_days: int = setting(
        "AVIARY_RECOMMENDATIONS_UNTAGGED_POST_TTL_DAYS",
        3,
        "How long a post without product tags is remembered; older likes ask the posts service.",
    )
    dedup_ttl_days: int = setting(
        "AVIARY_RECOMMENDATIONS_DEDUP_TTL_DAYS",
        8,
        "Processed-event markers: longer than Kafka keeps a record for replay.",
    )
    affinity_ttl_days: int = setting(
        "AVIARY_RECOMMENDATIONS_AFFINITY_TTL_DAYS",
        90,
        "A user's affinity keys expire this long after their last engagement (bought and followed never expire).",
    )
    max_affinity_products: int = setting(
        "AVIARY_RECOMMENDATIONS_MAX_AFFINITY_PRODUCTS",
        500,
        "Products kept per user's affinity (lowest scores go first).",
    )
    max_affinity_authors: int = setting(
        "AVIARY_RECOMMENDATIONS_MAX_AFFINITY_AUTHORS",
        1000,
        "Authors kept per user's affinity (lowest scores go first).",
    )
    max_engagements: int = setting(
        "AVIARY_RECOMMENDATIONS_MAX_ENGAGEMENTS", 2000, "Engagements remembered per user (oldest go first)."
    )
    max_popular: int = setting("AVIARY_RECOMMENDATIONS_MAX_POPULAR", 5000, "Products kept in the popularity list.")
    max_newest: int = setting("AVIARY_RECOMMENDATIONS_MAX_NEWEST", 500, "Products kept in the newest-products list.")
    max_seller_products: int = setting(
        "AVIARY_RECOMMENDATIONS_MAX_SELLER_PRODUCTS", 200, "A seller's newest active products kept."
    )
    sellers_per_read: int = setting("AVIARY_RECOMMENDATIONS_SELLERS_PER_READ", 50, "Followed sellers sampled per read.")
    products_per_seller: int = setting(
        "AVIARY_RECOMMENDATIONS_PRODUCTS_PER_SELLER", 5, "Products taken from each sampled seller per read."
    )
    # Not rpc_timeout_seconds: that is the kit's AVIARY_RPC_TIMEOUT_SECONDS.
    peer_timeout_seconds: float = setting(
        "AVIARY_RECOMMENDATIONS_RPC_TIMEOUT_SECONDS",
        2.0,
        "Deadline of the catalog (hydration), posts and identity calls.",
    )

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if field.name in _MUST_BE_POSITIVE and getattr(self, field.name) <= 0:
                raise ValueError(f"{field.metadata['env']} must be positive, got {getattr(self, field.name)}")

    @property
    def affinity_half_life_ms(self) -> int:
        return self.affinity_half_life_hours * HOUR_MS

    @property
    def popularity_half_life_ms(self) -> int:
        return self.popularity_half_life_hours * HOUR_MS

    @property
    def newest_half_life_ms(self) -> int:
        return self.newest_half_life_hours * HOUR_MS

    @property
    def post_products_ttl_seconds(self) -> int:
        return self.post_products_ttl_days * DAY_SECONDS

    @property
    def untagged_post_ttl_seconds(self) -> int:
        return self.untagged_post_ttl_days * DAY_SECONDS

    @property
    def dedup_ttl_seconds(self) -> int:
        return self.dedup_ttl_days * DAY_SECONDS

    @property
    def affinity_ttl_seconds(self) -> int:
        return self.affinity_ttl_days * DAY_SECONDS


# Durations and caps: zero or less would break the decay maths or empty the lists.
_MUST_BE_POSITIVE = frozenset(
    {
        "affinity_half_life_hours",
        "popularity_half_life_hours",
        "newest_half_life_hours",
        "post_products_ttl_days",
        "untagged_post_ttl_days",
        "dedup_ttl_days",
        "affinity_ttl_days",
        "max_affinity_products",
        "max_affinity_authors",
        "max_engagements",
        "max_popular",
        "max_newest",
        "max_seller_products",
        "sellers_per_read",
        "products_per_seller",
    }
)

"""The recommendations service's knobs, from AVIARY_RECOMMENDATIONS_* (defaults
match the devstack)."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.kit.settings import env_float, env_int, env_str

_PREFIX = "AVIARY_RECOMMENDATIONS_"
HOUR_MS = 3_600_000
DAY_SECONDS = 86_400


def _int(name: str, default: int) -> int:
    return env_int(_PREFIX + name, default)


def _float(name: str, default: float) -> float:
    return env_float(_PREFIX + name, default)


@dataclass(frozen=True)
class RecommendationsConfig:
    # Redis key prefix (tests use their own to stay apart from the live service).
    key_prefix: str = field(default_factory=lambda: env_str(_PREFIX + "KEY_PREFIX", "rec"))
    # Decayed scores are stored as w * 2**((t - epoch) / half_life), so they
    # never need rewriting. The epoch is fixed (2025-01-01): moving it rescales
    # every stored score. With a 72 h popularity half-life stored scores stay
    # finite (< 2**1023) for about eight years after the epoch.
    epoch_ms: int = field(default_factory=lambda: _int("EPOCH_MS", 1_735_689_600_000))
    affinity_half_life_ms: int = field(default_factory=lambda: _int("AFFINITY_HALF_LIFE_HOURS", 14 * 24) * HOUR_MS)
    popularity_half_life_ms: int = field(default_factory=lambda: _int("POPULARITY_HALF_LIFE_HOURS", 72) * HOUR_MS)
    # "New" products fade from the cold-start list with this half-life.
    newest_half_life_ms: int = field(default_factory=lambda: _int("NEWEST_HALF_LIFE_HOURS", 7 * 24) * HOUR_MS)
    # post -> tagged products, for mapping likes (which carry no product ids).
    post_products_ttl_seconds: int = field(default_factory=lambda: _int("POST_PRODUCTS_TTL_DAYS", 30) * DAY_SECONDS)
    # Posts without product tags are remembered for a shorter time (most likes
    # come in the first days); older likes fall back to asking the posts service.
    untagged_post_ttl_seconds: int = field(default_factory=lambda: _int("UNTAGGED_POST_TTL_DAYS", 3) * DAY_SECONDS)
    # Processed-event markers: longer than Kafka keeps a record for replay.
    dedup_ttl_seconds: int = field(default_factory=lambda: _int("DEDUP_TTL_DAYS", 8) * DAY_SECONDS)
    # A user's affinity keys expire this long after their last engagement
    # (by then a like weighs ~1%); bought products and followed sellers never expire.
    affinity_ttl_seconds: int = field(default_factory=lambda: _int("AFFINITY_TTL_DAYS", 90) * DAY_SECONDS)
    # Size caps (lowest decayed scores / oldest entries go first).
    max_affinity_products: int = field(default_factory=lambda: _int("MAX_AFFINITY_PRODUCTS", 500))
    max_affinity_authors: int = field(default_factory=lambda: _int("MAX_AFFINITY_AUTHORS", 1000))
    max_engagements: int = field(default_factory=lambda: _int("MAX_ENGAGEMENTS", 2000))
    max_popular: int = field(default_factory=lambda: _int("MAX_POPULAR", 5000))
    max_newest: int = field(default_factory=lambda: _int("MAX_NEWEST", 500))
    max_seller_products: int = field(default_factory=lambda: _int("MAX_SELLER_PRODUCTS", 200))
    # Read side: followed sellers sampled per read, and products taken from each.
    sellers_per_read: int = field(default_factory=lambda: _int("SELLERS_PER_READ", 50))
    products_per_seller: int = field(default_factory=lambda: _int("PRODUCTS_PER_SELLER", 5))
    # Deadline for the catalog (hydration), posts and identity calls.
    rpc_timeout_seconds: float = field(default_factory=lambda: _float("RPC_TIMEOUT_SECONDS", 2.0))

    def __post_init__(self) -> None:
        for name in (
            "affinity_half_life_ms",
            "popularity_half_life_ms",
            "newest_half_life_ms",
            "post_products_ttl_seconds",
            "untagged_post_ttl_seconds",
            "dedup_ttl_seconds",
            "affinity_ttl_seconds",
            "max_affinity_products",
            "max_affinity_authors",
            "max_engagements",
            "max_popular",
            "max_newest",
            "max_seller_products",
            "sellers_per_read",
            "products_per_seller",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"recommendations setting {name} must be positive")

"""The engagement service's settings (AVIARY_ENGAGEMENT_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class EngagementSettings(Settings):
    counter_ttl_seconds: int = setting(
        "AVIARY_ENGAGEMENT_COUNTER_TTL_SECONDS", 86_400, "How long an unused hot counter hash stays in Redis."
    )
    flush_seconds: float = setting(
        "AVIARY_ENGAGEMENT_FLUSH_SECONDS", 1.0, "How often dirty hot counters are written to Cassandra."
    )
    trust_margin_seconds: float = setting(
        "AVIARY_ENGAGEMENT_TRUST_MARGIN_SECONDS",
        30.0,
        "A counts snapshot flushed less than this after the last change is recounted from the edges instead.",
    )
    liked_cache_size: int = setting(
        "AVIARY_ENGAGEMENT_LIKED_CACHE_SIZE", 1000, "A user's newest likes loaded into their Redis liked-cache hash."
    )
    liked_cache_ttl_seconds: int = setting(
        "AVIARY_ENGAGEMENT_LIKED_CACHE_TTL_SECONDS", 3600, "How long an unused liked-cache hash stays in Redis."
    )

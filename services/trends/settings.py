"""The trends service's settings (AVIARY_TRENDS_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class TrendsSettings(Settings):
    bucket_seconds: int = setting("AVIARY_TRENDS_BUCKET_SECONDS", 300, "Length of one counting bucket.")
    window_buckets: int = setting(
        "AVIARY_TRENDS_WINDOW_BUCKETS", 12, "Buckets in the window: the current one and those before it."
    )
    decay: float = setting(
        "AVIARY_TRENDS_DECAY", 0.8, "Weight of a bucket relative to the next newer one, in (0, 1] (1: no decay)."
    )
    min_users: int = setting(
        "AVIARY_TRENDS_MIN_USERS", 3, "Tags with fewer distinct users in the window are never listed."
    )
    max_tags_per_post: int = setting("AVIARY_TRENDS_MAX_TAGS_PER_POST", 10, "Only a post's first this many tags count.")
    cache_seconds: float = setting(
        "AVIARY_TRENDS_CACHE_SECONDS", 2.0, "The top list is recomputed at most this often per process."
    )
    stale_seconds: float = setting(
        "AVIARY_TRENDS_STALE_SECONDS", 60.0, "How long the last list may stand in while Redis does not answer."
    )
    read_timeout_seconds: float = setting(
        "AVIARY_TRENDS_READ_TIMEOUT_SECONDS", 2.0, "Deadline for computing the top list in Redis."
    )

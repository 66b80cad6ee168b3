"""The timeline service's settings (AVIARY_TIMELINE_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class TimelineSettings(Settings):
    delivery_chunk: int = setting(
        "AVIARY_TIMELINE_DELIVERY_CHUNK", 250, "Home timelines written by one Redis round trip of a delivery."
    )
    deliveries_in_flight: int = setting(
        "AVIARY_TIMELINE_DELIVERIES_IN_FLIGHT", 4, "Delivery chunks written at once by one delivery stream."
    )
    celebrity_cache_seconds: float = setting(
        "AVIARY_TIMELINE_CELEBRITY_CACHE_SECONDS",
        600.0,
        "How long a reader's followed-celebrity list is reused (everything that changes it forgets it at once).",
    )
    post_cache_seconds: float = setting(
        "AVIARY_TIMELINE_POST_CACHE_SECONDS", 30.0, "How long a hydrated post is reused by every reader."
    )
    repost_cache_seconds: float = setting(
        "AVIARY_TIMELINE_REPOST_CACHE_SECONDS", 5.0, "How long a hydrated repost or quote (embedding a post) is reused."
    )
    active_days: int = setting(
        "AVIARY_TIMELINE_ACTIVE_DAYS", 7, "Only users seen within this many days have a materialized timeline."
    )
    touch_seconds: float = setting(
        "AVIARY_TIMELINE_TOUCH_SECONDS", 3600.0, "How often one process renews a reader's activity mark (a write)."
    )
    watch_heartbeat_seconds: float = setting(
        "AVIARY_TIMELINE_WATCH_HEARTBEAT_SECONDS", 25.0, "A live stream gets a line without a post this often."
    )

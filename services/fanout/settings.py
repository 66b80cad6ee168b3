"""The fanout worker's settings (AVIARY_FANOUT_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class FanoutSettings(Settings):
    stream_timeout_seconds: float = setting(
        "AVIARY_FANOUT_STREAM_TIMEOUT_SECONDS",
        120.0,
        "Deadline for streaming every follower of one author (longer than one call).",
    )
    parallel_posts: int = setting("AVIARY_FANOUT_PARALLEL_POSTS", 16, "Posts of different authors fanned out at once.")
    follower_page_size: int = setting(
        "AVIARY_FANOUT_FOLLOWER_PAGE_SIZE",
        5000,
        "Followers asked of graph per page (1..5000); an author with no more goes to timeline in one call.",
    )

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

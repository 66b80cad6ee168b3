"""The moderation service's settings, read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, pg_dsn_setting, setting


@dataclass(frozen=True)
class ModerationSettings(Settings):
    pg_dsn: str = pg_dsn_setting("moderation")
    max_comment_chars: int = setting(
        "AVIARY_MODERATION_MAX_COMMENT_CHARS", 1000, "Longest comment on a report or note on a decision."
    )

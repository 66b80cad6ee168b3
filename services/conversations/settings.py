"""The conversations service's settings (AVIARY_CONVERSATIONS_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class ConversationsSettings(Settings):
    bucket_seconds: int = setting(
        "AVIARY_CONVERSATIONS_BUCKET_SECONDS",
        86400,
        "Time span of one messages partition per conversation (new messages; old ones stay where they are).",
    )
    unread_cap: int = setting("AVIARY_CONVERSATIONS_UNREAD_CAP", 100, "unreadCount counts at most this many.")
    product_cache_seconds: float = setting(
        "AVIARY_CONVERSATIONS_PRODUCT_CACHE_SECONDS",
        10.0,
        "Product cards on messages reuse a fetched product this long.",
    )
    media_cache_seconds: float = setting(
        "AVIARY_CONVERSATIONS_MEDIA_CACHE_SECONDS", 300.0, "Media on messages reuse fetched metadata this long."
    )
    sender_cache_seconds: float = setting(
        "AVIARY_CONVERSATIONS_SENDER_CACHE_SECONDS",
        10.0,
        "Senders on messages reuse a fetched user summary this long (renames and deletions show within it).",
    )
    watch_heartbeat_seconds: float = setting(
        "AVIARY_CONVERSATIONS_WATCH_HEARTBEAT_SECONDS",
        25.0,
        "An empty line this often keeps an idle watch open through proxies.",
    )

    @property
    def bucket_ms(self) -> int:
        return self.bucket_seconds * 1000

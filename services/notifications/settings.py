"""The notifications service's settings (AVIARY_NOTIFICATIONS_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class NotificationsSettings(Settings):
    retention_days: int = setting("AVIARY_NOTIFICATIONS_RETENTION_DAYS", 90, "How long a notification is kept.")
    follow_window_seconds: float = setting(
        "AVIARY_NOTIFICATIONS_FOLLOW_WINDOW_SECONDS",
        24 * 3600.0,
        "New followers of one recipient join one notification while it is younger than this.",
    )
    username_cache_seconds: float = setting(
        "AVIARY_NOTIFICATIONS_USERNAME_CACHE_SECONDS",
        600.0,
        "How long the notifier reuses a username -> id lookup (usernames never change).",
    )
    name_cache_seconds: float = setting(
        "AVIARY_NOTIFICATIONS_NAME_CACHE_SECONDS", 5.0, "Actor names for the texts; a rename shows within this long."
    )
    unread_cap: int = setting(
        "AVIARY_NOTIFICATIONS_UNREAD_CAP", 1000, "unreadCount and markRead's `marked` count at most this many."
    )
    watch_heartbeat_seconds: float = setting(
        "AVIARY_NOTIFICATIONS_WATCH_HEARTBEAT_SECONDS",
        25.0,
        "An empty line this often keeps an idle watch open through proxies.",
    )

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * 24 * 3600

"""notifications' settings keep the defaults the service had before they were typed."""

import pytest

from services.kit.settings import SettingError, load
from services.notifications.settings import NotificationsSettings


def test_defaults_are_unchanged():
    s = load(NotificationsSettings, {})
    assert s.retention_days == 90
    assert s.follow_window_seconds == 24 * 3600.0
    assert s.username_cache_seconds == 600.0
    assert s.name_cache_seconds == 5.0
    assert s.unread_cap == 1000
    assert s.watch_heartbeat_seconds == 25.0


def test_retention_is_counted_in_days():
    assert load(NotificationsSettings, {"AVIARY_NOTIFICATIONS_RETENTION_DAYS": "2"}).retention_seconds == 2 * 86_400


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_NOTIFICATIONS_UNREAD_CAP"):
        load(NotificationsSettings, {"AVIARY_NOTIFICATIONS_UNREAD_CAP": "many"})

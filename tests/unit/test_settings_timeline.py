"""timeline's settings keep the defaults the service had before they were typed."""

import pytest

from services.kit.settings import SettingError, load
from services.timeline.settings import TimelineSettings


def test_defaults_are_unchanged():
    s = load(TimelineSettings, {})
    assert s.delivery_chunk == 250
    assert s.deliveries_in_flight == 4
    assert s.celebrity_cache_seconds == 600.0
    assert s.post_cache_seconds == 30.0
    assert s.repost_cache_seconds == 5.0
    assert s.active_days == 7
    assert s.touch_seconds == 3600.0
    assert s.watch_heartbeat_seconds == 25.0


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_TIMELINE_DELIVERY_CHUNK"):
        load(TimelineSettings, {"AVIARY_TIMELINE_DELIVERY_CHUNK": "big"})

"""trends' settings keep the defaults the service had before they were typed."""

import pytest

from services.kit.settings import SettingError, load
from services.trends.servicer import window_from_settings
from services.trends.settings import TrendsSettings


def test_defaults_are_unchanged():
    s = load(TrendsSettings, {})
    assert s.bucket_seconds == 300
    assert s.window_buckets == 12
    assert s.decay == 0.8
    assert s.min_users == 3
    assert s.max_tags_per_post == 10
    assert s.cache_seconds == 2.0
    assert s.stale_seconds == 60.0
    assert s.read_timeout_seconds == 2.0


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_TRENDS_WINDOW_BUCKETS"):
        load(TrendsSettings, {"AVIARY_TRENDS_WINDOW_BUCKETS": "twelve"})


def test_an_impossible_window_names_its_variable():
    with pytest.raises(ValueError, match="AVIARY_TRENDS_DECAY"):
        window_from_settings(load(TrendsSettings, {"AVIARY_TRENDS_DECAY": "1.5"}))

"""engagement's settings keep the defaults the service had before they were typed."""

import pytest

from services.engagement.settings import EngagementSettings
from services.kit.settings import SettingError, load


def test_defaults_are_unchanged():
    s = load(EngagementSettings, {})
    assert s.counter_ttl_seconds == 86_400
    assert s.flush_seconds == 1.0
    assert s.trust_margin_seconds == 30.0
    assert s.liked_cache_size == 1000
    assert s.liked_cache_ttl_seconds == 3600


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_ENGAGEMENT_LIKED_CACHE_SIZE"):
        load(EngagementSettings, {"AVIARY_ENGAGEMENT_LIKED_CACHE_SIZE": "1k"})

"""feed's settings keep the defaults the service had before they were typed."""

import pytest

from services.feed.settings import FeedSettings
from services.kit.settings import SettingError, load


def test_defaults_are_unchanged():
    s = load(FeedSettings, {})
    assert s.cache_seconds == 45
    assert s.reuse_seconds == 30
    assert s.max_age_seconds == 600
    assert s.product_every == 5
    assert s.max_posts == 100
    assert s.signals_timeout_seconds == 0.15
    assert s.products_timeout_seconds == 0.2
    assert s.product_cache_seconds == 15.0
    assert s.weight_recency == 1.0
    assert s.weight_affinity == 0.6
    assert s.weight_engagement == 0.4
    assert s.recency_half_life_seconds == 3 * 3600
    assert s.fresh_counts is True


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_FEED_MAX_POSTS"):
        load(FeedSettings, {"AVIARY_FEED_MAX_POSTS": "many"})


def test_a_product_every_second_slot_or_rarer():
    with pytest.raises(ValueError, match="AVIARY_FEED_PRODUCT_EVERY"):
        load(FeedSettings, {"AVIARY_FEED_PRODUCT_EVERY": "1"})
    assert load(FeedSettings, {"AVIARY_FEED_PRODUCT_EVERY": "0"}).product_every == 0


def test_fresh_counts_can_be_turned_off():
    assert load(FeedSettings, {"AVIARY_FEED_FRESH_COUNTS": "0"}).fresh_counts is False

"""The recommendations settings keep the defaults the service had before they
were typed, in the variables' units, and the derived values callers use."""

import pytest

from services.kit.settings import SettingError, load
from services.recommendations.settings import RecommendationsSettings


def test_defaults():
    s = load(RecommendationsSettings, {})
    assert s.key_prefix == "rec"
    assert s.epoch_ms == 1_735_689_600_000
    assert s.affinity_half_life_hours == 336
    assert s.popularity_half_life_hours == 72
    assert s.newest_half_life_hours == 168
    assert s.post_products_ttl_days == 30
    assert s.untagged_post_ttl_days == 3
    assert s.dedup_ttl_days == 8
    assert s.affinity_ttl_days == 90
    assert s.max_affinity_products == 500
    assert s.max_affinity_authors == 1000
    assert s.max_engagements == 2000
    assert s.max_popular == 5000
    assert s.max_newest == 500
    assert s.max_seller_products == 200
    assert s.sellers_per_read == 50
    assert s.products_per_seller == 5
    assert s.peer_timeout_seconds == 2.0


def test_derived_units():
    s = load(RecommendationsSettings, {})
    assert s.affinity_half_life_ms == 1_209_600_000
    assert s.popularity_half_life_ms == 259_200_000
    assert s.newest_half_life_ms == 604_800_000
    assert s.post_products_ttl_seconds == 2_592_000
    assert s.untagged_post_ttl_seconds == 259_200
    assert s.dedup_ttl_seconds == 691_200
    assert s.affinity_ttl_seconds == 7_776_000


def test_the_peer_deadline_leaves_the_kits_alone():
    s = load(RecommendationsSettings, {"AVIARY_RECOMMENDATIONS_RPC_TIMEOUT_SECONDS": "0.5"})
    assert s.peer_timeout_seconds == 0.5
    assert s.rpc_timeout_seconds == 5.0


def test_a_bad_number_names_the_variable():
    with pytest.raises(SettingError, match="AVIARY_RECOMMENDATIONS_MAX_POPULAR"):
        load(RecommendationsSettings, {"AVIARY_RECOMMENDATIONS_MAX_POPULAR": "many"})


def test_durations_and_caps_must_be_positive():
    with pytest.raises(ValueError, match="AVIARY_RECOMMENDATIONS_DEDUP_TTL_DAYS must be positive"):
        load(RecommendationsSettings, {"AVIARY_RECOMMENDATIONS_DEDUP_TTL_DAYS": "0"})

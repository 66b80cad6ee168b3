"""identity's settings keep the defaults the service had before they were typed."""

import os

import pytest

from services.identity.settings import IdentitySettings
from services.kit.settings import SettingError, load


def test_defaults_are_unchanged():
    s = load(IdentitySettings, {})
    assert s.hash_workers == min(4, os.cpu_count() or 1)
    assert s.hash_queue == 64
    assert (s.hash_time_cost, s.hash_memory_kib, s.hash_parallelism) == (3, 65_536, 4)
    assert s.user_cache_seconds == 60.0
    assert s.user_cache_entries == 50_000
    assert s.login_free_failures == 5
    assert s.login_backoff_base_seconds == 2.0
    assert s.login_backoff_cap_seconds == 300.0
    assert s.login_failure_memory_seconds == 900.0
    assert s.login_failures_per_address == 50
    assert s.login_address_window_seconds == 600.0
    assert s.sign_ups_per_address == 10
    assert s.sign_up_window_seconds == 3600.0
    assert s.refresh_token_seconds == 30 * 24 * 3600
    assert s.session_sweep_seconds == 3600.0
    assert s.username_hold_seconds == 30 * 24 * 3600
    assert s.username_sweep_seconds == 3600.0


@pytest.mark.parametrize(
    "env",
    [
        {"AVIARY_IDENTITY_HASH_TIME_COST": "0"},
        {"AVIARY_IDENTITY_HASH_PARALLELISM": "0"},
        {"AVIARY_IDENTITY_HASH_PARALLELISM": "2", "AVIARY_IDENTITY_HASH_MEMORY_KIB": "15"},
    ],
)
def test_a_hash_cost_argon2_cannot_run_stops_start_up(env):
    with pytest.raises(ValueError, match="AVIARY_IDENTITY_HASH_"):
        load(IdentitySettings, env)


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_IDENTITY_HASH_QUEUE"):
        load(IdentitySettings, {"AVIARY_IDENTITY_HASH_QUEUE": "lots"})

"""Log-in and sign-up throttling rules of identity: the back-off schedule and
the names counters are kept under."""

from services.identity import throttle
from services.identity.settings import IdentitySettings
from services.kit.settings import load

LIMITS = throttle.Limits(login_free_failures=5, login_backoff_base_seconds=2, login_backoff_cap_seconds=300)


def test_the_first_failures_are_free_then_each_doubles_the_lock_up_to_the_cap():
    locks = [throttle.lock_seconds(n, LIMITS) for n in range(1, 16)]
    assert locks == [0, 0, 0, 0, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


def test_the_lock_never_passes_the_cap_however_many_failures():
    assert throttle.lock_seconds(10**6, LIMITS) == 300


def test_the_schedule_lists_each_lock_in_ms_up_to_the_first_capped_one():
    assert throttle.lock_schedule(LIMITS) == [2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000]
    tiny = throttle.Limits(login_free_failures=1, login_backoff_base_seconds=0.5, login_backoff_cap_seconds=0.5)
    assert throttle.lock_schedule(tiny) == [500]


def test_retry_after_is_whole_seconds_rounded_up_and_never_zero():
    assert [throttle.retry_after_seconds(ms) for ms in (1, 999, 1000, 1001, 299_500)] == [1, 1, 1, 2, 300]


def test_account_names_are_counted_case_blind_and_hashed_whether_or_not_they_exist():
    assert throttle.account_key_id("Alice") == throttle.account_key_id("alice")
    assert throttle.account_key_id("alice") != throttle.account_key_id("alice2")
    # A name no account could have still gets a short key of its own.
    odd = throttle.account_key_id("{not a name} " * 50)
    assert len(odd) == 32 and odd.isalnum()


def test_addresses_are_counted_per_ipv4_address_and_per_ipv6_slash_64():
    assert throttle.address_bucket("203.0.113.7") == "203.0.113.7"
    assert throttle.address_bucket("2001:db8:1:2:aaaa::1") == throttle.address_bucket("2001:db8:1:2:ffff::9")
    assert throttle.address_bucket("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert throttle.address_bucket("2001:db8:1:3::1") != throttle.address_bucket("2001:db8:1:2::1")
    assert throttle.address_bucket("::ffff:203.0.113.7") == "203.0.113.7"
    garbage = throttle.address_bucket("not-an-address{x}")
    assert "{" not in garbage and garbage == throttle.address_bucket("not-an-address{x}")


def test_limits_come_from_the_settings():
    environ = {"AVIARY_IDENTITY_LOGIN_FREE_FAILURES": "3", "AVIARY_IDENTITY_SIGN_UPS_PER_ADDRESS": "100000"}
    limits = throttle.Limits.from_settings(load(IdentitySettings, environ))
    assert limits.login_free_failures == 3 and limits.sign_ups_per_address == 100000
    assert limits.login_backoff_cap_seconds == throttle.Limits().login_backoff_cap_seconds

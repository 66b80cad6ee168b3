"""Sign-up rules of identity: usernames, passwords, display names, the summary cache."""

import grpc
import pytest

from services.identity import validation
from services.kit.stores.cache import TtlCache
from services.kit.server.errors import ApiError


@pytest.mark.parametrize("username", ["abc", "A_1", "x" * 15, "___", "Bob_2024"])
def test_valid_usernames_pass_unchanged(username):
    assert validation.check_username(username) == username


@pytest.mark.parametrize(
    "username",
    ["", "ab", "x" * 16, "bad-name", "has space", "dot.name", "émile", "abc\n", "tab\tx", "名前です"],
)
def test_invalid_usernames_name_the_field(username):
    with pytest.raises(ApiError) as err:
        validation.check_username(username)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message.startswith("username:")


def test_could_be_username_matches_the_sign_up_rule():
    assert validation.could_be_username("Alice_1")
    assert not validation.could_be_username("al")
    assert not validation.could_be_username("alice!")


@pytest.mark.parametrize(
    "password",
    [
        "correct horse",
        "пароль-пароль",
        "aviary-demo-pw",
        "bench password 1",
        "tr0ub4dor&3xyz",
        "n" + "a" * 126 + "q",
        "Abcd1234!!x",
    ],
)
def test_valid_passwords_pass(password):
    assert validation.check_password(password) == password


@pytest.mark.parametrize("password", ["", "x" * 7, "n" + "a" * 127 + "q"])
def test_invalid_passwords_name_the_field(password):
    with pytest.raises(ApiError) as err:
        validation.check_password(password)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message.startswith("password:")


def test_password_length_counts_code_points_not_bytes():
    # 8 characters, 32 bytes in UTF-8: still the minimum, not 4x over it.
    assert validation.check_password("😀🐦😀🌵😀🐦😀🌳") == "😀🐦😀🌵😀🐦😀🌳"
    with pytest.raises(ApiError):
        validation.check_password("😀🐦😀🌵😀🐦😀")


@pytest.mark.parametrize(
    "password,why",
    [
        ("12345678", "common or breached"),
        ("password", "common or breached"),
        ("PassWord", "common or breached"),  # compared ignoring case
        ("qwertyui", "common or breached"),
        ("iloveyou", "common or breached"),
        ("        ", "repeated"),  # eight spaces
        ("aaaaaaaa", "common or breached"),
        ("zzzzzzzzzzzz", "repeated"),
        ("abcabcabcab", "repeated"),
        ("xyxyxyxyxy", "repeated"),
        ("lmnopqrstu", "consecutive"),
        ("98765432", "common or breached"),
        ("9876543210", "common or breached"),
        ("ZYXWVUTSR", "consecutive"),
    ],
)
def test_guessable_passwords_are_refused_naming_the_field(password, why):
    with pytest.raises(ApiError) as err:
        validation.check_password(password)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message.startswith("password: ") and why in err.value.message


def test_the_username_is_not_a_password_in_any_case():
    with pytest.raises(ApiError) as err:
        validation.check_password("Bob_The_Builder", "bob_the_builder")
    assert err.value.message.startswith("password: must not be the username")
    assert validation.check_password("Bob_The_Builder!", "bob_the_builder") == "Bob_The_Builder!"


def test_no_composition_rules():
    # Only length and guessability count: no digit, capital or symbol is required.
    assert validation.guessable_because("purple monkey dishwasher") is None
    assert validation.guessable_because("ÉTÉ À MONTRÉAL") is None


def test_the_shipped_list_is_lower_case_and_long_enough():
    common = validation._common_passwords()
    assert len(common) > 8000
    assert all(entry == entry.casefold() and len(entry) >= validation.PASSWORD_MIN for entry in common)


def test_display_name_defaults_to_username_when_blank():
    assert validation.display_name_or_default("", "bob") == "bob"
    assert validation.display_name_or_default("   ", "bob") == "bob"


def test_display_name_is_trimmed_and_limited_to_50_code_points():
    assert validation.display_name_or_default("  Bob B.  ", "bob") == "Bob B."
    assert validation.display_name_or_default("é" * 50, "bob") == "é" * 50
    with pytest.raises(ApiError) as err:
        validation.display_name_or_default("é" * 51, "bob")
    assert err.value.message.startswith("display_name:")


def test_display_name_rejects_control_characters():
    with pytest.raises(ApiError) as err:
        validation.display_name_or_default("bad\x00name", "bob")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_cache_returns_fresh_entries_and_reports_misses():
    clock = FakeClock()
    cache = TtlCache(ttl_seconds=5, max_entries=10, clock=clock)
    cache.put_many([(1, "one"), (2, "two")])
    found, missing = cache.get_many([1, 2, 3])
    assert found == {1: "one", 2: "two"}
    assert missing == [3]


def test_cache_entries_expire_after_ttl():
    clock = FakeClock()
    cache = TtlCache(ttl_seconds=5, max_entries=10, clock=clock)
    cache.put_many([(1, "one")])
    clock.now += 5.01
    found, missing = cache.get_many([1])
    assert found == {} and missing == [1]


def test_cache_never_grows_past_max_entries():
    cache = TtlCache(ttl_seconds=60, max_entries=3, clock=FakeClock())
    cache.put_many((i, str(i)) for i in range(10))
    assert len(cache) == 3
    found, _ = cache.get_many(range(10))
    assert sorted(found) == [7, 8, 9]  # the oldest were evicted first


def test_profile_rules():
    from services.identity import validation
    from services.kit.server.errors import ApiError

    assert validation.check_display_name("  Ada  ") == "Ada"
    assert validation.check_bio(" line one\nline two ") == "line one\nline two"
    assert validation.check_bio("") == ""
    for bad in ("", "   ", "x" * 51, "tab\there"):
        with pytest.raises(ApiError) as err:
            validation.check_display_name(bad)
        assert err.value.message.startswith("display_name:")
    for bad in ("x" * 161, "nul\x00"):
        with pytest.raises(ApiError) as err:
            validation.check_bio(bad)
        assert err.value.message.startswith("bio:")

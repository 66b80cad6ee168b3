"""Product rules of catalog: title, description, price, currency, images, stock, restock keys."""

import grpc
import pytest

from services.catalog import validation
from services.kit.server.errors import ApiError


def _message(call, *args) -> str:
    with pytest.raises(ApiError) as err:
        call(*args)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return err.value.message


def test_title_is_trimmed_and_1_to_120_characters():
    assert validation.check_title("  Blue mug \n") == "Blue mug"
    assert validation.check_title("é" * 120) == "é" * 120  # counted in characters, not bytes
    assert _message(validation.check_title, "").startswith("title: is required")
    assert _message(validation.check_title, " \t ").startswith("title: is required")
    assert _message(validation.check_title, "x" * 121) == "title: must be at most 120 characters, got 121"
    assert _message(validation.check_title, "a\nb").startswith("title: must not contain control characters")


def test_description_keeps_line_breaks_and_is_at_most_5000_characters():
    assert validation.check_description("") == ""
    assert validation.check_description(" line 1\nline 2\tend ") == "line 1\nline 2\tend"
    assert validation.check_description("d" * 5000) == "d" * 5000
    assert _message(validation.check_description, "d" * 5001).startswith("description: must be at most 5000")
    assert _message(validation.check_description, "nul\x00").startswith("description: must not contain control")


@pytest.mark.parametrize("price", [1, 100, 100_000_000])
def test_prices_in_range_pass(price):
    assert validation.check_price(price) == price


@pytest.mark.parametrize("price", [0, -1, 100_000_001])
def test_prices_out_of_range_name_the_field(price):
    assert _message(validation.check_price, price).startswith("price_minor: must be 1..100,000,000")


@pytest.mark.parametrize("given, stored", [("USD", "USD"), ("usd", "USD"), ("eUr", "EUR")])
def test_currency_is_three_letters_upper_cased(given, stored):
    assert validation.check_currency(given) == stored


@pytest.mark.parametrize("currency", ["US", "USDD", "U$D", "12A", "USD\n", " USD", "ÜSD"])
def test_bad_currencies_name_the_field(currency):
    assert _message(validation.check_currency, currency).startswith("currency: must be a 3-letter ISO 4217 code")


def test_media_ids_at_most_8_distinct_ids():
    assert validation.check_media_ids(["3", "1", "2"]) == [3, 1, 2]
    assert _message(validation.check_media_ids, ["1"] * 9) == "media_ids: at most 8 items, got 9"
    assert _message(validation.check_media_ids, ["1", "y"]).startswith("media_ids[1]: must be a decimal 64-bit id")
    assert _message(validation.check_media_ids, ["4", "5", "4"]) == "media_ids[2]: media 4 is listed more than once"


def test_stock_and_restock_bounds():
    assert validation.check_initial_stock(0) == 0
    assert validation.check_initial_stock(1_000_000) == 1_000_000
    assert _message(validation.check_initial_stock, -1).startswith("stock: must be 0..1,000,000")
    assert validation.check_restock_quantity(1) == 1
    assert _message(validation.check_restock_quantity, 0).startswith("quantity: must be 1..1,000,000")
    assert _message(validation.check_restock_quantity, 1_000_001).startswith("quantity: must be 1..1,000,000")


def test_idempotency_keys():
    assert validation.check_idempotency_key("restock-2024-01") == "restock-2024-01"
    assert _message(validation.check_idempotency_key, "").startswith("idempotency_key: is required")
    assert _message(validation.check_idempotency_key, "k" * 129).startswith("idempotency_key: must be at most 128")
    assert _message(validation.check_idempotency_key, "a b").startswith("idempotency_key: must be printable ASCII")

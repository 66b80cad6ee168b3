"""The cart settings keep the defaults the service had before they were typed."""

import pytest

from services.cart.settings import CartSettings
from services.kit.settings import SettingError, load


def test_defaults():
    s = load(CartSettings, {})
    assert s.ttl_seconds == 604800
    assert s.max_lines == 50
    assert s.checkout_marker_ttl_seconds == 604800
    assert s.catalog_timeout_seconds == 2.0


def test_a_bad_number_names_the_variable():
    with pytest.raises(SettingError, match="AVIARY_CART_MAX_LINES"):
        load(CartSettings, {"AVIARY_CART_MAX_LINES": "5.5"})


@pytest.mark.parametrize(
    "variable", ["AVIARY_CART_TTL_SECONDS", "AVIARY_CART_MAX_LINES", "AVIARY_CART_CHECKOUT_MARKER_TTL_SECONDS"]
)
def test_sizes_must_be_positive(variable):
    with pytest.raises(ValueError, match="must be positive"):
        load(CartSettings, {variable: "0"})

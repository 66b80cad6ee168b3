"""The orders settings keep the defaults the service had before they were typed."""

import pytest

from services.kit.settings import SettingError, load
from services.orders.settings import OrdersSettings


def test_defaults():
    s = load(OrdersSettings, {})
    assert s.pg_pool == 20
    assert s.lease_seconds == 10.0
    assert s.reservation_ttl_seconds == 600
    assert s.same_key_wait_seconds == 15.0
    assert s.recovery_seconds == 2.0


def test_a_bad_number_names_the_variable():
    with pytest.raises(SettingError, match="AVIARY_ORDERS_PG_POOL"):
        load(OrdersSettings, {"AVIARY_ORDERS_PG_POOL": "lots"})

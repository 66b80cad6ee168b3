"""The inventory settings keep the defaults the service had before they were typed."""

import pytest

from services.inventory.settings import InventorySettings
from services.kit.settings import SettingError, load


def test_defaults():
    s = load(InventorySettings, {})
    assert s.reservation_ttl_seconds == 600
    assert s.sweep_seconds == 5.0


def test_a_bad_number_names_the_variable():
    with pytest.raises(SettingError, match="AVIARY_INVENTORY_RESERVATION_TTL_SECONDS"):
        load(InventorySettings, {"AVIARY_INVENTORY_RESERVATION_TTL_SECONDS": "10m"})

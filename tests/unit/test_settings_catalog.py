"""catalog's settings keep the defaults the service had before they were typed."""

import pytest

from services.catalog.settings import CatalogSettings
from services.kit.settings import SettingError, load


def test_defaults_are_unchanged():
    s = load(CatalogSettings, {})
    assert s.stock_timeout_seconds == 1.0


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_CATALOG_STOCK_TIMEOUT_SECONDS"):
        load(CatalogSettings, {"AVIARY_CATALOG_STOCK_TIMEOUT_SECONDS": "soon"})

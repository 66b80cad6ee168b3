"""search's settings keep the defaults the service had before they were typed."""

import pytest

from services.kit.settings import SettingError, load
from services.search import reindex
from services.search.settings import SearchSettings


def test_defaults_are_unchanged():
    s = load(SearchSettings, {})
    assert s.opensearch_url == "http://127.0.0.1:9200"
    assert s.reindex_settle_seconds == 60.0


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_SEARCH_REINDEX_SETTLE_SECONDS"):
        load(SearchSettings, {"AVIARY_SEARCH_REINDEX_SETTLE_SECONDS": "a minute"})


def test_reindex_settle_seconds_defaults_to_the_setting():
    settings = load(SearchSettings, {"AVIARY_SEARCH_REINDEX_SETTLE_SECONDS": "5"})
    assert reindex.parse_args([], settings).settle_seconds == 5.0
    assert reindex.parse_args(["--settle-seconds", "7"], settings).settle_seconds == 7.0

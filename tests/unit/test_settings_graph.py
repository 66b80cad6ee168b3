"""graph's settings: their defaults, and errors that name the variable."""

import pytest

from services.graph.settings import GraphSettings
from services.kit.settings import SettingError, load


def test_defaults_are_unchanged():
    s = load(GraphSettings, {})
    assert s.follower_list_seconds == 300.0
    assert s.follower_list_authors == 50_000
    assert s.follower_list_max_ids == 20_000
    assert s.follower_list_ids_held == 2_000_000


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_GRAPH_FOLLOWER_LIST_AUTHORS"):
        load(GraphSettings, {"AVIARY_GRAPH_FOLLOWER_LIST_AUTHORS": "lots"})

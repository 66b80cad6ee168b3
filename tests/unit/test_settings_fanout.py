"""fanout's settings keep the defaults the worker had before they were typed."""

import pytest

from services.fanout.settings import FanoutSettings
from services.kit.settings import SettingError, load


def test_defaults_are_unchanged():
    s = load(FanoutSettings, {})
    assert s.stream_timeout_seconds == 120.0
    assert s.parallel_posts == 16


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_FANOUT_PARALLEL_POSTS"):
        load(FanoutSettings, {"AVIARY_FANOUT_PARALLEL_POSTS": "sixteen"})

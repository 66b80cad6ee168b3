from __future__ import annotations

import pytest

from services.kit.settings import SettingError, load
from services.moderation.settings import ModerationSettings


def test_defaults():
    assert load(ModerationSettings, {}).max_comment_chars == 1000


def test_a_bad_value_names_the_variable():
    with pytest.raises(SettingError, match="AVIARY_MODERATION_MAX_COMMENT_CHARS"):
        load(ModerationSettings, {"AVIARY_MODERATION_MAX_COMMENT_CHARS": "many"})

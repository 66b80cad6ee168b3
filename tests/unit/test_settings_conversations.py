"""conversations' settings: the defaults pinned."""

import pytest

from services.conversations.settings import ConversationsSettings
from services.kit.settings import SettingError, load


def test_defaults():
    s = load(ConversationsSettings, {})
    assert s.bucket_seconds == 86400
    assert s.bucket_ms == 86_400_000
    assert s.unread_cap == 100
    assert s.product_cache_seconds == 10.0
    assert s.media_cache_seconds == 300.0
    assert s.sender_cache_seconds == 10.0
    assert s.watch_heartbeat_seconds == 25.0


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_CONVERSATIONS_BUCKET_SECONDS"):
        load(ConversationsSettings, {"AVIARY_CONVERSATIONS_BUCKET_SECONDS": "daily"})

"""posts' settings keep the defaults the service had before they were typed."""

import pytest

from services.kit.settings import SettingError, load
from services.posts.settings import PostsSettings


def test_defaults_are_unchanged():
    s = load(PostsSettings, {})
    assert s.cache_seconds == 300.0
    assert s.author_cache_seconds == 60.0
    assert s.media_cache_seconds == 300.0
    assert s.product_cache_seconds == 10.0
    assert s.catalog_read_timeout_seconds == 1.0
    assert s.max_bookmarks == 10_000


def test_a_bad_number_names_its_variable():
    with pytest.raises(SettingError, match="AVIARY_POSTS_CACHE_SECONDS"):
        load(PostsSettings, {"AVIARY_POSTS_CACHE_SECONDS": "lots"})

"""The posts service's settings (AVIARY_POSTS_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class PostsSettings(Settings):
    cache_seconds: float = setting(
        "AVIARY_POSTS_CACHE_SECONDS",
        300.0,
        "How long a post row is reused; only bounds a delete this replica missed on Kafka.",
    )
    author_list_seconds: float = setting(
        "AVIARY_POSTS_AUTHOR_LIST_SECONDS",
        300.0,
        "How long an author's newest post ids are reused for profile pages; only bounds a change missed on Kafka.",
    )
    author_cache_seconds: float = setting(
        "AVIARY_POSTS_AUTHOR_CACHE_SECONDS",
        60.0,
        "How long an author summary for hydration is reused; only bounds a lost profile announcement.",
    )
    media_cache_seconds: float = setting(
        "AVIARY_POSTS_MEDIA_CACHE_SECONDS", 300.0, "How long media metadata for hydration is reused."
    )
    product_cache_seconds: float = setting(
        "AVIARY_POSTS_PRODUCT_CACHE_SECONDS", 10.0, "How long a tagged product for hydration is reused."
    )
    catalog_read_timeout_seconds: float = setting(
        "AVIARY_POSTS_CATALOG_READ_TIMEOUT_SECONDS",
        1.0,
        "Deadline of a read's product lookup; past it posts go out without products.",
    )
    max_bookmarks: int = setting(
        "AVIARY_POSTS_MAX_BOOKMARKS",
        10_000,
        "Most bookmarks one user may keep (bounds their bookmark partition); more are refused with 412.",
    )

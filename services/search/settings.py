"""The search service's settings (AVIARY_OPENSEARCH_URL, AVIARY_SEARCH_*), read
once at start-up, by the service and by its reindex command."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class SearchSettings(Settings):
    opensearch_url: str = setting("AVIARY_OPENSEARCH_URL", "http://127.0.0.1:9200", "OpenSearch, the search index.")
    reindex_settle_seconds: float = setting(
        "AVIARY_SEARCH_REINDEX_SETTLE_SECONDS",
        60.0,
        "Default of reindex --settle-seconds: its sweep leaves ids younger than this to the indexer.",
    )

"""The graph service's settings (AVIARY_GRAPH_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class GraphSettings(Settings):
    follower_list_seconds: float = setting(
        "AVIARY_GRAPH_FOLLOWER_LIST_SECONDS",
        300.0,
        "How long a streamed follower list is kept for the next stream; under 600 (its version's lifetime).",
    )
    follower_list_authors: int = setting(
        "AVIARY_GRAPH_FOLLOWER_LIST_AUTHORS", 50_000, "Authors whose follower lists are kept in memory at most."
    )
    follower_list_ids_held: int = setting(
        "AVIARY_GRAPH_FOLLOWER_LIST_IDS_HELD",
        2_000_000,
        "Follower ids kept in memory at most, over all kept lists (8 bytes each); the oldest lists go first.",
    )
    follower_list_max_ids: int = setting(
        "AVIARY_GRAPH_FOLLOWER_LIST_MAX_IDS", 20_000, "Longer follower lists than this are not kept in memory."
    )

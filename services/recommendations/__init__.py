"""Recommendations: per-user product candidates and author affinities in Redis,
built from engagement, post, graph, catalog and order events."""

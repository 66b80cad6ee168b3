"""posts: posts, per-author post lists, tombstones and their outbox events (Cassandra)."""

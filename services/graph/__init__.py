"""graph: follow edges, counts and the celebrity flag (Cassandra keyspace `aviary_graph` + Redis)."""

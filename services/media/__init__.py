"""media: uploaded images and short videos (bytes in an S3-compatible object
store, metadata in Cassandra keyspace `aviary_media`)."""

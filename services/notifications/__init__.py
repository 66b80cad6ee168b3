"""notifications: follow / like / repost / reply / mention notices from Kafka
events, grouped and deduplicated in Cassandra, listed, marked read and pushed
live (Redis pub/sub) to the recipient."""

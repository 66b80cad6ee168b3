"""The small shared kit every Aviary service stands on, sorted by what it is:

- `settings`: typed settings from the environment;
- `server/`: the gRPC server (health, reflection, metrics, the interceptor and
  its request checks, error mapping), auth, ids, paging, logs, start-up;
- `stores/`: Redis (and bulk Redis), PostgreSQL and its migrations, Cassandra,
  an in-process TTL cache;
- `events/`: the Kafka producer and consumer (keyed lanes), the Cassandra and
  PostgreSQL outboxes, live pushes over Redis pub/sub;
- `peers/`: clients of other services and the helpers several services share
  (the engagement overlay and stream, profile announcements, media ownership,
  cached batched lookups of media and products, blocks and mutes).

Services import only this kit and the stubs in gen/.
"""

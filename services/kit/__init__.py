"""The small shared kit every Aviary service stands on.

Server bootstrap (health, reflection, metrics, error mapping), typed config,
structured logs, ids, auth, and thin async helpers for Cassandra, Kafka,
PostgreSQL and Redis. Services import only this kit and the stubs in gen/.
"""

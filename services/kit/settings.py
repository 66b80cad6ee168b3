"""Typed settings from the environment, with defaults that match the devstack."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("AVIARY_STATE_DIR", REPO_ROOT / ".devstack"))

# gRPC listen ports of every service in the local stack; metrics sit at +1000.
SERVICE_PORTS = {
    "identity": 50051,
    "graph": 50052,
    "posts": 50053,
    "timeline": 50054,
    "fanout": 50055,
    "engagement": 50056,
    "notifications": 50057,
    "media": 50058,
    # commerce
    "catalog": 50059,
    "cart": 50060,
    "inventory": 50061,
    "payments": 50062,
    "orders": 50063,
    # discovery
    "search": 50064,
    "trends": 50065,
    "recommendations": 50066,
    "feed": 50067,
}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def service_addr(name: str) -> str:
    """host:port where `name` serves gRPC (AVIARY_<NAME>_ADDR overrides)."""
    return env_str(f"AVIARY_{name.upper()}_ADDR", f"127.0.0.1:{SERVICE_PORTS[name]}")


@dataclass(frozen=True)
class Settings:
    """Everything a service may need; each reads only its own part."""

    redis_url: str = field(default_factory=lambda: env_str("AVIARY_REDIS_URL", "redis://127.0.0.1:6379/0"))
    pg_dsn: str = field(
        default_factory=lambda: env_str("AVIARY_PG_DSN", "postgresql+psycopg://aviary:aviary@127.0.0.1:5432/aviary")
    )
    kafka_bootstrap: str = field(default_factory=lambda: env_str("AVIARY_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    cassandra_hosts: tuple[str, ...] = field(
        default_factory=lambda: tuple(env_str("AVIARY_CASSANDRA_HOSTS", "127.0.0.1").split(","))
    )
    cassandra_port: int = field(default_factory=lambda: env_int("AVIARY_CASSANDRA_PORT", 9042))
    # Keyspace replication; 1 on the single-node devstack, 3 in production.
    cassandra_rf: int = field(default_factory=lambda: env_int("AVIARY_CASSANDRA_RF", 1))
    jwt_private_key: Path = field(
        default_factory=lambda: Path(env_str("AVIARY_JWT_PRIVATE_KEY", str(STATE_DIR / "keys" / "jwt_private.pem")))
    )
    jwt_public_key: Path = field(
        default_factory=lambda: Path(env_str("AVIARY_JWT_PUBLIC_KEY", str(STATE_DIR / "keys" / "jwt_public.pem")))
    )
    jwt_ttl_seconds: int = field(default_factory=lambda: env_int("AVIARY_JWT_TTL_SECONDS", 24 * 3600))
    # Authors with more followers than this are not fanned out on write.
    fanout_threshold: int = field(default_factory=lambda: env_int("AVIARY_FANOUT_THRESHOLD", 10_000))
    # Home timelines keep this many newest entries.
    timeline_max_entries: int = field(default_factory=lambda: env_int("AVIARY_TIMELINE_MAX_ENTRIES", 800))
    # Per-author recent-post index length (celebrity merge, follow backfill).
    author_index_max_entries: int = field(default_factory=lambda: env_int("AVIARY_AUTHOR_INDEX_MAX_ENTRIES", 200))
    # Snowflake worker id, unique per process in a deployment (0..1023).
    worker_id: int = field(default_factory=lambda: env_int("AVIARY_WORKER_ID", os.getpid() % 1024))
    # Deadline for calls between services.
    rpc_timeout_seconds: float = field(default_factory=lambda: env_float("AVIARY_RPC_TIMEOUT_SECONDS", 5.0))


def load_settings() -> Settings:
    return Settings()

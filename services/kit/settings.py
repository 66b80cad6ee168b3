"""Settings from the environment: the one place the services read it.

Each service declares its settings as a frozen dataclass (services/<name>/settings.py,
a subclass of `Settings`, the kit's own) whose fields say which variable they
come from, their default and what they mean: `setting(...)`. `load(cls)` reads
them once, at start-up; nothing reads the environment at import. Defaults
match the devstack. `make settings` writes the table of every variable
(services/SETTINGS.md) and CI fails when code reads one that is not declared.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from services.kit import manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def setting(env: str, default: Any, help: str, *, shown: str | None = None) -> Any:
    """A settings field read from the variable `env`.

    `default` is a value, or a function of the fields declared before it (a
    derived default, such as a path under the state directory); `shown` is how
    the table prints a default that is derived or computed where it is used."""
    metadata = {"env": env, "help": help, "shown": shown}
    if callable(default):
        return dataclasses.field(default=None, metadata={**metadata, "derive": default})
    return dataclasses.field(default=default, metadata=metadata)


def devstack_pg_dsn(database: str, host: str = "127.0.0.1", port: int = 5432) -> str:
    """The devstack's URL of a service's own PostgreSQL database: database and
    role aviary_<database>, password aviary-<database> (loopback only)."""
    return f"postgresql+psycopg://aviary_{database}:aviary-{database}@{host}:{port}/aviary_{database}"


def pg_dsn_setting(database: str) -> Any:
    """AVIARY_PG_DSN of a service that keeps its state in PostgreSQL: its own
    database and credentials, shared with no other service."""
    return setting(
        "AVIARY_PG_DSN",
        devstack_pg_dsn(database),
        f"PostgreSQL, as an SQLAlchemy URL: the {database} database, reached with its own role.",
    )


class SettingError(ValueError):
    pass


def _parse(env: str, raw: str, kind: Any) -> Any:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    try:
        if kind is bool:
            if raw.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if raw.strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is Path:
            return Path(raw)
        if typing.get_origin(kind) is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError:
        expected = {bool: "1 or 0", int: "an integer", float: "a number"}.get(kind, "valid")
        raise SettingError(f"environment variable {env} must be {expected}, got {raw!r}") from None


def load(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """An instance of the settings dataclass `cls`, read from the environment."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        var = f.metadata.get("env")
        if var is None:
            continue
        raw = env.get(var)
        kind = hints[f.name]
        if raw is None or (raw == "" and kind is not str):
            derive: Callable[[Any], Any] | None = f.metadata.get("derive")
            values[f.name] = derive(types.SimpleNamespace(**values)) if derive else f.default
        else:
            values[f.name] = _parse(var, raw, kind)
    return cls(**values)


def declared(cls: type) -> list[dataclasses.Field]:
    """The settings fields `cls` itself declares (not those it inherits)."""
    inherited = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base) for f in dataclasses.fields(base)}
    return [f for f in dataclasses.fields(cls) if "env" in f.metadata and f.name not in inherited]


@dataclass(frozen=True)
class Settings:
    """What every service may need: backends, tokens, the kit's own knobs."""

    state_dir: Path = setting(
        "AVIARY_STATE_DIR",
        lambda s: REPO_ROOT / ".devstack",
        "Local state (keys, run files).",
        shown="<repo>/.devstack",
    )
    redis_url: str = setting(
        "AVIARY_REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis: redis:// or rediss:// with ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs, ssl_check_hostname; "
        "a Redis Cluster as redis+cluster://host:port,host:port... (rediss+cluster:// with the same options).",
    )
    redis_max_connections: int = setting("AVIARY_REDIS_MAX_CONNECTIONS", 200, "Redis connections per process.")
    redis_pool_timeout_seconds: float = setting(
        "AVIARY_REDIS_POOL_TIMEOUT_SECONDS", 2.0, "Wait this long for a free Redis connection, then fail."
    )
    redis_bulk_timeout_seconds: float = setting(
        "AVIARY_REDIS_BULK_TIMEOUT_SECONDS", 10.0, "Deadline of one bulk (pipelined) Redis round trip."
    )
    pg_pool_timeout_seconds: float = setting(
        "AVIARY_PG_POOL_TIMEOUT_SECONDS", 10.0, "Wait this long for a pooled PostgreSQL connection, then UNAVAILABLE."
    )
    kafka_bootstrap: str = setting("AVIARY_KAFKA_BOOTSTRAP", "127.0.0.1:9092", "Kafka bootstrap servers.")
    cassandra_hosts: tuple[str, ...] = setting(
        "AVIARY_CASSANDRA_HOSTS", ("127.0.0.1",), "Cassandra/ScyllaDB contact points, comma-separated."
    )
    cassandra_port: int = setting("AVIARY_CASSANDRA_PORT", 9042, "CQL port.")
    cassandra_rf: int = setting(
        "AVIARY_CASSANDRA_RF", 1, "Keyspace replication factor (1 on the single-node devstack, 3 in production)."
    )
    jwt_private_key: Path = setting(
        "AVIARY_JWT_PRIVATE_KEY",
        lambda s: s.state_dir / "keys" / "jwt_private.pem",
        "RS256 key identity signs access tokens with.",
        shown="<state dir>/keys/jwt_private.pem",
    )
    jwt_public_key: Path = setting(
        "AVIARY_JWT_PUBLIC_KEY",
        lambda s: s.state_dir / "keys" / "jwt_public.pem",
        "Public key every service verifies access tokens with.",
        shown="<state dir>/keys/jwt_public.pem",
    )
    jwt_ttl_seconds: int = setting(
        "AVIARY_JWT_TTL_SECONDS",
        900,
        "Lifetime of an access token; clients refresh (POST /v1/sessions:refresh) before it ends.",
    )
    operator_public_key: Path = setting(
        "AVIARY_OPERATOR_PUBLIC_KEY",
        lambda s: s.state_dir / "keys" / "operator_public.pem",
        "Public key operator tokens are verified with (services/kit/server/operators.py).",
        shown="<state dir>/keys/operator_public.pem",
    )
    operator_private_key: Path = setting(
        "AVIARY_OPERATOR_PRIVATE_KEY",
        lambda s: s.state_dir / "keys" / "operator_private.pem",
        "Key operator tokens are signed with; only operators' tools read it, never a service.",
        shown="<state dir>/keys/operator_private.pem",
    )
    fanout_threshold: int = setting(
        "AVIARY_FANOUT_THRESHOLD", 10_000, "Authors with more followers than this are not fanned out on write."
    )
    timeline_max_entries: int = setting("AVIARY_TIMELINE_MAX_ENTRIES", 800, "Home timelines keep this many entries.")
    author_index_max_entries: int = setting(
        "AVIARY_AUTHOR_INDEX_MAX_ENTRIES", 200, "Per-author recent-post index length (celebrity merge, backfill)."
    )
    worker_id: int = setting(
        "AVIARY_WORKER_ID",
        lambda s: os.getpid() % 1024,
        "Snowflake worker id, unique per process in a deployment (0..1023).",
        shown="pid mod 1024",
    )
    rpc_timeout_seconds: float = setting("AVIARY_RPC_TIMEOUT_SECONDS", 5.0, "Deadline for calls between services.")
    page_token_secret: str = setting(
        "AVIARY_PAGE_TOKEN_SECRET",
        "aviary-devstack-page-token-secret",
        "HMAC key signing page tokens; the same in every service, 32+ random bytes in production.",
    )
    xff_trusted_hops: int = setting(
        "ENVOY_XFF_TRUSTED_HOPS", 0, "Proxies in front of Envoy that append to X-Forwarded-For (client address)."
    )
    log_level: str = setting("AVIARY_LOG_LEVEL", "INFO", "Log level (DEBUG, INFO, WARNING, ERROR).")
    metrics_port: int | None = setting(
        "AVIARY_METRICS_PORT", None, "Prometheus metrics port.", shown="gRPC port + 1000"
    )
    bind_all: bool = setting("AVIARY_BIND_ALL", False, "Listen on every interface instead of loopback.")
    uvloop: bool = setting("AVIARY_UVLOOP", True, "Run the event loop on uvloop.")
    gc_gen0_threshold: int = setting(
        "AVIARY_GC_GEN0_THRESHOLD",
        10_000,
        "Python GC generation-0 threshold: objects allocated between young collections (aviary_gc_pause_seconds).",
    )
    outbox_sweep_min_age_seconds: float = setting(
        "AVIARY_OUTBOX_SWEEP_MIN_AGE_SECONDS", 5.0, "Outbox rows younger than this belong to a live fast path."
    )
    outbox_sweep_interval_seconds: float = setting(
        "AVIARY_OUTBOX_SWEEP_INTERVAL_SECONDS", 5.0, "How often the Cassandra outbox sweep runs."
    )
    outbox_late_margin_seconds: float = setting(
        "AVIARY_OUTBOX_LATE_MARGIN_SECONDS", 30.0, "How late a row may commit and still be found by the floor sweep."
    )
    outbox_full_sweep_seconds: float = setting(
        "AVIARY_OUTBOX_FULL_SWEEP_SECONDS", 600.0, "How often the outbox sweep reads every shard from the start."
    )
    trace_endpoint: str = setting(
        "AVIARY_TRACE_ENDPOINT",
        "",
        "Zipkin span intake (http://HOST:9411/api/v2/spans); empty: no tracing, nothing installed.",
    )
    trace_sample_ratio: float = setting(
        "AVIARY_TRACE_SAMPLE_RATIO",
        0.01,
        "Share of new traces recorded (0..1); a trace begun upstream (Envoy) keeps its own decision.",
    )
    mesh_tls: bool = setting(
        "AVIARY_MESH_TLS",
        True,
        "Service-to-service gRPC over mutual TLS, callers checked against the manifest's allow-list.",
    )
    health_port: int = setting(
        "AVIARY_HEALTH_PORT", 0, "With mesh TLS, the plaintext health-only port; 0: the gRPC port + 2000."
    )
    mesh_cert_dir: Path = setting(
        "AVIARY_MESH_CERT_DIR",
        lambda s: s.state_dir / "mesh",
        "The mesh's certificates: ca.pem, and <identity>.pem with <identity>-key.pem.",
        shown="<state dir>/mesh",
    )
    engagement_stream: bool = setting(
        "AVIARY_ENGAGEMENT_STREAM", True, "Fetch engagement over one long-lived stream (else unary calls)."
    )
    engagement_stream_max_seconds: float = setting(
        "AVIARY_ENGAGEMENT_STREAM_MAX_SECONDS", 300.0, "Reopen the engagement stream after this long."
    )
    engagement_overlay_seconds: float = setting(
        "AVIARY_ENGAGEMENT_OVERLAY_SECONDS",
        1.0,
        "How long a page waits for its engagement counts; then it is served without them.",
    )


@functools.cache
def current() -> Settings:
    """The kit's settings of this process, read once, on first use (at start-up)."""
    return load(Settings)


def load_settings() -> Settings:
    return load(Settings)


def service_port(name: str, environ: Mapping[str, str] | None = None) -> int:
    """Where `name` listens: AVIARY_<NAME>_PORT, else its port in the manifest."""
    env = os.environ if environ is None else environ
    var = f"AVIARY_{name.upper()}_PORT"
    raw = env.get(var, "")
    return _parse(var, raw, int) if raw else manifest.service(name).port


def service_addr(name: str, environ: Mapping[str, str] | None = None) -> str:
    """host:port where `name` serves gRPC: AVIARY_<NAME>_ADDR, else loopback and its manifest port."""
    env = os.environ if environ is None else environ
    return env.get(f"AVIARY_{name.upper()}_ADDR") or f"127.0.0.1:{manifest.service(name).port}"


# Default gRPC port of every service, from the manifest.
SERVICE_PORTS = manifest.ports()

"""Cassandra / ScyllaDB access with the scylla-driver, kept off the event loop.

The driver does its I/O on its own threads; `execute` bridges a ResponseFuture
into an asyncio future so handlers never block the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Callable, Hashable, Sequence

from cassandra import ConsistencyLevel, CoordinationFailure, InvalidRequest, OperationTimedOut, Timeout, Unavailable
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement, named_tuple_factory
from prometheus_client import Counter

from services.kit import tracing
from services.kit.server.errors import unavailable
from services.kit.settings import Settings
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

# Every Cassandra failure that means "not now" rather than "wrong": too few
# replicas, a replica or coordinator timing out or failing, no host to ask.
# The kit's interceptor answers these UNAVAILABLE (retryable), never INTERNAL.
OUTAGES = (Unavailable, Timeout, CoordinationFailure, OperationTimedOut, NoHostAvailable)

# Per statement, so a dashboard shows which query a service leans on.
STATEMENTS = Counter("aviary_cql_statements_total", "CQL statements executed", ["statement"])
# Prepared statements live as long as their session: a small fixed set.
_labels: dict[int, str] = {}
# Keys per `IN` read (rows_by_key): a statement each costs the driver about
# 250 µs of CPU, eight times what one read of twenty keys costs per key
# (bench/README); a bounded list keeps the coordinator's fan-out small.
MAX_KEYS_PER_READ = 100


def outage_as_unavailable(store: str):
    """Decorates a unary servicer method: a Cassandra outage is logged once and
    answered UNAVAILABLE saying which `store` is away, so the client retries."""

    def wrap(method):
        @functools.wraps(method)
        async def call(self, request, context):
            try:
                return await method(self, request, context)
            except OUTAGES as exc:
                log.warning(f"{store} unavailable", extra={"method": method.__name__, "error": error_text(exc)})
                raise unavailable(f"{store} is temporarily unavailable; try again") from exc

        return call

    return wrap


def _label(query) -> str:
    if isinstance(query, PreparedStatement):
        label = _labels.get(id(query))
        if label is None:
            label = _labels[id(query)] = " ".join(query.query_string.split())[:80]
        return label
    if isinstance(query, str):
        return " ".join(query.split())[:80]
    return type(query).__name__  # batches, simple statements


# Reads and writes at LOCAL_QUORUM: with RF=1 locally that is one replica, and
# read-your-writes holds in production at RF=3 too.
_CONSISTENCY = ConsistencyLevel.LOCAL_QUORUM


def named_rows(colnames: Sequence[str], rows: Sequence[Sequence]) -> list:
    """The driver's named_tuple_factory (rows as `Row` namedtuples), with one
    Row class per column list instead of a new class per result: making a
    class costs tens of microseconds, and every one is left for the garbage
    collector."""
    row = _row_type(tuple(colnames))
    return [row(*values) for values in rows]


@functools.lru_cache(maxsize=1024)
def _row_type(colnames: tuple[str, ...]) -> type:
    # The driver's own rules for odd column names, through one sample row.
    return type(named_tuple_factory(colnames, [(None,) * len(colnames)])[0])


# A node busy with a dozen services starting at once can miss the driver's
# short control-connection timeouts; a start waits for it rather than failing.
CONNECT_PATIENCE_SECONDS = 90.0


async def connect(settings: Settings, patience: float = CONNECT_PATIENCE_SECONDS) -> Session:
    """A session to the cluster, retrying while no host answers for up to
    `patience` seconds (a failed Cluster shuts itself down, so each try is new)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        cluster = _cluster(settings)
        try:
            return await loop.run_in_executor(None, cluster.connect)
        except NoHostAvailable as exc:
            if loop.time() >= deadline:
                raise
            log.warning("cassandra not answering yet; retrying", extra={"error": error_text(exc)})
            await asyncio.sleep(1.0)


def _cluster(settings: Settings) -> Cluster:
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        consistency_level=_CONSISTENCY,
        request_timeout=10.0,
        row_factory=named_rows,
    )
    return Cluster(
        contact_points=list(settings.cassandra_hosts),
        port=settings.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        protocol_version=4,
        connect_timeout=10.0,
        control_connection_timeout=10.0,
    )


async def execute(
    session: Session, query: str | PreparedStatement | Any, params: Sequence | None = None, *, timeout: float = 0.0
) -> list:
    """Runs one statement; returns the rows of its (single) result page.
    `timeout`: seconds to wait for it (0: the session's 10 s).

    Queries that can return many rows must carry a LIMIT below the driver's
    fetch size (5000), so one page is the whole answer.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def on_rows(rows):
        loop.call_soon_threadsafe(_settle, done, rows, None)

    def on_error(exc):
        loop.call_soon_threadsafe(_settle, done, None, exc)

    label = _label(query)
    STATEMENTS.labels(label).inc()
    with tracing.cql_span(label):
        future = (
            session.execute_async(query, params, timeout=timeout) if timeout else session.execute_async(query, params)
        )
        future.add_callbacks(on_rows, on_error)
        return list(await done or [])


async def rows_by_key(
    session: Session, statement: PreparedStatement, keys: Sequence, key_of: Callable[[Any], Hashable]
) -> dict:
    """The rows of `statement` (`... WHERE <partition key> IN ?`, one row per
    key) for `keys`, by key_of(row); keys without a row are absent. One
    statement per MAX_KEYS_PER_READ keys, run side by side."""
    unique = list(dict.fromkeys(keys))
    chunks = [unique[at : at + MAX_KEYS_PER_READ] for at in range(0, len(unique), MAX_KEYS_PER_READ)]
    pages = await asyncio.gather(*(execute(session, statement, (chunk,)) for chunk in chunks))
    return {key_of(row): row for page in pages for row in page}


def _settle(fut: asyncio.Future, rows, exc) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(rows)


# A schema change waits for the node to apply and persist it, behind every
# other service's: on a fresh node that a whole stack sets up at once, that
# can be far longer than a query ever takes.
DDL_TIMEOUT_SECONDS = 60.0
DDL_ATTEMPTS = 3
DDL_RETRY_PAUSE_SECONDS = 1.0


async def ensure_keyspace(session: Session, keyspace: str, replication_factor: int) -> None:
    await _execute_ddl(
        session,
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', 'replication_factor': {replication_factor}}}",
    )


async def apply_schema(session: Session, statements: Sequence[str]) -> None:
    """Idempotent DDL (CREATE ... IF NOT EXISTS), one statement at a time."""
    for stmt in statements:
        await _execute_ddl(session, stmt)


async def add_missing_columns(session: Session, keyspace: str, columns: Sequence[tuple[str, str, str]]) -> None:
    """Brings tables created by an older release up to their schema: each
    (table, column, definition) the keyspace lacks is added. Cassandra has no
    ADD IF NOT EXISTS everywhere, so the schema tables are asked first; a
    replica adding the same column at the same time is not an error."""
    rows = await execute(
        session, "SELECT table_name, column_name FROM system_schema.columns WHERE keyspace_name = %s", (keyspace,)
    )
    present = {(row.table_name, row.column_name) for row in rows}
    for table, column, definition in columns:
        if (table, column) in present:
            continue
        try:
            await _execute_ddl(session, f"ALTER TABLE {keyspace}.{table} ADD {column} {definition}")
            log.info("column added", extra={"table": f"{keyspace}.{table}", "column": column})
        except InvalidRequest as exc:
            if "exist" not in str(exc).lower():  # "... conflicts with an existing column"
                raise


async def _execute_ddl(session: Session, stmt: str) -> None:
    # Safe to send again: every statement here is IF NOT EXISTS, or an ADD
    # whose "already exists" the caller accepts.
    for attempt in range(1, DDL_ATTEMPTS + 1):
        try:
            await execute(session, stmt, timeout=DDL_TIMEOUT_SECONDS)
            return
        except (OperationTimedOut, NoHostAvailable) as exc:
            if attempt == DDL_ATTEMPTS:
                raise
            log.warning("schema change not answered; sending it again", extra={"error": error_text(exc)})
            await asyncio.sleep(DDL_RETRY_PAUSE_SECONDS)


async def close(session: Session | None) -> None:
    """Shuts the session's cluster down off the event loop (None: nothing to do)."""
    if session is not None:
        await asyncio.get_running_loop().run_in_executor(None, session.cluster.shutdown)


async def prepare(session: Session, query: str) -> PreparedStatement:
    return await asyncio.get_running_loop().run_in_executor(None, session.prepare, query)

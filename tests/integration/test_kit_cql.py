"""services.kit.stores.cql.connect on the real Cassandra: a start that finds
no host answering waits for one (services start beside a busy node), for a
bounded time."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time

import pytest
from cassandra.cluster import NoHostAvailable
from prometheus_client import REGISTRY

from services.kit.settings import load_settings
from services.kit.stores import cql


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_connect_retries_until_its_patience_runs_out_then_says_no_host():
    settings = dataclasses.replace(load_settings(), cassandra_hosts=("127.0.0.1",), cassandra_port=_free_port())
    started = time.monotonic()
    with pytest.raises(NoHostAvailable):
        await cql.connect(settings, patience=2.5)
    assert time.monotonic() - started >= 2.5


async def test_a_connect_started_before_the_node_answers_gets_a_session_once_it_does():
    real = load_settings()
    port = _free_port()
    settings = dataclasses.replace(real, cassandra_port=port)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(real.cassandra_hosts[0], real.cassandra_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True)

    connecting = asyncio.create_task(cql.connect(settings, patience=30.0))
    await asyncio.sleep(2.0)  # a try or two find nothing listening
    assert not connecting.done()
    # The node "comes up": a relay to the real one on the port the settings name.
    server = await asyncio.start_server(relay, "127.0.0.1", port)
    try:
        session = await asyncio.wait_for(connecting, timeout=30.0)
        try:
            rows = await cql.execute(session, "SELECT release_version FROM system.local")
            assert rows and rows[0].release_version
        finally:
            session.cluster.shutdown()
    finally:
        server.close()


async def test_rows_by_key_reads_every_key_once_in_chunks_and_leaves_out_missing_ones(monkeypatch):
    session = await cql.connect(load_settings())
    try:
        # system_schema.keyspaces is partitioned by keyspace_name: one row per name.
        statement = session.prepare(
            "SELECT keyspace_name, durable_writes FROM system_schema.keyspaces WHERE keyspace_name IN ?"
        )
        names = ["system", "system_schema", "system_auth", "system_schema", "no_such_keyspace", "system_traces"]
        monkeypatch.setattr(cql, "MAX_KEYS_PER_READ", 2)
        label = {"statement": statement.query_string[:80]}
        before = REGISTRY.get_sample_value("aviary_cql_statements_total", label) or 0.0
        rows = await cql.rows_by_key(session, statement, names, key_of=lambda row: row.keyspace_name)
        # Five distinct names, two per statement: three statements.
        assert REGISTRY.get_sample_value("aviary_cql_statements_total", label) - before == 3
        assert set(rows) == {"system", "system_schema", "system_auth", "system_traces"}
        for name, row in rows.items():
            (single,) = await cql.execute(
                session,
                "SELECT keyspace_name, durable_writes FROM system_schema.keyspaces WHERE keyspace_name = %s",
                (name,),
            )
            assert row == single
        assert await cql.rows_by_key(session, statement, [], key_of=lambda row: row.keyspace_name) == {}
    finally:
        session.cluster.shutdown()

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

"""What one PostgreSQL transaction costs through the kit's engine, with
nothing else in it: the floor under every transaction a service makes, as
grpc_floor.py is under every hop.

--calls transactions at each --concurrency through `services.kit.stores.pg`
(async SQLAlchemy, psycopg 3, the pool the services use) on a service's own
database of the running devstack, in two shapes: a transaction of one
statement (BEGIN, SELECT 1, COMMIT) and one statement in autocommit (the
kit's `pg.autocommit`, no BEGIN or COMMIT). CPU from /proc: this process's,
and the PostgreSQL backends' that served the pool.

Prints one JSON object: per shape and concurrency, client and server µs of
CPU per transaction and transactions per second.

    .venv/bin/python bench/pg_floor.py                  # stack up
    .venv/bin/python bench/pg_floor.py --database payments --calls 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass

import sqlalchemy as sa
import uvloop
from loadgen import process_cpu_seconds
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack import config as devstack_config
from services.kit.settings import devstack_pg_dsn
from services.kit.stores import pg

SELECT_ONE = sa.text("SELECT 1")


@dataclass(frozen=True)
class Database:
    pg_dsn: str
    pg_pool_timeout_seconds: float = 5.0


async def backend_pids(engine: AsyncEngine, count: int) -> set[int]:
    """The backends of `count` pooled connections, held at once so the pool opens them all."""
    pids = set()
    async with contextlib.AsyncExitStack() as held:
        for _ in range(count):
            conn = await held.enter_async_context(engine.connect())
            pids.add((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())
    return pids


async def measure(engine: AsyncEngine, begin: bool, calls: int, concurrency: int) -> dict:
    backends = await backend_pids(engine, concurrency)

    async def one() -> None:
        if begin:
            async with engine.begin() as conn:
                await conn.execute(SELECT_ONE)
        else:
            async with engine.connect() as conn:
                await conn.execute(SELECT_ONE)

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await worker(200)  # statements prepared, pool warm
    per_worker = max(1, calls // concurrency)
    done = per_worker * concurrency
    client, server, started = process_cpu_seconds(os.getpid()), _cpu(backends), time.perf_counter()
    await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "transactions": done,
        "client_us": round(1e6 * (process_cpu_seconds(os.getpid()) - client) / done),
        "server_us": round(1e6 * (_cpu(backends) - server) / done),
        "per_s": round(done / elapsed),
    }


def _cpu(pids: set[int]) -> float:
    return sum(process_cpu_seconds(pid) for pid in pids)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="orders", help="the service whose database is used")
    parser.add_argument("--calls", type=int, default=4000, help="transactions per shape and concurrency")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated transactions in flight")
    args = parser.parse_args()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    dsn = devstack_pg_dsn(args.database, port=devstack_config.PG_PORT)
    engine = pg.engine(Database(dsn), pool_size=max(concurrency))
    try:
        out = {"database": args.database}
        for shape, on in (("begin_select_commit", engine), ("autocommit_select", pg.autocommit(engine))):
            out[shape] = [await measure(on, shape.startswith("begin"), args.calls, c) for c in concurrency]
    finally:
        await engine.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    uvloop.run(main())

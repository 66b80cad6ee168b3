"""What one hop costs on this machine: the CPU under every request before
any service does its own work.

Three kinds of hop, each alone, --calls calls at each --concurrency, the CPU
of both ends from /proc:
- grpc: a unary call between two grpc.aio processes on uvloop over the
  mesh's mutual TLS, as the services make them; the server answers
  grpc.health.v1 Check and has nothing else to do;
- service: the same call to a running devstack service (--service), through
  its kit server (interceptors, metrics, its background threads), net of
  that service's idle CPU measured just before;
- pg: a transaction of one statement (BEGIN, SELECT 1, COMMIT) through the
  kit's async SQLAlchemy engine (psycopg 3), the client's CPU and its
  PostgreSQL backend's.

A request's hops times these is the least it can cost; bench/README.md puts
a checkout's and a home read's counted hops against them.
Prints one JSON object: per kind and concurrency, client and server ms of
CPU per call and calls per second.

    .venv/bin/python bench/hop_cost.py                       # stack up: service and pg need it
    .venv/bin/python bench/hop_cost.py --kinds grpc --calls 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from loadgen import component_pid, process_cpu_seconds, rounded

from devstack import config as devstack_config
from devstack.mesh_channels import mesh_tls, open_channel
from devstack.services import MESH_CERT_DIR
from services.kit import mesh
from services.kit.settings import devstack_pg_dsn
from services.kit.stores import pg

# The scratch server's certificate: any mesh identity may ask another for its health.
SERVER_IDENTITY = "cart"
CLIENT_IDENTITY = "orders"
SCRATCH_PORT = 59_801


@dataclass(frozen=True)
class PgTarget:
    pg_dsn: str
    pg_pool_timeout_seconds: float = 5.0


async def _serve(port: int) -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    address = f"127.0.0.1:{port}"
    if mesh_tls():  # as the stack runs: open_channel below speaks the same
        server.add_secure_port(address, mesh.server_credentials(SERVER_IDENTITY, MESH_CERT_DIR))
    else:
        server.add_insecure_port(address)
    await server.start()
    await server.wait_for_termination()


async def _measure(
    call: Callable[[], Awaitable[object]], server_cpu: Callable[[], float], calls: int, concurrency: int
) -> dict:
    """Runs `calls` calls, `concurrency` at a time; CPU per call of this process and of the server."""
    for _ in range(min(200, calls)):  # connections made, statements prepared
        await call()
    per_worker = max(1, calls // concurrency)

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    done = per_worker * concurrency
    client_before, server_before, started = process_cpu_seconds(os.getpid()), server_cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    client_ms = 1000 * (process_cpu_seconds(os.getpid()) - client_before) / done
    server_ms = 1000 * (server_cpu() - server_before) / done
    return {
        "concurrency": concurrency,
        "calls": done,
        "client_ms": rounded(client_ms, 3),
        "server_ms": rounded(server_ms, 3),
        "both_ms": rounded(client_ms + server_ms, 3),
        "calls_per_s": round(done / elapsed),
    }


def _health_call(channel: grpc.aio.Channel) -> Callable[[], Awaitable[object]]:
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest()
    return lambda: stub.Check(request, timeout=5)


async def grpc_hop(calls: int, concurrency: list[int]) -> list[dict]:
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(SCRATCH_PORT)])
    try:
        async with open_channel(
            SERVER_IDENTITY, aio=True, as_=CLIENT_IDENTITY, addr=f"127.0.0.1:{SCRATCH_PORT}"
        ) as channel:
            await channel.channel_ready()
            return [
                await _measure(_health_call(channel), lambda: process_cpu_seconds(server.pid), calls, c)
                for c in concurrency
            ]
    finally:
        server.terminate()
        server.wait()


async def service_hop(service: str, calls: int, concurrency: list[int], idle_seconds: float) -> list[dict]:
    pid = component_pid(service)
    if pid is None:
        raise SystemExit(f"{service} is not running: start the stack (make up)")
    before = process_cpu_seconds(pid)
    await asyncio.sleep(idle_seconds)
    idle_per_s = (process_cpu_seconds(pid) - before) / idle_seconds
    started = time.perf_counter()

    def busy_net_of_idle() -> float:
        return process_cpu_seconds(pid) - idle_per_s * (time.perf_counter() - started)

    async with open_channel(service, aio=True, as_=CLIENT_IDENTITY) as channel:
        results = [await _measure(_health_call(channel), busy_net_of_idle, calls, c) for c in concurrency]
    return [{**r, "server_idle_cores": rounded(idle_per_s, 3)} for r in results]


async def pg_hop(database: str, calls: int, concurrency: list[int]) -> list[dict]:
    import sqlalchemy as sa

    engine = pg.engine(PgTarget(devstack_pg_dsn(database, port=devstack_config.PG_PORT)), pool_size=max(concurrency))
    select_one = sa.text("SELECT 1")
    backend_pids: set[int] = set()

    async def transaction() -> None:
        async with engine.begin() as conn:
            await conn.execute(select_one)

    async def note_backends(count: int) -> None:
        # `count` connections held at once: the pool opens them all, and each backend is known before the count.
        async with contextlib.AsyncExitStack() as held:
            for _ in range(count):
                conn = await held.enter_async_context(engine.connect())
                backend_pids.add((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())

    def backends_cpu() -> float:
        return sum(process_cpu_seconds(p) for p in backend_pids)

    try:
        results = []
        for c in concurrency:
            await note_backends(c)
            results.append(await _measure(transaction, backends_cpu, calls, c))
        return results
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="grpc,service,pg", help="comma-separated: grpc, service, pg")
    parser.add_argument("--calls", type=int, default=4000, help="calls per kind and concurrency")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated calls in flight")
    parser.add_argument("--service", default="cart", help="the running service the service hop calls")
    parser.add_argument("--database", default="orders", help="the service database the pg hop uses")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        await _serve(args.serve)
        return
    concurrency = [int(c) for c in args.concurrency.split(",")]
    out: dict = {"calls": args.calls}
    for kind in args.kinds.split(","):
        if kind == "grpc":
            out["grpc"] = await grpc_hop(args.calls, concurrency)
        elif kind == "service":
            out["service"] = {
                "service": args.service,
                "runs": await service_hop(args.service, args.calls, concurrency, args.idle_seconds),
            }
        elif kind == "pg":
            out["pg"] = {"database": args.database, "runs": await pg_hop(args.database, args.calls, concurrency)}
        else:
            raise SystemExit(f"--kinds: unknown kind {kind!r} (grpc, service, pg)")
    print(json.dumps(out))


if __name__ == "__main__":
    uvloop.run(main())

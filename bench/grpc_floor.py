"""What one gRPC hop costs in Python on this machine, with nothing else in it.

A grpc.aio server (uvloop, as the services run) answers with 200 bytes and
does nothing else; a grpc.aio client in another process calls it one call
at a time, a pause (--gap-ms) between calls as a lightly loaded service
sees them, so every call pays its own wake-ups. No TLS, no interceptor, no
tracing: the floor under every hop of the mesh. Kinds: unary, a server
stream of one message (as graph's StreamFollowers sends a short list), a
client stream of one message (as timeline's DeliverEntries takes one
batch). GRPC_EXPERIMENTS and other
gRPC environment variables reach both processes.

Prints one JSON object: per kind, latency p50/p95/p99 (ms), calls per
second, and CPU per call (µs) of the client and of the server, from /proc.

    .venv/bin/python bench/grpc_floor.py
    GRPC_EXPERIMENTS=-event_engine_client,-event_engine_listener .venv/bin/python bench/grpc_floor.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

import grpc
import uvloop

from loadgen import percentile, process_cpu_seconds

SERVICE = "bench.Floor"
REPLY = b"x" * 200
KINDS = ("unary", "server_stream", "client_stream")


def _same(data: bytes) -> bytes:
    return data


async def _unary(request: bytes, context) -> bytes:
    return REPLY


async def _server_stream(request: bytes, context):
    yield REPLY


async def _client_stream(requests, context) -> bytes:
    async for _ in requests:
        pass
    return REPLY


async def serve(port: int) -> None:
    handlers = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary, _same, _same),
            "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream, _same, _same),
            "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream, _same, _same),
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handlers,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


def _call(channel: grpc.aio.Channel, kind: str):
    if kind == "unary":
        unary = channel.unary_unary(f"/{SERVICE}/Unary", _same, _same)
        return lambda: unary(b"request")
    if kind == "server_stream":
        stream = channel.unary_stream(f"/{SERVICE}/ServerStream", _same, _same)

        async def read_all() -> None:
            async for _ in stream(b"request"):
                pass

        return read_all
    collect = channel.stream_unary(f"/{SERVICE}/ClientStream", _same, _same)

    async def one_message():
        yield b"r" * 300

    return lambda: collect(one_message())


async def measure(port: int, server_pid: int, kind: str, calls: int, gap_s: float) -> dict:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = _call(channel, kind)
        for _ in range(200):  # warm: connection, first-call paths
            await call()
        latencies = []
        client_before, server_before = process_cpu_seconds(os.getpid()), process_cpu_seconds(server_pid)
        started = time.perf_counter()
        for _ in range(calls):
            sent = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(gap_s)
        elapsed = time.perf_counter() - started
        latencies.sort()
        client_cpu = process_cpu_seconds(os.getpid()) - client_before
        server_cpu = process_cpu_seconds(server_pid) - server_before
    # The client's figure includes its own pauses (a timer and a wake-up each).
    return {
        "calls": calls,
        "calls_per_s": round(calls / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50), 3),
        "p95_ms": round(percentile(latencies, 0.95), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "client_cpu_us_per_call": round(client_cpu / calls * 1e6),
        "server_cpu_us_per_call": round(server_cpu / calls * 1e6),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per kind (default %(default)s)")
    parser.add_argument("--gap-ms", type=float, default=2.0, help="pause between calls (default %(default)s)")
    parser.add_argument("--port", type=int, default=59311, help="the server's loopback port (default %(default)s)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated, of: " + ", ".join(KINDS))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        await serve(args.port)
        return
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"--kinds: unknown {', '.join(unknown)}")
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--port", str(args.port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("the server did not start")
        results = {kind: await measure(args.port, server.pid, kind, args.calls, args.gap_ms / 1000) for kind in kinds}
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        json.dumps(
            {
                "bench": "grpc_floor",
                "grpc": grpc.__version__,
                "grpc_experiments": os.environ.get("GRPC_EXPERIMENTS", ""),
                "gap_ms": args.gap_ms,
                "kinds": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main())

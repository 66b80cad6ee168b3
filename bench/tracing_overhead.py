"""CPU cost of tracing per gRPC call: one process serves a trivial method
through the kit's interceptor and calls it through the kit's traced
channel, sequentially, with tracing off, on at a sampling ratio, and on
with every call recorded (spans exported to the devstack's Zipkin).

    .venv/bin/python bench/tracing_overhead.py [--calls 20000] [--ratios 0.01,1.0]

Prints one JSON object: microseconds per call (client and server side
together, plus the span export thread) for each mode, and the difference to off.
A mode RATIO:unsampled makes the calls from inside a trace that is not
recorded, as a service does while serving a request Envoy did not sample
(the common case); plain RATIO calls start a trace each, as a background job does.
Needs no stack except Zipkin for the recorded modes (`devstack up zipkin`).
With --redis, the served method also reads one key through redis-py (as a
service's handler does), so what a store span costs shows too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from loadgen import child_us_per_call

ZIPKIN = f"http://127.0.0.1:{os.environ.get('ZIPKIN_PORT', '9411')}/api/v2/spans"


async def _measure(calls: int, redis_url: str) -> float:
    import grpc
    import redis.asyncio as redis

    from aviary.trends.v1 import trends_pb2, trends_pb2_grpc
    from services.kit import tracing
    from services.kit.server.service import KitInterceptor

    tracing.setup("bench")
    # Made after setup: the Redis instrumentation wraps every client.
    store = redis.Redis.from_url(redis_url) if redis_url else None

    class Trends(trends_pb2_grpc.TrendsServiceServicer):
        async def ListTrends(self, request, context):
            if store is not None:
                await store.get("bench:tracing:nothing")
            return trends_pb2.ListTrendsResponse()

    interceptor = KitInterceptor("bench")
    interceptor.ready = True
    server = grpc.aio.server(interceptors=[interceptor])
    trends_pb2_grpc.add_TrendsServiceServicer_to_server(Trends(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = tracing.traced_channel(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
    stub = trends_pb2_grpc.TrendsServiceStub(channel)
    request = trends_pb2.ListTrendsRequest()
    if os.environ.get("BENCH_PARENT") == "unsampled" and tracing.enabled():
        # As inside a service serving a request Envoy did not sample.
        from opentelemetry import context, trace

        parent = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True)
        context.attach(trace.set_span_in_context(trace.NonRecordingSpan(parent)))
    for _ in range(500):  # warm-up: connection, handler caches
        await stub.ListTrends(request)
    started = time.process_time()
    for _ in range(calls):
        await stub.ListTrends(request)
    used = time.process_time() - started
    tracing.shutdown()  # the export thread's CPU for these spans counts too
    used = time.process_time() - started
    await channel.close()
    await server.stop(None)
    if store is not None:
        await store.aclose()
    return used / calls * 1e6


def _child(calls: int, redis_url: str) -> None:
    import uvloop

    print(json.dumps({"us_per_call": round(uvloop.run(_measure(calls, redis_url)), 1)}))


def _run(mode: str, calls: int, redis_url: str) -> float:
    ratio, _, parent = mode.partition(":")
    env = {**os.environ, "AVIARY_TRACE_ENDPOINT": "" if mode == "off" else ZIPKIN, "BENCH_PARENT": parent}
    if mode != "off":
        env["AVIARY_TRACE_SAMPLE_RATIO"] = ratio
    argv = [sys.executable, __file__, "--child", "--calls", str(calls), "--redis-url", redis_url]
    return child_us_per_call(argv, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument(
        "--ratios",
        default="0.01,0.01:unsampled,1.0",
        help="sampling ratios to measure beside off; RATIO:unsampled makes the calls inside an unsampled trace",
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs per mode; the fastest counts")
    parser.add_argument("--redis", action="store_true", help="the served method also reads one key through redis-py")
    parser.add_argument("--redis-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.calls, args.redis_url)
        return
    redis_url = os.environ.get("AVIARY_REDIS_URL", "redis://127.0.0.1:6379/0") if args.redis else ""
    modes = ["off", *args.ratios.split(",")]
    best = {mode: min(_run(mode, args.calls, redis_url) for _ in range(args.rounds)) for mode in modes}
    result = {
        "calls": args.calls,
        "store_read_per_call": bool(redis_url),
        "us_per_call": best,
        "extra_us_per_call": {mode: round(best[mode] - best["off"], 1) for mode in modes if mode != "off"},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""CPU cost of the mesh's mutual TLS per gRPC call: one process serves a
trivial method through the kit's interceptor and calls it sequentially over
one long-lived channel, in plaintext (mesh off) and over mutual TLS with the
allow-list checked on every call (mesh on), each in a fresh process.

    .venv/bin/python bench/mesh_overhead.py [--calls 20000] [--rounds 3]

Prints one JSON object: microseconds of CPU per call (client and server side
together) for each mode, and the difference. Needs no stack: the certificates
come from the devstack's CA maker into a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from loadgen import child_us_per_call

# A public method of a real service, so the allow-list looks it up as it would any call.
METHOD_OWNER = "trends"


async def _measure(calls: int, cert_dir: str) -> float:
    import grpc

    from aviary.trends.v1 import trends_pb2, trends_pb2_grpc
    from services.kit import mesh
    from services.kit.server.service import KitInterceptor

    class Trends(trends_pb2_grpc.TrendsServiceServicer):
        async def ListTrends(self, request, context):
            return trends_pb2.ListTrendsResponse()

    tls = bool(cert_dir)
    interceptor = KitInterceptor(METHOD_OWNER, mesh_tls=tls)
    interceptor.ready = True
    server = grpc.aio.server(interceptors=[interceptor])
    trends_pb2_grpc.add_TrendsServiceServicer_to_server(Trends(), server)
    if tls:
        certs = Path(cert_dir)
        port = server.add_secure_port("127.0.0.1:0", mesh.server_credentials(METHOD_OWNER, certs))
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{port}", mesh.channel_credentials("feed", certs), options=mesh.channel_options(METHOD_OWNER)
        )
    else:
        port = server.add_insecure_port("127.0.0.1:0")
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    await server.start()
    stub = trends_pb2_grpc.TrendsServiceStub(channel)
    request = trends_pb2.ListTrendsRequest()
    for _ in range(500):  # warm-up: the connection (and handshake), handler caches
        await stub.ListTrends(request)
    started = time.process_time()
    for _ in range(calls):
        await stub.ListTrends(request)
    used = time.process_time() - started
    await channel.close()
    await server.stop(None)
    return used / calls * 1e6


def _child(calls: int, cert_dir: str) -> None:
    import uvloop

    print(json.dumps({"us_per_call": round(uvloop.run(_measure(calls, cert_dir)), 1)}))


def _run(cert_dir: str, calls: int) -> float:
    return child_us_per_call([sys.executable, __file__, "--child", "--calls", str(calls), "--cert-dir", cert_dir])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs per mode; the fastest counts")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cert-dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.calls, args.cert_dir)
        return
    from devstack import mesh_certs

    with tempfile.TemporaryDirectory() as tmp:
        mesh_certs.ensure(Path(tmp), [METHOD_OWNER, "feed"])
        best = {
            "plaintext": min(_run("", args.calls) for _ in range(args.rounds)),
            "mtls": min(_run(tmp, args.calls) for _ in range(args.rounds)),
        }
    print(
        json.dumps(
            {
                "calls": args.calls,
                "us_per_call": best,
                "extra_us_per_call": round(best["mtls"] - best["plaintext"], 1),
            }
        )
    )


if __name__ == "__main__":
    main()

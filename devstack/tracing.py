"""The trace store of the devstack: a Zipkin server keeping spans in memory.

Envoy and every service (services/kit/tracing.py) send it spans; its query API
(/api/v2/traces, /api/v2/trace/{id}) and UI answer on ZIPKIN_PORT. Spans are
lost when it stops, which a local store may do.
"""

from __future__ import annotations

import json
import os
import urllib.request

from . import config
from .proc import Component
from .registry import register

ZIPKIN_PORT = config.env_int("ZIPKIN_PORT", 9411)
ZIPKIN_HEAP = os.environ.get("ZIPKIN_HEAP", "512m")
# Spans kept in memory; the oldest traces go first beyond this. 200,000 ran the
# heap out (a span with its tags takes a few KB in Zipkin's memory store).
ZIPKIN_MAX_SPANS = config.env_int("ZIPKIN_MAX_SPANS", 50_000)


def zipkin_url() -> str:
    return f"http://{config.HOST}:{ZIPKIN_PORT}"


def span_intake() -> str:
    """Where services post spans (Zipkin v2 JSON)."""
    return f"{zipkin_url()}/api/v2/spans"


def _zipkin_argv() -> list[str]:
    jar = next(config.jars_dir("zipkin").glob("zipkin-server-*-exec.jar"))
    return [
        config.java(),
        f"-Xms{ZIPKIN_HEAP}",
        f"-Xmx{ZIPKIN_HEAP}",
        "-XX:+UseSerialGC",
        "-jar",
        str(jar),
        f"--server.port={ZIPKIN_PORT}",
        f"--armeria.ports[0].port={ZIPKIN_PORT}",
        f"--armeria.ports[0].ip={config.HOST}",
        "--armeria.ports[0].protocols=http",
    ]


def _zipkin_ready() -> bool:
    with urllib.request.urlopen(f"{zipkin_url()}/health", timeout=2) as resp:
        return resp.status == 200 and json.load(resp).get("status") == "UP"


ZIPKIN = Component(
    name="zipkin",
    argv=_zipkin_argv,
    port=ZIPKIN_PORT,
    env={
        "STORAGE_TYPE": "mem",
        "MEM_MAX_SPANS": str(ZIPKIN_MAX_SPANS),
        # Self-tracing and the scribe/kafka collectors stay off.
        "SELF_TRACING_ENABLED": "false",
    },
    ready=_zipkin_ready,
    ready_timeout=90,
    tier=0,
    group="backends",
)

register(ZIPKIN)

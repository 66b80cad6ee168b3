"""A second Envoy for tests that need the edge configured otherwise: rendered
by the devstack's own renderer, in front of the devstack's gateway and
services (same keys, same mesh certificates), on ports of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack import config
from devstack.services import GATEWAY_PORT, KEYS_DIR, envoy_mesh_certs
from edge_config import METRICS_PATH, render_config
from services.kit.settings import SERVICE_PORTS
from tests.integration.support import free_port


@dataclass(frozen=True)
class Edge:
    url: str
    admin_url: str
    metrics_url: str
    access_log: Path

    def stat(self, name: str) -> int:
        """One of Envoy's counters or gauges (0 when it has none of that name)."""
        answer = httpx.get(f"{self.admin_url}/stats", params={"filter": f"^{name}$"}, timeout=5.0).text
        for line in answer.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def prometheus_value(self, name: str, **labels: str) -> float | None:
        """One sample of the metrics listener's Prometheus page (None: no such sample)."""
        page = httpx.get(f"{self.metrics_url}{METRICS_PATH}", timeout=5.0).text
        wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
        for line in page.splitlines():
            series, _, value = line.rpartition(" ")
            if series == (f"{name}{{{wanted}}}" if labels else name):
                return float(value)
        return None

    def access_log_lines(self) -> list[dict]:
        """The access log so far (Envoy writes it out about once a second)."""
        if not self.access_log.exists():
            return []
        return [json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()]


@contextmanager
def second_edge(conf: Path, **render_options) -> Iterator[Edge]:
    """Runs an Envoy rendered into `conf` until the block ends: the devstack's
    settings, but for `render_options` (render_config's keywords)."""
    port, admin, metrics = free_port(), free_port(), free_port()
    devstack_options = dict(
        descriptor=config.CONF / "envoy" / "aviary.pb",
        jwks=KEYS_DIR / "jwks.json",
        access_log=conf / "access.log",
        service_ports=SERVICE_PORTS,
        gateway_port=GATEWAY_PORT,
        objectstore_port=config.OBJECTSTORE_PORT,
        media_bucket=config.MEDIA_BUCKET,
        mesh_certs=envoy_mesh_certs(),
        metrics_port=metrics,
    )
    render_config(conf / "envoy.yaml", port=port, admin_port=admin, **(devstack_options | render_options))
    log = conf / "envoy.log"
    with open(log, "w") as stderr:
        envoy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "envoy"),
                "-c",
                str(conf / "envoy.yaml"),
                "--disable-hot-restart",
                "--log-level",
                "warn",
                "--concurrency",
                "1",
                "--base-id",
                str(port),
                # The access log written out within a tenth of a second (default: 10 s).
                "--file-flush-interval-msec",
                "100",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    local = "http://127.0.0.1"
    edge = Edge(f"{local}:{port}", f"{local}:{admin}", f"{local}:{metrics}", conf / "access.log")
    try:
        _wait_healthy(edge.url, envoy, log)
        yield edge
    finally:
        envoy.terminate()
        envoy.wait(10)


def _wait_healthy(url: str, envoy: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert envoy.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the second Envoy never became healthy: {log.read_text()[-2000:]}")

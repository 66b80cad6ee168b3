"""A private Redis Cluster for a test module: 3 masters with a replica each,
started from the devstack's redis-server on free ports in a temporary
directory, stopped (SIGKILL) afterwards."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from devstack import redis_cluster
from tests.integration.support import free_port


@dataclasses.dataclass
class LocalCluster:
    ports: list[int]
    processes: dict[int, subprocess.Popen]

    @property
    def url(self) -> str:
        return redis_cluster.url(self.ports)

    def kill(self, port: int) -> None:
        """The node dies without a word (no shutdown, no failover handshake)."""
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait(10)

    def role(self, port: int) -> str:
        info = redis_cluster.command(port, "ROLE").decode(errors="replace")
        return "master" if "master" in info else "replica"


@contextlib.contextmanager
def local_cluster(directory: Path) -> Iterator[LocalCluster]:
    # Each node's cluster bus listens 10000 above its port.
    ports = [free_port(also_free_at=redis_cluster.BUS_OFFSET) for _ in range(6)]
    processes: dict[int, subprocess.Popen] = {}
    try:
        for port in ports:
            data = directory / str(port)
            data.mkdir()
            (data / "redis.conf").write_text(redis_cluster.node_conf(port, data, persistent=False))
            processes[port] = subprocess.Popen(
                ["redis-server", str(data / "redis.conf")],
                stdout=(data / "log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        redis_cluster.create(ports, lock=directory / "create.lock")
        yield LocalCluster(ports, processes)
    finally:
        for process in processes.values():
            process.kill()
        for process in processes.values():
            process.wait(10)

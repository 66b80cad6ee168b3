"""A private Redis Cluster for a test module: 3 masters with a replica each,
started from the devstack's redis-server on free ports in a temporary
directory, stopped (SIGKILL) afterwards."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from devstack import redis_cluster


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


def _free_cluster_ports(count: int) -> list[int]:
    """Ports whose cluster bus port (10000 above) is free as well."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + redis_cluster.BUS_OFFSET < 65536 and _free(port + redis_cluster.BUS_OFFSET) and port not in ports:
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def local_cluster(directory: Path) -> Iterator[LocalCluster]:
    ports = _free_cluster_ports(6)
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

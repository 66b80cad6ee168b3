"""Plumbing shared by integration tests that start or wait for service processes."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaConsumer, TopicPartition

from devstack.mesh_channels import open_channel
from services.kit import manifest
from services.kit.settings import REPO_ROOT, load_settings, service_addr
from services.kit.events.kafka import TOPICS, ensure_topics


@dataclass
class User:
    """A signed-up test user; `auth` is the gRPC metadata that acts as them."""

    id: int
    username: str
    token: str

    @property
    def auth(self):
        return (("authorization", f"Bearer {self.token}"),)


_given_ports: set[int] = set()


def free_port(*, also_free_at: int = 0) -> int:
    """A port free right now and not handed out before in this test run: the
    kernel may offer a just-closed port again, and a fixture asking for a
    service port and a metrics port must not get the same one twice.
    `also_free_at`: an offset whose port must be free as well, for a server
    that also listens at a fixed distance from its own port."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            partner = port + also_free_at if also_free_at else None
            if port in _given_ports or (partner is not None and (partner in _given_ports or not _bindable(partner))):
                continue
        _given_ports.update({port} if partner is None else {port, partner})
        return port


def _bindable(port: int) -> bool:
    if port > 65535:
        return False
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_serving(addr: str, deadline_s: float = 30.0, *, service: str | None = None) -> grpc.Channel:
    """A channel to `addr` once its grpc.health.v1 says SERVING; fails the test
    otherwise. `service`: which service serves there (else the devstack's
    service on that address)."""
    channel = open_channel(service or _service_at(addr), addr=addr)
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                return channel
            last = status
        except grpc.RpcError as exc:
            last = exc.code()
        time.sleep(0.2)
    channel.close()
    pytest.fail(f"service at {addr} is not serving (last: {last}); start it first")


def _service_at(addr: str) -> str:
    for name in manifest.services():
        if service_addr(name) == addr:
            return name
    raise ValueError(f"no devstack service at {addr}: name it (service=)")


class TopicReader:
    """Reads one Kafka topic from its current end, with a fresh consumer group,
    parsing each record's value as `event_type`."""

    def __init__(self, topic: str, event_type) -> None:
        bootstrap = load_settings().kafka_bootstrap
        ensure_topics(bootstrap, {topic: TOPICS[topic]})
        self.event_type = event_type
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=f"t_{topic}_{secrets.token_hex(4)}", enable_auto_commit=False
        )
        partitions = self.consumer.partitions_for_topic(topic) or set()
        assert partitions, f"{topic} has no partitions"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        self.consumer.seek_to_end(*tps)
        for tp in tps:
            self.consumer.position(tp)  # resolves "end" now, before anything is produced
        self.records = []

    def event(self, record):
        return self.event_type.FromString(record.value)

    def wait_for(self, predicate, count: int = 1, deadline_s: float = 20.0) -> list:
        """Records whose event satisfies `predicate`, once `count` of them
        arrived (what arrived by the deadline otherwise)."""
        deadline = time.monotonic() + deadline_s
        matches = []
        while time.monotonic() < deadline:
            for batch in self.consumer.poll(timeout_ms=250).values():
                self.records.extend(batch)
            matches = [r for r in self.records if predicate(self.event(r))]
            if len(matches) >= count:
                break
        return matches

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def stop_process(proc: subprocess.Popen) -> None:
    """Stops a process a test started: SIGTERM, then SIGKILL after 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class SecondProcess:
    """Another process of a devstack service, started by a test."""

    channel: grpc.Channel
    port: int
    metrics_port: int
    log_path: Path


@contextlib.contextmanager
def second_process(service: str, log_dir: Path, env_var_port: str, **settings: str) -> Iterator[SecondProcess]:
    """Runs another `service` process on free ports (its port variable is
    `env_var_port`), with these settings changed, until the block ends; fails
    the test, quoting its log, if it never serves."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        env_var_port: str(port),
        "AVIARY_METRICS_PORT": str(metrics_port),
        "AVIARY_HEALTH_PORT": str(free_port()),
        "AVIARY_WORKER_ID": str(1000 + secrets.randbelow(24)),
        **settings,
    }
    log_path = log_dir / f"{service}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            channel = wait_serving(f"127.0.0.1:{port}", deadline_s=60.0, service=service)
        except pytest.fail.Exception:
            pytest.fail(
                f"the second {service} process never served (exit code {proc.poll()}); "
                f"its log ends: {log_path.read_text()[-2000:]}"
            )
        with channel:
            yield SecondProcess(channel, port, metrics_port, log_path)
    finally:
        stop_process(proc)

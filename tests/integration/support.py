"""Plumbing shared by integration tests that start or wait for service processes."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaConsumer, TopicPartition

from devstack.mesh_channels import open_channel
from services.kit import manifest
from services.kit.settings import load_settings, service_addr
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


def free_port() -> int:
    """A port free right now and not handed out before in this test run: the
    kernel may offer a just-closed port again, and a fixture asking for a
    service port and a metrics port must not get the same one twice."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


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

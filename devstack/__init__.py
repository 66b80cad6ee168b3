"""Aviary local dev stack: `python -m devstack up --backends | status | down | reset`.

Public API for adding components (see README.md):
    Component, register, up, down, start, stop, wait_ready, ensure_up, status,
    tcp_check, grpc_health_check, http_check, python_service, ensure_topics
"""

from .proc import (
    Component,
    DevstackError,
    Status,
    check_ready,
    down,
    ensure_up,
    grpc_health_check,
    http_check,
    python_service,
    running_pid,
    start,
    status,
    stop,
    tail_log,
    tcp_check,
    up,
    wait_ready,
)
from .registry import REGISTRY, register, select


def ensure_topics(topics, **kwargs):
    """Create Kafka topics {name: partitions} idempotently (see backends.ensure_topics)."""
    from .backends import ensure_topics as _ensure

    return _ensure(topics, **kwargs)


__all__ = [
    "Component",
    "DevstackError",
    "Status",
    "REGISTRY",
    "register",
    "select",
    "up",
    "down",
    "start",
    "stop",
    "wait_ready",
    "ensure_up",
    "status",
    "check_ready",
    "running_pid",
    "tail_log",
    "tcp_check",
    "grpc_health_check",
    "http_check",
    "python_service",
    "ensure_topics",
]

"""The kit's settings keep today's defaults, derived ones included, and refuse
bad values naming the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.kit import manifest
from services.kit.settings import REPO_ROOT, Settings, SettingError, load, service_addr, service_port


def test_defaults():
    s = load(Settings, {})
    assert s.state_dir == REPO_ROOT / ".devstack"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.redis_max_connections == 200
    assert s.redis_pool_timeout_seconds == 2.0
    assert s.redis_bulk_timeout_seconds == 10.0
    assert s.pg_pool_timeout_seconds == 10.0
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.cassandra_hosts == ("127.0.0.1",)
    assert s.cassandra_port == 9042
    assert s.cassandra_rf == 1
    assert s.jwt_private_key == REPO_ROOT / ".devstack" / "keys" / "jwt_private.pem"
    assert s.jwt_public_key == REPO_ROOT / ".devstack" / "keys" / "jwt_public.pem"
    assert s.operator_public_key == REPO_ROOT / ".devstack" / "keys" / "operator_public.pem"
    assert s.operator_private_key == REPO_ROOT / ".devstack" / "keys" / "operator_private.pem"
    assert s.jwt_ttl_seconds == 900
    assert s.fanout_threshold == 10_000
    assert s.timeline_max_entries == 800
    assert s.author_index_max_entries == 200
    assert s.worker_id == os.getpid() % 1024
    assert s.rpc_timeout_seconds == 5.0
    assert s.page_token_secret == "aviary-devstack-page-token-secret"
    assert s.xff_trusted_hops == 0
    assert s.log_level == "INFO"
    assert s.metrics_port is None  # the service's gRPC port + 1000
    assert s.bind_all is False
    assert s.uvloop is True
    assert s.gc_gen0_threshold == 10_000
    assert s.outbox_sweep_min_age_seconds == 5.0
    assert s.outbox_sweep_interval_seconds == 5.0
    assert s.outbox_late_margin_seconds == 30.0
    assert s.outbox_full_sweep_seconds == 600.0
    assert s.engagement_stream is True
    assert s.engagement_stream_max_seconds == 300.0


def test_key_paths_follow_the_state_directory_unless_set():
    s = load(Settings, {"AVIARY_STATE_DIR": "/srv/aviary"})
    assert s.jwt_private_key == Path("/srv/aviary/keys/jwt_private.pem")
    s = load(Settings, {"AVIARY_STATE_DIR": "/srv/aviary", "AVIARY_JWT_PUBLIC_KEY": "/etc/jwt.pem"})
    assert s.jwt_public_key == Path("/etc/jwt.pem")


def test_values_are_parsed_by_type():
    s = load(
        Settings,
        {
            "AVIARY_CASSANDRA_HOSTS": "a, b,c",
            "AVIARY_WORKER_ID": "7",
            "AVIARY_UVLOOP": "0",
            "AVIARY_BIND_ALL": "true",
            "AVIARY_RPC_TIMEOUT_SECONDS": "1.5",
            "AVIARY_METRICS_PORT": "9100",
            "AVIARY_REDIS_MAX_CONNECTIONS": "",  # empty: the default
        },
    )
    assert s.cassandra_hosts == ("a", "b", "c")
    assert (s.worker_id, s.uvloop, s.bind_all, s.rpc_timeout_seconds) == (7, False, True, 1.5)
    assert s.metrics_port == 9100 and s.redis_max_connections == 200


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("AVIARY_WORKER_ID", "seven", "an integer"),
        ("AVIARY_RPC_TIMEOUT_SECONDS", "soon", "a number"),
        ("AVIARY_UVLOOP", "maybe", "1 or 0"),
    ],
)
def test_a_bad_value_names_the_variable(variable, value, expected):
    with pytest.raises(SettingError, match=f"{variable} must be {expected}, got '{value}'"):
        load(Settings, {variable: value})


def test_ports_and_addresses_come_from_the_manifest_unless_set():
    assert service_port("graph", {}) == manifest.service("graph").port == 50052
    assert service_port("graph", {"AVIARY_GRAPH_PORT": "6000"}) == 6000
    assert service_addr("posts", {}) == "127.0.0.1:50053"
    assert service_addr("posts", {"AVIARY_POSTS_ADDR": "posts:50053"}) == "posts:50053"

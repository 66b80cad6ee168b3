"""Registers Aviary's own processes: the gRPC services (tier 1) and Envoy (tier 2).

Before the services start: the JWT key pair exists and the Kafka topics exist.
Before Envoy starts: the descriptor set is built and envoy.yaml rendered.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from services.kit import manifest
from services.payments.validation import STRIPE_TEST_METHODS

from . import config, redis_cluster
from .proc import Component, grpc_health_check, http_check, python_service
from .registry import register
from .tracing import span_intake

ENVOY_PORT = config.env_int("ENVOY_PORT", 8080)
ENVOY_ADMIN_PORT = config.env_int("ENVOY_ADMIN_PORT", 9901)
# Envoy's Prometheus metrics, the one page of the admin API served there.
ENVOY_METRICS_PORT = config.env_int("ENVOY_METRICS_PORT", 9902)
GATEWAY_PORT = config.env_int("AVIARY_GATEWAY_PORT", 8081)
# Low on purpose so the small demo has a celebrity; production default is 10,000.
FANOUT_THRESHOLD = os.environ.get("AVIARY_FANOUT_THRESHOLD", "3")
KEYS_DIR = config.STATE / "keys"
# Share of requests traced: low, so a test or a bench pays little; a request
# sent with a sampled trace header (tests/e2e/test_traces.py) is always traced.
TRACE_SAMPLE_RATIO = os.environ.get("AVIARY_TRACE_SAMPLE_RATIO", "0.01")
# Service-to-service gRPC over mutual TLS (services/kit/mesh.py); AVIARY_MESH_TLS=0 turns it off.
MESH_TLS = os.environ.get("AVIARY_MESH_TLS", "1") == "1"
MESH_CERT_DIR = config.STATE / "mesh"


def service_env() -> dict[str, str]:
    """The environment every service gets: where the backends and peers are."""
    env = {
        "AVIARY_STATE_DIR": str(config.STATE),
        "AVIARY_REDIS_URL": redis_cluster.url()
        if redis_cluster.ENABLED
        else f"redis://{config.HOST}:{config.REDIS_PORT}/0",
        "AVIARY_KAFKA_BOOTSTRAP": f"{config.HOST}:{config.KAFKA_PORT}",
        "AVIARY_CASSANDRA_HOSTS": config.HOST,
        "AVIARY_CASSANDRA_PORT": str(config.CASSANDRA_PORT),
        "AVIARY_FANOUT_THRESHOLD": FANOUT_THRESHOLD,
        # Traces to the devstack's Zipkin (devstack/tracing.py); AVIARY_TRACE_ENDPOINT= turns them off.
        "AVIARY_TRACE_ENDPOINT": os.environ.get("AVIARY_TRACE_ENDPOINT", span_intake()),
        "AVIARY_TRACE_SAMPLE_RATIO": TRACE_SAMPLE_RATIO,
        "AVIARY_MESH_TLS": "1" if MESH_TLS else "0",
        "AVIARY_MESH_CERT_DIR": str(MESH_CERT_DIR),
        # media: the object store, and the public base URL Envoy serves its objects under.
        "AVIARY_S3_ENDPOINT": f"http://{config.HOST}:{config.OBJECTSTORE_PORT}",
        "AVIARY_S3_ACCESS_KEY": config.OBJECTSTORE_ACCESS_KEY,
        "AVIARY_S3_SECRET_KEY": config.OBJECTSTORE_SECRET_KEY,
        "AVIARY_MEDIA_BUCKET": config.MEDIA_BUCKET,
        "AVIARY_MEDIA_PUBLIC_URL": os.environ.get(
            "AVIARY_MEDIA_PUBLIC_URL", f"http://{config.HOST}:{ENVOY_PORT}/media"
        ),
        # payments: the Stripe API is stripe-mock; test-only fault injection is on
        # in the local stack (see services/payments/faults.py), never in helm/.
        "AVIARY_OPENSEARCH_URL": f"http://{config.HOST}:{config.env_int('OPENSEARCH_PORT', 9200)}",
        "AVIARY_STRIPE_API_BASE": f"http://{config.HOST}:{config.STRIPE_MOCK_PORT}",
        "AVIARY_STRIPE_API_KEY": os.environ.get("AVIARY_STRIPE_API_KEY", "sk_test_devstack"),
        "AVIARY_PAYMENTS_FAULT_INJECTION": os.environ.get("AVIARY_PAYMENTS_FAULT_INJECTION", "1"),
        # Stripe's test payment methods (stripe-mock would approve any string).
        "AVIARY_PAYMENTS_ACCEPTED_METHODS": os.environ.get(
            "AVIARY_PAYMENTS_ACCEPTED_METHODS", ",".join(STRIPE_TEST_METHODS)
        ),
        # identity: the test suite and bench/ sign up and log in hundreds of
        # users a minute from loopback; production allows 10 sign-ups an hour
        # and 50 failed log-ins per 10 minutes per address (throttle.py).
        "AVIARY_IDENTITY_SIGN_UPS_PER_ADDRESS": os.environ.get("AVIARY_IDENTITY_SIGN_UPS_PER_ADDRESS", "100000"),
        "AVIARY_IDENTITY_LOGIN_FAILURES_PER_ADDRESS": os.environ.get(
            "AVIARY_IDENTITY_LOGIN_FAILURES_PER_ADDRESS", "20000"
        ),
    }
    for name, entry in manifest.services().items():
        env[f"AVIARY_{name.upper()}_ADDR"] = f"{config.HOST}:{entry.port}"
    return env


# Every service's start asks for the shared set-up; the first in a run does it
# (nineteen admin clients at once kept a busy broker past their timeouts).
_shared_lock = threading.Lock()
_shared_ready = False


def _prepare_shared() -> None:
    global _shared_ready
    with _shared_lock:
        if not _shared_ready:
            _prepare_shared_once()
            _shared_ready = True


def _prepare_shared_once() -> None:
    from services.kit.server.auth import ensure_keys
    from services.kit.server.operators import ensure_operator_keys
    from services.kit.events.kafka import TOPICS

    from .backends import ensure_topics

    ensure_keys(KEYS_DIR)
    ensure_mesh_certs()
    # Operator tokens (moderation): the devstack's operator may issue them locally.
    ensure_operator_keys(KEYS_DIR / "operator_private.pem", KEYS_DIR / "operator_public.pem")
    ensure_topics(dict(TOPICS))


def envoy_mesh_certs() -> str | None:
    """Where Envoy finds its mesh certificate, when the mesh runs over TLS."""
    return str(MESH_CERT_DIR) if MESH_TLS else None


def ensure_mesh_certs() -> None:
    """The local mesh CA and every identity's certificate (made once)."""
    from services.kit import mesh

    from . import mesh_certs

    mesh_certs.ensure(MESH_CERT_DIR, mesh.identities())


def renew_mesh_certs() -> None:
    """Every identity a new key and certificate from the same CA, as cert-manager
    renews them: the running services and Envoy take them up without a restart."""
    from services.kit import mesh

    from . import mesh_certs

    mesh_certs.renew(MESH_CERT_DIR, mesh.identities())


def _own_database(entry: manifest.ServiceEntry) -> dict[str, str]:
    """A service that keeps state in PostgreSQL gets its own database's URL, and no other's."""
    from .backends import service_pg_dsn

    return {"AVIARY_PG_DSN": service_pg_dsn(entry.name)} if entry.pg_database else {}


def _service(entry: manifest.ServiceEntry, worker_id: int) -> Component:
    from services.kit import mesh

    health_port = mesh.health_port(entry.port) if MESH_TLS else entry.port
    comp = python_service(
        entry.name,
        f"services.{entry.name}",
        port=entry.port,
        env={**service_env(), **_own_database(entry), "AVIARY_WORKER_ID": str(worker_id)},
        ready=grpc_health_check(health_port),
        ready_timeout=90.0,
    )
    # The kit's Prometheus endpoint (services/kit/server/service.py): port + 1000;
    # with mesh TLS, health in plaintext on port + 2000.
    comp.extra_ports = (entry.metrics_port, *([health_port] if MESH_TLS else []))
    comp.prepare = _prepare_shared
    return comp


def _prepare_envoy() -> None:
    from edge_config import build_descriptor, render_config

    ensure_mesh_certs()
    conf = config.CONF / "envoy"
    descriptor = conf / "aviary.pb"
    build_descriptor(descriptor)
    render_config(
        conf / "envoy.yaml",
        port=ENVOY_PORT,
        admin_port=ENVOY_ADMIN_PORT,
        descriptor=descriptor,
        jwks=KEYS_DIR / "jwks.json",
        access_log=config.LOGS / "envoy-access.log",
        service_ports=manifest.ports(),
        gateway_port=GATEWAY_PORT,
        objectstore_port=config.OBJECTSTORE_PORT,
        media_bucket=config.MEDIA_BUCKET,
        web_port=config.WEB_PORT,
        tracing=_envoy_tracing(),
        mesh_certs=envoy_mesh_certs(),
        metrics_port=ENVOY_METRICS_PORT,
    )


def _envoy_tracing():
    """Envoy traces to the devstack's Zipkin when the services do, at their ratio."""
    from edge_config import Tracing

    from .tracing import ZIPKIN_PORT

    if not service_env()["AVIARY_TRACE_ENDPOINT"]:
        return None
    return Tracing(config.HOST, ZIPKIN_PORT, float(TRACE_SAMPLE_RATIO) * 100)


def _envoy_binary() -> str:
    return str(Path(sys.executable).parent / "envoy")


envoy = Component(
    name="envoy",
    argv=lambda: [
        _envoy_binary(),
        "-c",
        str(config.CONF / "envoy" / "envoy.yaml"),
        "--disable-hot-restart",
        "--log-level",
        "warn",
        "--concurrency",
        "2",
    ],
    port=ENVOY_PORT,
    extra_ports=(ENVOY_ADMIN_PORT, ENVOY_METRICS_PORT),
    prepare=_prepare_envoy,
    ready=http_check(f"http://{config.HOST}:{ENVOY_PORT}/healthz"),
    ready_timeout=30.0,
    tier=2,
    group="edge",
)

gateway = Component(
    name="gateway",
    argv=[sys.executable, "-u", "-m", "gateway"],
    port=GATEWAY_PORT,
    # The API fuzz (tests/e2e/test_api_fuzz.py) signs up as fuzz_...: no rate limits for it.
    env={
        **service_env(),
        "AVIARY_GATEWAY_PORT": str(GATEWAY_PORT),
        "PYTHONUNBUFFERED": "1",
        "AVIARY_RATE_EXEMPT_USERNAME_PREFIX": os.environ.get("AVIARY_RATE_EXEMPT_USERNAME_PREFIX", "fuzz_"),
    },
    cwd=config.REPO,
    prepare=_prepare_shared,
    ready=http_check(f"http://{config.HOST}:{GATEWAY_PORT}/healthz"),
    ready_timeout=30.0,
    tier=1,
    group="services",
)

register(*(_service(e, worker_id=i + 1) for i, e in enumerate(manifest.services().values())), gateway, envoy)

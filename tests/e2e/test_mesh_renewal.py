"""Mesh certificates renewed while the stack runs (`python -m devstack
renew-certs`, what cert-manager does to the chart's Secrets): Envoy and every
service take the new ones up without a restart, and the mesh keeps working."""

from __future__ import annotations

import json
import urllib.request

import pytest
from cryptography import x509

from devstack.mesh_channels import CERT_DIR, mesh_tls, served_serial
from devstack.services import ENVOY_ADMIN_PORT
from services.kit import manifest, mesh
from tests.e2e.edge import follow, home_ids, post, sign_up, wait_until
from tests.e2e.fanout_support import devstack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.serial,
    pytest.mark.skipif(not mesh_tls(), reason="the devstack runs with AVIARY_MESH_TLS=0"),
]


def _serial_on_disk(identity: str) -> int:
    return x509.load_pem_x509_certificate(mesh.Files.of(identity, CERT_DIR).cert.read_bytes()).serial_number


def _envoy_serials() -> set[int]:
    """The serials of the certificates Envoy presents upstream, from its admin API."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ENVOY_ADMIN_PORT}/certs", timeout=5) as answer:
        certificates = json.load(answer)["certificates"]
    return {int(c["serial_number"], 16) for entry in certificates for c in entry.get("cert_chain", [])}


def test_renewed_certificates_are_taken_up_without_a_restart(http):
    services = [name for name, entry in manifest.services().items() if entry.grpc]
    before = {name: served_serial(name) for name in services}
    assert before == {name: _serial_on_disk(name) for name in services}
    envoy_before = _serial_on_disk(mesh.EDGE)
    assert _envoy_serials() == {envoy_before}

    devstack("renew-certs")

    renewed = {name: _serial_on_disk(name) for name in services}
    assert all(renewed[name] != before[name] for name in services)
    # A new connection sees the new certificate at once; Envoy's file watch takes a moment.
    assert {name: served_serial(name) for name in services} == renewed
    envoy_renewed = _serial_on_disk(mesh.EDGE)
    assert wait_until(lambda: _envoy_serials() == {envoy_renewed}, timeout=10.0), _envoy_serials()

    # The mesh still works end to end: the edge to identity, graph and posts;
    # posts, fanout and timeline among themselves; the services' new channels.
    author, reader = sign_up(http, "mr"), sign_up(http, "mr")
    follow(http, reader, author)
    posted = post(http, author, "after the renewal")
    assert wait_until(lambda: home_ids(http, reader)[:1] == [posted["id"]], timeout=10.0)

"""The devstack's edge bounds the calls in flight to each service
(ENVOY_MAX_REQUESTS_PER_SERVICE); the chart's side is in test_helm_chart."""

from __future__ import annotations

import pytest
import yaml

import edge_config as edge
from services.kit.settings import SERVICE_PORTS


def _default_bounds(tmp_path) -> dict[str, int]:
    out = tmp_path / "envoy.yaml"
    edge.render_config(
        out,
        port=8080,
        admin_port=9901,
        descriptor=tmp_path / "aviary.pb",
        jwks=tmp_path / "jwks.json",
        access_log=tmp_path / "access.log",
        service_ports=SERVICE_PORTS,
        gateway_port=8081,
    )
    clusters = yaml.safe_load(out.read_text())["static_resources"]["clusters"]
    return {
        c["name"]: t["max_requests"]
        for c in clusters
        if "circuit_breakers" in c
        for t in c["circuit_breakers"]["thresholds"]
        if t["priority"] == "DEFAULT"
    }


def test_every_service_gets_the_default_bound(tmp_path, monkeypatch):
    monkeypatch.delenv("ENVOY_MAX_REQUESTS_PER_SERVICE", raising=False)
    bounds = _default_bounds(tmp_path)
    assert set(bounds) == {cluster for _, cluster in edge.public_methods()}
    assert set(bounds.values()) == {edge.MAX_REQUESTS_PER_SERVICE}


def test_the_bound_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVOY_MAX_REQUESTS_PER_SERVICE", "7")
    assert set(_default_bounds(tmp_path).values()) == {7}


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_bound_below_one_is_refused(monkeypatch, value):
    monkeypatch.setenv("ENVOY_MAX_REQUESTS_PER_SERVICE", value)
    with pytest.raises(ValueError, match="ENVOY_MAX_REQUESTS_PER_SERVICE"):
        edge.max_requests_per_service()

"""Envoy's metrics listener, where Prometheus scrapes the chart's Envoy pods:
the admin API's Prometheus page and nothing else of the admin API, with every
Envoy series the chart's alerts and dashboard query."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from edge_config import METRICS_PATH
from services.kit import manifest
from tests.unit.test_helm_monitoring import DASHBOARD, ENVOY_SERIES, _rules, _series

pytestmark = pytest.mark.e2e

METRICS_URL = f"http://127.0.0.1:{os.environ.get('ENVOY_METRICS_PORT', '9902')}"


def _queried_envoy_series() -> set[str]:
    exprs = [rule["expr"] for rule in _rules()]
    exprs += [t["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for t in panel["targets"]]
    return {name for expr in exprs for name in _series(expr) if name.startswith("envoy_")}


def test_the_page_has_every_envoy_series_the_alerts_and_dashboard_query():
    assert _queried_envoy_series() == ENVOY_SERIES
    answer = httpx.get(f"{METRICS_URL}{METRICS_PATH}", timeout=5.0)
    assert answer.status_code == 200
    page = answer.text
    for name in ENVOY_SERIES:
        assert f"# TYPE {name} counter" in page, name
        for service, entry in manifest.services().items():
            if entry.public:
                assert f'{name}{{envoy_cluster_name="{service}"}} ' in page, (name, service)


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/stats"), ("GET", "/config_dump"), ("GET", "/clusters"), ("GET", "/"), ("POST", METRICS_PATH)],
)
def test_nothing_else_of_the_admin_api_is_served(method, path):
    answer = httpx.request(method, f"{METRICS_URL}{path}", timeout=5.0)
    assert answer.status_code == 404, answer.text[:200]

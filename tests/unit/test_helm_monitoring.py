"""The chart's SLO alerts and dashboard: the rules pass Prometheus' own
rule parser (helm/promcheck, built by bootstrap), every series they and the dashboard query is
one the services export (or a rule records), and the chart ships both."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from devstack.config import go_binary
from tests.unit.test_helm_chart import RELEASE, _of, _template, install_args  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "helm" / "aviary" / "files"
RULES = FILES / "prometheus-rules.yaml"
DASHBOARD = FILES / "dashboard-slo.json"
# Series that exist without the services exporting them.
PROMETHEUS_OWN = {"up"}
# Envoy's own series, scraped from its metrics listener: tests/e2e/test_edge_metrics.py
# finds each of them on the devstack's Envoy.
ENVOY_SERIES = {"envoy_cluster_upstream_rq_active_overflow", "envoy_cluster_upstream_rq_total"}
# PromQL words that look like series names.
PROMQL_WORDS = {
    "sum", "by", "rate", "and", "or", "unless", "histogram_quantile", "topk", "le", "without", "on", "ignoring",
    "group_left", "group_right", "bool", "max", "min", "avg", "count", "label_values",
}  # fmt: skip


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _exported_metric_names() -> set[str]:
    """Names the services register with prometheus_client, as Prometheus sees them."""
    names: set[str] = set()
    for path in (REPO / "services").rglob("*.py"):
        for kind, name in re.findall(r'\b(Counter|Gauge|Histogram)\(\s*"([a-z_:]+)"', path.read_text()):
            if kind == "Counter":
                names.add(name if name.endswith("_total") else name + "_total")
            elif kind == "Histogram":
                names.update({name + "_bucket", name + "_count", name + "_sum"})
            else:
                names.add(name)
    return names


def _series(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', re.sub(r"\{[^}]*\}", "", expr))
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    labels = set(re.findall(r"by \(([^)]*)\)", expr))
    label_names = {name.strip() for group in labels for name in group.split(",")}
    return {w for w in words if w not in PROMQL_WORDS and w not in label_names}


def _known() -> set[str]:
    return _exported_metric_names() | PROMETHEUS_OWN | ENVOY_SERIES | {r["record"] for r in _rules() if "record" in r}


def test_the_rules_parse_as_prometheus_reads_them():
    """helm/promcheck: Prometheus' own rule-file parser (promtool check rules without promtool)."""
    promcheck = go_binary("promcheck")
    if not os.path.isfile(promcheck):
        pytest.fail("promcheck not found ($GOBIN, $GOPATH/bin, ~/go/bin, PATH): run devstack/bootstrap.sh")
    out = subprocess.run([promcheck, str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_says_how_bad_and_what_it_means():
    alerts = [r for r in _rules() if "alert" in r]
    assert alerts
    for alert in alerts:
        assert alert["labels"]["severity"] in ("page", "ticket"), alert["alert"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], alert["alert"]
        assert "for" in alert, alert["alert"]


def test_rules_and_dashboard_query_only_series_that_exist():
    known = _known()
    exprs = [r["expr"] for r in _rules()]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for expr in exprs:
        unknown = _series(expr) - known
        assert not unknown, f"{expr!r} queries {sorted(unknown)}, which nothing exports or records"


def test_the_dashboard_has_unique_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "aviary-slo"


def test_the_chart_ships_the_dashboard_and_on_request_the_rules(install_args):  # noqa: F811
    docs = _template(install_args)
    dashboard = _of(docs, "ConfigMap")[f"{RELEASE}-aviary-dashboard-slo"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["aviary-slo.json"]) == json.loads(DASHBOARD.read_text())
    assert "PrometheusRule" not in {d["kind"] for d in docs}

    docs = _template(install_args, "--set", "monitoring.prometheusRule.enabled=true")
    rule = _of(docs, "PrometheusRule")[f"{RELEASE}-aviary-slo"]
    assert rule["spec"] == yaml.safe_load(RULES.read_text())

"""The chart's tracing option: off by default; a Zipkin host in values turns
on the services' exporter and Envoy's tracer, at one sampling ratio."""

from __future__ import annotations

from tests.unit.test_helm_chart import RELEASE, _envoy_config, _of, _template, install_args  # noqa: F401


def _shared_env(docs: list[dict]) -> dict[str, str]:
    return _of(docs, "ConfigMap")[f"{RELEASE}-aviary-env"]["data"]


def test_tracing_is_off_unless_values_name_a_trace_store(install_args):  # noqa: F811
    docs = _template(install_args)
    assert "AVIARY_TRACE_ENDPOINT" not in _shared_env(docs)
    config = _envoy_config(docs)
    assert "envoy.tracers.zipkin" not in config and "name: zipkin" not in config


def test_a_zipkin_host_traces_the_services_and_the_edge_at_one_ratio(install_args):  # noqa: F811
    docs = _template(install_args, "--set", "tracing.zipkin.host=zipkin.obs", "--set-json", "tracing.sampleRatio=0.05")
    env = _shared_env(docs)
    assert env["AVIARY_TRACE_ENDPOINT"] == "http://zipkin.obs:9411/api/v2/spans"
    assert env["AVIARY_TRACE_SAMPLE_RATIO"] == "0.05"
    config = _envoy_config(docs)
    assert "random_sampling: {value: 5}" in config
    assert 'socket_address: {address: "zipkin.obs", port_value: 9411}' in config

"""The edge sheds load instead of queueing it: past a bound of calls in flight
to one service, Envoy answers at once with 503, {code: 14} and Retry-After.
A second Envoy, rendered by the devstack's renderer with room for two calls
per service, stands in front of the same services; timeline is hung with
SIGSTOP so the calls it holds stay in flight. Live streams are counted apart:
open ones never use up the bound."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.edge import error_message, sign_up, wait_until
from tests.e2e.fanout_support import signal_service
from tests.e2e.second_edge import Edge, second_edge
from tests.e2e.test_watch import Watcher

pytestmark = [pytest.mark.e2e, pytest.mark.serial]

BOUND = 2
OPEN_CALLS = "cluster.timeline.circuit_breakers.default.rq_open"


@pytest.fixture(scope="module")
def narrow_edge(tmp_path_factory):
    with second_edge(tmp_path_factory.mktemp("narrow-envoy"), max_requests=BOUND) as edge:
        yield edge


def _home(edge: Edge, token: str) -> httpx.Response:
    return httpx.get(f"{edge.url}/v1/timelines/home", headers={"Authorization": f"Bearer {token}"}, timeout=15.0)


def test_calls_past_the_bound_are_shed_at_once_and_streams_do_not_count(http, narrow_edge):
    reader = sign_up(http, "shed")
    watchers = [Watcher(narrow_edge.url, reader.token) for _ in range(BOUND + 1)]
    try:
        assert [w.status for w in watchers] == [200] * (BOUND + 1)
        # More streams open than the bound allows calls, and a read still gets through.
        assert _home(narrow_edge, reader.token).status_code == 200

        with ThreadPoolExecutor(BOUND) as pool:
            signal_service("timeline", signal.SIGSTOP)
            try:
                held = [pool.submit(_home, narrow_edge, reader.token) for _ in range(BOUND)]
                assert wait_until(lambda: narrow_edge.stat(OPEN_CALLS) == 1, timeout=3), "the bound was never reached"
                started = time.monotonic()
                shed = _home(narrow_edge, reader.token)
                answered_in = time.monotonic() - started
            finally:
                signal_service("timeline", signal.SIGCONT)
            assert [f.result().status_code for f in held] == [200] * BOUND
    finally:
        for watcher in watchers:
            watcher.close()

    assert shed.status_code == 503, shed.text
    assert shed.json()["code"] == 14
    assert "busy" in error_message(shed)
    assert shed.headers["retry-after"] == "1"
    assert shed.json()["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]
    # Refused by Envoy itself, not after waiting on the hung service.
    assert answered_in < 1.0, f"the shed call took {answered_in:.2f} s"
    assert narrow_edge.stat("cluster.timeline.upstream_rq_active_overflow") == 1
    # What the chart's AviaryEdgeShedding alert reads, on the metrics listener Prometheus scrapes.
    overflow = narrow_edge.prometheus_value("envoy_cluster_upstream_rq_active_overflow", envoy_cluster_name="timeline")
    assert overflow == 1
    # The access log tells a shed call from the service's own 503s.
    assert wait_until(
        lambda: [e for e in narrow_edge.access_log_lines() if e["status"] == 503 and e["flags"] == "UO"], timeout=5
    ), narrow_edge.access_log_lines()[-5:]
    assert wait_until(lambda: narrow_edge.stat(OPEN_CALLS) == 0, timeout=5)
    assert _home(narrow_edge, reader.token).status_code == 200

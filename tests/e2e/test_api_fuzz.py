"""Property-based fuzzing of the public API from its published OpenAPI
document (schemathesis), through Envoy, as a fresh user: every response must
be free of 5xx and match its documented schema. Streams are skipped. The run
is bounded and seeded, so CI repeats it exactly; `make fuzz` runs a free,
longer exploration by hand (AVIARY_FUZZ_SEED=random, AVIARY_FUZZ_EXAMPLES)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.routes import routes
from tests.conftest import unique_username
from tests.e2e.edge import PASSWORD

pytestmark = pytest.mark.e2e

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = int(os.environ.get("AVIARY_FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("AVIARY_FUZZ_SEED", "20261204")
# The gateway exempts this prefix from rate limits in the devstack
# (AVIARY_RATE_EXEMPT_USERNAME_PREFIX), so 429s cannot make the run flaky.
FUZZ_PREFIX = "fuzz"


def _fuzz_token(http) -> str:
    username = unique_username(FUZZ_PREFIX)
    r = http.post("/v1/accounts", json={"username": username, "password": PASSWORD, "displayName": "Fuzz"})
    assert r.status_code == 200, r.text
    return r.json()["accessToken"]


def _streams_regex() -> str:
    """The server-streaming paths (live streams, the export), left out of the run."""
    streams = [r.template for r in routes() if r.server_streaming]
    assert streams and not any("{" in t for t in streams), streams
    return "^(" + "|".join(re.escape(t) for t in streams) + ")$"


def test_the_public_api_survives_fuzzing(http, edge_url, tmp_path):
    token = _fuzz_token(http)
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{edge_url}/openapi.json",
        "--url",
        edge_url,
        "-H",
        f"Authorization: Bearer {token}",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        str(EXAMPLES),
        "--exclude-path-regex",
        _streams_regex(),
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        "--no-color",
    ]
    if SEED != "random":
        command += ["--seed", SEED, "--generation-deterministic"]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=900, env={**os.environ, "SCHEMATHESIS_HOOKS": ""}
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-30000:]
    # Every operation but the streams was exercised, none silently skipped.
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert tested, output[-5000:]
    assert int(tested.group(1)) == sum(1 for r in routes() if not r.server_streaming), output[-5000:]

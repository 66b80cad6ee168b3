"""The service manifest (services/manifest.toml): every service's name, port,
API, stores, consumer groups and callers, for everything that must know them."""

from __future__ import annotations

import functools
import importlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pool

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.toml"
METRICS_OFFSET = 1000  # a service's Prometheus port is its gRPC port + this


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    port: int
    id_block: int
    grpc: tuple[str, ...] = ()
    public: bool = False
    worker: bool = False
    stores: tuple[str, ...] = ()
    consumes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    callers: tuple[str, ...] = ()
    # Internal method -> who may call it, where fewer than `callers` may
    # ("operator": people with the operator certificate).
    internal: dict[str, tuple[str, ...]] = field(default_factory=dict)
    replicas: int | None = None  # None: the chart's serviceDefaults

    @property
    def metrics_port(self) -> int:
        return self.port + METRICS_OFFSET

    @property
    def pg_database(self) -> str | None:
        """The PostgreSQL database it owns (stores "postgresql:<name>"), if any."""
        return next((store.split(":", 1)[1] for store in self.stores if store.startswith("postgresql:")), None)


def _entry(name: str, raw: dict) -> ServiceEntry:
    unknown = set(raw) - {f for f in ServiceEntry.__dataclass_fields__ if f != "name"}
    if unknown:
        raise ValueError(f"{MANIFEST.name}: [{name}] has unknown keys {sorted(unknown)}")
    return ServiceEntry(
        name=name,
        port=raw["port"],
        id_block=raw["id_block"],
        grpc=tuple(raw.get("grpc", ())),
        public=raw.get("public", False),
        worker=raw.get("worker", False),
        stores=tuple(raw.get("stores", ())),
        consumes={group: tuple(topics) for group, topics in raw.get("consumes", {}).items()},
        callers=tuple(raw.get("callers", ())),
        internal={method: tuple(who) for method, who in raw.get("internal", {}).items()},
        replicas=raw.get("replicas"),
    )


def check(entries: dict[str, ServiceEntry]) -> None:
    """The rules the table must keep; ValueError naming the first broken one."""
    for attr in ("port", "id_block"):
        seen: dict[int, str] = {}
        for e in entries.values():
            value = getattr(e, attr)
            if value in seen:
                raise ValueError(f"{MANIFEST.name}: {e.name} and {seen[value]} share {attr} {value}")
            seen[value] = e.name
    for e in entries.values():
        if not 0 <= e.id_block <= 31:
            raise ValueError(f"{MANIFEST.name}: [{e.name}] id_block must be 0..31")
        if e.worker == bool(e.grpc):
            raise ValueError(f"{MANIFEST.name}: [{e.name}] needs grpc services, or worker = true (not both)")
        if e.public and e.worker:
            raise ValueError(f"{MANIFEST.name}: [{e.name}] a worker has no public API")
        for caller in e.callers:
            if caller not in entries:
                raise ValueError(f"{MANIFEST.name}: [{e.name}] caller {caller!r} is not a service")
        for method, who in e.internal.items():
            # Each allowed service must be a caller too: the network policies follow `callers`.
            stray = [c for c in who if c != "operator" and c not in e.callers]
            if stray or not who:
                raise ValueError(
                    f"{MANIFEST.name}: [{e.name}] internal.{method} allows {stray or 'nobody'}, not callers"
                )


@functools.cache
def services() -> dict[str, ServiceEntry]:
    """Every service by name, in the manifest's order."""
    raw = tomllib.loads(MANIFEST.read_text())
    entries = {name: _entry(name, table) for name, table in raw.items()}
    check(entries)
    return entries


def service(name: str) -> ServiceEntry:
    try:
        return services()[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a service in {MANIFEST}") from None


def proto_service(full_name: str):
    """The descriptor of a gRPC service the manifest names (`aviary.<domain>.v1.<Service>`)."""
    _, domain, version, _ = full_name.split(".")
    importlib.import_module(f"aviary.{domain}.{version}.{domain}_pb2")
    return descriptor_pool.Default().FindServiceByName(full_name)


def ports() -> dict[str, int]:
    """Default gRPC port of every service, by name."""
    return {name: e.port for name, e in services().items()}


# -- the Helm chart's copy ------------------------------------------------------------

HELM_COPY = MANIFEST.parents[1] / "helm" / "aviary" / "files" / "services.json"


# The kit's page-token functions that sign or verify with AVIARY_PAGE_TOKEN_SECRET.
_PAGE_TOKEN_CALLS = re.compile(r"\b(encode_token|decode_token|int_cursor)\b")


def kafka_producers() -> set[str]:
    """Services that publish events: a topic `<service>.events.v1` is written by <service>."""
    topics = {t for e in services().values() for ts in e.consumes.values() for t in ts}
    return {t.split(".", 1)[0] for t in topics} & set(services())


def signs_page_tokens(name: str) -> bool:
    """Whether the service's own code signs or reads page tokens (so needs their secret)."""
    folder = MANIFEST.parent / name
    return any(_PAGE_TOKEN_CALLS.search(f.read_text()) for f in sorted(folder.rglob("*.py")))


def _chart_entry(e: ServiceEntry, producers: set[str]) -> dict[str, object]:
    """One service as the chart reads it: workload, secrets and NetworkPolicy edges."""
    entry: dict[str, object] = {"port": e.port, "idBlock": e.id_block, "worker": e.worker, "public": e.public}
    if e.pg_database:
        entry["pgDatabase"] = e.pg_database
    if e.replicas is not None:
        entry["replicas"] = e.replicas
    entry["callers"] = list(e.callers)
    entry["stores"] = sorted({store.split(":", 1)[0] for store in e.stores})
    entry["kafka"] = bool(e.consumes) or e.name in producers
    entry["pageTokens"] = signs_page_tokens(e.name)
    return entry


def helm_copy() -> str:
    """What the chart needs of each service (Helm reads only files inside the chart)."""
    import json

    producers = kafka_producers()
    table = {name: _chart_entry(e, producers) for name, e in services().items()}
    generated = "Generated from services/manifest.toml by `make manifest`; do not edit."
    return json.dumps({"_comment": generated, "services": table}, indent=2) + "\n"


def main() -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Checks the service manifest; writes or checks the chart's copy.")
    parser.add_argument("--write-helm", action="store_true", help=f"write {HELM_COPY.name} into the chart")
    parser.add_argument("--check-helm", action="store_true", help=f"fail when the chart's {HELM_COPY.name} is stale")
    args = parser.parse_args()
    wanted = helm_copy()
    if args.write_helm:
        HELM_COPY.write_text(wanted)
        print(f"wrote {HELM_COPY} ({len(services())} services)")
    elif args.check_helm and (not HELM_COPY.exists() or HELM_COPY.read_text() != wanted):
        print(f"{HELM_COPY} is stale: run 'make manifest' and commit", file=sys.stderr)
        return 1
    else:
        print(f"manifest: {len(services())} services, consistent; the chart's copy is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

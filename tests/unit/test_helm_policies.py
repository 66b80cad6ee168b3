"""The chart's hardening: NetworkPolicies that allow exactly the manifest's edges,
a token-less ServiceAccount and a locked-down security context per pod, each
service's own secrets only, HPAs, the values schema, and the rendered manifests
checked by Kubernetes' schemas (kubernetes-validate) and a policy linter (checkov).

The checkers live in .venv/chart-tools (devstack/bootstrap.sh installs
helm/chart-tools.lock there)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import test_helm_chart as chart
import yaml

from services.kit import manifest

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".venv" / "chart-tools" / "bin"
RELEASE, NAMESPACE = chart.RELEASE, chart.NAMESPACE
install_args = chart.install_args  # the module-scoped fixture: keys, DSNs, secrets
DIGEST = "sha256:" + "ab" * 32

# A distinct address block per backend, so each egress rule says which backend it opens.
BACKEND_CIDRS = {
    kind: f"10.99.{i}.0/24"
    for i, kind in enumerate(("postgresql", "redis", "cassandra", "kafka", "opensearch", "s3", "stripe", "zipkin"))
}
DNS = "dns"
EDGE = "envoy"
ANYONE = "anyone"
SCRAPER = "monitoring"


def _tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} missing: run devstack/bootstrap.sh (it installs helm/chart-tools.lock)")
    return str(path)


def _backend_args() -> list[str]:
    args = []
    for kind, cidr in BACKEND_CIDRS.items():
        args += ["--set-json", f'networkPolicy.backends.{kind}.to=[{{"ipBlock":{{"cidr":"{cidr}"}}}}]']
    return args


@pytest.fixture(scope="module")
def docs(install_args) -> list[dict]:
    return chart._template(install_args, *_backend_args())


def _component(selector: dict) -> str:
    return selector["matchLabels"]["app.kubernetes.io/name"]


def _peer(peer: dict) -> str:
    if "podSelector" in peer and "namespaceSelector" not in peer:
        assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == RELEASE
        return _component(peer["podSelector"])
    if "ipBlock" in peer:
        return next(kind for kind, cidr in BACKEND_CIDRS.items() if cidr == peer["ipBlock"]["cidr"])
    labels = peer["namespaceSelector"]["matchLabels"]
    return DNS if labels == {"kubernetes.io/metadata.name": "kube-system"} else SCRAPER


def _ports(rule: dict) -> set[int]:
    return {p["port"] for p in rule["ports"]}


def _policy_edges(docs: list[dict]) -> tuple[set, set]:
    """(ingress, egress) edges of the per-component policies: (from, to, port)."""
    ingress, egress = set(), set()
    for policy in chart._of(docs, "NetworkPolicy").values():
        spec = policy["spec"]
        if "app.kubernetes.io/name" not in spec["podSelector"]["matchLabels"]:
            continue  # default deny and DNS: every pod, checked on their own
        me = _component(spec["podSelector"])
        assert set(spec["policyTypes"]) == {"Ingress", "Egress"}, me
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", [{}]):
                for port in _ports(rule):
                    ingress.add((_peer(peer) if peer else ANYONE, me, port))
        for rule in spec.get("egress", []):
            assert rule.get("to"), f"{me}: an egress rule open to any address"
            for peer in rule["to"]:
                for port in _ports(rule):
                    egress.add((me, _peer(peer), port))
    return ingress, egress


def _manifest_edges(tracing: bool = False) -> tuple[set, set]:
    """What services/manifest.toml says may talk, with the chart's default ports
    (with tracing on, every pod also sends spans to the trace store)."""
    services = manifest.services()
    producers = manifest.kafka_producers()
    backend_ports = {"postgresql": {5432}, "redis": {6379}, "cassandra": {9042, 19042}, "kafka": {9092}}
    backend_ports |= {"opensearch": {9200}, "s3": {9000}, "stripe": {443}}  # s3: the default s3.endpoint's port
    ingress, egress = set(), set()
    for name, entry in services.items():
        callers = set(entry.callers) | ({EDGE} if entry.public else set())
        for caller in callers:
            ingress.add((caller, name, entry.port))
            egress.add((caller, name, entry.port))
        ingress.add((SCRAPER, name, entry.metrics_port))
        kinds = {store.split(":", 1)[0] for store in entry.stores}
        kinds |= {"kafka"} if entry.consumes or name in producers else set()
        kinds |= {"stripe"} if name == "payments" else set()
        egress |= {(name, kind, port) for kind in kinds for port in backend_ports[kind]}
    ingress |= {(ANYONE, EDGE, 8080), (SCRAPER, EDGE, 9902)}
    egress |= {(EDGE, "s3", 9000), (EDGE, "redis", 6379)}
    if tracing:
        egress |= {(component, "zipkin", 9411) for component in [*services, EDGE]}
    return ingress, egress


def test_network_policies_allow_exactly_the_manifests_edges(docs):
    got_in, got_out = _policy_edges(docs)
    want_in, want_out = _manifest_edges()
    assert got_in == want_in, {"extra": got_in - want_in, "missing": want_in - got_in}
    assert got_out == want_out, {"extra": got_out - want_out, "missing": want_out - got_out}
    policies = {
        _component(p["spec"]["podSelector"])
        for p in chart._of(docs, "NetworkPolicy").values()
        if "app.kubernetes.io/name" in p["spec"]["podSelector"]["matchLabels"]
    }
    assert policies == set(manifest.services()) | {EDGE}


def test_with_tracing_on_every_pod_may_reach_the_trace_store_alone(install_args):
    docs = chart._template(install_args, *_backend_args(), "--set", "tracing.zipkin.host=zipkin.observability")
    assert _policy_edges(docs) == _manifest_edges(tracing=True)


def test_every_pod_is_denied_by_default_and_may_resolve_names(docs):
    policies = chart._of(docs, "NetworkPolicy")
    everyone = {"app.kubernetes.io/part-of": "aviary", "app.kubernetes.io/instance": RELEASE}
    deny = policies[f"{RELEASE}-aviary-default-deny"]["spec"]
    assert deny == {"podSelector": {"matchLabels": everyone}, "policyTypes": ["Ingress", "Egress"]}
    dns = policies[f"{RELEASE}-aviary-dns"]["spec"]
    assert dns["podSelector"]["matchLabels"] == everyone and dns["policyTypes"] == ["Egress"]
    (rule,) = dns["egress"]
    assert [_peer(p) for p in rule["to"]] == [DNS]
    assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {("UDP", 53), ("TCP", 53)}
    for kind in ("StatefulSet", "Deployment"):
        for name, workload in chart._of(docs, kind).items():
            labels = workload["spec"]["template"]["metadata"]["labels"]
            assert everyone.items() <= labels.items(), name


def test_network_policies_can_be_switched_off(install_args):
    assert not chart._of(chart._template(install_args, "--set", "networkPolicy.enabled=false"), "NetworkPolicy")


def _pods(docs: list[dict]) -> dict[str, dict]:
    return {
        name: w["spec"]["template"]["spec"]
        for kind in ("StatefulSet", "Deployment")
        for name, w in chart._of(docs, kind).items()
    }


def test_every_pod_runs_as_its_own_account_without_a_token_and_locked_down(docs):
    accounts = chart._of(docs, "ServiceAccount")
    seen = set()
    for name, pod in _pods(docs).items():
        account = pod["serviceAccountName"]
        assert account == name and accounts[account]["automountServiceAccountToken"] is False, name
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            ctx = c["securityContext"]
            assert ctx["readOnlyRootFilesystem"] and not ctx["allowPrivilegeEscalation"], (name, c["name"])
            assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["runAsNonRoot"], (name, c["name"])
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, (name, c["name"])
        seen.add(account)
    assert seen == set(accounts)


def _secrets_read(pod: dict) -> dict[str, set[str]]:
    """container -> every "secret/key" it reads, through env or volumes."""
    volumes = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    out = {}
    for c in pod["containers"]:
        keys = set()
        for env in c.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                keys.add(f"{ref['name']}/{ref['key']}")
        assert not [e for e in c.get("envFrom", []) if "secretRef" in e], c["name"]
        for mount in c.get("volumeMounts", []):
            if mount["name"] in volumes:
                secret = volumes[mount["name"]]
                keys |= {f"{secret['secretName']}/{item['key']}" for item in secret["items"]}
        out[c["name"]] = keys
    return out


def test_each_service_reads_only_its_own_secrets(docs):
    prefix = f"{RELEASE}-aviary-"
    public_keys = {f"{prefix}jwt/jwt_public.pem", f"{prefix}jwt/operator_public.pem"}
    for name, entry in manifest.services().items():
        want = set(public_keys)
        want |= {f"{prefix}jwt/jwt_private.pem"} if name == "identity" else set()
        want |= {f"{prefix}pg-{name}/AVIARY_PG_DSN"} if entry.pg_database else set()
        want |= {f"{prefix}s3/AVIARY_S3_ACCESS_KEY", f"{prefix}s3/AVIARY_S3_SECRET_KEY"} if name == "media" else set()
        want |= {f"{prefix}stripe/AVIARY_STRIPE_API_KEY"} if name == "payments" else set()
        want |= {f"{prefix}page-tokens/AVIARY_PAGE_TOKEN_SECRET"} if manifest.signs_page_tokens(name) else set()
        want |= _mesh_keys(prefix, name)
        assert _secrets_read(_pods(docs)[prefix + name]) == {name: want}, name
    edge = _secrets_read(_pods(docs)[prefix + "envoy"])
    envoy = {f"{prefix}jwt/jwks.json"} | _mesh_keys(prefix, "envoy")
    assert edge == {"envoy": envoy, "gateway": {f"{prefix}jwt/jwt_public.pem"}, "web": set()}


def _mesh_keys(prefix: str, identity: str) -> set[str]:
    """An identity's mesh certificate (mesh.tls, on by default): its own Secret alone."""
    return {f"{prefix}mesh-{identity}/{key}" for key in ("tls.crt", "tls.key", "ca.crt")}


def test_the_services_that_page_are_the_ones_the_code_says():
    pagers = {name for name in manifest.services() if manifest.signs_page_tokens(name)}
    assert {"posts", "timeline", "graph", "orders"} <= pagers
    assert not pagers & {"payments", "inventory", "fanout", "media"}
    # The scan reads each service's own folder: no shared kit code may sign
    # tokens on a service's behalf, or that service would miss the key.
    kit = REPO / "services" / "kit"
    signers = [
        f.relative_to(REPO)
        for f in sorted(kit.rglob("*.py"))
        if f.name not in ("paging.py", "manifest.py") and manifest._PAGE_TOKEN_CALLS.search(f.read_text())
    ]
    assert not signers, f"kit modules using page tokens: {signers}; teach manifest.signs_page_tokens about them"


def test_hpas_scale_every_service_and_envoy_within_their_worker_id_blocks(install_args):
    docs = chart._template(
        install_args, "--set", "autoscaling.enabled=true", "--set", "services.fanout.autoscaling.enabled=false"
    )
    hpas = chart._of(docs, "HorizontalPodAutoscaler")
    scaled = set(manifest.services()) - {"fanout"}
    assert set(hpas) == {f"{RELEASE}-aviary-{n}" for n in scaled | {"envoy"}}
    for name, entry in manifest.services().items():
        workload = chart._of(docs, "StatefulSet")[f"{RELEASE}-aviary-{name}"]
        if name not in scaled:
            assert workload["spec"]["replicas"] == 2 and f"{RELEASE}-aviary-{name}" not in hpas
            continue
        hpa = hpas[f"{RELEASE}-aviary-{name}"]["spec"]
        assert "replicas" not in workload["spec"], name  # the HPA owns it
        assert hpa["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "name": f"{RELEASE}-aviary-{name}",
        }
        assert hpa["minReplicas"] == max(entry.replicas or 2, 2) and hpa["maxReplicas"] == 10
        assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert "replicas" not in chart._of(docs, "Deployment")[f"{RELEASE}-aviary-envoy"]["spec"]
    off = chart._template(install_args)
    assert not chart._of(off, "HorizontalPodAutoscaler")


@pytest.mark.parametrize(
    "setting, message",
    [
        ("autoscaling.maxReplicas=33", "/autoscaling/maxReplicas"),
        ("services.posts.idBlock=40", "/services/posts/idBlock"),
        ("redis.url=http://redis:6379", "/redis/url"),
        ("networkPolicy.backends.redis.ports[0]=70000", "/networkPolicy/backends/redis/ports/0"),
        ("image.digest=latest", "/image/digest"),
        ("config.logLevel=LOUD", "/config/logLevel"),
        ("nosuchvalue=1", "additional properties 'nosuchvalue'"),
    ],
)
def test_the_values_schema_refuses_bad_values(install_args, setting, message):
    out = subprocess.run(
        [chart._helm(), "template", RELEASE, str(chart.CHART), *install_args, "--set", setting],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_notes_say_how_to_reach_the_edge(install_args):
    args = [a for a in install_args if a not in ("--kube-version", chart.KUBE_VERSION)]
    out = subprocess.run(
        [chart._helm(), "install", "--dry-run=client", RELEASE, str(chart.CHART), "-n", NAMESPACE, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    notes = out.stdout.split("NOTES:", 1)[1]
    assert f"port-forward svc/{RELEASE}-aviary-envoy" in notes and "NetworkPolicies deny everything" in notes


def _production_render(install_args, tmp_path: Path) -> Path:
    """Every object the chart can make: autoscaling on, the image pinned by digest."""
    out = subprocess.run(
        [
            chart._helm(),
            "template",
            RELEASE,
            str(chart.CHART),
            "--namespace",
            NAMESPACE,
            *install_args,
            "--set",
            "autoscaling.enabled=true",
            "--set",
            f"image.digest={DIGEST}",
            *_backend_args(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rendered = tmp_path / "rendered" / "aviary.yaml"
    rendered.parent.mkdir()
    rendered.write_text(out.stdout)
    return rendered


def test_rendered_manifests_match_the_kubernetes_schemas(install_args, tmp_path):
    rendered = _production_render(install_args, tmp_path)
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered.read_text()) if d}
    assert {"NetworkPolicy", "HorizontalPodAutoscaler", "ServiceAccount", "StatefulSet"} <= kinds
    out = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", "-k", chart.KUBE_VERSION, str(rendered)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_policy_linter_passes_the_rendered_chart(install_args, tmp_path):
    rendered = _production_render(install_args, tmp_path)
    out = subprocess.run(
        [
            _tool("checkov"),
            "--config-file",
            str(REPO / "helm" / "checkov.yaml"),
            "-d",
            str(rendered.parent),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(out.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report.get("results", {}).get("failed_checks", [])]
    assert out.returncode == 0 and summary["failed"] == 0, failed or out.stderr
    assert summary["passed"] > 1000 and summary["parsing_errors"] == 0, summary

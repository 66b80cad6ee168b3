"""The chart's side of the mesh's mutual TLS (services/kit/mesh.py): on by
default, each pod mounts its own identity's certificate alone, probes ask the
plaintext health port, Envoy calls every service cluster over TLS checking the
service's name; cert-manager or helm/mesh_secrets.py makes the Secrets; off,
none of it is rendered."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

import edge_config as edge
from services.kit import manifest, mesh
from tests.unit.test_helm_chart import (  # noqa: F401
    CHART,
    RELEASE,
    REPO,
    _envoy_config,
    _helm,
    _of,
    _refusal,
    _template,
    install_args,
)

PREFIX = f"{RELEASE}-aviary-"
CERT_DIR = "/etc/aviary/mesh"
CERT_MANAGER = ["--set", "mesh.certManager.enabled=true", "--set", "mesh.certManager.issuerRef.name=mesh-ca"]


@pytest.fixture(scope="module")
def docs(install_args) -> list[dict]:  # noqa: F811
    return _template(install_args)


@pytest.fixture(scope="module")
def plaintext(install_args) -> list[dict]:  # noqa: F811
    return _template(install_args, "--set", "mesh.tls=false", *CERT_MANAGER)


def _pod(docs: list[dict], name: str) -> dict:
    kind = "Deployment" if name == "envoy" else "StatefulSet"
    return _of(docs, kind)[PREFIX + name]["spec"]["template"]["spec"]


def _container(docs: list[dict], name: str) -> dict:
    (container,) = [c for c in _pod(docs, name)["containers"] if c["name"] == name]
    return container


def _mesh_volumes(pod: dict) -> list[dict]:
    return [v for v in pod["volumes"] if v.get("secret", {}).get("secretName", "").startswith(PREFIX + "mesh-")]


def _items(identity: str) -> list[dict]:
    """The kit's file names (mesh.Files) for cert-manager's keys."""
    return [
        {"key": "tls.crt", "path": f"{identity}.pem"},
        {"key": "tls.key", "path": f"{identity}-key.pem"},
        {"key": "ca.crt", "path": "ca.pem"},
    ]


def _mounts_own_certificate(docs: list[dict], identity: str) -> None:
    pod = _pod(docs, identity)
    (volume,) = _mesh_volumes(pod)
    assert volume["secret"]["secretName"] == f"{PREFIX}mesh-{identity}", identity
    assert volume["secret"]["items"] == _items(identity), identity
    for container in pod["containers"]:
        mounts = [m for m in container.get("volumeMounts", []) if m["name"] == volume["name"]]
        if container["name"] != identity:
            assert not mounts, (identity, container["name"])  # the gateway and web: no certificate
            continue
        assert mounts == [{"name": volume["name"], "mountPath": CERT_DIR, "readOnly": True}], identity


def test_every_pod_mounts_its_own_identitys_certificate_alone(docs):
    for identity in [*manifest.services(), mesh.EDGE]:
        _mounts_own_certificate(docs, identity)


def test_services_serve_mutual_tls_and_are_probed_on_the_plaintext_health_port(docs):
    for name, entry in manifest.services().items():
        container = _container(docs, name)
        env = {e["name"]: e.get("value") for e in container["env"]}
        health = mesh.health_port(entry.port)
        assert env["AVIARY_MESH_TLS"] == "1" and env["AVIARY_MESH_CERT_DIR"] == CERT_DIR, name
        assert env["AVIARY_HEALTH_PORT"] == str(health), name
        assert {"name": "health", "containerPort": health, "protocol": "TCP"} in container["ports"], name
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": health}, (name, probe)


def test_network_policies_keep_the_edges_on_the_grpc_port(docs):
    health_ports = {mesh.health_port(e.port) for e in manifest.services().values()}
    for policy in _of(docs, "NetworkPolicy").values():
        for direction in ("ingress", "egress"):
            for rule in policy["spec"].get(direction, []):
                assert not {p["port"] for p in rule.get("ports", [])} & health_ports, policy["metadata"]["name"]


def _service_clusters(docs: list[dict]) -> dict[str, dict]:
    conf = yaml.safe_load(_envoy_config(docs))
    public = {name for name, _ in edge.public_services()}
    clusters = {c["name"]: c for c in conf["static_resources"]["clusters"]}
    assert public <= set(clusters)
    return {name: clusters[name] for name in public}


def _sds_file(name: str) -> dict:
    return {"path_config_source": {"path": f"/etc/envoy/{name}"}, "resource_api_version": "V3"}


def test_envoy_calls_each_service_over_mutual_tls_checking_its_name(docs):
    for name, cluster in _service_clusters(docs).items():
        socket = cluster["transport_socket"]
        context = socket["typed_config"]
        assert context["@type"].endswith("tls.v3.UpstreamTlsContext"), name
        assert context["sni"] == name
        common = context["common_tls_context"]
        # Its certificates come from the secret files Envoy watches for renewals.
        assert common["tls_certificate_sds_secret_configs"] == [
            {"name": "mesh_certificate", "sds_config": _sds_file("mesh-certificate.yaml")}
        ]
        validation = common["combined_validation_context"]
        assert validation["validation_context_sds_secret_config"] == {
            "name": "mesh_ca",
            "sds_config": _sds_file("mesh-ca.yaml"),
        }
        assert validation["default_validation_context"]["match_typed_subject_alt_names"] == [
            {"san_type": "DNS", "matcher": {"exact": name}}
        ]
    config_map = _of(docs, "ConfigMap")[f"{RELEASE}-aviary-envoy"]["data"]
    [certificate] = yaml.safe_load(config_map["mesh-certificate.yaml"])["resources"]
    assert (certificate["name"], certificate["tls_certificate"]) == (
        "mesh_certificate",
        {
            "certificate_chain": {"filename": f"{CERT_DIR}/envoy.pem"},
            "private_key": {"filename": f"{CERT_DIR}/envoy-key.pem"},
            "watched_directory": {"path": CERT_DIR},
        },
    )
    [ca] = yaml.safe_load(config_map["mesh-ca.yaml"])["resources"]
    assert (ca["name"], ca["validation_context"]) == (
        "mesh_ca",
        {"trusted_ca": {"filename": f"{CERT_DIR}/ca.pem"}, "watched_directory": {"path": CERT_DIR}},
    )
    conf = yaml.safe_load(_envoy_config(docs))
    others = [c for c in conf["static_resources"]["clusters"] if c["name"] in ("gateway", "web", "objectstore")]
    assert others and not [c["name"] for c in others if "transport_socket" in c]  # loopback; http store


def test_cert_manager_issues_one_certificate_per_identity(install_args):  # noqa: F811
    docs = _template(install_args, *CERT_MANAGER)
    certificates = _of(docs, "Certificate")
    identities = [*manifest.services(), mesh.EDGE]
    assert set(certificates) == {f"{PREFIX}mesh-{i}" for i in identities}
    for identity in identities:
        cert = certificates[f"{PREFIX}mesh-{identity}"]
        assert cert["apiVersion"] == "cert-manager.io/v1"
        spec = cert["spec"]
        assert spec["commonName"] == identity and spec["dnsNames"] == [identity]
        assert spec["secretName"] == f"{PREFIX}mesh-{identity}"
        assert {"server auth", "client auth"} <= set(spec["usages"])
        assert spec["privateKey"]["algorithm"] == "ECDSA" and spec["privateKey"]["size"] == 256
        assert spec["issuerRef"] == {"name": "mesh-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
        assert "duration" not in spec and "renewBefore" not in spec  # cert-manager's defaults
        _mounts_own_certificate(docs, identity)
    assert not _of(_template(install_args), "Certificate")  # off by default: the Secrets are yours


def test_cert_manager_takes_the_issuer_and_lifetimes_from_values(install_args):  # noqa: F811
    docs = _template(
        install_args,
        *CERT_MANAGER,
        "--set",
        "mesh.certManager.issuerRef.kind=Issuer",
        "--set",
        "mesh.duration=720h",
        "--set",
        "mesh.renewBefore=240h",
    )
    spec = _of(docs, "Certificate")[f"{PREFIX}mesh-orders"]["spec"]
    assert spec["issuerRef"]["kind"] == "Issuer"
    assert spec["duration"] == "720h" and spec["renewBefore"] == "240h"


@pytest.mark.parametrize(
    "settings, message",
    [
        (["--set", "mesh.certManager.enabled=true"], "mesh.certManager.issuerRef.name is required"),
        (["--set", "mesh.duration=90d"], "/mesh/duration"),
        (["--set", "mesh.certManager.issuerRef.kind=Vault"], "/mesh/certManager/issuerRef/kind"),
    ],
)
def test_bad_mesh_values_are_refused(install_args, settings, message):  # noqa: F811
    refused = _refusal(install_args, *settings)
    assert message in refused, refused


def test_without_mesh_tls_none_of_it_is_rendered(plaintext):
    assert not _of(plaintext, "Certificate")
    for identity in [*manifest.services(), mesh.EDGE]:
        assert not _mesh_volumes(_pod(plaintext, identity)), identity
    for name, entry in manifest.services().items():
        container = _container(plaintext, name)
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AVIARY_MESH_TLS"] == "0" and "AVIARY_MESH_CERT_DIR" not in env, name
        assert "health" not in {p["name"] for p in container["ports"]}, name
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": entry.port}, (name, probe)
    for name, cluster in _service_clusters(plaintext).items():
        assert "transport_socket" not in cluster, name
    assert CERT_DIR not in _envoy_config(plaintext)


def test_mesh_secrets_prints_the_secrets_the_pods_mount(docs, tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "helm" / "mesh_secrets.py"), str(tmp_path), "--release", RELEASE, "-n", "aviary"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    secrets = {s["metadata"]["name"]: s for s in yaml.safe_load_all(out.stdout)}
    mounted = {
        v["secret"]["secretName"] for i in [*manifest.services(), mesh.EDGE] for v in _mesh_volumes(_pod(docs, i))
    }
    assert set(secrets) == mounted
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    for name, secret in secrets.items():
        identity = name.removeprefix(f"{PREFIX}mesh-")
        assert secret["type"] == "kubernetes.io/tls" and secret["metadata"]["namespace"] == "aviary"
        data = {key: base64.b64decode(value) for key, value in secret["data"].items()}
        assert set(data) == {"tls.crt", "tls.key", "ca.crt"} and data["ca.crt"] == (tmp_path / "ca.pem").read_bytes()
        cert = x509.load_pem_x509_certificate(data["tls.crt"])
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == identity
        assert cert.issuer == ca.subject
    assert (tmp_path / "operator.pem").exists()  # for grpcurl; never a Secret in the cluster
    assert f"{PREFIX}mesh-operator" not in secrets


def test_mesh_secrets_names_them_as_the_chart_does():
    sys.path.insert(0, str(REPO / "helm"))
    try:
        import mesh_secrets
    finally:
        sys.path.remove(str(REPO / "helm"))
    assert mesh_secrets.fullname("prod") == "prod-aviary"
    assert mesh_secrets.fullname("aviary-staging") == "aviary-staging"
    assert mesh_secrets.fullname("prod", "shop") == "shop"

"""Prints the mesh's Secrets for a cluster without cert-manager (a dev cluster):

    .venv/bin/python helm/mesh_secrets.py mesh-certs --release aviary -n aviary | kubectl apply -f -

The directory gets a CA and a certificate for every identity of the mesh
(devstack/mesh_certs.py: made only where missing, so re-running keeps them);
each service's and Envoy's certificate is printed as the Secret its pod mounts,
<fullname>-mesh-<identity>, in cert-manager's layout (tls.crt, tls.key,
ca.crt). The CA's key and the operator's certificate (for grpcurl) stay in the
directory: keep it private.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "gen")]

from devstack import mesh_certs  # noqa: E402
from services.kit import manifest, mesh  # noqa: E402

CHART_NAME = "aviary"


def fullname(release: str, override: str = "") -> str:
    """The chart's name prefix (templates/_helpers.tpl: aviary.fullname)."""
    if override:
        name = override
    elif CHART_NAME in release:
        name = release
    else:
        name = f"{release}-{CHART_NAME}"
    return name[:40].rstrip("-")


def pod_identities() -> list[str]:
    """The identities the chart's pods run as: each service and Envoy."""
    return [*manifest.services(), mesh.EDGE]


def secret(identity: str, cert_dir: Path, prefix: str, namespace: str) -> dict:
    files = mesh.Files.of(identity, cert_dir)
    ca, cert, key = files.read()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": f"{prefix}-mesh-{identity}",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": CHART_NAME, "app.kubernetes.io/component": identity},
        },
        "data": {
            name: base64.b64encode(data).decode()
            for name, data in (("tls.crt", cert), ("tls.key", key), ("ca.crt", ca))
        },
    }


def secrets_yaml(cert_dir: Path, prefix: str, namespace: str) -> str:
    mesh_certs.ensure(cert_dir, mesh.identities())
    docs = [secret(identity, cert_dir, prefix, namespace) for identity in pod_identities()]
    return yaml.safe_dump_all(docs, sort_keys=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cert_dir", type=Path, help="the mesh's certificates (made where missing)")
    parser.add_argument("--release", required=True, help="the Helm release's name")
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("--fullname-override", default="", help="the chart's fullnameOverride, if set")
    args = parser.parse_args()
    sys.stdout.write(secrets_yaml(args.cert_dir, fullname(args.release, args.fullname_override), args.namespace))
    return 0


if __name__ == "__main__":
    sys.exit(main())

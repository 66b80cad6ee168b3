"""Renders the Envoy edge for the Helm chart into helm/aviary/files/.

    .venv/bin/python helm/render_envoy.py          # (re)write the files
    .venv/bin/python helm/render_envoy.py --check  # exit 1 if they are stale

It runs the renderer the devstack uses too (envoy/edge_config.py: the same envoy.yaml.tmpl,
the same routes for exactly the public HTTP-annotated methods, the same JWT,
ext_authz, transcoder and local-reply config) and changes only what differs on
Kubernetes:

* paths point at the ConfigMap mount (/etc/envoy) and the access log at stdout;
* the listener and the metrics listener (port 9902, Envoy's /stats/prometheus
  alone) bind 0.0.0.0; the admin listener stays on loopback;
* the `clusters:` section is replaced: every service cluster is STRICT_DNS to
  that service's headless Service (Envoy balances over all pods and health
  checks each with grpc.health.v1), the gateway stays 127.0.0.1 (it runs as a
  sidecar in the Envoy pod: it binds loopback only), the object store is the
  S3 endpoint from values (TLS when its scheme is https), and the web client's
  static origin (the `web` container, also on loopback) is at web.port;
* Envoy's Zipkin tracer and its `zipkin` cluster are wrapped in
  `{{- if .Values.tracing.zipkin.host }}` (values: tracing);
* the web client's routes (edge_config._web_routes(), the devstack's own: `/`,
  `/assets/`, deep links, the strict CSP) and its cluster are wrapped in
  `{{- if .Values.web.enabled }}`; their CSP names media.publicUrl's origin;
* each service cluster's mutual TLS as `envoy` (edge_config.mesh_transport_socket,
  the certificates the chart mounts at /etc/aviary/mesh, named by the secret
  files mesh-certificate.yaml and mesh-ca.yaml in the ConfigMap) is wrapped in
  `{{- if .Values.mesh.tls }}`.

Everything that depends on the release (names, namespace, S3 endpoint and
bucket, edge.xffTrustedHops, edge.maxRequestsPerService) is left as Helm
template expressions; the chart's ConfigMap passes the
file through `tpl`. The media body limit is the default from
services.media.validation (set AVIARY_MEDIA_MAX_*_BYTES when running this script
if the media service runs with other limits).

Outputs: files/envoy.yaml, files/aviary.pb (the transcoder's descriptor set,
built from proto/ exactly like the devstack does), files/status.lua, and
Envoy's mesh secret files (files/mesh-certificate.yaml, files/mesh-ca.yaml).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "gen"), str(REPO / "envoy")]

import edge_config as edge  # noqa: E402
from services.kit.settings import SERVICE_PORTS  # noqa: E402

FILES = REPO / "helm" / "aviary" / "files"
MOUNT = Path("/etc/envoy")  # where the chart mounts the ConfigMap in the Envoy pod
ENVOY_PORT = 8080
ENVOY_ADMIN_PORT = 9901
ENVOY_METRICS_PORT = 9902
GATEWAY_PORT = 8081
# Rendered with this port, then replaced by the value (web.port) in the cluster.
WEB_PORT = 8082
WEB_ENABLED = "{{- if .Values.web.enabled }}"
# Rendered with this media origin in the CSP, then replaced by media.publicUrl's.
MEDIA_ORIGIN = "https://media.origin.invalid"
END = "{{- end }}"
OUTPUTS = ("envoy.yaml", "aviary.pb", "status.lua", edge.MESH_CERTIFICATE_SDS, edge.MESH_CA_SDS)
# Where the chart mounts the `envoy` identity's certificates (templates/_helpers.tpl: aviary.meshCertDir).
MESH_CERTS = "/etc/aviary/mesh"
MESH_TLS = "{{- if .Values.mesh.tls }}"

# Placeholders rendered by Helm (`tpl`) in the ConfigMap template.
BUCKET = "{{ .Values.s3.bucket }}"
MAX_REQUESTS = "{{ .Values.edge.maxRequestsPerService | int }}"
# The devstack's CORS block for the origins in values (edge.corsOrigins); none by default.
CORS_POLICY = """{{- with .Values.edge.corsOrigins }}
%s
{{- else }}
                      # CORS: no third-party origins configured (edge.corsOrigins).
{{- end }}""" % edge.cors_policy(["{{ . }}"]).replace(
    '                            - exact: "{{ . }}"',  # one origin -> every origin in values
    "{{- range . }}\n                            - exact: {{ . | quote }}\n{{- end }}",
)


def _host(name: str) -> str:
    return f'{{{{ include "aviary.headlessHost" (list $ "{name}") }}}}'


def _clusters() -> str:
    blocks = [
        """  clusters:
    # The gateway (per-user rate limits) is a sidecar in this pod.
    - name: gateway
      type: STATIC
      connect_timeout: 0.25s
      load_assignment:
        cluster_name: gateway
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {address: 127.0.0.1, port_value: %d}
    # The S3-compatible object store holding media (values: s3.endpoint).
    - name: objectstore
      type: STRICT_DNS
      dns_lookup_family: V4_PREFERRED
      connect_timeout: 1s
      load_assignment:
        cluster_name: objectstore
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {address: "{{ include "aviary.s3Host" $ }}", port_value: {{ include "aviary.s3Port" $ }}}
{{- if eq (include "aviary.s3Scheme" $) "https" }}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: "{{ include "aviary.s3Host" $ }}"
          common_tls_context:
            validation_context:
              trusted_ca: {filename: /etc/ssl/certs/ca-certificates.crt}
              match_typed_subject_alt_names:
                - {san_type: DNS, matcher: {exact: "{{ include "aviary.s3Host" $ }}"}}
{{- end }}"""
        % GATEWAY_PORT
    ]
    blocks.append(_service_clusters())
    blocks.append(_web_cluster())
    blocks.append(_zipkin_cluster())
    blocks.append(edge.admin_cluster(ENVOY_ADMIN_PORT))
    return "\n".join(blocks) + "\n"


def _service_clusters() -> str:
    """The services' clusters, each calling its service over the mesh's
    mutual TLS only when values say so (mesh.tls)."""
    text = edge.service_clusters(
        SERVICE_PORTS, host=lambda c: f'"{_host(c)}"', dns=True, mesh_sds=str(MOUNT), max_requests=MAX_REQUESTS
    )
    for cluster, _ in edge.public_services():
        socket = edge.mesh_transport_socket(cluster, str(MOUNT))
        text = _replace_once(text, socket, f"\n{MESH_TLS}{socket}\n{END}")
    return text


# Envoy traces only when values name a trace store (the chart deploys none).
TRACING_ENABLED = "{{- if .Values.tracing.zipkin.host }}"


def _zipkin_cluster() -> str:
    cluster = edge.zipkin_cluster(
        '"{{ .Values.tracing.zipkin.host }}"', "{{ .Values.tracing.zipkin.port | int }}", dns=True
    )
    return f"{TRACING_ENABLED}\n{cluster}\n{END}"


def _tracing_from_values(text: str) -> str:
    """The connection manager's Zipkin tracer, at the services' sampling ratio, when values name a store."""
    sampled = edge.tracing_config("{{ mulf .Values.tracing.sampleRatio 100 }}")
    return _replace_once(
        text, "use_remote_address: true\n\n", f"use_remote_address: true\n{TRACING_ENABLED}\n{sampled}\n{END}\n"
    )


def _web_cluster() -> str:
    """The web client's static origin: a sidecar of Envoy, on loopback."""
    cluster = _replace_once(
        edge.web_cluster(WEB_PORT),
        f"port_value: {WEB_PORT}}}",
        "port_value: {{ .Values.web.port | int }}}",
    )
    return f"    # The web client (values: web), a container in this pod.\n{WEB_ENABLED}\n{cluster}\n{END}"


def _media_origin_from_values(text: str) -> str:
    if f" {MEDIA_ORIGIN}" not in text:
        raise SystemExit("render_envoy: the web CSP no longer names the media origin; update helm/render_envoy.py")
    return text.replace(f" {MEDIA_ORIGIN}", '{{ include "aviary.mediaCspSource" $ }}')


def _only_with_web_enabled(text: str) -> str:
    """Envoy's routes to the web client exist only when the chart runs it."""
    routes = "\n".join(edge._web_routes())
    return _replace_once(text, routes + "\n", f"{WEB_ENABLED}\n{routes}\n{END}\n")


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise SystemExit(
            f"render_envoy: expected exactly one {old!r} in the rendered config; "
            "envoy/envoy.yaml.tmpl changed shape, update helm/render_envoy.py"
        )
    return text.replace(old, new)


def render(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    edge.build_descriptor(out_dir / "aviary.pb")
    shutil.copyfile(REPO / "envoy" / "status.lua", out_dir / "status.lua")
    os.environ["ENVOY_BIND"] = "0.0.0.0"
    os.environ["AVIARY_MEDIA_PUBLIC_URL"] = f"{MEDIA_ORIGIN}/media"
    with tempfile.TemporaryDirectory() as tmp:
        rendered = Path(tmp) / "envoy.yaml"
        edge.render_config(
            rendered,
            port=ENVOY_PORT,
            admin_port=ENVOY_ADMIN_PORT,
            descriptor=MOUNT / "aviary.pb",
            jwks=Path("/etc/aviary/jwt/jwks.json"),
            access_log=Path("/dev/stdout"),
            service_ports=SERVICE_PORTS,
            gateway_port=GATEWAY_PORT,
            media_bucket=BUCKET,
            cors=CORS_POLICY,
            web_port=WEB_PORT,
            metrics_port=ENVOY_METRICS_PORT,
            xff_trusted_hops="{{ .Values.edge.xffTrustedHops | int }}",
        )
        text = _only_with_web_enabled(rendered.read_text())
    text = _media_origin_from_values(text)
    text = _tracing_from_values(text)
    text = _replace_once(text, str(REPO / "envoy" / "status.lua"), str(MOUNT / "status.lua"))
    # Real S3 wants its own Host header, not the public one.
    text = _replace_once(
        text,
        f'regex_rewrite: {{pattern: {{regex: "^/media/"}}, substitution: "/{BUCKET}/"}}\n',
        f'regex_rewrite: {{pattern: {{regex: "^/media/"}}, substitution: "/{BUCKET}/"}}\n'
        "                            auto_host_rewrite: true\n",
    )
    head, sep, _ = text.partition("\n  clusters:\n")
    if not sep:
        raise SystemExit("render_envoy: no clusters section in the rendered config")
    header = (
        "# GENERATED by helm/render_envoy.py from envoy/envoy.yaml.tmpl via envoy/edge_config.py;\n"
        "# do not edit. Helm passes this file through `tpl` (see templates/envoy.yaml).\n"
    )
    (out_dir / "envoy.yaml").write_text(header + head + "\n" + _clusters())
    for name, secret in edge.mesh_secrets(MESH_CERTS).items():
        (out_dir / name).write_text(secret)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if helm/aviary/files is stale")
    args = parser.parse_args()
    if not args.check:
        render(FILES)
        print(f"wrote {FILES}/{', '.join(OUTPUTS)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        render(Path(tmp))
        stale = [
            n for n in OUTPUTS if not (FILES / n).exists() or (FILES / n).read_bytes() != (Path(tmp) / n).read_bytes()
        ]
    if stale:
        print(f"stale: {', '.join(stale)}; run: .venv/bin/python helm/render_envoy.py", file=sys.stderr)
        return 1
    print("helm/aviary/files up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

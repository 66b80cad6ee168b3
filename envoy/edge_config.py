"""Builds the Envoy edge: the descriptor set the transcoder reads and the
rendered envoy.yaml (routes for exactly the public, HTTP-annotated methods)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

from gateway.routes import public_services, routes

REPO = Path(__file__).resolve().parents[1]
PROTO_DIR = REPO / "proto"


# google/rpc/*.proto: the error details (BadRequest, RetryInfo, ...) the
# transcoder must know to print a status's `details` as JSON.
def _common_protos() -> Path:
    spec = importlib.util.find_spec("google.rpc")  # a namespace package: googleapis-common-protos
    assert spec is not None and spec.submodule_search_locations is not None, "googleapis-common-protos is missing"
    return Path(next(iter(spec.submodule_search_locations))).parent.parent


COMMON_PROTOS = _common_protos()


def streaming_paths() -> set[str]:
    """gRPC paths of public server-streaming methods: they get no route timeout."""
    return {r.grpc_path for r in routes() if r.server_streaming}


def public_methods() -> list[tuple[str, str]]:
    """(gRPC path, cluster) for every method that has a google.api.http rule.

    Internal methods (no HTTP rule) get no route, so the edge cannot reach them
    even with raw gRPC."""
    return sorted({(r.grpc_path, r.cluster) for r in routes()})


def build_descriptor(out: Path) -> None:
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "aviary").rglob("*.proto"))
    protos += ["google/rpc/error_details.proto", "google/rpc/status.proto"]
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"-I{COMMON_PROTOS}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *protos,
        ],
        check=True,
        cwd=PROTO_DIR,
    )


# The web client's Content-Security-Policy: its own scripts, styles, images and
# API calls only, plus media from where the media service says it is served;
# nothing inline, no other origin, never framed.
def web_csp(media_origin: str) -> str:
    media = f" {media_origin}" if media_origin else ""
    return (
        f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:{media}; "
        f"media-src 'self'{media}; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def media_origin() -> str:
    """The scheme://host[:port] of AVIARY_MEDIA_PUBLIC_URL, as the media service reads it."""
    from urllib.parse import urlsplit

    from services.kit.settings import load
    from services.media.settings import MediaSettings

    wanted = {k: v for k, v in os.environ.items() if k in ("AVIARY_MEDIA_PUBLIC_URL", "ENVOY_PORT")}
    url = urlsplit(load(MediaSettings, wanted).public_url)
    return f"{url.scheme}://{url.netloc}" if url.scheme and url.netloc else ""


def _web_headers(cache_control: str, csp: str) -> list[str]:
    pad = " " * 26
    headers = {
        "cache-control": cache_control,
        "content-security-policy": csp,
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
        "cross-origin-opener-policy": "same-origin",
    }
    lines = [f"{pad}response_headers_to_add:"]
    for key, value in headers.items():
        lines.append(f"{pad}  - header: {{key: {key}, value: {json.dumps(value)}}}")
        lines.append(f"{pad}    append_action: OVERWRITE_IF_EXISTS_OR_ADD")
    return lines


def _web_routes(media: str | None = None) -> list[str]:
    """Routes to the web client's static origin (cluster `web`). Hashed files
    under /assets/ are cached for a year; `/` and every browser navigation
    (GET or HEAD asking for text/html) to a path outside /v1/ get the app's
    index.html, uncached, so deep links work. Other requests for unknown paths
    (API clients, Accept: */*) still reach the gateway's JSON 404. `media` is
    the media origin the CSP allows (default: from the media settings)."""
    csp = web_csp(media_origin() if media is None else media)
    pad = " " * 24
    get_or_head = '{name: ":method", string_match: {safe_regex: {regex: "^(GET|HEAD)$"}}}'
    no_rate_limit = [
        f"{pad}  typed_per_filter_config:",
        f"{pad}    envoy.filters.http.ext_authz:",
        f'{pad}      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute',
        f"{pad}      disabled: true",
        f"{pad}  request_headers_to_remove: [authorization, cookie]",
    ]
    app_page = f'{pad}  route: {{cluster: web, timeout: 10s, regex_rewrite: {{pattern: {{regex: "^.*$"}}, substitution: /index.html}}}}'
    return [
        f"{pad}# The web client (web/): hashed assets, immutable.",
        f"{pad}- match:",
        f"{pad}    prefix: /assets/",
        f"{pad}    headers: [{get_or_head}]",
        f"{pad}  route: {{cluster: web, timeout: 10s}}",
        *no_rate_limit,
        *_web_headers("public, max-age=31536000, immutable", csp),
        f"{pad}# The app itself at / and for deep links: never cached.",
        f"{pad}- match:",
        f"{pad}    path: /",
        f"{pad}    headers: [{get_or_head}]",
        app_page,
        *no_rate_limit,
        *_web_headers("no-cache", csp),
        f"{pad}- match:",
        f"{pad}    prefix: /",
        f"{pad}    headers:",
        f"{pad}      - {get_or_head}",
        f'{pad}      - {{name: accept, string_match: {{contains: "text/html"}}}}',
        f'{pad}      - {{name: ":path", string_match: {{prefix: /v1/}}, invert_match: true}}',
        app_page,
        *no_rate_limit,
        *_web_headers("no-cache", csp),
    ]


def web_cluster(port: int, host: str = "127.0.0.1") -> str:
    """The web client's static origin (devstack: `python -m devstack.static_server`)."""
    return f"""    - name: web
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: web
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {{address: {host}, port_value: {port}}}"""


def _routes(web: bool = False) -> str:
    lines = _web_routes() if web else []
    streams = streaming_paths()
    for path, cluster in public_methods():
        # Live streams stay open for hours: they run at HIGH priority, whose
        # circuit breaker is apart from the one bounding calls in flight.
        action = "timeout: 0s, priority: HIGH" if path in streams else "timeout: 15s"
        lines.append(f"                        - match: {{path: {path}}}")
        lines.append(f"                          route: {{cluster: {cluster}, {action}}}")
    # Before transcoding a request still has its HTTP path (/v1/...), and
    # ext_authz skips requests that match no route; this catch-all gives it one.
    # The transcoder then re-routes by the gRPC method path above. Whatever no
    # method maps (unknown paths, internal methods) ends at the gateway's 404.
    lines.append("                        - match: {prefix: /}")
    lines.append("                          route: {cluster: gateway, timeout: 5s}")
    return "\n".join(lines)


_REQUIREMENT = {
    "public": "",  # no requirement: the token is not even read
    "optional": "\n                          requirement_name: optional",
    "required": "\n                          requirement_name: required",
}


def _jwt_rules() -> str:
    """jwt_authn rules from each method's declared access: its HTTP route
    (path regex and verb) and its raw gRPC path alike. Whatever matches no
    method needs no token here, so the gateway can answer 404 or 405."""
    lines = []
    for route in routes():
        lines.append("                        - match:")
        lines.append(f"                            safe_regex: {{regex: {json.dumps(route.regex)}}}")
        lines.append(
            f'                            headers: [{{name: ":method", string_match: {{exact: {route.verb}}}}}]'
            + _REQUIREMENT[route.access]
        )
    for path, access in sorted({(r.grpc_path, r.access) for r in routes()}):
        lines.append(f"                        - match: {{path: {path}}}{_REQUIREMENT[access]}")
    return "\n".join(lines)


def cors_policy(origins: list[str]) -> str:
    """The virtual host's CORS policy for exactly these origins (exact
    matches), or nothing: the web client is served from the API's own origin
    and needs none."""
    if not origins:
        return "                      # CORS: no third-party origins configured (AVIARY_CORS_ORIGINS)."
    indent = " " * 22
    lines = [
        "typed_per_filter_config:",
        "  envoy.filters.http.cors:",
        '    "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
        "    allow_origin_string_match:",
        *(f"      - exact: {json.dumps(origin)}" for origin in origins),
        '    allow_methods: "GET, POST, PUT, PATCH, DELETE"',
        '    allow_headers: "authorization, content-type"',
        '    expose_headers: "retry-after, allow"',
        '    max_age: "600"',
    ]
    return "\n".join(indent + line for line in lines)


def cors_origins() -> list[str]:
    return [o.strip() for o in os.environ.get("AVIARY_CORS_ORIGINS", "").split(",") if o.strip()]


# Calls in flight from one Envoy to one service (all its replicas) before
# Envoy sheds more with 503 (ENVOY_MAX_REQUESTS_PER_SERVICE; helm:
# edge.maxRequestsPerService).
MAX_REQUESTS_PER_SERVICE = 64
# Live streams, counted apart (HIGH priority routes): a bound on open
# connections' worth of them, not on work.
MAX_STREAMS_PER_SERVICE = 10000


def max_requests_per_service() -> int:
    value = int(os.environ.get("ENVOY_MAX_REQUESTS_PER_SERVICE", MAX_REQUESTS_PER_SERVICE))
    if value < 1:
        raise ValueError(f"ENVOY_MAX_REQUESTS_PER_SERVICE must be at least 1, not {value}")
    return value


def service_clusters(
    ports: dict[str, int],
    *,
    host=lambda cluster: "127.0.0.1",
    dns: bool = False,
    mesh_sds: str | None = None,
    max_requests: int | str = MAX_REQUESTS_PER_SERVICE,
) -> str:
    """One HTTP/2 cluster per public service, health-checked over grpc.health.v1.
    Locally each is a STATIC loopback address; the helm chart asks for DNS
    names (`dns=True`, a headless Service per service). `mesh_sds`: the
    directory of the mesh's secret files (mesh_secrets), to call the services
    over mutual TLS as `envoy`. `max_requests`: unary calls in flight to one
    service before Envoy answers 503 at once instead of queueing (the Helm
    chart passes a template expression)."""
    discovery = "type: STRICT_DNS\n      dns_lookup_family: V4_PREFERRED" if dns else "type: STATIC"
    blocks = []
    for cluster, _ in public_services():
        tls = mesh_transport_socket(cluster, mesh_sds) if mesh_sds is not None else ""
        blocks.append(
            f"""    - name: {cluster}
      {discovery}
      connect_timeout: 1s
      # Past this many calls in flight the rest are shed (503, Retry-After), not queued.
      circuit_breakers:
        thresholds:
          - priority: DEFAULT
            max_requests: {max_requests}
            max_pending_requests: {max_requests}
          - priority: HIGH
            max_requests: {MAX_STREAMS_PER_SERVICE}
            max_pending_requests: {MAX_STREAMS_PER_SERVICE}
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options: {{}}
      load_assignment:
        cluster_name: {cluster}
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {{address: {host(cluster)}, port_value: {ports[cluster]}}}
      health_checks:
        - timeout: 1s
          interval: 5s
          unhealthy_threshold: 2
          healthy_threshold: 1
          no_traffic_interval: 5s
          grpc_health_check: {{}}{tls}"""
        )
    return "\n".join(blocks)


# Envoy's mesh secrets, each in a file of its own (file-based SDS).
MESH_CERTIFICATE_SDS = "mesh-certificate.yaml"
MESH_CA_SDS = "mesh-ca.yaml"


def mesh_secrets(cert_dir: str) -> dict[str, str]:
    """The files of Envoy's mesh secrets: the edge's certificate and the mesh CA,
    read from `cert_dir`. Envoy reads them again whenever a file in that
    directory is replaced (a renewal: kubelet swaps a Secret's files by a
    rename, as the devstack's renew-certs does); only secrets delivered this
    way are watched, not certificates named in a cluster itself."""
    return {
        MESH_CERTIFICATE_SDS: _watched_secret(
            "mesh_certificate",
            "tls_certificate",
            {"certificate_chain": f"{cert_dir}/envoy.pem", "private_key": f"{cert_dir}/envoy-key.pem"},
            cert_dir,
        ),
        MESH_CA_SDS: _watched_secret("mesh_ca", "validation_context", {"trusted_ca": f"{cert_dir}/ca.pem"}, cert_dir),
    }


def _watched_secret(name: str, kind: str, files: dict[str, str], directory: str) -> str:
    """One SDS file: secret `name` of `kind` from `files`, read again when `directory` changes."""
    fields = "".join(f'      {field}: {{filename: "{path}"}}\n' for field, path in files.items())
    return f"""resources:
  - "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
    name: {name}
    {kind}:
{fields}      watched_directory: {{path: "{directory}"}}
"""


def mesh_transport_socket(service: str, sds_dir: str) -> str:
    """Envoy's side of the mesh's mutual TLS to one service (services/kit/mesh.py):
    the edge's certificate, and the service's name checked in its certificate
    signed by the mesh CA; the certificates from the secret files in `sds_dir`."""
    return f"""
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: {service}
          common_tls_context:
            alpn_protocols: [h2]
            tls_certificate_sds_secret_configs:
              - name: mesh_certificate
                sds_config: {{path_config_source: {{path: "{sds_dir}/{MESH_CERTIFICATE_SDS}"}}, resource_api_version: V3}}
            combined_validation_context:
              default_validation_context:
                match_typed_subject_alt_names:
                  - san_type: DNS
                    matcher: {{exact: {service}}}
              validation_context_sds_secret_config:
                name: mesh_ca
                sds_config: {{path_config_source: {{path: "{sds_dir}/{MESH_CA_SDS}"}}, resource_api_version: V3}}"""


def media_max_body_bytes() -> int:
    """Largest HTTP body Envoy lets through to UploadMedia: the largest allowed
    upload plus 1 MiB, so a file a little over its limit still reaches the
    media service and gets its precise INVALID_ARGUMENT; anything larger is
    cut off at the edge with 413. (The media service's gRPC receive limit is
    higher again, see services/media/__main__.py.)"""
    return _media_limits().largest + 1024 * 1024


def _media_limits():
    """The media service's upload limits, from its settings (AVIARY_MEDIA_MAX_*)."""
    from services.kit.settings import load
    from services.media.settings import MediaSettings
    from services.media.validation import Limits

    # Only the media limits: the rest of the environment may hold Helm templates.
    limits = {k: v for k, v in os.environ.items() if k.startswith("AVIARY_MEDIA_MAX_")}
    return Limits.from_settings(load(MediaSettings, limits))


def media_too_large_message() -> str:
    from services.media.validation import human_size

    limits = _media_limits()
    return (
        f"file: is too large: images may be at most {human_size(limits.image_bytes)}, "
        f"videos at most {human_size(limits.video_bytes)}"
    )


@dataclass(frozen=True)
class Tracing:
    """Where Envoy sends its spans (a Zipkin server) and the share of requests it starts traces for."""

    host: str
    port: int
    sample_percent: float


def tracing_config(sample_percent: float | str) -> str:
    """The connection manager's tracing: Envoy's native Zipkin tracer. It
    reads and writes B3 and W3C traceparent, with 128-bit trace ids, so the
    services (OpenTelemetry, W3C) continue its traces; a request that arrives
    with a sampled trace header keeps that decision."""
    return f"""                tracing:
                  random_sampling: {{value: {sample_percent}}}
                  provider:
                    name: envoy.tracers.zipkin
                    typed_config:
                      "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                      collector_cluster: zipkin
                      collector_endpoint: /api/v2/spans
                      collector_endpoint_version: HTTP_JSON
                      trace_id_128bit: true
                      shared_span_context: false
                      trace_context_option: USE_B3_WITH_W3C_PROPAGATION"""


# Where Prometheus scrapes Envoy's own metrics (the metrics listener).
METRICS_PATH = "/stats/prometheus"


def metrics_listener(bind: str, port: int) -> str:
    """A listener serving the admin API's Prometheus page and nothing else of
    it, so the admin listener (which can stop Envoy) stays on loopback."""
    return f"""    # Envoy's own metrics for Prometheus: calls shed past a service's bound
    # (cluster upstream_rq_active_overflow), each cluster's calls and answers.
    - name: metrics
      address:
        socket_address: {{address: {bind}, port_value: {port}}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: metrics
                route_config:
                  virtual_hosts:
                    - name: metrics
                      domains: ["*"]
                      routes:
                        - match:
                            path: {METRICS_PATH}
                            headers: [{{name: ":method", string_match: {{exact: GET}}}}]
                          route: {{cluster: envoy_admin}}
                        - match: {{prefix: /}}
                          direct_response: {{status: 404}}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


def admin_cluster(admin_port: int) -> str:
    """Envoy's own admin listener, reached by the metrics listener."""
    return f"""    - name: envoy_admin
      type: STATIC
      connect_timeout: 0.25s
      load_assignment:
        cluster_name: envoy_admin
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}"""


def zipkin_cluster(host: str, port: int | str, *, dns: bool = False) -> str:
    discovery = "type: STRICT_DNS\n      dns_lookup_family: V4_PREFERRED" if dns else "type: STATIC"
    return f"""    # The trace store Envoy's Zipkin tracer posts spans to.
    - name: zipkin
      {discovery}
      connect_timeout: 1s
      load_assignment:
        cluster_name: zipkin
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {{address: {host}, port_value: {port}}}"""


def render_config(
    out: Path,
    *,
    port: int,
    admin_port: int,
    descriptor: Path,
    jwks: Path,
    access_log: Path,
    service_ports: dict[str, int],
    gateway_port: int,
    objectstore_port: int = 9000,
    media_bucket: str = "aviary-media",
    cors: str | None = None,
    web_port: int | None = None,
    tracing: Tracing | None = None,
    mesh_certs: str | None = None,
    max_requests: int | None = None,
    metrics_port: int | None = None,
    xff_trusted_hops: int | str | None = None,
) -> None:
    """Writes envoy.yaml. `cors` replaces the CORS block built from
    AVIARY_CORS_ORIGINS (the Helm chart passes a template of its own).
    `web_port`: serve the web client from a static origin on this loopback
    port (without it the config has no web routes; the Helm chart renders
    them and wraps them in its web.enabled value). `tracing`: spans to a
    Zipkin server (without it Envoy traces nothing). `mesh_certs`: call the
    services over the mesh's mutual TLS with the certificates there (through
    the secret files mesh_secrets, written beside `out`). `max_requests`:
    unary calls in flight per service (default: ENVOY_MAX_REQUESTS_PER_SERVICE
    or MAX_REQUESTS_PER_SERVICE). `metrics_port`: serve Envoy's Prometheus
    metrics there (METRICS_PATH; without it there is no metrics listener).
    `xff_trusted_hops`: proxies in front of Envoy whose X-Forwarded-For it
    trusts (default: ENVOY_XFF_TRUSTED_HOPS or 0)."""
    bind = os.environ.get("ENVOY_BIND", "127.0.0.1")
    template = Template((REPO / "envoy" / "envoy.yaml.tmpl").read_text())
    services = ", ".join(service.full_name for _, service in public_services())
    text = template.substitute(
        ENVOY_PORT=port,
        ENVOY_ADMIN_PORT=admin_port,
        GATEWAY_PORT=gateway_port,
        ENVOY_BIND=bind,
        METRICS_LISTENER=metrics_listener(bind, metrics_port) if metrics_port is not None else "",
        XFF_TRUSTED_HOPS=os.environ.get("ENVOY_XFF_TRUSTED_HOPS", "0")
        if xff_trusted_hops is None
        else xff_trusted_hops,
        ENVOY_ACCESS_LOG=access_log,
        JWKS_PATH=jwks,
        LUA_PATH=REPO / "envoy" / "status.lua",
        DESCRIPTOR_PATH=descriptor,
        TRANSCODED_SERVICES=services,
        ROUTES=_routes(web=web_port is not None),
        JWT_RULES=_jwt_rules(),
        CORS_POLICY=cors_policy(cors_origins()) if cors is None else cors,
        MAX_REQUEST_HEADERS_KB=int(os.environ.get("ENVOY_MAX_REQUEST_HEADERS_KB", "16")),
        TRACING=tracing_config(tracing.sample_percent) if tracing is not None else "",
        CLUSTERS=service_clusters(
            service_ports,
            mesh_sds=str(out.parent) if mesh_certs is not None else None,
            max_requests=max_requests_per_service() if max_requests is None else max_requests,
        )
        + ("\n" + web_cluster(web_port) if web_port is not None else "")
        + ("\n" + zipkin_cluster(tracing.host, tracing.port) if tracing is not None else "")
        + ("\n" + admin_cluster(admin_port) if metrics_port is not None else ""),
        OBJECTSTORE_PORT=objectstore_port,
        MEDIA_BUCKET=media_bucket,
        MEDIA_MAX_BODY_BYTES=media_max_body_bytes(),
        MEDIA_TOO_LARGE=media_too_large_message(),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if mesh_certs is not None:
        for name, secret in mesh_secrets(mesh_certs).items():
            (out.parent / name).write_text(secret)
    out.write_text(text)

"""Builds the published OpenAPI 3 document (envoy/openapi.json) from the
protos: protoc-gen-openapi (gnostic) writes the paths and schemas from the
`google.api.http` rules and the comments; this script adds what the protos
say elsewhere (each method's declared access, the streaming `:watch` routes,
the raw-bytes upload, the error shape) and writes stable JSON.

    .venv/bin/python envoy/openapi.py          # (re)write envoy/openapi.json
    .venv/bin/python envoy/openapi.py --check  # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "gen")]

from gateway.routes import Route, routes  # noqa: E402

PROTO_DIR = REPO / "proto"
OUTPUT = REPO / "envoy" / "openapi.json"
_PLUGIN_OPTIONS = ["naming=json", "fq_schema_naming=true", "default_response=true", "enum_type=string"]
MEDIA_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4", "video/webm", "video/quicktime"]
_ERRORS = {
    "400": "Invalid argument: `message` names the field; `details` carry a google.rpc.BadRequest",
    "401": "Missing, expired or invalid bearer token (or, logging in, wrong credentials)",
    "403": "The caller may not do this",
    "404": "No such resource, or no such endpoint",
    "405": "The path exists but not with this method (see the Allow header)",
    "409": "Conflict: already exists, or an idempotency key reused with other parameters",
    "412": "Failed precondition (e.g. a changed price or total; a stale page token)",
    "429": "Too many requests: retry after the Retry-After header (also in a google.rpc.RetryInfo detail)",
    "503": "A service this request needs is unavailable; retry shortly",
}


def _plugin() -> str:
    found = shutil.which("protoc-gen-openapi")
    if found:
        return found
    gopath = subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True, check=True).stdout.strip()
    return str(Path(gopath.split(os.pathsep)[0]) / "bin" / "protoc-gen-openapi")


def generate_raw() -> dict:
    """gnostic's document for every proto file that has a public method."""
    import grpc_tools

    files = sorted({_proto_file(r) for r in routes()})
    go_packages = [
        f"--openapi_opt=M{p.relative_to(PROTO_DIR)}=aviary/{p.parent.relative_to(PROTO_DIR)}"
        for p in sorted((PROTO_DIR / "aviary").rglob("*.proto"))
    ]
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{PROTO_DIR}",
                f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
                f"--plugin=protoc-gen-openapi={_plugin()}",
                f"--openapi_out={out}",
                *go_packages,
                *(f"--openapi_opt={o}" for o in _PLUGIN_OPTIONS),
                *files,
            ],
            check=True,
            cwd=PROTO_DIR,
        )
        return yaml.safe_load((Path(out) / "openapi.yaml").read_text())


def _proto_file(route: Route) -> str:
    return route.request.file.name


def _operations(document: dict) -> dict[str, dict]:
    """operationId -> operation."""
    return {op["operationId"]: op for item in document["paths"].values() for op in item.values()}


def _operation_id(route: Route) -> str:
    service, method = route.grpc_path.strip("/").split("/")
    return f"{service.rsplit('.', 1)[-1]}_{method}"


def _security(access: str) -> list[dict]:
    return {"public": [], "optional": [{"bearer": []}, {}], "required": [{"bearer": []}]}[access]


def _stream(operation: dict) -> None:
    """Server streams: one JSON object per line, for as long as the client
    keeps the connection."""
    ok = operation["responses"]["200"]
    ok["description"] = "A stream: one JSON object per line (newline-delimited), until the client disconnects"
    ok["content"] = {"application/x-ndjson": ok["content"]["application/json"]}
    operation["x-aviary-stream"] = True


def _raw_upload(operation: dict) -> None:
    operation["requestBody"] = {
        "required": True,
        "description": "The file itself as the body; its type in Content-Type",
        "content": {kind: {"schema": {"type": "string", "format": "binary"}} for kind in MEDIA_TYPES},
    }


def _body_without_path_variables(document: dict, operation: dict, route: Route) -> None:
    """A `body: "*"` rule takes the path's variables from the path: the body
    schema gnostic wrote (the whole request message) must not list them, nor
    require them (a client sending one again is refused as an unknown field)."""
    content = operation["requestBody"]["content"]["application/json"]
    name = content["schema"]["$ref"].rsplit("/", 1)[-1]
    schemas = document["components"]["schemas"]
    whole = schemas[name]
    in_path = {route.request.fields_by_name[v].json_name for v in route.variables}
    body = {k: v for k, v in whole.items() if k not in ("properties", "required")}
    body["properties"] = {k: v for k, v in whole.get("properties", {}).items() if k not in in_path}
    required = [f for f in whole.get("required", []) if f not in in_path]
    if required:
        body["required"] = required
    body["description"] = f"{whole.get('description', '')} The body: the fields not in the path.".strip()
    schemas[f"{name}.Body"] = body
    content["schema"] = {"$ref": f"#/components/schemas/{name}.Body"}
    operation["requestBody"]["required"] = bool(required)


def _errors(operation: dict, access: str) -> None:
    responses = operation["responses"]
    default = responses.pop("default")
    for status, description in _ERRORS.items():
        responses[status] = {"description": description, "content": default["content"]}
    if access != "required":
        responses.pop("403", None)


def build() -> dict:
    document = generate_raw()
    operations = _operations(document)
    for route in routes():
        operation = operations[_operation_id(route)]
        operation["security"] = _security(route.access)
        operation["x-aviary-access"] = route.access
        if route.server_streaming:
            _stream(operation)
        if (
            route.body
            and route.body != "*"
            and route.request.fields_by_name[route.body].message_type.full_name == "google.api.HttpBody"
        ):
            _raw_upload(operation)
        elif route.body == "*" and route.variables:
            _body_without_path_variables(document, operation, route)
        _errors(operation, route.access)
    document["info"] = {
        "title": "Aviary API",
        "version": "v1",
        "description": (
            "The public HTTP/JSON API of Aviary, transcoded by Envoy from the gRPC contracts. "
            "64-bit ids are strings; lists take pageSize and pageToken and return nextPageToken. "
            "Errors are {code, message, details} with the gRPC status code."
        ),
    }
    document["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The accessToken from POST /v1/accounts or POST /v1/sessions",
        },
    }
    return document


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when envoy/openapi.json is stale")
    args = ap.parse_args()
    text = render()
    if args.check:
        if OUTPUT.exists() and OUTPUT.read_text() == text:
            print("openapi.json is up to date")
            return 0
        print("envoy/openapi.json is stale: run 'make openapi' and commit")
        return 1
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(REPO)} ({len(_operations(json.loads(text)))} operations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The public HTTP surface, read from the contracts: every method of the
generated stubs that has a `google.api.http` rule, with its declared edge
access. The Envoy renderer, the gateway's request checks and the OpenAPI
document are all built from this one table, so a method added to a proto is
routed, authenticated and checked without another list to update."""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor

from aviary.api.v1 import access_pb2

GEN = Path(__file__).resolve().parents[1] / "gen"

ACCESS_NAMES = {
    access_pb2.ACCESS_PUBLIC: "public",
    access_pb2.ACCESS_OPTIONAL: "optional",
    access_pb2.ACCESS_REQUIRED: "required",
}

_VARIABLE = re.compile(r"\{([a-z0-9_.]+)(?:=[^}]*)?\}")


@dataclass(frozen=True)
class Route:
    """One HTTP rule of one public method."""

    verb: str  # GET, POST, PUT, PATCH, DELETE
    template: str  # /v1/posts/{post_id}:like
    grpc_path: str  # /aviary.engagement.v1.EngagementService/LikePost
    cluster: str  # the owning service's folder (and Envoy cluster) name
    access: str  # "public", "optional" or "required"
    request: Descriptor
    body: str  # "" (no body), "*" (the whole request) or one field's name
    server_streaming: bool

    @functools.cached_property
    def variables(self) -> tuple[str, ...]:
        """Path variables by proto name; read for every query parameter checked."""
        return tuple(_VARIABLE.findall(self.template))

    @property
    def regex(self) -> str:
        return template_regex(self.template)


class UndeclaredAccess(ValueError):
    """A public method without an `(aviary.api.v1.access)` declaration."""


def template_regex(template: str, *, capture: bool = False) -> str:
    """An anchored regex for a path template. A variable matches one segment;
    it never takes a `:` either, so `/v1/posts/1:like` is only ever the
    `:like` route, never `GET /v1/posts/{post_id}` with id `1:like`. With
    `capture`, each variable is a group, in the order of `Route.variables`."""
    segment = "([^/:]+)" if capture else "[^/:]+"
    out, pos = [], 0
    for match in _VARIABLE.finditer(template):
        out.append(re.escape(template[pos : match.start()]))
        out.append(segment)
        pos = match.end()
    out.append(re.escape(template[pos:]))
    return "^" + "".join(out) + "$"


def _service_modules():
    for path in sorted(GEN.glob("aviary/*/v1/*_pb2.py")):
        yield importlib.import_module(".".join(path.relative_to(GEN).with_suffix("").parts))


def public_services() -> list[tuple[str, ServiceDescriptor]]:
    """(cluster, service) for every service with at least one HTTP rule. The
    cluster is the service's domain (`aviary.<domain>.v1`), which is also its
    folder under services/."""
    found = []
    for module in _service_modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            if any(_http_rule(m) is not None for m in service.methods):
                found.append((service.full_name.split(".")[1], service))
    return found


def _http_rule(method: MethodDescriptor):
    options = method.GetOptions()
    # googleapis-common-protos' stubs type the extension as a plain FieldDescriptor.
    http = annotations_pb2.http
    return options.Extensions[http] if options.HasExtension(http) else None  # type: ignore[index, arg-type]


def _access(method: MethodDescriptor) -> str:
    value = method.GetOptions().Extensions[access_pb2.access]
    if value not in ACCESS_NAMES:
        raise UndeclaredAccess(f"{method.full_name} has an HTTP rule but no (aviary.api.v1.access) declaration")
    return ACCESS_NAMES[value]


def _rules_of(rule):
    yield rule
    yield from rule.additional_bindings


@functools.cache
def routes() -> tuple[Route, ...]:
    """Every public route, most specific first (fewer variables, then longer
    templates), which is the order both Envoy and the gateway match in."""
    found = []
    for cluster, service in public_services():
        for method in service.methods:
            rule = _http_rule(method)
            if rule is None:
                continue
            access = _access(method)
            for binding in _rules_of(rule):
                verb = binding.WhichOneof("pattern")
                found.append(
                    Route(
                        verb=verb.upper(),
                        template=getattr(binding, verb),
                        grpc_path=f"/{service.full_name}/{method.name}",
                        cluster=cluster,
                        access=access,
                        request=method.input_type,
                        body=binding.body,
                        server_streaming=method.server_streaming,
                    )
                )
    found.sort(key=lambda r: (len(r.variables), -len(r.template), r.template, r.verb))
    return tuple(found)


def field_by_name(message: Descriptor, name: str) -> FieldDescriptor | None:
    """A field by its proto name or its JSON (lowerCamel) name, as the
    transcoder accepts both."""
    return message.fields_by_name.get(name) or message.fields_by_camelcase_name.get(name)

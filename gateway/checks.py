"""What the edge refuses before a request reaches a service: unknown paths
(404), wrong methods (405), parameters that are not valid UTF-8, and query
parameters or JSON body fields the method does not have (Envoy's transcoder
would drop them silently, so a typo would look like success). Every rule
works from the route table, so new methods are covered as they are added."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.routes import Route, field_by_name, routes, template_regex
from services.kit.server.requests import enum_type_of, message_type_of

# Paths the edge itself serves, outside the route table.
EDGE_PATHS: dict[str, tuple[str, ...]] = {"/healthz": ("GET",), "/openapi.json": ("GET",)}
MEDIA_PATH = re.compile(r"^/media/[0-9]+\.[a-z0-9]+$")
_MAX_VIOLATIONS = 10


@dataclass
class Refusal:
    status: int
    code: int  # the gRPC status code the JSON body carries
    message: str
    violations: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict:
        out: dict = {"code": self.code, "message": self.message}
        if self.violations:
            out["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": f, "description": d} for f, d in self.violations],
                }
            ]
        return out


def _bad_request(violations: list[tuple[str, str]]) -> Refusal:
    message = "; ".join(f"{f}: {d}" for f, d in violations[:3])
    if len(violations) > 3:
        message += f" (and {len(violations) - 3} more)"
    return Refusal(400, 3, message, violations[:_MAX_VIOLATIONS])


class Matcher:
    """The route table compiled for matching request paths."""

    def __init__(self, table: tuple[Route, ...]) -> None:
        # Routes by their collection (the segment after the version), in
        # table order: a request is matched against a handful, not all.
        self._by_collection: dict[str, list] = {}
        for route in table:
            self._by_collection.setdefault(_collection(route.template), []).append(
                (re.compile(template_regex(route.template, capture=True)), route)
            )

    def match(self, verb: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        """(the route, its raw path variables, every verb the path allows)."""
        allowed: list[str] = []
        for pattern, route in self._by_collection.get(_collection(path), ()):
            found = pattern.match(path)
            if found is None:
                continue
            if route.verb == verb:
                return route, dict(zip(route.variables, found.groups())), allowed
            if route.verb not in allowed:
                allowed.append(route.verb)
        return None, {}, allowed


def _collection(path: str) -> str:
    """`/v1/posts/{post_id}:like` -> `/v1/posts`; `/v1/users:lookup` -> `/v1/users`."""
    parts = path.split("/", 3)
    return "/".join(parts[:3]).split(":", 1)[0]


_matcher: Matcher | None = None


def matcher() -> Matcher:
    global _matcher
    if _matcher is None:
        _matcher = Matcher(routes())
    return _matcher


def check(verb: str, path: str, query: str, body: bytes | None) -> Refusal | None:
    """None when the request may go on; otherwise what to answer. `body` is
    None when the edge did not forward it whole (uploads, large bodies)."""
    if path in EDGE_PATHS or MEDIA_PATH.match(path):
        methods = EDGE_PATHS.get(path, ("GET", "HEAD"))
        return None if verb in methods else _not_allowed(verb, path, list(methods))
    route, variables, allowed = matcher().match(verb, path)
    if route is None:
        if verb == "OPTIONS" and allowed:
            # A plain OPTIONS (or a preflight from an origin CORS does not
            # allow): say what the path accepts, grant nothing.
            return Refusal(204, 0, "", headers={"allow": ", ".join(allowed)})
        if allowed:
            return _not_allowed(verb, path, allowed)
        return Refusal(404, 5, f"no such endpoint: {verb} {path}")
    violations = _path_violations(route, variables)
    violations += _query_violations(route, query)
    if body and route.body:
        # The transcoder reads the body as JSON whatever its declared type.
        violations += _body_violations(route, body)
    return _bad_request(violations) if violations else None


def _not_allowed(verb: str, path: str, allowed: list[str]) -> Refusal:
    listed = ", ".join(allowed)
    return Refusal(405, 12, f"method {verb} is not allowed on {path}; allowed: {listed}", headers={"allow": listed})


def _decoded(raw: str) -> str | None:
    """A percent-decoded parameter, or None when it is not valid UTF-8."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _json_name(message: Descriptor, name: str) -> str:
    found = field_by_name(message, name)
    return found.json_name if found is not None else name


def _path_violations(route: Route, variables: dict[str, str]) -> list[tuple[str, str]]:
    return [
        (_json_name(route.request, name), "is not valid UTF-8")
        for name, raw in variables.items()
        if _decoded(raw) is None
    ]


def _query_violations(route: Route, query: str) -> list[tuple[str, str]]:
    if not query:
        return []
    violations = []
    for pair in query.split("&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        key = _decoded(raw_key.replace("+", " "))
        if key is None:
            violations.append(("query", "a parameter name is not valid UTF-8"))
            continue
        found = _query_field(route, key)
        value = _decoded(raw_value.replace("+", " "))
        if found is None:
            violations.append((key, _unknown_query(route, key)))
        elif value is None:
            violations.append((key, "is not valid UTF-8"))
        elif found.type != FieldDescriptor.TYPE_MESSAGE and (problem := scalar_problem(found, value, from_query=True)):
            violations.append((key, problem))
    return violations


def _query_field(route: Route, key: str) -> FieldDescriptor | None:
    """The field a query parameter sets, or None when the method has none
    by that name (or the field is bound by the path or the body)."""
    if route.body == "*":
        return None
    message: Descriptor | None = route.request
    found: FieldDescriptor | None = None
    for depth, part in enumerate(key.split(".")):
        if message is None:
            return None
        found = field_by_name(message, part)
        if found is None:
            return None
        if depth == 0 and (found.name in route.variables or found.name == route.body):
            return None
        message = found.message_type if found.type == FieldDescriptor.TYPE_MESSAGE else None
    # `message` is now the last field's message type, None for a scalar.
    if message is not None and not _well_known(message):
        return None
    return found


def _unknown_query(route: Route, key: str) -> str:
    accepted = _accepted_query(route)
    if not accepted:
        return "unknown query parameter; this endpoint takes none"
    return f"unknown query parameter; this endpoint takes: {', '.join(accepted)}"


def _accepted_query(route: Route) -> list[str]:
    if route.body == "*":
        return []
    return [
        f.json_name
        for f in route.request.fields
        if f.name not in route.variables
        and f.name != route.body
        and (f.type != FieldDescriptor.TYPE_MESSAGE or _well_known(message_type_of(f)))
    ]


def _well_known(message: Descriptor) -> bool:
    return message.full_name.startswith("google.protobuf.")


def _body_violations(route: Route, body: bytes) -> list[tuple[str, str]]:
    if route.body == "*":
        message = route.request
    else:
        bound = route.request.fields_by_name[route.body]
        if bound.type != FieldDescriptor.TYPE_MESSAGE or message_type_of(bound).full_name.startswith("google."):
            return []  # raw bytes or a well-known type: nothing to name
        message = message_type_of(bound)
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        return [("body", "is not valid UTF-8")]
    except ValueError as exc:
        return [("body", f"is not valid JSON: {exc}")]
    if not isinstance(document, dict):
        return [("body", "must be a JSON object")]
    violations: list[tuple[str, str]] = []
    _check_object(message, document, "", violations, bound_by_path=route.variables if route.body == "*" else ())
    return violations


def _check_object(
    message: Descriptor,
    document: dict,
    prefix: str,
    violations: list[tuple[str, str]],
    bound_by_path: tuple[str, ...] = (),
) -> None:
    for key, value in document.items():
        if len(violations) >= _MAX_VIOLATIONS:
            return
        found = field_by_name(message, key)
        if found is None or found.name in bound_by_path:
            accepted = [f.json_name for f in message.fields if f.name not in bound_by_path]
            violations.append((prefix + key, "unknown field; allowed here: " + ", ".join(accepted)))
        elif value is not None:  # JSON null means the default value
            _check_value(found, value, prefix + found.json_name, violations)


def _check_value(found: FieldDescriptor, value, path: str, violations: list[tuple[str, str]]) -> None:
    if found.type == FieldDescriptor.TYPE_MESSAGE and message_type_of(found).GetOptions().map_entry:
        if not isinstance(value, dict):
            violations.append((path, "must be a JSON object"))
            return
        values = message_type_of(found).fields_by_name["value"]
        for key, item in value.items():
            if item is not None:
                _check_single(values, item, f"{path}[{key}]", violations)
    elif found.is_repeated:
        if not isinstance(value, list):
            violations.append((path, "must be a JSON array"))
            return
        for i, item in enumerate(value):
            if item is not None:
                _check_single(found, item, f"{path}[{i}]", violations)
    else:
        _check_single(found, value, path, violations)


def _check_single(found: FieldDescriptor, value, path: str, violations: list[tuple[str, str]]) -> None:
    if found.type != FieldDescriptor.TYPE_MESSAGE:
        problem = scalar_problem(found, value)
        if problem:
            violations.append((path, problem))
    elif _well_known(message_type_of(found)):
        if message_type_of(found).full_name == "google.protobuf.Timestamp" and not isinstance(value, str):
            violations.append((path, "must be an RFC 3339 time string, e.g. 2026-01-31T12:00:00Z"))
    elif not isinstance(value, dict):
        violations.append((path, "must be a JSON object"))
    else:
        _check_object(message_type_of(found), value, path + ".", violations)


_T = FieldDescriptor
_INTEGER_RANGES = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1),
    _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1),
    _T.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOAT_WORDS = {"NaN", "Infinity", "-Infinity"}


def scalar_problem(found: FieldDescriptor, value, *, from_query: bool = False) -> str | None:
    """What is wrong with `value` for a scalar or enum field, in words, or
    None. Query values are always strings; JSON values have their own types
    (proto3 JSON also takes 64-bit integers as strings)."""
    kind = found.type
    if kind in _INTEGER_RANGES:
        return _integer_problem(value, *_INTEGER_RANGES[kind])
    if kind == _T.TYPE_BOOL:
        if from_query:
            return None if value in ("true", "false") else "must be true or false"
        return None if isinstance(value, bool) else "must be true or false"
    if kind in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        return _number_problem(value)
    if kind == _T.TYPE_ENUM:
        return _enum_problem(found, value)
    if kind in (_T.TYPE_STRING, _T.TYPE_BYTES):
        return None if isinstance(value, str) else "must be a string"
    return None


def _integer_problem(value, low: int, high: int) -> str | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str):
        try:
            value = int(value, 10)
        except ValueError:
            return "must be an integer"
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer"
    if not low <= value <= high:
        return f"must be between {low} and {high}"
    return None


def _number_problem(value) -> str | None:
    if isinstance(value, str):
        if value in _FLOAT_WORDS:
            return None
        try:
            float(value)
        except ValueError:
            return "must be a number"
        return None
    return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"


def _enum_problem(found: FieldDescriptor, value) -> str | None:
    enum = enum_type_of(found)
    names = [v.name for v in enum.values if v.number != 0] or [v.name for v in enum.values]
    if isinstance(value, str) and value.upper() in enum.values_by_name:
        return None
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value in enum.values_by_number:
        return None
    return "must be one of: " + ", ".join(names)

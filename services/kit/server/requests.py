"""Checks the kit makes on every request before a servicer sees it.

A request whose bytes do not parse, a text field holding NUL, or an enum
field holding a number its enum does not define is refused with
INVALID_ARGUMENT naming the field (dotted, e.g. `items[0].note`), so no
servicer, query or datastore ever sees one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import grpc
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import DecodeError

from services.kit.server.errors import ApiError, invalid_argument

_STRING = FieldDescriptor.TYPE_STRING
_ENUM = FieldDescriptor.TYPE_ENUM
_MESSAGE = FieldDescriptor.TYPE_MESSAGE
_LENGTH_DELIMITED = 2

# (field path, problem) of the first refused field, or None.
Problem = tuple[str, str] | None


class Unparsable:
    """What a tolerant deserializer hands the handler instead of a request
    whose bytes did not parse: the refusal to answer with."""

    __slots__ = ("error",)

    def __init__(self, error: ApiError) -> None:
        self.error = error


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """Wraps a request deserializer so bad bytes become an Unparsable (answered
    INVALID_ARGUMENT by the interceptor) instead of an exception gRPC answers
    as UNKNOWN with the exception's type in the message."""
    if deserializer is None:
        return None
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)

    def deserialize(raw: bytes):
        try:
            return deserializer(raw)
        except DecodeError:
            return Unparsable(unparsable(descriptor, raw))

    return deserialize


def refusal(request) -> ApiError | None:
    """Why the kit refuses `request` before its servicer runs, or None."""
    if isinstance(request, Unparsable):
        return request.error
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None:
        return None  # a handler that takes raw bytes
    problem = _first_problem(request, _plan(descriptor))
    return None if problem is None else invalid_argument(*problem)


# -- requests that do not parse -------------------------------------------------


def unparsable(descriptor: Descriptor | None, raw: bytes) -> ApiError:
    """The refusal for bytes that did not parse as `descriptor`'s message.
    Nearly always a text field that is not UTF-8 (Envoy puts a `%FF` from a
    URL into a string field as the raw byte): found by scanning the wire
    format, since the parser does not say which field it was."""
    path = None
    if descriptor is not None:
        try:
            path = _non_utf8_field(descriptor, memoryview(raw))
        except (IndexError, ValueError):
            path = None  # not even well-formed wire format
    if path is not None:
        return invalid_argument(
            path, "must be valid UTF-8 text (a percent-encoded byte such as %FF is not a character)"
        )
    return ApiError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "the request could not be read: a text field is not valid UTF-8, or the body is not a valid message",
    )


# As deep as protobuf itself parses; deeper nesting is not looked into.
_MAX_DEPTH = 100


def _non_utf8_field(descriptor: Descriptor, data: memoryview, depth: int = 0) -> str | None:
    """The path of the first string field in `data` that is not UTF-8."""
    if depth > _MAX_DEPTH:
        return None
    pos = 0
    seen: dict[int, int] = {}  # field number -> last index of a repeated field
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type != _LENGTH_DELIMITED:
            pos = _skip(data, pos, wire_type)
            continue
        length, pos = _varint(data, pos)
        chunk, pos = data[pos : pos + length], pos + length
        if pos > len(data):
            raise ValueError("truncated")
        field = descriptor.fields_by_number.get(number)
        if field is None or field.type not in (_STRING, _MESSAGE):
            continue
        name = field.name
        if field.is_repeated:
            index = seen[number] = seen.get(number, -1) + 1
            name = f"{name}[{index}]"
        if field.type == _STRING:
            try:
                str(chunk, "utf-8")
            except UnicodeDecodeError:
                return name
        else:
            inner = _non_utf8_field(message_type_of(field), chunk, depth + 1)
            if inner is not None:
                return f"{name}.{inner}"
    return None


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _skip(data: memoryview, pos: int, wire_type: int) -> int:
    if wire_type == 0:
        return _varint(data, pos)[1]
    if wire_type == 1:
        return pos + 8
    if wire_type == 5:
        return pos + 4
    raise ValueError(f"wire type {wire_type}")  # groups: long deprecated, never sent by our clients


# -- NUL in text, undefined enum numbers --------------------------------------------


@dataclass(frozen=True)
class _EnumField:
    name: str
    repeated: bool
    defined: frozenset[int]
    allowed: str  # the defined names a client may send, for the message


@dataclass(frozen=True)
class _Plan:
    """The fields of one message type that can hold something to refuse;
    everything else (ids, counts, bytes) is never looked at."""

    strings: tuple[tuple[str, bool], ...]  # (name, repeated)
    enums: tuple[_EnumField, ...]
    messages: tuple[tuple[str, bool, Descriptor], ...]  # (name, repeated, type)
    maps: tuple[tuple[str, FieldDescriptor], ...]  # (name, value field)

    def __bool__(self) -> bool:
        return bool(self.strings or self.enums or self.messages or self.maps)


_PLANS: dict[Descriptor, _Plan] = {}


def _plan(descriptor: Descriptor) -> _Plan:
    plan = _PLANS.get(descriptor)
    if plan is None:
        plan = _PLANS[descriptor] = _build_plan(descriptor)
    return plan


def _build_plan(descriptor: Descriptor) -> _Plan:
    strings, enums, messages, maps = [], [], [], []
    for field in descriptor.fields:
        if field.type == _STRING:
            strings.append((field.name, field.is_repeated))
        elif field.type == _ENUM:
            enums.append(_enum_field(field))
        elif field.type == _MESSAGE and message_type_of(field).GetOptions().map_entry:
            maps.append((field.name, message_type_of(field).fields_by_name["value"]))
        elif field.type == _MESSAGE and _can_hold_checked(message_type_of(field), set()):
            messages.append((field.name, field.is_repeated, message_type_of(field)))
    return _Plan(tuple(strings), tuple(enums), tuple(messages), tuple(maps))


def message_type_of(field: FieldDescriptor) -> Descriptor:
    """A message field's type (protobuf's types leave it None for other fields)."""
    assert field.message_type is not None, f"{field.full_name} is not a message field"
    return field.message_type


def enum_type_of(field: FieldDescriptor) -> EnumDescriptor:
    """An enum field's type (protobuf's types leave it None for other fields)."""
    assert field.enum_type is not None, f"{field.full_name} is not an enum field"
    return field.enum_type


def _enum_field(field: FieldDescriptor) -> _EnumField:
    values = enum_type_of(field).values
    allowed = ", ".join(v.name for v in values if not v.name.endswith("_UNSPECIFIED"))
    return _EnumField(field.name, field.is_repeated, frozenset(v.number for v in values), allowed)


def _can_hold_checked(descriptor: Descriptor, visiting: set[str]) -> bool:
    """Whether a message of this type can hold a string or enum at any depth."""
    if descriptor.full_name in visiting:
        return False  # a cycle adds nothing the other paths do not
    visiting.add(descriptor.full_name)
    return any(
        field.type in (_STRING, _ENUM)
        or (field.type == _MESSAGE and _can_hold_checked(message_type_of(field), visiting))
        for field in descriptor.fields
    )


def _first_problem(message, plan: _Plan) -> Problem:
    for name, repeated in plan.strings:
        value = getattr(message, name)
        if not repeated:
            if "\x00" in value:
                return name, _NUL
        elif "\x00" in "".join(value):  # one C-level scan; the index only on failure
            index = next(i for i, item in enumerate(value) if "\x00" in item)
            return f"{name}[{index}]", _NUL
    for enum in plan.enums:
        problem = _enum_problem(message, enum)
        if problem is not None:
            return problem
    for name, repeated, descriptor in plan.messages:
        problem = _message_problem(message, name, repeated, descriptor)
        if problem is not None:
            return problem
    for name, value_field in plan.maps:
        problem = _map_problem(getattr(message, name), name, value_field)
        if problem is not None:
            return problem
    return None


_NUL = "must not contain NUL (\\u0000) characters"


def _enum_problem(message, enum: _EnumField) -> Problem:
    value = getattr(message, enum.name)
    for index, number in enumerate(value) if enum.repeated else ((None, value),):
        if number not in enum.defined:
            name = enum.name if index is None else f"{enum.name}[{index}]"
            return name, f"must be one of {enum.allowed}, got {number}"
    return None


def _message_problem(message, name: str, repeated: bool, descriptor: Descriptor) -> Problem:
    plan = _plan(descriptor)
    if not repeated:
        if not message.HasField(name):
            return None
        inner = _first_problem(getattr(message, name), plan)
        return None if inner is None else (f"{name}.{inner[0]}", inner[1])
    for index, item in enumerate(getattr(message, name)):
        inner = _first_problem(item, plan)
        if inner is not None:
            return f"{name}[{index}].{inner[0]}", inner[1]
    return None


def _map_problem(entries, name: str, value_field: FieldDescriptor) -> Problem:
    for key, value in entries.items():
        if isinstance(key, str) and "\x00" in key:
            return f"{name}[{key!r}]", "keys " + _NUL
        if value_field.type == _STRING and "\x00" in value:
            return f"{name}[{key!r}]", _NUL
        if value_field.type == _ENUM and value not in enum_type_of(value_field).values_by_number:
            return f"{name}[{key!r}]", f"must be one of {_enum_field(value_field).allowed}, got {value}"
        if value_field.type == _MESSAGE:
            inner = _first_problem(value, _plan(message_type_of(value_field)))
            if inner is not None:
                return f"{name}[{key!r}].{inner[0]}", inner[1]
    return None

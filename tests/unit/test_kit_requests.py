"""The kit's request checks (services/kit/server/requests.py) on plain messages."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.rpc import error_details_pb2

from aviary.orders.v1 import orders_pb2
from services.kit.server import requests

F = descriptor_pb2.FieldDescriptorProto


def _test_messages():
    """A proto3 file made for these tests: every shape the walker handles."""
    file = descriptor_pb2.FileDescriptorProto(name="kit_requests_test.proto", package="kittest", syntax="proto3")
    color = file.enum_type.add(name="Color")
    for name, number in [("COLOR_UNSPECIFIED", 0), ("COLOR_RED", 1), ("COLOR_BLUE", 2)]:
        color.value.add(name=name, number=number)

    item = file.message_type.add(name="Item")
    item.field.add(name="note", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    item.field.add(name="colors", number=2, type=F.TYPE_ENUM, type_name=".kittest.Color", label=F.LABEL_REPEATED)
    item.field.add(name="child", number=3, type=F.TYPE_MESSAGE, type_name=".kittest.Item", label=F.LABEL_OPTIONAL)

    counts = file.message_type.add(name="Counts")  # nothing to check in here
    counts.field.add(name="n", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)

    order = file.message_type.add(name="Order")
    order.field.add(name="title", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    order.field.add(name="tags", number=2, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    order.field.add(name="color", number=3, type=F.TYPE_ENUM, type_name=".kittest.Color", label=F.LABEL_OPTIONAL)
    order.field.add(name="items", number=4, type=F.TYPE_MESSAGE, type_name=".kittest.Item", label=F.LABEL_REPEATED)
    order.field.add(name="blob", number=5, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    order.field.add(name="counts", number=6, type=F.TYPE_MESSAGE, type_name=".kittest.Counts", label=F.LABEL_OPTIONAL)
    order.field.add(
        name="labels", number=7, type=F.TYPE_MESSAGE, type_name=".kittest.Order.LabelsEntry", label=F.LABEL_REPEATED
    )
    entry = order.nested_type.add(name="LabelsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)

    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("kittest.Order")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("kittest.Item")),
    )


Order, Item = _test_messages()


def _refused(request) -> tuple[str, str]:
    error = requests.refusal(request)
    assert error is not None, f"{request} was not refused"
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    (violations,) = error.details
    assert isinstance(violations, error_details_pb2.BadRequest)
    return error.message, violations.field_violations[0].field


def test_a_clean_request_passes():
    request = Order(
        title="tea",
        tags=["a", "b"],
        color=2,
        items=[Item(note="x", colors=[1, 2])],
        blob=b"\x00\xff",
        labels={"k": "v"},
    )
    assert requests.refusal(request) is None
    assert requests.refusal(Order()) is None


@pytest.mark.parametrize(
    "request_, path, json_path",
    [
        (Order(title="a\x00b"), "title", "title"),
        (Order(tags=["ok", "\x00"]), "tags[1]", "tags[1]"),
        (Order(items=[Item(note="ok"), Item(note="ok"), Item(note="n\x00")]), "items[2].note", "items[2].note"),
        (
            Order(items=[Item(child=Item(child=Item(note="\x00")))]),
            "items[0].child.child.note",
            "items[0].child.child.note",
        ),
        (Order(labels={"k": "v\x00"}), "labels['k']", "labels['k']"),
        (Order(labels={"k\x00": "v"}), "labels['k\\x00']", "labels['k\\x00']"),
    ],
    ids=["top", "repeated", "nested", "deep", "map-value", "map-key"],
)
def test_nul_in_any_text_field_is_refused_naming_the_field(request_, path, json_path):
    message, field = _refused(request_)
    assert message.startswith(f"{path}: ") and message.endswith("must not contain NUL (\\u0000) characters")
    assert field == json_path


def test_nul_in_bytes_is_left_alone():
    assert requests.refusal(Order(blob=b"a\x00b")) is None


@pytest.mark.parametrize(
    "request_, path",
    [
        (Order(color=99), "color"),
        (Order(color=-1), "color"),
        (Order(items=[Item(colors=[1, 2, 7])]), "items[0].colors[2]"),
    ],
)
def test_an_undefined_enum_number_is_refused_listing_the_allowed_names(request_, path):
    message, _ = _refused(request_)
    assert message.startswith(f"{path}: must be one of COLOR_RED, COLOR_BLUE, got ")


def test_a_real_request_names_its_field_in_lower_camel_for_json_clients():
    message, field = _refused(orders_pb2.AdvanceDeliveryRequest(order_id="1", status=99))
    assert message.startswith("status: must be one of DELIVERY_STATUS_PENDING, ") and message.endswith("got 99")
    error = requests.refusal(orders_pb2.OperatorAdvanceDeliveryRequest(order_id="1", status=2, operator_name="a\x00"))
    assert error.message.startswith("operator_name: ")
    assert error.details[0].field_violations[0].field == "operatorName"


def test_a_message_type_that_holds_nothing_to_check_is_never_walked():
    plan = requests._plan(Order.DESCRIPTOR)
    assert [name for name, _, _ in plan.messages] == ["items"]
    assert not requests._plan(Order.DESCRIPTOR.fields_by_name["counts"].message_type)


# -- bytes that do not parse --------------------------------------------------------


def _with_bad_utf8(request, good: bytes) -> bytes:
    raw = request.SerializeToString()
    assert raw.count(good) == 1
    return raw.replace(good, b"\xff" * len(good))


@pytest.mark.parametrize(
    "request_, good, path",
    [
        (Order(title="abc"), b"abc", "title"),
        (Order(tags=["ok", "xyz"]), b"xyz", "tags[1]"),
        (Order(color=1, items=[Item(note="a1"), Item(note="b2", child=Item(note="c3"))]), b"c3", "items[1].child.note"),
    ],
)
def test_invalid_utf8_becomes_invalid_argument_naming_the_field(request_, good, path):
    parsed = requests.tolerant(Order.FromString)(_with_bad_utf8(request_, good))
    assert isinstance(parsed, requests.Unparsable)
    assert parsed.error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert parsed.error.message.startswith(f"{path}: must be valid UTF-8 text")
    assert requests.refusal(parsed) is parsed.error


def test_bytes_that_are_no_message_at_all_get_a_plain_message():
    parsed = requests.tolerant(Order.FromString)(b"\x0a\x05ab")  # a length past the end
    assert isinstance(parsed, requests.Unparsable)
    message = parsed.error.message
    assert "not valid UTF-8" in message and "DecodeError" not in message and "kittest" not in message


def test_good_bytes_parse_as_usual():
    request = Order(title="tea", items=[Item(note="é")])
    assert requests.tolerant(Order.FromString)(request.SerializeToString()) == request


def test_a_handler_that_takes_raw_bytes_is_left_alone():
    assert requests.tolerant(None) is None
    assert requests.refusal(b"\x00\xff") is None


def test_nesting_deeper_than_protobuf_parses_gets_the_plain_message():
    deep = Item(note="x").SerializeToString()
    for _ in range(1500):  # deeper than Python's recursion limit
        deep = _length_delimited(3, deep)  # Item.child
    raw = _length_delimited(4, deep)  # Order.items
    parsed = requests.tolerant(Order.FromString)(raw)
    assert isinstance(parsed, requests.Unparsable)
    assert parsed.error.code == grpc.StatusCode.INVALID_ARGUMENT


def _length_delimited(number: int, payload: bytes) -> bytes:
    length, size = b"", len(payload)
    while True:
        length += bytes([size & 0x7F | (0x80 if size > 0x7F else 0)])
        size >>= 7
        if not size:
            return bytes([number << 3 | 2]) + length + payload

"""Who sees a suspended or deleted account, what its owner's leftover token
may still do, and how exported records are shaped."""

from __future__ import annotations

import datetime

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aviary.orders.v1 import orders_pb2
from aviary.posts.v1 import posts_pb2
from services.identity import servicer
from services.identity.store import UserRecord
from services.kit.server.errors import ApiError

CREATED = datetime.datetime(2026, 12, 4, tzinfo=datetime.timezone.utc)


def account(**status) -> UserRecord:
    return UserRecord(id=5, username="ana", display_name="Ana", bio="", avatar_url="", created_at=CREATED, **status)


class Context:
    """Just enough of a servicer context: the request's metadata."""

    def __init__(self, token: str | None = None) -> None:
        self._metadata = () if token is None else (("authorization", f"Bearer {token}"),)

    def invocation_metadata(self):
        return self._metadata


@pytest.fixture
def operator_token(monkeypatch):
    """A token the operators' (stubbed) key verifies as a moderator's."""
    scopes = frozenset({"moderation"})
    monkeypatch.setattr(servicer.operators, "verify", lambda token, key: servicer.operators.Operator(token, scopes))
    monkeypatch.setattr(servicer.operators, "_public_key", lambda: b"")
    return "ops"


def test_a_live_account_is_visible_to_anyone():
    assert servicer._visible(account(), Context())


def test_a_deleted_account_is_visible_to_nobody(operator_token):
    assert not servicer._visible(None, Context())
    assert not servicer._visible(account(deleted=True), Context())
    assert not servicer._visible(account(deleted=True), Context(operator_token))


def test_a_suspended_account_is_visible_to_operators_only(operator_token):
    assert not servicer._visible(account(suspended=True), Context())
    assert servicer._visible(account(suspended=True), Context(operator_token))


def test_a_token_not_signed_by_the_operators_key_does_not_make_an_operator(monkeypatch):
    operators_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = operators_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    monkeypatch.setattr(servicer.operators, "_public_key", lambda: pem)
    assert not servicer._visible(account(suspended=True), Context("not.an.operator"))


@pytest.mark.parametrize(
    "status, code",
    [({"deleted": True}, grpc.StatusCode.NOT_FOUND), ({"suspended": True}, grpc.StatusCode.PERMISSION_DENIED)],
)
def test_an_owners_leftover_token_can_do_nothing_with_a_gone_account(status, code):
    with pytest.raises(ApiError) as refused:
        servicer._own_user(account(**status), 5)
    assert refused.value.code == code
    assert servicer._own_user(account(), 5).id == 5


def test_a_wrong_password_names_the_field_it_came_in():
    error = servicer._wrong_password("password")
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.message.startswith("password:")
    (violations,) = error.details
    assert [v.field for v in violations.field_violations] == ["password"]


def test_an_exported_order_names_its_status_as_the_orders_api_does():
    order = orders_pb2.Order(
        id="9",
        status=orders_pb2.ORDER_STATUS_CONFIRMED,
        total_minor=2500,
        currency="EUR",
        items=[orders_pb2.OrderItem(product_id="3", seller_id="4", quantity=2, unit_price_minor=1250)],
    )
    exported = servicer._exported_order(order)
    assert (exported.id, exported.status, exported.total_minor, exported.currency) == ("9", "CONFIRMED", 2500, "EUR")
    assert [(line.product_id, line.quantity, line.unit_price_minor) for line in exported.lines] == [("3", 2, 1250)]


def test_an_exported_post_keeps_what_its_author_wrote():
    post = posts_pb2.Post(id="8", text="hi", reply_to_id="7", media_ids=["1"], product_ids=["2"])
    post.created_at.FromDatetime(CREATED)
    exported = servicer._exported_post(post)
    assert (exported.id, exported.text, exported.reply_to_id) == ("8", "hi", "7")
    assert list(exported.media_ids) == ["1"] and list(exported.product_ids) == ["2"]
    assert exported.create_time.ToDatetime(datetime.timezone.utc) == CREATED

"""The mesh's allow-list as built from the manifest and the protos (services/kit/mesh.py)."""

from __future__ import annotations

import pytest

from services.kit import manifest, mesh
from services.kit.manifest import ServiceEntry, check

PAYMENTS = "/aviary.payments.v1.PaymentsService"


def test_every_method_of_every_service_has_a_rule():
    rules = mesh.rules()
    for entry in manifest.services().values():
        for full_name in entry.grpc:
            for method in manifest.proto_service(full_name).methods:
                assert f"/{full_name}/{method.name}" in rules


def test_money_moves_only_for_orders_and_operator_methods_only_for_operators():
    rules = mesh.rules()
    for method in ("AuthorizePayment", "CapturePayment", "VoidPayment", "RefundPayment"):
        assert rules[f"{PAYMENTS}/{method}"] == {"orders"}
    assert rules["/aviary.orders.v1.OrdersService/OperatorAdvanceDelivery"] == {mesh.OPERATOR}
    for method in ("ListReports", "GetReport", "ResolveReport", "ReinstateAccount"):
        assert rules[f"/aviary.moderation.v1.ModerationService/{method}"] == {mesh.OPERATOR}
    assert rules["/aviary.identity.v1.IdentityService/SuspendAccount"] == {"moderation"}
    assert rules["/aviary.posts.v1.PostsService/RemovePost"] == {"moderation"}
    # Public methods (with an HTTP route): any identity of the mesh.
    assert rules["/aviary.identity.v1.IdentityService/GetUser"] is None


def test_refusals_need_an_identity_and_a_place_on_the_list():
    refund = f"{PAYMENTS}/RefundPayment"
    assert mesh.refusal(refund, "orders") is None
    denied = mesh.refusal(refund, "cart")
    assert denied is not None and denied.message == f"cart may not call {refund} (allowed: orders)"
    anonymous = mesh.refusal(refund, None)
    assert anonymous is not None and anonymous.code.name == "UNAUTHENTICATED"
    assert mesh.refusal("/grpc.health.v1.Health/Check", None) is None
    assert mesh.refusal("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "cart") is None
    assert mesh.refusal("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", None) is not None


def test_an_internal_entry_may_name_only_callers_or_operators():
    entries = {
        "payments": ServiceEntry(
            name="payments", port=1, id_block=1, grpc=("x",), callers=("orders",), internal={"RefundPayment": ("cart",)}
        ),
        "orders": ServiceEntry(name="orders", port=2, id_block=2, grpc=("y",)),
        "cart": ServiceEntry(name="cart", port=3, id_block=3, grpc=("z",)),
    }
    with pytest.raises(ValueError, match="internal.RefundPayment allows"):
        check(entries)

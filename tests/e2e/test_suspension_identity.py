"""Suspension as identity applies it, end to end through Envoy: suspended over
identity's internal gRPC with an operator token (as moderation does), then
log-in, refresh and the profile seen from the edge."""

from __future__ import annotations

import grpc
import pytest

from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from services.kit.server import operators
from services.kit.settings import load_settings
from tests.e2e.edge import PASSWORD, error_message, sign_up
from devstack.mesh_channels import open_channel

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def identity():
    with open_channel("identity") as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)


@pytest.fixture(scope="module")
def as_operator() -> tuple[tuple[str, str]]:
    token = operators.issue(load_settings().operator_private_key.read_bytes(), "e2e-operator", ["moderation"], 600)
    return (("authorization", f"Bearer {token}"),)


def log_in(http, username: str, password: str = PASSWORD):
    return http.post("/v1/sessions", json={"username": username, "password": password})


def refresh(http, token: str):
    return http.post("/v1/sessions:refresh", json={"refreshToken": token})


def suspend(identity, as_operator, user_id: str) -> identity_pb2.AccountStatus:
    return identity.SuspendAccount(
        identity_pb2.SuspendAccountRequest(user_id=user_id), metadata=as_operator, timeout=10
    )


def reinstate(identity, as_operator, user_id: str) -> identity_pb2.AccountStatus:
    return identity.ReinstateAccount(
        identity_pb2.ReinstateAccountRequest(user_id=user_id), metadata=as_operator, timeout=10
    )


def test_a_suspended_account_cannot_log_in_or_refresh_until_reinstated(http, identity, as_operator):
    account = sign_up(http, "sus")
    second = log_in(http, account.username)
    assert second.status_code == 200, second.text

    assert suspend(identity, as_operator, account.id).suspended

    refused = log_in(http, account.username)
    assert refused.status_code == 403, refused.text
    assert error_message(refused) == "account is suspended"
    # Only the right password learns why.
    assert log_in(http, account.username, "not the password at all").status_code == 401
    for token in [account.refresh_token, second.json()["refreshToken"]]:
        r = refresh(http, token)
        assert r.status_code == 403, r.text
        assert error_message(r) == "account is suspended"

    assert not reinstate(identity, as_operator, account.id).suspended
    # Every session ended with the suspension: their tokens stay dead.
    assert refresh(http, account.refresh_token).status_code == 401
    back = log_in(http, account.username)
    assert back.status_code == 200, back.text
    assert refresh(http, back.json()["refreshToken"]).status_code == 200


def test_suspending_and_reinstating_are_idempotent(http, identity, as_operator):
    account = sign_up(http, "sus")
    assert suspend(identity, as_operator, account.id).suspended
    assert suspend(identity, as_operator, account.id).suspended
    assert log_in(http, account.username).status_code == 403
    assert not reinstate(identity, as_operator, account.id).suspended
    assert not reinstate(identity, as_operator, account.id).suspended
    assert log_in(http, account.username).status_code == 200


def test_a_suspended_profile_is_not_found_except_by_operators(http, identity, as_operator):
    account, reader = sign_up(http, "sus"), sign_up(http, "rdr")
    suspend(identity, as_operator, account.id)

    assert http.get(f"/v1/users/{account.id}").status_code == 404
    assert http.get(f"/v1/users/{account.id}", headers=reader.auth).status_code == 404
    assert http.get("/v1/users:lookup", params={"username": account.username}).status_code == 404
    # The owner's leftover access token can change nothing.
    r = http.patch("/v1/users/me", json={"bio": "still here"}, headers=account.auth)
    assert r.status_code == 404, r.text
    seen = identity.GetUser(identity_pb2.GetUserRequest(user_id=account.id), metadata=as_operator, timeout=10)
    assert seen.username == account.username
    # Summaries still render where the account is already referenced.
    batch = identity.BatchGetUsers(identity_pb2.BatchGetUsersRequest(user_ids=[account.id]), timeout=10)
    assert [u.id for u in batch.users] == [account.id]

    reinstate(identity, as_operator, account.id)
    assert http.get(f"/v1/users/{account.id}").status_code == 200


def test_only_operators_suspend(http, identity):
    account = sign_up(http, "sus")
    as_user = (("authorization", f"Bearer {account.token}"),)
    with pytest.raises(grpc.RpcError) as refused:
        identity.SuspendAccount(identity_pb2.SuspendAccountRequest(user_id=account.id), metadata=as_user)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert log_in(http, account.username).status_code == 200

"""Operator tokens: issued with the operators' key, verified only as operator tokens."""

from __future__ import annotations

import time

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.kit.server import operators
from services.kit.server.errors import ApiError


def _pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


PRIVATE, PUBLIC = _pair()


def test_a_token_names_its_operator_and_scopes():
    who = operators.verify(operators.issue(PRIVATE, "ana", ["moderation"], 60), PUBLIC)
    assert who == operators.Operator("ana", frozenset({"moderation"}))


def test_expired_or_foreign_tokens_are_unauthenticated():
    expired = operators.issue(PRIVATE, "ana", ["moderation"], 60, now=time.time() - 3600)
    other_private, _ = _pair()
    foreign = operators.issue(other_private, "ana", ["moderation"], 60)
    for token in (expired, foreign, "not a token"):
        with pytest.raises(ApiError) as refused:
            operators.verify(token, PUBLIC)
        assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "name, scopes, ttl",
    [
        ("", ["moderation"], 60),
        ("ana", [], 60),
        ("ana", ["root"], 60),
        ("ana", ["moderation"], 0),
        ("ana", ["moderation"], 13 * 3600),
    ],
)
def test_issuing_refuses_what_an_operator_token_may_not_be(name, scopes, ttl):
    with pytest.raises(ValueError):
        operators.issue(PRIVATE, name, scopes, ttl)


def test_keys_are_made_once(tmp_path):
    private, public = tmp_path / "op.pem", tmp_path / "op.pub"
    operators.ensure_operator_keys(private, public)
    first = private.read_bytes()
    operators.ensure_operator_keys(private, public)
    assert private.read_bytes() == first and oct(private.stat().st_mode & 0o777) == "0o600"
    token = operators.issue(first, "ana", ["moderation"], 60)
    assert operators.verify(token, public.read_bytes()).name == "ana"

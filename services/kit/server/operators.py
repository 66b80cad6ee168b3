"""Operator credentials: short-lived RS256 tokens for people running the
platform, signed with the operators' own key, never identity's.

A user token cannot act as an operator (another key, another audience), and a
leaked identity key cannot mint one. Tokens carry the operator's name (`sub`)
and scopes (`scope`, e.g. "moderation"); operator methods are internal gRPC
(no HTTP route), so only the mesh and grpcurl reach them:

    .venv/bin/python -m services.kit.server.operators issue --name ana --scope moderation
    grpcurl -cacert .devstack/mesh/ca.pem -cert .devstack/mesh/operator.pem \\
        -key .devstack/mesh/operator-key.pem -servername moderation \\
        -H "authorization: Bearer $TOKEN" -d '{}' \\
        127.0.0.1:50069 aviary.moderation.v1.ModerationService/ListReports

The call also needs the mesh's `operator` certificate (services/kit/mesh.py).

Issuing needs the private key (AVIARY_OPERATOR_PRIVATE_KEY), which only
operators hold; services hold the public key (AVIARY_OPERATOR_PUBLIC_KEY).
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import grpc
import jwt

from services.kit import settings
from services.kit.server.auth import bearer_token, ensure_key_pair, keys_lock
from services.kit.server.errors import permission_denied, unauthenticated

ISSUER = "aviary-operators"
AUDIENCE = "aviary-operator"
SCOPES = ("moderation",)
MAX_TTL_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Operator:
    name: str
    scopes: frozenset[str]


def ensure_operator_keys(private_path: Path, public_path: Path) -> None:
    """Creates the operators' key pair once (the devstack does; production
    keeps the private key off the cluster)."""
    with keys_lock(private_path.parent):
        ensure_key_pair(private_path, public_path)


def issue(private_key_pem: bytes, name: str, scopes: list[str], ttl_seconds: int, now: float | None = None) -> str:
    """A signed operator token for `name` with these scopes."""
    unknown = set(scopes) - set(SCOPES)
    if not name or unknown or not scopes:
        raise ValueError(f"an operator token needs a name and scopes from {SCOPES} (unknown: {sorted(unknown)})")
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be 1..{MAX_TTL_SECONDS} seconds")
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": name,
        "scope": " ".join(sorted(scopes)),
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, private_key_pem, algorithm="RS256")


def verify(token: str, public_key_pem: bytes) -> Operator:
    """The operator a token names; UNAUTHENTICATED when it is not a valid operator token."""
    try:
        claims = jwt.decode(
            token,
            public_key_pem,
            algorithms=["RS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "sub", "scope"]},
        )
    except jwt.PyJWTError as exc:
        raise unauthenticated(f"an operator token is required ({exc})") from exc
    return Operator(name=claims["sub"], scopes=frozenset(claims["scope"].split()))


@cache
def _public_key() -> bytes:
    return settings.current().operator_public_key.read_bytes()


def operator(context: grpc.aio.ServicerContext, scope: str) -> Operator:
    """The operator calling, who must hold `scope`: UNAUTHENTICATED without an
    operator token (a user token included), PERMISSION_DENIED without the scope."""
    token = bearer_token(context)
    if not token:
        raise unauthenticated("an operator token is required (authorization: Bearer <operator token>)")
    who = verify(token, _public_key())
    if scope not in who.scopes:
        raise permission_denied(f"operator {who.name} lacks the {scope!r} scope")
    return who


def main() -> None:
    parser = argparse.ArgumentParser(description="Issues an operator token (needs the operators' private key).")
    sub = parser.add_subparsers(dest="command", required=True)
    issuing = sub.add_parser("issue", help="print a signed operator token")
    issuing.add_argument("--name", required=True, help="who the operator is (recorded on what they decide)")
    issuing.add_argument("--scope", action="append", choices=SCOPES, required=True, help="what the token may do")
    issuing.add_argument("--ttl", type=int, default=3600, help=f"seconds, at most {MAX_TTL_SECONDS} (default 3600)")
    args = parser.parse_args()
    keys = settings.current()
    print(issue(keys.operator_private_key.read_bytes(), args.name, args.scope, args.ttl))


if __name__ == "__main__":
    main()

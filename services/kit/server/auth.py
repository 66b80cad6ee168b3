"""Access tokens: RS256 JWTs issued by identity, verified at the edge by Envoy
and again by each service from the forwarded `authorization` header.

Services never trust a client-sent user id: the acting user is the `sub` of a
token whose signature checks out against the public key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.kit.settings import load_settings
from services.kit.server.errors import unauthenticated

ISSUER = "aviary-identity"
AUDIENCE = "aviary"
KEY_ID = "aviary-1"

# Account roles, carried in the token's `role` claim. Tokens issued before
# roles existed have no claim and count as ROLE_USER.
ROLE_USER = "USER"
ROLE_SELLER = "SELLER"
ROLES = (ROLE_USER, ROLE_SELLER)


def ensure_keys(directory: Path) -> None:
    """Creates the RSA key pair and the JWKS Envoy reads, once.

    Safe to call from several processes at once: an exclusive lock serializes
    them and every file appears atomically (written aside, then renamed)."""
    with keys_lock(directory):
        public = ensure_key_pair(directory / "jwt_private.pem", directory / "jwt_public.pem")
        numbers = public.public_numbers()
        jwk = {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": KEY_ID,
            "n": _b64uint(numbers.n),
            "e": _b64uint(numbers.e),
        }
        _write_atomically(directory / "jwks.json", json.dumps({"keys": [jwk]}).encode())


@contextlib.contextmanager
def keys_lock(directory: Path) -> Iterator[None]:
    """Serializes key creation in `directory` between processes."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_key_pair(private_path: Path, public_path: Path) -> rsa.RSAPublicKey:
    """An RS256 key pair: the private key made if missing (never replaced), the
    public key always written from it. Call under keys_lock."""
    if not private_path.exists():
        new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = new_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_atomically(private_path, pem, mode=0o600)
    key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{private_path} must hold an RSA private key (tokens are signed RS256)")
    public = key.public_key()
    _write_atomically(
        public_path, public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return public


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    # Unique per thread too: the devstack starts several services at once from one process.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def _b64uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenIssuer:
    def __init__(self, private_key_pem: bytes, ttl_seconds: int) -> None:
        self._key = private_key_pem
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_settings(cls, ttl_seconds: int | None = None) -> "TokenIssuer":
        """An issuer with this deployment's key; tokens live `ttl_seconds`,
        else AVIARY_JWT_TTL_SECONDS (tools that run longer pass their own)."""
        s = load_settings()
        return cls(s.jwt_private_key.read_bytes(), s.jwt_ttl_seconds if ttl_seconds is None else ttl_seconds)

    def issue(
        self, user_id: int, username: str, role: str = ROLE_USER, session_id: int | None = None
    ) -> tuple[str, int]:
        """Returns (token, expiry unix seconds). Tokens of a log-in carry its
        session in the `sid` claim; log-out and password changes revoke by it."""
        now = int(time.time())
        exp = now + self.ttl_seconds
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "username": username,
            "role": role,
            "iat": now,
            "exp": exp,
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": KEY_ID}), exp


@lru_cache(maxsize=1)
def _public_key() -> bytes:
    return load_settings().jwt_public_key.read_bytes()


# Verified tokens, so a client's repeated calls cost one signature check per
# token rather than one per call. Entries are dropped at the token's expiry.
_VERIFIED: dict[str, dict] = {}
_VERIFIED_MAX = 50_000


def verify_token(token: str) -> dict:
    claims = _VERIFIED.get(token)
    if claims is not None:
        if claims.get("exp", 0) > time.time():
            return claims
        del _VERIFIED[token]
    claims = _verify_signature(token)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[token] = claims
    return claims


def _verify_signature(token: str) -> dict:
    try:
        return jwt.decode(token, _public_key(), algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
    except jwt.ExpiredSignatureError as exc:
        raise unauthenticated("access token has expired; log in again") from exc
    except jwt.PyJWTError as exc:
        raise unauthenticated("access token is invalid") from exc


def bearer_token(context: grpc.aio.ServicerContext) -> str | None:
    """The caller's bearer token, None without one; UNAUTHENTICATED when the
    authorization header is not a bearer token."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):  # bytes only for -bin keys
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise unauthenticated("authorization header must be 'Bearer <token>'")
            return token.strip()
    return None


def caller_id(context: grpc.aio.ServicerContext) -> int:
    """The verified acting user, or UNAUTHENTICATED."""
    token = bearer_token(context)
    if token is None:
        raise unauthenticated("this call needs an access token (Authorization: Bearer <token>)")
    return int(verify_token(token)["sub"])


def optional_caller_id(context: grpc.aio.ServicerContext) -> int | None:
    """The verified acting user if a token was sent; a bad token is still rejected."""
    token = bearer_token(context)
    return None if token is None else int(verify_token(token)["sub"])


@dataclass(frozen=True)
class Caller:
    """The verified acting user, the role their token carries and the session
    it belongs to (None for tokens minted outside a log-in)."""

    user_id: int
    role: str
    session_id: int | None = None

    @property
    def is_seller(self) -> bool:
        return self.role == ROLE_SELLER


def caller(context: grpc.aio.ServicerContext) -> Caller:
    """The verified acting user with their role and session, or UNAUTHENTICATED."""
    claims = _required_claims(context)
    sid = claims.get("sid")
    return Caller(int(claims["sub"]), claims.get("role", ROLE_USER), None if sid is None else int(sid))


def _required_claims(context: grpc.aio.ServicerContext) -> dict:
    token = bearer_token(context)
    if token is None:
        raise unauthenticated("this call needs an access token (Authorization: Bearer <token>)")
    return verify_token(token)


@dataclass(frozen=True)
class StreamDeadline:
    """When a live stream must end: the expiry of the token it was opened with.

    Envoy and the services verify tokens without a lookup, so a stream may not
    outlive its token; the client reconnects with a fresh one. A revoked
    session's stream therefore ends at the latest when its token expires."""

    expires_at: float

    def wait_seconds(self, longest: float, now: float | None = None) -> float:
        """How long the stream may wait for its next event: at most `longest`,
        never past the expiry; UNAUTHENTICATED once the token has expired."""
        left = self.expires_at - (time.time() if now is None else now)
        if left <= 0:
            raise unauthenticated("access token has expired; reconnect with a fresh token")
        return min(longest, left)

    async def next_message(self, queue: asyncio.Queue, longest: float):
        """The queue's next message, or None when `longest` seconds passed
        first (a heartbeat is due); UNAUTHENTICATED once the token has expired."""
        # The wait first: an expired token must not leave a queue.get() never awaited.
        wait = self.wait_seconds(longest)
        try:
            return await asyncio.wait_for(queue.get(), timeout=wait)
        except asyncio.TimeoutError:
            return None


def stream_deadline(context: grpc.aio.ServicerContext) -> StreamDeadline:
    """The deadline of a live stream opened by the verified caller, or UNAUTHENTICATED."""
    return StreamDeadline(float(_required_claims(context)["exp"]))

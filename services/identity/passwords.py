"""Argon2id password hashing, off the event loop.

Hashing is deliberately slow and CPU-bound; argon2-cffi releases the GIL, so a
small thread pool runs several hashes in parallel without stalling requests.
"""
from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        # PasswordHasher's defaults are Argon2id with the RFC 9106 low-memory profile.
        self._hasher = hasher or PasswordHasher()
        self._pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="argon2")
        self._dummy_hash: str | None = None

    async def start(self) -> None:
        # A real hash with current parameters, so verifying against it for an
        # unknown user costs exactly what a real verification costs.
        self._dummy_hash = await self.hash("not-a-real-password-only-for-timing")

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._verify, password_hash, password)

    async def burn_dummy_verify(self, password: str) -> None:
        """Spends the time of one verification, so 'no such user' is not faster."""
        assert self._dummy_hash is not None, "call start() first"
        await self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

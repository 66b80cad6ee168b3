"""Argon2id password hashing on a bounded pool, off the event loop.

Hashing is deliberately slow and CPU-bound; argon2-cffi releases the GIL, so a
small thread pool runs several hashes in parallel without stalling requests.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from prometheus_client import Counter

from services.kit.server.errors import unavailable

HASHES_REFUSED = Counter("aviary_identity_hashes_refused_total", "Password hashes refused: the pool was full")


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None, *, workers: int, queue_max: int) -> None:
        # PasswordHasher's defaults are Argon2id with the RFC 9106 low-memory profile.
        self._hasher = hasher or PasswordHasher()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        # Hashes running or waiting for a thread; a flood beyond this is refused
        # at once instead of queueing without bound and starving other calls.
        self._capacity = workers + queue_max
        self._in_flight = 0
        self._lock = threading.Lock()
        self._dummy_hash: str | None = None

    async def start(self) -> None:
        # A real hash with current parameters, so verifying against it for an
        # unknown user costs exactly what a real verification costs.
        self._dummy_hash = await self.hash("not-a-real-password-only-for-timing")

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(self._verify, password_hash, password)

    async def burn_dummy_verify(self, password: str) -> None:
        """Spends the time of one verification, so 'no such user' is not faster."""
        assert self._dummy_hash is not None, "call start() first"
        await self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def _run(self, work, *args):
        with self._lock:
            if self._in_flight >= self._capacity:
                HASHES_REFUSED.inc()
                raise unavailable("password checks are busy right now; try again in a second")
            self._in_flight += 1
        # Released when the work ends, not when the caller stops waiting: a
        # cancelled call's hash still holds its thread until it finishes.
        try:
            job = self._pool.submit(work, *args)
        except RuntimeError:  # the pool is shut down: the process is stopping
            self._release(None)
            raise
        job.add_done_callback(self._release)
        return await asyncio.wrap_future(job)

    def _release(self, _job) -> None:
        with self._lock:
            self._in_flight -= 1

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

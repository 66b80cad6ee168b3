"""Password hashing on a bounded pool: a flood is refused at once, never queued without bound."""

import asyncio
import threading

import grpc
import pytest
from argon2 import PasswordHasher

from services.identity.passwords import Passwords
from services.kit.server.errors import ApiError


class GatedHasher(PasswordHasher):
    """Each hash waits until the test opens the gate."""

    def __init__(self):
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.gate = threading.Event()

    def hash(self, password, *, salt=None):
        self.gate.wait(10)
        return super().hash(password)


async def test_a_full_hashing_pool_refuses_at_once_instead_of_queueing():
    hasher = GatedHasher()
    passwords = Passwords(hasher, workers=1, queue_max=1)
    try:
        running = asyncio.ensure_future(passwords.hash("first one"))
        queued = asyncio.ensure_future(passwords.hash("second one"))
        await asyncio.sleep(0)
        with pytest.raises(ApiError) as err:
            await passwords.hash("third one")
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
        hasher.gate.set()
        assert all(h.startswith("$argon2id$") for h in await asyncio.gather(running, queued))
        # Capacity comes back once the work is done.
        assert (await passwords.hash("fourth one")).startswith("$argon2id$")
    finally:
        hasher.gate.set()
        passwords.stop()


async def test_a_cancelled_caller_keeps_its_place_until_its_hash_ends():
    hasher = GatedHasher()
    passwords = Passwords(hasher, workers=1, queue_max=0)
    try:
        running = asyncio.ensure_future(passwords.hash("first one"))
        await asyncio.sleep(0.05)
        running.cancel()
        # The thread is still hashing: the pool is still full.
        with pytest.raises(ApiError):
            await passwords.hash("second one")
    finally:
        hasher.gate.set()
        passwords.stop()

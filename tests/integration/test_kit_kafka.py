"""services.kit.kafka.ConsumerLoop on the real Kafka."""
from __future__ import annotations

import asyncio
import secrets
import threading

from services.kit.config import load_settings
from services.kit.kafka import ConsumerLoop, Producer, ensure_topics_async

TOPIC = "aviary.test.kit.v1"


async def _threads_gone(group: str) -> None:
    """Waits for the loop's polling thread to notice its stop flag (it polls every 200 ms)."""
    for _ in range(100):
        if not any(t.name == f"consumer-{group}" for t in threading.enumerate()):
            return
        await asyncio.sleep(0.05)


async def test_a_loop_runs_again_after_its_previous_run_ended():
    # The server's supervisor calls run() again after a crash (e.g. a commit
    # refused while Kafka restarts); the second run must consume, not stop at once.
    bootstrap = load_settings().kafka_bootstrap
    await ensure_topics_async(bootstrap, {TOPIC: 1})
    seen: list[bytes] = []

    async def handler(topic, key, value):
        seen.append(value)

    group = f"test-kit-{secrets.token_hex(4)}"
    loop = ConsumerLoop(bootstrap, group, [TOPIC], handler, auto_offset_reset="latest")
    first = asyncio.create_task(loop.run())
    await asyncio.sleep(1.0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    # Started at once, while the first run's thread may still be winding down:
    # that thread must stop (one poller per loop), the new one must consume.

    second = asyncio.create_task(loop.run())
    producer = Producer(bootstrap)
    marker = secrets.token_bytes(8)
    try:
        for _ in range(100):  # until the new run has joined the group and sees records
            await producer.send_all([(TOPIC, b"k", marker)])
            await asyncio.sleep(0.2)
            if marker in seen:
                break
            assert not second.done(), f"the second run ended: {second.exception() if second.done() else ''}"
        assert marker in seen
        pollers = [t for t in threading.enumerate() if t.name == f"consumer-{group}"]
        assert len(pollers) == 1, f"the first run's thread still polls: {pollers}"
    finally:
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        await producer.close()
        await _threads_gone(group)

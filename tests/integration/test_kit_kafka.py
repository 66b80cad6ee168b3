"""services.kit.events.consumer.ConsumerLoop on the real Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading

import pytest
from kafka import KafkaAdminClient

from services.kit.settings import load_settings
from services.kit.events import consumer as consumer_module
from services.kit.events.consumer import ConsumerLoop, fetch_settings
from services.kit.events.kafka import Producer, TopicPartition, ensure_topics_async

TOPIC = "aviary.test.kit.v1"


async def _threads_gone(group: str) -> None:
    """Waits for the loop's polling thread to notice its stop flag (it polls every 200 ms)."""
    for _ in range(100):
        if not any(t.name == f"consumer-{group}" for t in threading.enumerate()):
            return
        await asyncio.sleep(0.05)


async def _stopped(task: asyncio.Task, group: str) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await _threads_gone(group)


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
        await producer.close()
        await _stopped(second, group)


# -- parallel topics -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def _fresh_topics(*partitions: int):
    """Topics of their own for one test (the given partition counts), deleted afterwards."""
    bootstrap = load_settings().kafka_bootstrap
    names = [f"aviary.test.kit.lanes.{secrets.token_hex(4)}" for _ in partitions]
    await ensure_topics_async(bootstrap, dict(zip(names, partitions)))
    try:
        yield names
    finally:

        def delete() -> None:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            try:
                admin.delete_topics(names)
            finally:
                admin.close()

        await asyncio.get_running_loop().run_in_executor(None, delete)


async def _committed(group: str, topic: str) -> int | None:
    """The group's committed offset for partition 0 of the topic, if any."""

    def read() -> int | None:
        admin = KafkaAdminClient(bootstrap_servers=load_settings().kafka_bootstrap)
        try:
            offsets = admin.list_group_offsets(group).get(group, {})
        finally:
            admin.close()
        found = offsets.get(TopicPartition(topic, 0))
        return None if found is None or found.offset < 0 else found.offset

    return await asyncio.get_running_loop().run_in_executor(None, read)


async def _until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_parallel_records_overlap_across_keys_keep_key_order_and_commit_only_an_applied_prefix():
    bootstrap = load_settings().kafka_bootstrap
    async with _fresh_topics(1) as (topic,):
        producer = Producer(bootstrap)
        # Offsets 0-4 on one partition: a1 b1 a2 b2 a3.
        await producer.send_all(
            [
                (topic, key, value)
                for key, value in [(b"a", b"a1"), (b"b", b"b1"), (b"a", b"a2"), (b"b", b"b2"), (b"a", b"a3")]
            ]
        )
        await producer.close()
        applied: list[bytes] = []
        release_a1 = asyncio.Event()

        async def handler(_topic, key, value):
            if value == b"a1":
                await release_a1.wait()
            applied.append(value)

        group = f"test-kit-{secrets.token_hex(4)}"
        loop = ConsumerLoop(bootstrap, group, [topic], handler, parallel_topics=frozenset({topic}))
        running = asyncio.create_task(loop.run())
        try:

            async def b_done():
                return b"b2" in applied

            await _until(b_done, "key b applied while a1 is held")
            # Key a waits behind a1; key b went on without it. (A record can
            # be applied twice: a new consumer's first rebalance may give a1
            # up and replay the partition.)
            assert set(applied) == {b"b1", b"b2"}
            # Nothing is committed past a1 (offset 0) while it is unapplied,
            # however long the poller runs on.
            await asyncio.sleep(1.0)
            assert await _committed(group, topic) in (None, 0)

            release_a1.set()

            async def all_committed():
                return await _committed(group, topic) == 5

            await _until(all_committed, "every offset committed once a1 is applied")
            assert [v for v in applied if v.startswith(b"a")] == [b"a1", b"a2", b"a3"]
            assert set(applied) == {b"a1", b"a2", b"a3", b"b1", b"b2"}
        finally:
            release_a1.set()
            await _stopped(running, group)


async def test_a_stop_cancels_unfinished_parallel_records_and_the_next_run_replays_them_in_order():
    bootstrap = load_settings().kafka_bootstrap
    async with _fresh_topics(1) as (topic,):
        producer = Producer(bootstrap)
        await producer.send_all([(topic, key, value) for key, value in [(b"a", b"a1"), (b"b", b"b1"), (b"a", b"a2")]])
        await producer.close()
        applied: list[bytes] = []
        cancelled: list[bytes] = []
        hold = asyncio.Event()

        async def handler(_topic, key, value):
            if value == b"a1" and not hold.is_set():
                try:
                    await asyncio.Event().wait()  # until cancelled
                except asyncio.CancelledError:
                    cancelled.append(value)
                    raise
            applied.append(value)

        group = f"test-kit-{secrets.token_hex(4)}"
        loop = ConsumerLoop(bootstrap, group, [topic], handler, parallel_topics=frozenset({topic}))
        first = asyncio.create_task(loop.run())

        async def b1_done():
            return b"b1" in applied

        await _until(b1_done, "b1 applied while a1 hangs")
        await _stopped(first, group)
        # a1 was cut off (maybe once more by the first rebalance), a2 never
        # ran ahead of it, and the commit stayed before a1.
        assert cancelled and set(cancelled) == {b"a1"}
        assert set(applied) == {b"b1"}
        assert await _committed(group, topic) in (None, 0)

        hold.set()  # the next run's a1 goes through
        second = asyncio.create_task(loop.run())
        try:

            async def all_committed():
                return await _committed(group, topic) == 3

            await _until(all_committed, "the replay committed")
            # Replayed from offset 0: b1 once more (at least once), a1 before a2.
            assert [v for v in applied if v.startswith(b"a")] == [b"a1", b"a2"]
            assert applied.count(b"b1") >= 2
        finally:
            await _stopped(second, group)


async def test_a_consumer_replaced_for_not_rejoining_hands_its_partitions_over_whole(monkeypatch):
    # The watch for a consumer out of its group (kit/events/consumer.py) is told
    # so once while a1 is in flight: the old consumer's records are given up and
    # replayed by the new one from the commit, in key order, nothing lost.
    bootstrap = load_settings().kafka_bootstrap
    async with _fresh_topics(1) as (topic,):
        producer = Producer(bootstrap)
        await producer.send_all([(topic, key, value) for key, value in [(b"a", b"a1"), (b"b", b"b1"), (b"a", b"a2")]])
        applied: list[bytes] = []
        cancelled: list[bytes] = []
        release = asyncio.Event()

        async def handler(_topic, key, value):
            if value == b"a1" and not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    cancelled.append(value)
                    raise
            applied.append(value)

        replace = threading.Event()
        watch = consumer_module._Membership.lost

        def lost(self, consumer) -> bool:
            if replace.is_set():
                replace.clear()
                return True
            return watch(self, consumer)

        monkeypatch.setattr(consumer_module._Membership, "lost", lost)
        group = f"test-kit-{secrets.token_hex(4)}"
        loop = ConsumerLoop(bootstrap, group, [topic], handler, parallel_topics=frozenset({topic}))
        running = asyncio.create_task(loop.run())
        try:

            async def b1_done():
                return b"b1" in applied

            await _until(b1_done, "b1 applied while a1 is held")
            cancelled_before = len(cancelled)
            replace.set()

            async def replaced():
                return len(cancelled) > cancelled_before

            await _until(replaced, "the consumer replaced and a1 given up")
            release.set()
            await producer.send_all([(topic, b"a", b"a3")])

            async def all_committed():
                return await _committed(group, topic) == 4

            await _until(all_committed, "the new consumer committed every record")
            assert [v for v in applied if v.startswith(b"a")] == [b"a1", b"a2", b"a3"]
            assert applied.count(b"b1") >= 2  # replayed from the commit, which stayed before a1

            async def old_one_closed():
                return not any(t.name == f"consumer-close-{group}" for t in threading.enumerate())

            await _until(old_one_closed, "the replaced consumer closed")
            assert len([t for t in threading.enumerate() if t.name == f"consumer-{group}"]) == 1
        finally:
            release.set()
            await producer.close()
            await _stopped(running, group)


async def test_serial_topic_records_never_run_beside_parallel_ones():
    bootstrap = load_settings().kafka_bootstrap
    async with _fresh_topics(3, 1) as (parallel, serial):
        producer = Producer(bootstrap)
        records = [(parallel, f"k{i}".encode(), f"p{i}".encode()) for i in range(24)]
        for i in range(4):
            records.insert(i * 6 + 3, (serial, b"s", f"s{i}".encode()))
        await producer.send_all(records)
        await producer.close()
        running = {"parallel": 0, "serial": 0}
        most_parallel = 0
        overlaps: list[str] = []
        applied: list[bytes] = []

        async def handler(topic, key, value):
            nonlocal most_parallel
            kind = "parallel" if topic == parallel else "serial"
            other = "serial" if kind == "parallel" else "parallel"
            running[kind] += 1
            most_parallel = max(most_parallel, running["parallel"])
            try:
                for _ in range(5):
                    if running[other]:
                        overlaps.append(value.decode())
                    await asyncio.sleep(0.01)
            finally:
                running[kind] -= 1
            applied.append(value)

        group = f"test-kit-{secrets.token_hex(4)}"
        loop = ConsumerLoop(bootstrap, group, [parallel, serial], handler, parallel_topics=frozenset({parallel}))
        task = asyncio.create_task(loop.run())
        try:

            async def all_applied():
                return len(set(applied)) == 28

            await _until(all_applied, "every record applied")
        finally:
            await _stopped(task, group)
        assert overlaps == []
        assert most_parallel > 1, "parallel-topic records never ran side by side"
        assert [v for v in applied if v.startswith(b"s")] == [b"s0", b"s1", b"s2", b"s3"]


async def test_batch_topic_records_come_in_order_per_partition_beside_a_held_parallel_record():
    bootstrap = load_settings().kafka_bootstrap
    async with _fresh_topics(1, 1) as (parallel, batched):
        producer = Producer(bootstrap)
        await producer.send_all([(parallel, b"p", b"held")])
        await producer.send_all([(batched, f"k{i % 3}".encode(), f"b{i}".encode()) for i in range(10)])
        release = asyncio.Event()
        batches: list[list[bytes]] = []

        async def handler(_topic, _key, value):
            await release.wait()

        async def batch_handler(_topic, records):
            batches.append([value for _key, value in records])

        group = f"test-kit-{secrets.token_hex(4)}"
        loop = ConsumerLoop(
            bootstrap,
            group,
            [parallel, batched],
            handler,
            parallel_topics=frozenset({parallel}),
            batch_topics=frozenset({batched}),
            batch_handler=batch_handler,
        )
        task = asyncio.create_task(loop.run())
        try:

            async def first_ten():
                return sum(len(b) for b in batches) >= 10

            # Applied while the parallel record is still held.
            await _until(first_ten, "the batch topic's records applied")
            await producer.send_all([(batched, b"k0", b"b10")])

            async def all_committed():
                return await _committed(group, batched) == 11

            await _until(all_committed, "every batch committed")
            # In offset order (a rebalance may replay some: first arrivals count).
            first_arrivals = list(dict.fromkeys(v for batch in batches for v in batch))
            assert first_arrivals == [f"b{i}".encode() for i in range(11)]
            assert await _committed(group, parallel) in (None, 0)
        finally:
            release.set()
            await producer.close()
            await _stopped(task, group)


# -- gathering -------------------------------------------------------------------------


async def test_a_gathering_loop_gets_a_trickle_of_records_in_fewer_fuller_fetches_and_in_order():
    bootstrap = load_settings().kafka_bootstrap
    arrivals: list[tuple[float, bytes]] = []

    async def handler(topic, key, value):
        arrivals.append((asyncio.get_running_loop().time(), value))

    async with _fresh_topics(1) as (topic,):
        group = f"test-kit-gather-{secrets.token_hex(4)}"
        loop = ConsumerLoop(bootstrap, group, [topic], handler, gather_ms=500)
        task = asyncio.create_task(loop.run())
        producer = Producer(bootstrap)
        try:
            await producer.send_all([(topic, b"k", b"ready")])

            async def ready() -> bool:
                return bool(arrivals)

            await _until(ready, "the loop to consume its first record")
            # One record every 150 ms: answered at once, each would come alone.
            sent = [f"r{i}".encode() for i in range(12)]
            for value in sent:
                await producer.send_all([(topic, b"k", value)])
                await asyncio.sleep(0.15)

            async def all_seen() -> bool:
                return len(arrivals) == len(sent) + 1

            await _until(all_seen, "every record")
            assert [value for _, value in arrivals[1:]] == sent
            times = [at for at, _ in arrivals[1:]]
            fetches = 1 + sum(1 for a, b in zip(times, times[1:]) if b - a > 0.1)
            assert fetches <= 8, f"{len(sent)} records came in {fetches} separate fetches"
        finally:
            await producer.close()
            await _stopped(task, group)


def test_gathering_is_off_by_default_and_never_negative():
    assert fetch_settings(0) == {}
    assert fetch_settings(200) == {"fetch.min.bytes": 1 << 20, "fetch.wait.max.ms": 200}
    with pytest.raises(ValueError, match="gather_ms"):
        ConsumerLoop("127.0.0.1:9092", "g", ["t"], lambda *_: None, gather_ms=-1)

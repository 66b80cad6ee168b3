"""Kafka producer and consumer loop on kafka-python, kept off the event loop.

The consumer commits offsets only after the async handler has finished its
effect, so a crash replays (at-least-once); handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import Gauge, Histogram

log = logging.getLogger(__name__)

# Topic name -> partition count. Keys: author id (posts), follower id (graph),
# post id (engagement).
POSTS_TOPIC = "posts.events.v1"
GRAPH_TOPIC = "graph.events.v1"
ENGAGEMENT_TOPIC = "engagement.events.v1"
# Commerce: product id (catalog), buyer id (orders).
CATALOG_TOPIC = "catalog.events.v1"
ORDERS_TOPIC = "orders.events.v1"
TOPICS = {POSTS_TOPIC: 6, GRAPH_TOPIC: 6, ENGAGEMENT_TOPIC: 6, CATALOG_TOPIC: 6, ORDERS_TOPIC: 6}

LAG_REPORT_SECONDS = 5.0
# How long a stopping loop waits for its consumer to leave the group.
CLOSE_WAIT_SECONDS = 5.0
# Parallel topics: records taken from Kafka but not yet applied, at most (the
# poller stops fetching above this), and how often applied progress is committed.
MAX_UNAPPLIED_RECORDS = 400
PROGRESS_COMMIT_SECONDS = 0.2

CONSUMER_LAG = Gauge("aviary_kafka_consumer_lag", "Records behind the log end", ["group", "topic", "partition"])
HANDLE_SECONDS = Histogram("aviary_kafka_handle_seconds", "Time to apply one record", ["group", "topic"])


class Producer:
    """Async facade over KafkaProducer (acks=all, idempotent, ordered per key)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._producer: KafkaProducer | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-producer")

    def _ensure(self) -> KafkaProducer:
        # Created lazily: the constructor fails while Kafka is unreachable, and
        # callers (outbox relays) simply retry later.
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self._bootstrap,
                acks="all",
                linger_ms=2,
                retries=5,
                max_in_flight_requests_per_connection=1,
                request_timeout_ms=10_000,
                max_block_ms=10_000,
            )
        return self._producer

    def _send_all(self, records: list[tuple[str, bytes, bytes]]) -> None:
        producer = self._ensure()
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in records]
        producer.flush(timeout=15)
        for fut in futures:
            fut.get(timeout=0)  # raises if that record failed

    async def send_all(self, records: list[tuple[str, bytes, bytes]]) -> None:
        """Sends every record and waits for all acks; raises if any failed."""
        if records:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._send_all, records)

    async def close(self) -> None:
        if self._producer is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._producer.close, 5)


Handler = Callable[[str, bytes | None, bytes], Awaitable[None]]


class ConsumerLoop:
    """Polls in a thread; applies records in order on the event loop; commits after."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: list[str],
        handler: Handler,
        *,
        auto_offset_reset: str = "earliest",
        parallel_topics: frozenset[str] = frozenset(),
        parallel_limit: int = 16,
    ) -> None:
        self.bootstrap = bootstrap
        self.group = group
        # Where a group with no committed offset starts: "earliest" for work
        # queues (nothing skipped), "latest" for broadcast-style listeners.
        self.auto_offset_reset = auto_offset_reset
        self.topics = topics
        # Records of these topics are applied side by side, up to
        # `parallel_limit` at once, except that records with the same
        # partition and key are applied one after another in offset order (so
        # per-key order holds). Their handler must tolerate being cancelled
        # half-way: on a revocation or a stop, unfinished records are
        # cancelled and replayed. Records of the other topics are applied one
        # partition at a time, never beside anything.
        self.parallel_topics = parallel_topics
        self.parallel_limit = parallel_limit
        self.handler = handler
        self._stop = threading.Event()
        self._next_lag_report = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        thread_done = loop.create_future()
        # A stop flag of this run's own: after a crash (e.g. a commit refused
        # while Kafka restarts) the server's supervisor calls run() again, and
        # the previous run's flag is set by then (reusing it would end every
        # later run at once); a previous thread still winding down keeps
        # seeing its own, set, flag.
        stop = self._stop = threading.Event()

        def target() -> None:
            try:
                self._poll_forever(loop, stop)
                loop.call_soon_threadsafe(_resolve, thread_done, None)
            except BaseException as exc:  # surfaced to the supervisor
                loop.call_soon_threadsafe(_resolve, thread_done, exc)

        threading.Thread(target=target, name=f"consumer-{self.group}", daemon=True).start()
        try:
            # Shielded: cancelling this run must not cancel the thread's future,
            # which the wait below still needs.
            await asyncio.shield(thread_done)
        finally:
            stop.set()
            if not thread_done.done():
                # On shutdown, give the thread the moment it needs to notice the
                # flag and close its consumer: close() leaves the group, so the
                # other members take over this member's partitions at once. A
                # daemon thread cut off by the process exiting leaves nothing,
                # and the partitions sit unconsumed until the session times out.
                await asyncio.wait({thread_done}, timeout=CLOSE_WAIT_SECONDS)

    def _poll_forever(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        lanes = None
        if self.parallel_topics:
            lanes = _KeyedLanes(loop, lambda topic, record: self._apply(topic, record, stop), self.parallel_limit)
        consumer = self._connect(stop, lanes)
        next_commit = 0.0
        try:
            while not stop.is_set():
                batches = consumer.poll(timeout_ms=200, max_records=200)
                if time.monotonic() >= self._next_lag_report:
                    # end_offsets is a broker round trip: report every few seconds, not per
                    # batch; and on idle polls too, or a caught-up consumer keeps its last lag.
                    self._report_lag(consumer)
                    self._next_lag_report = time.monotonic() + LAG_REPORT_SECONDS
                if lanes is not None and time.monotonic() >= next_commit:
                    _commit_progress(consumer, lanes)
                    next_commit = time.monotonic() + PROGRESS_COMMIT_SECONDS
                serial = {tp: records for tp, records in batches.items() if tp.topic not in self.parallel_topics}
                if serial and lanes is not None:
                    # Nothing of a serial topic runs beside a parallel record.
                    lanes.wait_at_most(0, stop)
                    if stop.is_set():
                        break
                    _commit_progress(consumer, lanes)
                for tp, records in serial.items():
                    self._apply_serially(loop, tp.topic, records, stop)
                    _commit(consumer, {tp: records[-1].offset + 1})
                if lanes is not None:  # there are parallel topics
                    for tp, records in batches.items():
                        if tp.topic in self.parallel_topics:
                            lanes.submit(tp, records)
                    lanes.wait_at_most(MAX_UNAPPLIED_RECORDS, stop)
        finally:
            if lanes is not None:
                # Unfinished records are cancelled, not awaited: they are
                # replayed from the last commit, which still counts what finished.
                progress = lanes.take_progress()
                lanes.settle(None, wait_s=0.0)
                try:
                    _commit(consumer, progress, timeout_ms=int(CLOSE_WAIT_SECONDS * 1000 / 2))
                except Exception:
                    log.warning("could not commit applied progress on the way out; it is replayed", exc_info=True)
            consumer.close(autocommit=False)

    def _connect(self, stop: threading.Event, lanes: "_KeyedLanes | None") -> KafkaConsumer:
        while not stop.is_set():
            try:
                consumer = KafkaConsumer(
                    bootstrap_servers=self.bootstrap,
                    group_id=self.group,
                    enable_auto_commit=False,
                    auto_offset_reset=self.auto_offset_reset,
                    max_poll_interval_ms=600_000,
                    session_timeout_ms=10_000,
                    heartbeat_interval_ms=3_000,
                )
                # Join only once every topic's partitions are known: a member
                # that joins before then is assigned nothing, and was seen to
                # sit in the loop with no partitions while the group stayed empty.
                unknown = [t for t in self.topics if not consumer.partitions_for_topic(t)]
                if unknown:
                    consumer.close(autocommit=False)
                    log.warning("topics have no partition metadata yet; retrying", extra={"topics": unknown})
                    time.sleep(2)
                    continue
                listener = None
                if lanes is not None:
                    listener = _Rebalances(lanes)
                    listener.consumer = consumer
                consumer.subscribe(self.topics, listener=listener)
                return consumer
            except Exception:
                log.warning("kafka unreachable; retrying", exc_info=True)
                time.sleep(2)
        raise RuntimeError("stopped")

    def _apply_serially(
        self, loop: asyncio.AbstractEventLoop, topic: str, records: list, stop: threading.Event
    ) -> None:
        """Applies one partition's records in order on the event loop;
        returns when all are applied."""

        async def apply_in_order() -> None:
            for record in records:
                await self._apply(topic, record, stop)

        asyncio.run_coroutine_threadsafe(apply_in_order(), loop).result()

    async def _apply(self, topic: str, record, stop: threading.Event) -> None:
        """Applies one record, retrying until it succeeds: never skipped silently."""
        delay = 0.2
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await self.handler(topic, record.key, record.value)
                HANDLE_SECONDS.labels(self.group, topic).observe(time.perf_counter() - started)
                return
            except PoisonRecord as exc:
                log.error(
                    "skipping unreadable record", extra={"topic": topic, "offset": record.offset, "why": str(exc)}
                )
                return
            except Exception:
                log.warning("handler failed; retrying", extra={"topic": topic, "offset": record.offset}, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise RuntimeError("stopped before the record was applied")

    def _report_lag(self, consumer: KafkaConsumer) -> None:
        try:
            assigned = consumer.assignment()
            ends = consumer.end_offsets(list(assigned))
            for tp in assigned:
                position = consumer.position(tp)
                CONSUMER_LAG.labels(self.group, tp.topic, tp.partition).set(max(0, ends.get(tp, position) - position))
        except Exception:
            pass


class _Abandoned(Exception):
    """A record not applied because an earlier record of its lane was not."""


class _KeyedLanes:
    """Applies records of parallel topics on the event loop: records with
    the same partition and key one after another in offset order, all
    others side by side, at most `limit` at once. Knows, per partition, the
    offset below which every record is applied: the only offset that may be
    committed. Fed from the polling thread."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, apply: Callable[[str, object], Awaitable[None]], limit: int
    ) -> None:
        self._loop = loop
        self._apply = apply
        # Bound to the event loop at its first use (Python 3.10+), not here.
        self._slots = asyncio.Semaphore(limit)
        self._changed = threading.Condition()
        # Guarded by _changed: per partition, its offsets not yet committable,
        # in order, each -> None while its record runs, True once applied,
        # False when given up (cancelled, or its lane broke off); and the next
        # offset to commit, once it advanced.
        self._unfinished: dict[TopicPartition, dict[int, bool | None]] = {}
        self._progress: dict[TopicPartition, int] = {}
        self._in_flight = 0
        # Event loop only: each lane's latest task, and every live task.
        self._tails: dict[tuple[TopicPartition, bytes | None], asyncio.Task] = {}
        self._tasks: dict[asyncio.Task, TopicPartition] = {}

    # -- polling thread ----------------------------------------------------------

    def submit(self, tp: TopicPartition, records: list) -> None:
        with self._changed:
            unfinished = self._unfinished.setdefault(tp, {})
            for record in records:
                unfinished[record.offset] = None
            self._in_flight += len(records)
        self._loop.call_soon_threadsafe(self._start, tp, records)

    def wait_at_most(self, in_flight: int, stop: threading.Event) -> None:
        """Blocks until no more than `in_flight` records are unfinished (or a stop)."""
        with self._changed:
            while self._in_flight > in_flight and not stop.is_set():
                self._changed.wait(0.2)

    def take_progress(self) -> dict[TopicPartition, int]:
        """The commit offsets that advanced since the last call."""
        with self._changed:
            progress, self._progress = self._progress, {}
        return progress

    def restore_progress(self, progress: dict[TopicPartition, int]) -> None:
        """Takes back progress that could not be committed, to commit later."""
        with self._changed:
            for tp, offset in progress.items():
                self._progress[tp] = max(self._progress.get(tp, 0), offset)

    def settle(self, tps: set[TopicPartition] | None, wait_s: float) -> None:
        """Gives the records of these partitions (all: None) up to wait_s to
        finish, then cancels the rest and waits for them to end: those are
        given up, to be replayed. From any thread but the event loop's."""
        try:
            done = asyncio.run_coroutine_threadsafe(self._settle(tps, wait_s), self._loop)
            done.result(timeout=wait_s + CLOSE_WAIT_SECONDS)
        except Exception:
            # The event loop is gone or stuck: nothing of ours runs on it then.
            log.warning("could not settle in-flight records", exc_info=True)

    def reassigned(self, assigned: set[TopicPartition]) -> dict[TopicPartition, int]:
        """After a rebalance: forgets the partitions no longer held (their
        new owner replays from the last commit), and returns, for each held
        one that gave records up, the offset its consumption must go back to."""
        rewind: dict[TopicPartition, int] = {}
        with self._changed:
            for tp in set(self._unfinished) | set(self._progress):
                states = self._unfinished.get(tp, {})
                if tp not in assigned:
                    self._in_flight -= sum(1 for state in states.values() if state is None)
                    self._unfinished.pop(tp, None)
                    self._progress.pop(tp, None)
                elif False in states.values() and None not in states.values():
                    # Everything before the first entry is applied (and in progress).
                    rewind[tp] = next(iter(states))
                    del self._unfinished[tp]
            self._changed.notify_all()
        return rewind

    # -- event loop -------------------------------------------------------------

    def _start(self, tp: TopicPartition, records: list) -> None:
        for record in records:
            lane = (tp, record.key)
            task = asyncio.ensure_future(self._run(tp.topic, record, self._tails.get(lane)))
            self._tails[lane] = task
            self._tasks[task] = tp
            task.add_done_callback(functools.partial(self._finished, lane, tp, record.offset))

    async def _run(self, topic: str, record, before: asyncio.Task | None) -> None:
        if before is not None:
            await asyncio.wait({before})
            if before.cancelled() or before.exception() is not None:
                # Applying this now would put it before its predecessor,
                # which is replayed later: it waits for that replay instead.
                raise _Abandoned()
        async with self._slots:
            await self._apply(topic, record)

    def _finished(self, lane, tp: TopicPartition, offset: int, task: asyncio.Task) -> None:
        self._tasks.pop(task, None)
        if self._tails.get(lane) is task:
            del self._tails[lane]
        applied = not task.cancelled() and task.exception() is None
        with self._changed:
            unfinished = self._unfinished.get(tp)
            if unfinished is None or offset not in unfinished:
                return  # forgotten: its partition went elsewhere, or is replayed
            # One given up holds its partition's progress where it is until
            # the partition is forgotten (and replayed by whoever owns it next).
            unfinished[offset] = applied
            while unfinished:
                first = next(iter(unfinished))
                if unfinished[first] is not True:
                    break
                del unfinished[first]
                self._progress[tp] = first + 1
            self._in_flight -= 1
            self._changed.notify_all()

    async def _settle(self, tps: set[TopicPartition] | None, wait_s: float) -> None:
        tasks = [t for t, tp in self._tasks.items() if tps is None or tp in tps]
        if tasks and wait_s > 0:
            await asyncio.wait(tasks, timeout=wait_s)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


class _Rebalances(ConsumerRebalanceListener):
    """Keeps a rebalance from splitting a key between two members: a revoked
    partition's in-flight records are cancelled before anyone else can take
    the partition over, and replayed: by the new owner from the last commit,
    or, where this member keeps the partition (kafka-python then keeps its
    fetch position), by going back to the first of them. Cancelled rather
    than given time to finish: this runs inside the poll that drives the
    rebalance, and a listener that outlasts that poll's timeout leaves the
    join to a later poll, which kafka-python 3.0.12 can miss (a member
    that waited 3 s here for a record never received its assignment). Called
    inside the poller's poll(), so nothing new is submitted meanwhile."""

    def __init__(self, lanes: _KeyedLanes) -> None:
        self._lanes = lanes
        self.consumer: KafkaConsumer | None = None

    def on_partitions_revoked(self, revoked) -> None:
        if revoked:
            self._lanes.settle(set(revoked), wait_s=0.0)

    def on_partitions_assigned(self, assigned) -> None:
        consumer = self.consumer
        assert consumer is not None, "set before the consumer first polls"
        # The whole assignment, not just what was added (cooperative protocols pass only that).
        for tp, offset in self._lanes.reassigned(set(consumer.assignment())).items():
            log.info(
                "replaying records given up in a rebalance",
                extra={"topic": tp.topic, "partition": tp.partition, "offset": offset},
            )
            consumer.seek(tp, offset)


def _offsets(offsets: dict[TopicPartition, int]) -> dict[TopicPartition, OffsetAndMetadata]:
    return {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}


def _commit(consumer: KafkaConsumer, offsets: dict[TopicPartition, int], timeout_ms: int | None = None) -> None:
    if offsets:
        consumer.commit(_offsets(offsets), timeout_ms=timeout_ms)


def _commit_progress(consumer: KafkaConsumer, lanes: _KeyedLanes) -> None:
    """Commits applied progress without waiting. A blocking commit while a
    rebalance is under way retries until it times out, and holds up the very
    poll() that would finish the rebalance."""
    progress = lanes.take_progress()
    if not progress:
        return

    def done(_offsets, result) -> None:  # called inside a later poll()
        if isinstance(result, Exception):
            # Committed with later progress (what this member no longer holds
            # is dropped at the rebalance; committing it anyway only replays more).
            lanes.restore_progress(progress)

    consumer.commit_async(_offsets(progress), callback=done)


class PoisonRecord(Exception):
    """Raised by a handler for a record that can never be applied (undecodable)."""


def _resolve(fut: asyncio.Future, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)


def ensure_topics(bootstrap: str, topics: dict[str, int] = TOPICS) -> None:
    """Creates missing topics (replication 1 locally). Blocking; for tools."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: fine
    finally:
        admin.close()


async def ensure_topics_async(bootstrap: str, topics: dict[str, int] = TOPICS) -> None:
    """ensure_topics off the event loop (the admin client blocks)."""
    await asyncio.get_running_loop().run_in_executor(None, ensure_topics, bootstrap, topics)


async def relay_ensuring_topic(relay: Callable[[], Awaitable[None]], bootstrap: str, topic: str) -> None:
    """Runs an outbox relay forever while, side by side, creating its topic
    if missing. Side by side, not first: with Kafka down at start-up, topic
    creation can hang for half a minute, and the relay must keep trying (and
    publish the moment Kafka is back) meanwhile."""

    async def ensure() -> None:
        try:
            await ensure_topics_async(bootstrap, {topic: TOPICS[topic]})
        except Exception as exc:
            log.warning(
                "could not ensure the Kafka topic; the relay keeps retrying", extra={"topic": topic, "error": repr(exc)}
            )

    creating = asyncio.create_task(ensure())
    try:
        await relay()
    finally:
        creating.cancel()


__all__ = [
    "Producer",
    "ConsumerLoop",
    "PoisonRecord",
    "ensure_topics",
    "ensure_topics_async",
    "relay_ensuring_topic",
    "TopicPartition",
    "TOPICS",
    "POSTS_TOPIC",
    "GRAPH_TOPIC",
    "ENGAGEMENT_TOPIC",
]

"""Kafka consumer loop on kafka-python: polls in a thread, applies records on
the event loop, commits offsets only after the handler has finished its
effect, so a crash replays (at-least-once); handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Awaitable, Callable

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import Gauge, Histogram

from services.kit import tracing
from services.kit.events.lanes import CLOSE_WAIT_SECONDS, KeyedLanes

log = logging.getLogger(__name__)

LAG_REPORT_SECONDS = 5.0
# Parallel topics: records taken from Kafka but not yet applied, at most (the
# poller stops fetching above this), and how often applied progress is committed.
MAX_UNAPPLIED_RECORDS = 400
# Batch topics: records taken and not yet applied, at most (counted apart
# from the parallel topics', so posts are held up only by a backlog this deep).
MAX_UNAPPLIED_BATCHED = 4000
PROGRESS_COMMIT_SECONDS = 0.2

CONSUMER_LAG = Gauge("aviary_kafka_consumer_lag", "Records behind the log end", ["group", "topic", "partition"])
HANDLE_SECONDS = Histogram("aviary_kafka_handle_seconds", "Time to apply one record", ["group", "topic"])


Handler = Callable[[str, bytes | None, bytes], Awaitable[None]]
# A batch topic's records, as (key, value), of one partition in offset order.
BatchHandler = Callable[[str, list[tuple[bytes | None, bytes]]], Awaitable[None]]


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
        batch_topics: frozenset[str] = frozenset(),
        batch_handler: BatchHandler | None = None,
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
        # cancelled and replayed. Records of topics neither parallel nor batch
        # are applied one partition at a time, never beside anything.
        self.parallel_topics = parallel_topics
        self.parallel_limit = parallel_limit
        # Records of these topics go to `batch_handler` instead, beside the
        # parallel topics' records: what one poll brought of a partition in
        # one call, after that partition's previous call (see KeyedLanes). The
        # call is retried whole until it succeeds, so it must be idempotent.
        self.batch_topics = batch_topics
        self.batch_handler = batch_handler
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
        laned = self.parallel_topics | self.batch_topics
        if laned:
            lanes = KeyedLanes(
                loop,
                lambda topic, record: self._apply(topic, record, stop),
                self.parallel_limit,
                apply_batch=lambda topic, records: self._apply_batch(topic, records, stop),
                batch_topics=self.batch_topics,
            )
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
                serial = {tp: records for tp, records in batches.items() if tp.topic not in laned}
                if serial and lanes is not None:
                    # Nothing of a serial topic runs beside a parallel record or a batch.
                    lanes.wait_at_most(0, stop, batched_too=True)
                    if stop.is_set():
                        break
                    _commit_progress(consumer, lanes)
                for tp, records in serial.items():
                    self._apply_serially(loop, tp.topic, records, stop)
                    _commit(consumer, {tp: records[-1].offset + 1})
                if lanes is not None:  # there are parallel or batch topics
                    for tp, records in batches.items():
                        if tp.topic in laned:
                            lanes.submit(tp, records)
                    lanes.wait_at_most(MAX_UNAPPLIED_RECORDS, stop, batched=MAX_UNAPPLIED_BATCHED)
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

    def _connect(self, stop: threading.Event, lanes: "KeyedLanes | None") -> KafkaConsumer:
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
                with tracing.consuming(self.group, topic, record.headers):
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

    async def _apply_batch(self, topic: str, records: list, stop: threading.Event) -> None:
        """Applies one partition's batch, retrying it whole until it succeeds."""
        assert self.batch_handler is not None, "batch topics need a batch handler"
        pairs = [(record.key, record.value) for record in records]
        delay = 0.2
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await self.batch_handler(topic, pairs)
                HANDLE_SECONDS.labels(self.group, topic).observe((time.perf_counter() - started) / len(records))
                return
            except PoisonRecord as exc:
                log.error(
                    "skipping a batch that can never be applied",
                    extra={"topic": topic, "offset": records[0].offset, "records": len(records), "why": str(exc)},
                )
                return
            except Exception:
                log.warning(
                    "batch handler failed; retrying", extra={"topic": topic, "offset": records[0].offset}, exc_info=True
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise RuntimeError("stopped before the batch was applied")

    def _report_lag(self, consumer: KafkaConsumer) -> None:
        try:
            assigned = consumer.assignment()
            ends = consumer.end_offsets(list(assigned))
            for tp in assigned:
                position = consumer.position(tp)
                CONSUMER_LAG.labels(self.group, tp.topic, tp.partition).set(max(0, ends.get(tp, position) - position))
        except Exception:
            pass


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

    def __init__(self, lanes: KeyedLanes) -> None:
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


def _commit_progress(consumer: KafkaConsumer, lanes: KeyedLanes) -> None:
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

"""Kafka consumer loop on librdkafka (confluent-kafka): polls in a thread,
applies records on the event loop, commits offsets only after the handler has
finished its effect, so a crash replays (at-least-once); handlers must be
idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Awaitable, Callable, NamedTuple, cast

import confluent_kafka
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException
from prometheus_client import Gauge, Histogram

from services.kit import tracing
from services.kit.events.kafka import LIBRDKAFKA_LOG, TopicPartition
from services.kit.events.lanes import CLOSE_WAIT_SECONDS, KeyedLanes

log = logging.getLogger(__name__)

LAG_REPORT_SECONDS = 5.0
# Parallel topics: records taken from Kafka but not yet applied, at most (the
# poller stops fetching above this).
MAX_UNAPPLIED_RECORDS = 400
# Batch topics: records taken and not yet applied, at most (counted apart
# from the parallel topics', so posts are held up only by a backlog this deep).
MAX_UNAPPLIED_BATCHED = 4000
# How often applied progress is committed. A commit costs the broker and the
# client about as much as a record applied; what a crash replays (at most
# this much, to idempotent handlers) costs nothing in normal running.
PROGRESS_COMMIT_SECONDS = 1.0
# How long the broker may hold a fetch to gather records, for consumers whose
# readers can wait (`gather_ms`): search results and counts a moment behind,
# aggregates (trends, recommendations) half a second, as long as an idle fetch.
# Records of different partitions gathered into one fetch come in partition
# order, not the order they were written in.
GATHER_SOON_MS = 200
GATHER_LATER_MS = 500
# A fetch held for `gather_ms` is answered early only once this much is waiting.
_GATHER_BYTES = 1 << 20
# A consumer out of its group this long (no member id) is replaced by a new
# one. After a session timeout librdkafka sometimes never rejoins although it
# is polled (seen after Kafka restarts: every poller thread in poll(), the
# group empty for minutes); a rejoin normally takes seconds, and an outage
# counts too (Kafka restarting takes 20 to 30 s here).
REJOIN_WAIT_SECONDS = 45.0

CONSUMER_LAG = Gauge("aviary_kafka_consumer_lag", "Records behind the log end", ["group", "topic", "partition"])
HANDLE_SECONDS = Histogram("aviary_kafka_handle_seconds", "Time to apply one record", ["group", "topic"])


class Record(NamedTuple):
    """One record as the handlers and lanes see it."""

    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None


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
        gather_ms: int = 0,
    ) -> None:
        if gather_ms < 0:
            raise ValueError(f"gather_ms must be 0 or more, not {gather_ms}")
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
        # 0: the broker answers a fetch with the first record there is. More:
        # it holds the fetch up to this long to gather others, so a stream of
        # records arrives in fewer, fuller fetches; each fetch wakes the
        # broker, librdkafka's threads and the event loop.
        self.gather_ms = gather_ms
        self._stop = threading.Event()
        self._next_lag_report = 0.0
        # When every assigned partition was first seen fetched (where it
        # starts, committed or reset, is settled): no record written after
        # this moment (time.monotonic()) is skipped by this process.
        self.reading_since: float | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        thread_done = loop.create_future()
        # A stop flag of this run's own: after a crash (e.g. a commit refused
        # while Kafka restarts) the server's supervisor calls run() again, and
        # the previous run's flag is set by then (reusing it would end every
        # later run at once); a previous thread still winding down keeps
        # seeing its own, set, flag.
        stop = self._stop = threading.Event()
        # A run after a crash may start where the reset puts it again.
        self.reading_since = None

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
        # Per partition, the offset after the last record polled: where
        # consumption resumes when a rebalance gives the partition back.
        positions: dict[TopicPartition, int] = {}
        serial_applied = _SerialProgress()
        consumer, rebalances = self._connect(stop, lanes, positions, serial_applied)
        # The consumer to close on the way out; None while a replacement joins.
        held: Consumer | None = consumer
        membership = _Membership()
        next_commit = 0.0
        try:
            while not stop.is_set():
                if membership.lost(consumer):
                    log.warning(
                        "consumer out of its group and not rejoining; starting a new one",
                        extra={"group": self.group, "seconds": REJOIN_WAIT_SECONDS},
                    )
                    # From here the old consumer's callbacks touch nothing shared.
                    rebalances.detach()
                    _forget_assignment(lanes, positions, serial_applied)
                    _close_aside(consumer, self.group)
                    held = None
                    consumer, rebalances = self._connect(stop, lanes, positions, serial_applied)
                    held = consumer
                    membership = _Membership()
                batches = _poll(consumer, positions)
                if self.reading_since is None:
                    self._note_reading(consumer)
                if time.monotonic() >= self._next_lag_report:
                    # Report every few seconds, not per batch; and on idle polls too,
                    # or a caught-up consumer keeps its last lag.
                    self._report_lag(consumer, positions)
                    self._next_lag_report = time.monotonic() + LAG_REPORT_SECONDS
                if time.monotonic() >= next_commit:
                    _commit_progress(consumer, lanes, serial_applied)
                    next_commit = time.monotonic() + PROGRESS_COMMIT_SECONDS
                serial = {tp: records for tp, records in batches.items() if tp.topic not in laned}
                if serial and lanes is not None:
                    # Nothing of a serial topic runs beside a parallel record or a batch.
                    lanes.wait_at_most(0, stop, batched_too=True)
                    if stop.is_set():
                        break
                    _commit_progress(consumer, lanes, serial_applied)
                for tp, records in serial.items():
                    self._apply_serially(loop, tp.topic, records, stop)
                    serial_applied.offsets[tp] = records[-1].offset + 1
                if lanes is not None:  # there are parallel or batch topics
                    for tp, records in batches.items():
                        if tp.topic in laned:
                            lanes.submit(tp, records)
                    lanes.wait_at_most(MAX_UNAPPLIED_RECORDS, stop, batched=MAX_UNAPPLIED_BATCHED)
        finally:
            progress = serial_applied.take()
            if lanes is not None:
                # Unfinished records are cancelled, not awaited: they are
                # replayed from the last commit, which still counts what finished.
                progress.update(lanes.take_progress())
                lanes.settle(None, wait_s=0.0)
            if held is not None:
                try:
                    _commit(held, progress, asynchronous=False)
                except Exception:
                    log.warning("could not commit applied progress on the way out; it is replayed", exc_info=True)
                held.close()

    def _connect(
        self,
        stop: threading.Event,
        lanes: "KeyedLanes | None",
        positions: dict[TopicPartition, int],
        serial_applied: "_SerialProgress",
    ) -> tuple[Consumer, "_Rebalances"]:
        laned = self.parallel_topics | self.batch_topics
        while not stop.is_set():
            rebalances = _Rebalances(lanes, positions, serial_applied, laned)
            try:
                consumer = Consumer(
                    {
                        "bootstrap.servers": self.bootstrap,
                        "group.id": self.group,
                        "enable.auto.commit": False,
                        "auto.offset.reset": self.auto_offset_reset,
                        "max.poll.interval.ms": 600_000,
                        "session.timeout.ms": 10_000,
                        "heartbeat.interval.ms": 3_000,
                        # Records wait in librdkafka's queue while the lanes are full:
                        # keep that backlog small (it is fetched again after a rebalance).
                        "queued.max.messages.kbytes": 8_192,
                        "on_commit": rebalances.committed,
                        **fetch_settings(self.gather_ms),
                    },
                    logger=LIBRDKAFKA_LOG,
                )
                # Join only once every topic's partitions are known: a member
                # that joins before then is assigned nothing.
                unknown = _without_partitions(consumer, self.topics)
                if unknown:
                    consumer.close()
                    log.warning("topics have no partition metadata yet; retrying", extra={"topics": unknown})
                    time.sleep(2)
                    continue
                consumer.subscribe(self.topics, on_assign=rebalances.assigned, on_revoke=rebalances.revoked)
                return consumer, rebalances
            except KafkaException:
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

    def _note_reading(self, consumer: Consumer) -> None:
        # A partition's watermarks are known once its start is resolved (the
        # reset's offset lookup, or its first fetch).
        assigned = consumer.assignment()
        if assigned and all(consumer.get_watermark_offsets(p, cached=True)[1] >= 0 for p in assigned):
            self.reading_since = time.monotonic()

    def _report_lag(self, consumer: Consumer, positions: dict[TopicPartition, int]) -> None:
        try:
            assigned = [TopicPartition(p.topic, p.partition) for p in consumer.assignment()]
            unknown = [tp for tp in assigned if tp not in positions]
            committed = {}
            if unknown:
                for p in consumer.committed([_ck(tp, OFFSET_INVALID) for tp in unknown], timeout=2):
                    committed[TopicPartition(p.topic, p.partition)] = p.offset
            for tp in assigned:
                # The watermarks the last fetch brought: asking the broker afresh waits
                # behind this consumer's long-polling fetch, half a second a partition.
                low, high = consumer.get_watermark_offsets(_ck(tp, OFFSET_INVALID), cached=True)
                if high < 0:  # not fetched yet
                    continue
                position = positions.get(tp, committed.get(tp, -1))
                if position < 0:  # nothing consumed or committed: where the reset puts it
                    position = high if self.auto_offset_reset == "latest" else low
                CONSUMER_LAG.labels(self.group, tp.topic, tp.partition).set(max(0, high - position))
        except Exception:
            pass


class _Membership:
    """Whether a consumer has been out of its group (no member id) for
    REJOIN_WAIT_SECONDS, looked at about once a second."""

    def __init__(self) -> None:
        self._member_at = time.monotonic()
        self._next_look = 0.0

    def lost(self, consumer: Consumer) -> bool:
        now = time.monotonic()
        if now < self._next_look:
            return False
        self._next_look = now + 1.0
        if consumer.memberid():
            self._member_at = now
            return False
        return now - self._member_at > REJOIN_WAIT_SECONDS


def _forget_assignment(
    lanes: "KeyedLanes | None", positions: dict[TopicPartition, int], serial_applied: "_SerialProgress"
) -> None:
    """What a consumer that lost its group held is given up, to be replayed
    from the last commit by whoever is assigned it next (as if revoked)."""
    if lanes is not None:
        lanes.settle(None, wait_s=0.0)
        lanes.reassigned(set())
    positions.clear()
    serial_applied.take()


def _close_aside(consumer: Consumer, group: str) -> None:
    """Closes a replaced consumer on a thread of its own, not waited for: the
    client that would not rejoin can hang in close() for good."""

    def close() -> None:
        started = time.monotonic()
        try:
            consumer.close()
            log.info("replaced consumer closed", extra={"group": group, "seconds": time.monotonic() - started})
        except Exception:
            log.warning("could not close a replaced consumer", extra={"group": group}, exc_info=True)

    threading.Thread(target=close, name=f"consumer-close-{group}", daemon=True).start()


class _SerialProgress:
    """Per partition of a serial topic, the offset after the last record
    applied and not yet committed. Committed with the lanes' progress every
    PROGRESS_COMMIT_SECONDS, not after each poll: a commit is a broker write."""

    def __init__(self) -> None:
        self.offsets: dict[TopicPartition, int] = {}

    def take(self, tps: set[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        if tps is None:
            taken, self.offsets = self.offsets, {}
            return taken
        return {tp: self.offsets.pop(tp) for tp in tps if tp in self.offsets}

    def restore(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            self.offsets[tp] = max(self.offsets.get(tp, 0), offset)


def _ck(tp: TopicPartition, offset: int) -> confluent_kafka.TopicPartition:
    return confluent_kafka.TopicPartition(tp.topic, tp.partition, offset)


def _poll(consumer: Consumer, positions: dict[TopicPartition, int]) -> dict[TopicPartition, list[Record]]:
    """Up to 200 records, by partition in offset order: waits at most 0.2 s
    for the first, then takes what has arrived with it (consume() alone would
    wait out its timeout for a full batch)."""
    first = consumer.poll(0.2)
    if first is None:
        return {}
    batches: dict[TopicPartition, list[Record]] = {}
    for message in [first, *consumer.consume(num_messages=199, timeout=0)]:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            log.warning("kafka consumer error", extra={"error": str(error)})
            continue
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None, "a record, not an event"
        tp = TopicPartition(topic, partition)
        headers = cast("list[tuple[str, bytes]] | None", message.headers())
        batches.setdefault(tp, []).append(Record(offset, message.key(), message.value() or b"", headers))
        positions[tp] = offset + 1
    return batches


def _without_partitions(consumer: Consumer, topics: list[str]) -> list[str]:
    metadata = consumer.list_topics(timeout=10)
    return [t for t in topics if t not in metadata.topics or not metadata.topics[t].partitions]


class _Rebalances:
    """Keeps a rebalance from splitting a key between two members: a revoked
    partition's in-flight records are cancelled before anyone else can take
    the partition over, and replayed: by the new owner from the last commit,
    or, where this member keeps the partition, by going back to the first of
    them. Cancelled rather than given time to finish: this runs inside the
    poll that drives the rebalance. Called inside the poller's consume(), so
    nothing new is submitted meanwhile. Its consumer's commit callback too."""

    def __init__(
        self,
        lanes: KeyedLanes | None,
        positions: dict[TopicPartition, int],
        serial_applied: _SerialProgress,
        laned: frozenset[str],
    ) -> None:
        self._lanes = lanes
        self._positions = positions
        self._serial_applied = serial_applied
        self._laned = laned
        self._attached = True

    def detach(self) -> None:
        """The consumer was replaced: its callbacks, still run by its close()
        on another thread, leave the shared state to the new one."""
        self._attached = False

    def committed(self, error: KafkaError | None, partitions: list) -> None:
        """librdkafka's commit callback (called inside a later consume()):
        progress that was not committed is taken back, to be committed with
        later progress (what this member no longer holds is dropped at the
        rebalance; committing it anyway only replays more)."""
        if not self._attached:
            return
        failed = {
            TopicPartition(p.topic, p.partition): p.offset
            for p in partitions
            if (error is not None or p.error is not None) and p.offset >= 0
        }
        if self._lanes is not None:
            self._lanes.restore_progress({tp: offset for tp, offset in failed.items() if tp.topic in self._laned})
        self._serial_applied.restore({tp: offset for tp, offset in failed.items() if tp.topic not in self._laned})

    def revoked(self, consumer: Consumer, partitions: list) -> None:
        if not self._attached:
            return
        revoked = {TopicPartition(p.topic, p.partition) for p in partitions}
        if revoked and self._lanes is not None:
            self._lanes.settle(revoked, wait_s=0.0)
        try:  # while this member still holds them: the next owner starts from here
            _commit(consumer, self._serial_applied.take(revoked), asynchronous=False)
        except KafkaException:
            log.warning("could not commit applied progress before a rebalance; it is replayed", exc_info=True)

    def assigned(self, consumer: Consumer, partitions: list) -> None:
        if not self._attached:
            return
        # The whole assignment (the eager protocol passes it all).
        held = {TopicPartition(p.topic, p.partition) for p in partitions}
        rewind = self._lanes.reassigned(held) if self._lanes is not None else {}
        positions = self._positions
        for tp in list(positions):
            if tp not in held:  # another member's now: its position here is stale
                del positions[tp]
        self._serial_applied.take({tp for tp in self._serial_applied.offsets if tp not in held})
        for tp, offset in rewind.items():
            log.info(
                "replaying records given up in a rebalance",
                extra={"topic": tp.topic, "partition": tp.partition, "offset": offset},
            )
            positions[tp] = offset
        # Partitions held before resume where they were (librdkafka would go back to
        # the last commit, and hand the lanes records they already hold); new ones
        # start from the group's commit.
        consumer.assign([_ck(tp, positions.get(tp, OFFSET_INVALID)) for tp in sorted(held)])


def fetch_settings(gather_ms: int) -> dict[str, int]:
    """librdkafka's fetch settings for a consumer that gathers for `gather_ms`."""
    if gather_ms == 0:
        return {}
    return {"fetch.min.bytes": _GATHER_BYTES, "fetch.wait.max.ms": gather_ms}


def _commit(consumer: Consumer, offsets: dict[TopicPartition, int], *, asynchronous: bool = True) -> None:
    if not offsets:
        return
    partitions = [_ck(tp, offset) for tp, offset in offsets.items()]
    if asynchronous:
        consumer.commit(offsets=partitions, asynchronous=True)
    else:
        consumer.commit(offsets=partitions, asynchronous=False)


def _commit_progress(consumer: Consumer, lanes: KeyedLanes | None, serial_applied: _SerialProgress) -> None:
    """Commits applied progress without waiting. A blocking commit while a
    rebalance is under way holds up the very poll that would finish the
    rebalance. A commit that fails is taken back (`_Rebalances.committed`)."""
    progress = serial_applied.take()
    if lanes is not None:
        progress.update(lanes.take_progress())
    _commit(consumer, progress)


class PoisonRecord(Exception):
    """Raised by a handler for a record that can never be applied (undecodable)."""


def _resolve(fut: asyncio.Future, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)

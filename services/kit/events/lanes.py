"""Keyed lanes: records of parallel topics applied side by side, those of one
key in order, with the offset below which all are applied tracked per partition;
records of batch topics applied a partition's poll at a time."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from typing import Awaitable, Callable

from services.kit.events.kafka import TopicPartition

log = logging.getLogger(__name__)

# How long a stopping loop waits for its consumer to leave the group.
CLOSE_WAIT_SECONDS = 5.0


# The lane of a batch topic's partition: all its records, one poll's worth at a time.
_WHOLE_PARTITION = object()


class _Abandoned(Exception):
    """A record not applied because an earlier record of its lane was not."""


class KeyedLanes:
    """Applies records of parallel topics on the event loop: records with
    the same partition and key one after another in offset order, all
    others side by side, at most `limit` at once. Knows, per partition, the
    offset below which every record is applied: the only offset that may be
    committed. Fed from the polling thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        apply: Callable[[str, object], Awaitable[None]],
        limit: int,
        *,
        apply_batch: Callable[[str, list], Awaitable[None]] | None = None,
        batch_topics: frozenset[str] = frozenset(),
    ) -> None:
        self._loop = loop
        self._apply = apply
        # Records of these topics are applied by `apply_batch`, each
        # partition's records of one poll in one call, after that partition's
        # previous call: so in offset order per partition (and per key).
        # Batches take no slot (at most one per partition runs), so they never
        # hold up the records of other topics.
        self._apply_batch = apply_batch
        self._batch_topics = batch_topics
        # Bound to the event loop at its first use (Python 3.10+), not here.
        self._slots = asyncio.Semaphore(limit)
        self._changed = threading.Condition()
        # Guarded by _changed: per partition, its offsets not yet committable,
        # in order, each -> None while its record runs, True once applied,
        # False when given up (cancelled, or its lane broke off); and the next
        # offset to commit, once it advanced.
        self._unfinished: dict[TopicPartition, dict[int, bool | None]] = {}
        self._progress: dict[TopicPartition, int] = {}
        # Records unfinished: of parallel topics, and of batch topics (kept
        # apart, so a backlog of batches never holds up parallel records).
        self._in_flight = 0
        self._batched_in_flight = 0
        # Event loop only: each lane's latest task, and every live task.
        self._tails: dict[tuple[TopicPartition, object], asyncio.Task] = {}
        self._tasks: dict[asyncio.Task, TopicPartition] = {}

    # -- polling thread ----------------------------------------------------------

    def submit(self, tp: TopicPartition, records: list) -> None:
        with self._changed:
            unfinished = self._unfinished.setdefault(tp, {})
            for record in records:
                unfinished[record.offset] = None
            self._count(tp, len(records))
        self._loop.call_soon_threadsafe(self._start, tp, records)

    def wait_at_most(
        self, in_flight: int, stop: threading.Event, *, batched: int | None = None, batched_too: bool = False
    ) -> None:
        """Blocks until no more than `in_flight` records of parallel topics
        (counting those of batch topics too, if asked) and no more than
        `batched` of batch topics (if given) are unfinished (or a stop)."""
        with self._changed:
            while not stop.is_set() and (
                self._in_flight + (self._batched_in_flight if batched_too else 0) > in_flight
                or (batched is not None and self._batched_in_flight > batched)
            ):
                self._changed.wait(0.2)

    def _count(self, tp: TopicPartition, records: int) -> None:
        """Under _changed: `records` more (or fewer) unfinished records of tp."""
        if tp.topic in self._batch_topics:
            self._batched_in_flight += records
        else:
            self._in_flight += records

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
                    self._count(tp, -sum(1 for state in states.values() if state is None))
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
        if tp.topic in self._batch_topics:
            lane = (tp, _WHOLE_PARTITION)
            batch = asyncio.ensure_future(self._run_batch(tp.topic, records, self._tails.get(lane)))
            self._follow(lane, tp, [record.offset for record in records], batch)
            return
        for record in records:
            lane = (tp, record.key)
            task = asyncio.ensure_future(self._run(tp.topic, record, self._tails.get(lane)))
            self._follow(lane, tp, [record.offset], task)

    def _follow(self, lane, tp: TopicPartition, offsets: list[int], task: asyncio.Task) -> None:
        self._tails[lane] = task
        self._tasks[task] = tp
        task.add_done_callback(functools.partial(self._finished, lane, tp, offsets))

    async def _run(self, topic: str, record, before: asyncio.Task | None) -> None:
        if before is not None:
            await asyncio.wait({before})
            if before.cancelled() or before.exception() is not None:
                # Applying this now would put it before its predecessor,
                # which is replayed later: it waits for that replay instead.
                raise _Abandoned()
        async with self._slots:
            await self._apply(topic, record)

    async def _run_batch(self, topic: str, records: list, before: asyncio.Task | None) -> None:
        if before is not None:
            await asyncio.wait({before})
            if before.cancelled() or before.exception() is not None:
                raise _Abandoned()
        assert self._apply_batch is not None, "batch topics need apply_batch"
        await self._apply_batch(topic, records)

    def _finished(self, lane, tp: TopicPartition, offsets: list[int], task: asyncio.Task) -> None:
        self._tasks.pop(task, None)
        if self._tails.get(lane) is task:
            del self._tails[lane]
        applied = not task.cancelled() and task.exception() is None
        with self._changed:
            unfinished = self._unfinished.get(tp)
            if unfinished is None:
                return  # forgotten: its partition went elsewhere, or is replayed
            for offset in offsets:
                if offset not in unfinished:
                    continue  # forgotten, as above
                # One given up holds its partition's progress where it is until
                # the partition is forgotten (and replayed by whoever owns it next).
                unfinished[offset] = applied
                self._count(tp, -1)
            while unfinished:
                first = next(iter(unfinished))
                if unfinished[first] is not True:
                    break
                del unfinished[first]
                self._progress[tp] = first + 1
            self._changed.notify_all()

    async def _settle(self, tps: set[TopicPartition] | None, wait_s: float) -> None:
        tasks = [t for t, tp in self._tasks.items() if tps is None or tp in tps]
        if tasks and wait_s > 0:
            await asyncio.wait(tasks, timeout=wait_s)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

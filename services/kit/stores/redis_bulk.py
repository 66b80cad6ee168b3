"""Thousands of small Redis commands in one write and one read.

redis-py's pipeline packs each argument and awaits one parse per reply in
Python, which at fanout's scale (a batch of 1,000 deliveries, each one
EVALSHA) costs most of the caller's CPU and leaves Redis idle while Python
packs. Here the commands are packed by hiredis (C), written at once, and the
replies parsed by hiredis in bulk (the cost of each: bench/README.md).

It is deliberately small: plain commands over its own connections to the
same server as the service's redis-py client, no pub/sub, no transactions.
Error replies come back as values (`hiredis.ReplyError`), in order, for the
caller to judge. A broken connection raises (ConnectionError, an OSError),
and it and every idle one are discarded; whether a retry is safe is the
caller's call.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from typing import Iterable, Sequence

import hiredis
from redis.exceptions import ResponseError

from services.kit import settings
from services.kit.stores import redis_cluster_bulk, redis_target

pack_command = hiredis.pack_command
ReplyError = hiredis.ReplyError
NotReplicated = redis_cluster_bulk.NotReplicated

_READ_CHUNK = 1 << 16
# Items per script call in eval_batched: Redis runs nothing else while a
# script runs, so a batch is kept to about half a millisecond of its time.
SCRIPT_BATCH = 100


@functools.cache
def _sha1(script: str) -> bytes:
    return hashlib.sha1(script.encode()).hexdigest().encode()


def _raise_errors(replies: list, what: str) -> None:
    errors = [r for r in replies if isinstance(r, ReplyError)]
    if errors:
        raise ResponseError(f"{len(errors)} of {len(replies)} {what} failed: {errors[0]}")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = hiredis.Reader()

    async def roundtrip(self, payload: bytes, count: int) -> list:
        self.writer.write(payload)
        await self.writer.drain()
        replies: list = []
        while len(replies) < count:
            reply = self.parser.gets()
            if reply is False:
                data = await self.reader.read(_READ_CHUNK)
                if not data:
                    raise ConnectionError("redis closed the connection")
                self.parser.feed(data)
                continue
            replies.append(reply)
        return replies

    def close(self) -> None:
        self.writer.close()


class BulkRedis:
    """A few raw connections to one Redis server, each used by one bulk call at
    a time; on a Redis Cluster, such connections to each master, every command
    sent to its slot's (see redis_cluster_bulk)."""

    # Connections kept for later calls: as many as a service has calls in
    # flight in a burst (Envoy admits 64 to one). An idle one costs Redis a
    # few kilobytes; one closed for want of room is opened again by a later
    # call, a TCP handshake and Redis's client set-up each time.
    MAX_IDLE = 64

    def __init__(self, url: str, *, max_idle: int = MAX_IDLE, node: tuple[str, int] | None = None) -> None:
        target = redis_target.parse(url)
        self._host, self._port = node or (target.host, target.port)
        self._cluster: redis_cluster_bulk.ClusterBulk | None = None
        if target.cluster and node is None:
            self._cluster = redis_cluster_bulk.ClusterBulk(
                target.cluster_nodes, lambda host, port: BulkRedis(url, max_idle=max_idle, node=(host, port))
            )
        self._ssl = target.ssl_context()
        # What each new connection sends first, as redis-py would.
        self._setup: list[tuple] = []
        if target.password:
            user = (target.username,) if target.username else ()
            self._setup.append(("AUTH", *user, target.password))
        if target.db and not target.cluster:
            self._setup.append(("SELECT", target.db))
        self._timeout = settings.current().redis_bulk_timeout_seconds
        # Replicas get half the call's time to acknowledge writes.
        self._wait_ms = max(1, int(self._timeout * 500))
        self._idle: list[_Connection] = []
        self._max_idle = max_idle

    async def execute(self, commands: Iterable[Sequence], *, replicas: int = 0, idempotent: bool = False) -> list:
        """Sends every command, returns every reply in order (errors as ReplyError values).

        `replicas`: on a cluster, return only once that many replicas of each
        node written to hold the writes (WAIT), else raise NotReplicated; for
        writes a failover must not lose, such as a cache's invalidation. One
        server has no replica to lose them to: ignored.
        `idempotent`: the commands may run twice, so they are sent once more
        on a fresh connection if the server dropped the one used (a restart)."""
        if self._cluster is not None:
            return await self._cluster.send(
                [tuple(cmd) for cmd in commands], resend_if_dropped=idempotent, replicas=replicas, wait_ms=self._wait_ms
            )
        packed = [pack_command(tuple(cmd)) for cmd in commands]
        return await self._send(b"".join(packed), len(packed), resend_if_dropped=idempotent)

    async def read(self, commands: Sequence[Sequence]) -> list:
        """Read-only commands in one round trip; sent once more on a fresh
        connection if the server dropped the one used (a restart), which is
        safe because they change nothing. An error reply raises ResponseError."""
        if self._cluster is not None:
            replies = await self._cluster.send([tuple(cmd) for cmd in commands], resend_if_dropped=True)
            _raise_errors(replies, "reads")
            return replies
        packed = b"".join(pack_command(tuple(cmd)) for cmd in commands)
        replies = await self._send(packed, len(commands), resend_if_dropped=True)
        _raise_errors(replies, "reads")
        return replies

    async def eval_each(self, script: str, calls: Iterable[Sequence], *, idempotent: bool, replicas: int = 0) -> list:
        """One EVALSHA of `script` per call (numkeys, keys..., args...), all
        in one round trip; returns the replies in order.

        A call Redis answers NOSCRIPT did not run: the script is loaded (first
        use, or Redis restarted) and those calls are sent again. A dropped
        connection is sent again only when the calls are `idempotent` (it is
        not known which of them ran). Any other error reply raises ResponseError.
        `replicas`: as for execute."""
        sha = _sha1(script)
        if self._cluster is not None:
            replies = await self._cluster.send(
                [(b"EVALSHA", sha, *call) for call in calls],
                resend_if_dropped=idempotent,
                script=script,
                replicas=replicas,
                wait_ms=self._wait_ms,
            )
            _raise_errors(replies, "script calls")
            return replies
        packed = [pack_command((b"EVALSHA", sha, *call)) for call in calls]
        replies = await self._send(b"".join(packed), len(packed), resend_if_dropped=idempotent)
        unknown = [i for i, r in enumerate(replies) if redis_cluster_bulk.is_noscript(r)]
        if unknown and len(unknown) == sum(isinstance(r, ReplyError) for r in replies):
            again = [packed[i] for i in unknown]
            _, *answers = await self._send(
                # hiredis' stub types the command as a 1-tuple (Tuple[X], not Tuple[X, ...]).
                pack_command((b"SCRIPT", b"LOAD", script)) + b"".join(again),  # type: ignore[arg-type]
                1 + len(again),
                resend_if_dropped=idempotent,
            )
            for i, answer in zip(unknown, answers):
                replies[i] = answer
        _raise_errors(replies, "script calls")
        return replies

    async def eval_batched(
        self,
        script: str,
        items: Sequence[tuple[Sequence, Sequence]],
        shared_args: Sequence = (),
        *,
        idempotent: bool,
        batch_size: int = SCRIPT_BATCH,
    ) -> list:
        """One EVALSHA of `script` per batch of items, each item (keys, args);
        returns each item's reply in order. The script gets KEYS as every
        item's keys in turn, ARGV as `shared_args` then every item's args in
        turn, and returns a list with one reply per item. Items share a batch
        only when one script may touch all their keys: on one server any, on
        a Redis Cluster those whose first key is in the same slot (so each
        item's keys must share a slot). Errors and retries: as eval_each."""
        batches = self._script_batches(items, batch_size)
        calls = []
        for batch in batches:
            keys = [key for i in batch for key in items[i][0]]
            calls.append((len(keys), *keys, *shared_args, *(arg for i in batch for arg in items[i][1])))
        replies = await self.eval_each(script, calls, idempotent=idempotent)
        out: list = [None] * len(items)
        for batch, reply in zip(batches, replies):
            for i, answer in zip(batch, reply):
                out[i] = answer
        return out

    def _script_batches(self, items: Sequence[tuple[Sequence, Sequence]], batch_size: int) -> list[list[int]]:
        """Item indexes, in batches of at most `batch_size` one script may run together."""
        if self._cluster is None:
            return [list(range(i, min(i + batch_size, len(items)))) for i in range(0, len(items), batch_size)]
        by_slot: dict[int, list[int]] = {}
        for i, (keys, _) in enumerate(items):
            by_slot.setdefault(redis_cluster_bulk.key_slot_of(keys[0]), []).append(i)
        return [same[i : i + batch_size] for same in by_slot.values() for i in range(0, len(same), batch_size)]

    async def _send(self, payload: bytes, count: int, *, resend_if_dropped: bool) -> list:
        for attempt in (1, 2):
            try:
                return await self.execute_packed(payload, count)
            except OSError:
                if attempt == 2 or not resend_if_dropped:
                    raise
        raise AssertionError("unreachable")

    async def execute_packed(self, payload: bytes, count: int) -> list:
        """Like execute, for a payload of `count` commands the caller packed
        itself (one server only: a cluster needs the commands to route them)."""
        if self._cluster is not None:
            raise TypeError("execute_packed cannot route packed commands on a Redis Cluster: use execute")
        conn = await self._acquire()
        try:
            async with asyncio.timeout(self._timeout):
                replies = await conn.roundtrip(payload, count)
        except BaseException as exc:
            # Half-read replies would be misattributed to the next caller.
            conn.close()
            if isinstance(exc, OSError):
                # The server went away (restart, failover): the idle
                # connections are as dead as this one; a caller's retry
                # should open a fresh one rather than find them one by one.
                self._drop_idle()
            raise
        self._release(conn)
        return replies

    async def _acquire(self) -> _Connection:
        if self._idle:
            return self._idle.pop()
        async with asyncio.timeout(self._timeout):
            reader, writer = await asyncio.open_connection(
                self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._ssl else None
            )
        conn = _Connection(reader, writer)
        if self._setup:
            replies = await conn.roundtrip(b"".join(pack_command(cmd) for cmd in self._setup), len(self._setup))
            failed = [r for r in replies if isinstance(r, ReplyError)]
            if failed:
                conn.close()
                raise ConnectionError(f"redis refused the connection set-up: {failed[0]}")
        return conn

    def _release(self, conn: _Connection) -> None:
        if len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    def _drop_idle(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def close(self) -> None:
        self._drop_idle()
        if self._cluster is not None:
            await self._cluster.close()

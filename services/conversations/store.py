"""Cassandra storage for conversations: the only code that talks to
`aviary_conversations`. Every table and what it is for:
services/conversations/README.md.

Messages live in partitions of (conversation, time bucket); the buckets a
conversation has used are listed in `buckets`, so paging walks only buckets
that hold messages and a quiet conversation costs no empty reads. A message
is always found through a stored bucket start, never one recomputed from the
current bucket size, so the size can change without losing old messages.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from services.kit.events import kafka, outbox
from services.kit.server.ids import timestamp_ms
from services.kit.settings import Settings
from services.kit.stores import cql

log = logging.getLogger(__name__)

KEYSPACE = "aviary_conversations"
BUCKET_SCAN = 100  # bucket starts read per round trip while paging

SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.conversations (
        conversation_id bigint PRIMARY KEY,
        members set<bigint>,
        participants_key text,
        last_activity_id bigint,
        last_message_id bigint,
        last_message_bucket bigint
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.conversation_keys (
        participants_key text PRIMARY KEY,
        conversation_id bigint
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.inbox (
        user_id bigint,
        activity_id bigint,
        conversation_id bigint,
        PRIMARY KEY (user_id, activity_id, conversation_id)
    ) WITH CLUSTERING ORDER BY (activity_id DESC, conversation_id ASC)""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.buckets (
        conversation_id bigint,
        bucket bigint,
        PRIMARY KEY (conversation_id, bucket)
    ) WITH CLUSTERING ORDER BY (bucket DESC)""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.messages (
        conversation_id bigint,
        bucket bigint,
        message_id bigint,
        sender_id bigint,
        text text,
        media_ids list<bigint>,
        product_ids list<bigint>,
        client_message_id text,
        PRIMARY KEY ((conversation_id, bucket), message_id)
    ) WITH CLUSTERING ORDER BY (message_id DESC)""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.client_messages (
        conversation_id bigint,
        sender_id bigint,
        client_message_id text,
        message_id bigint,
        bucket bigint,
        PRIMARY KEY ((conversation_id, sender_id, client_message_id))
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.read_marks (
        user_id bigint,
        conversation_id bigint,
        up_to bigint,
        PRIMARY KEY ((user_id, conversation_id), up_to)
    ) WITH CLUSTERING ORDER BY (up_to DESC)""",
    *outbox.schema(KEYSPACE),
]

_MESSAGE_COLUMNS = "message_id, sender_id, text, media_ids, product_ids, client_message_id"
_CONVERSATION_COLUMNS = (
    "conversation_id, members, participants_key, last_activity_id, last_message_id, last_message_bucket"
)


@dataclass(frozen=True)
class ConversationRow:
    conversation_id: int
    members: frozenset[int]
    participants_key: str
    last_activity_id: int
    last_message_id: int
    last_message_bucket: int


@dataclass(frozen=True)
class MessageRow:
    conversation_id: int
    message_id: int
    sender_id: int
    text: str
    media_ids: tuple[int, ...]
    product_ids: tuple[int, ...]
    client_message_id: str


@dataclass(frozen=True)
class Claim:
    """A sender's clientMessageId, claimed for one message id."""

    message_id: int
    bucket: int


def participants_key(user_ids: set[int]) -> str:
    """The identity of a set of people: their ids ascending."""
    return ",".join(str(u) for u in sorted(user_ids))


def bucket_of(message_id: int, bucket_ms: int) -> int:
    """The start (unix ms) of the time bucket a new message's id falls in."""
    ms = timestamp_ms(message_id)
    return ms - ms % bucket_ms


def write_micros(row_id: int) -> int:
    """A write timestamp that orders writes by the id they carry, so the newest
    message wins `last_*` columns whatever order concurrent sends commit in."""
    return timestamp_ms(row_id) * 1000 + (row_id & 0x3FF)


class ConversationStore:
    def __init__(self, settings: Settings, bucket_ms: int) -> None:
        self.settings = settings
        self.bucket_ms = bucket_ms
        self._session: Session | None = None
        self._outbox: outbox.Outbox | None = None
        self._st: dict[str, PreparedStatement] = {}

    @property
    def session(self) -> Session:
        assert self._session is not None, "call start() first"
        return self._session

    @property
    def outbox(self) -> outbox.Outbox:
        assert self._outbox is not None, "call start() first"
        return self._outbox

    # -- lifecycle -------------------------------------------------------------

    async def start(self, producer: kafka.Producer) -> None:
        await self.stop()
        self._session = await cql.connect(self.settings)
        await cql.ensure_keyspace(self._session, KEYSPACE, self.settings.cassandra_rf)
        await cql.apply_schema(self._session, SCHEMA)
        self._outbox = outbox.Outbox(self._session, KEYSPACE, producer)
        await self._outbox.prepare()
        await self._prepare_all()
        log.info("conversations keyspace ready", extra={"keyspace": KEYSPACE})

    async def stop(self) -> None:
        session, self._session = self._session, None
        await cql.close(session)

    async def _prepare_all(self) -> None:
        ks = KEYSPACE
        queries = {
            "get_conversation": f"SELECT {_CONVERSATION_COLUMNS} FROM {ks}.conversations WHERE conversation_id = ?",
            "get_conversations": f"SELECT {_CONVERSATION_COLUMNS} FROM {ks}.conversations WHERE conversation_id IN ?",
            "put_conversation": f"INSERT INTO {ks}.conversations (conversation_id, members, participants_key) "
            "VALUES (?, ?, ?)",
            "set_activity": f"UPDATE {ks}.conversations USING TIMESTAMP ? SET last_activity_id = ? "
            "WHERE conversation_id = ?",
            "set_last_message": f"UPDATE {ks}.conversations USING TIMESTAMP ? SET last_activity_id = ?, "
            "last_message_id = ?, last_message_bucket = ? WHERE conversation_id = ?",
            "remove_member": f"UPDATE {ks}.conversations SET members = members - ? WHERE conversation_id = ?",
            "get_key": f"SELECT conversation_id FROM {ks}.conversation_keys WHERE participants_key = ?",
            "claim_key": f"INSERT INTO {ks}.conversation_keys (participants_key, conversation_id) VALUES (?, ?) "
            "IF NOT EXISTS",
            "swap_key": f"UPDATE {ks}.conversation_keys SET conversation_id = ? WHERE participants_key = ? "
            "IF conversation_id = ?",
            "release_key": f"DELETE FROM {ks}.conversation_keys WHERE participants_key = ? IF conversation_id = ?",
            "put_inbox": f"INSERT INTO {ks}.inbox (user_id, activity_id, conversation_id) VALUES (?, ?, ?)",
            "drop_inbox": f"DELETE FROM {ks}.inbox WHERE user_id = ? AND activity_id = ? AND conversation_id = ?",
            "inbox_first": f"SELECT activity_id, conversation_id FROM {ks}.inbox WHERE user_id = ? LIMIT ?",
            "inbox_before": f"SELECT activity_id, conversation_id FROM {ks}.inbox WHERE user_id = ? "
            "AND activity_id < ? LIMIT ?",
            "put_bucket": f"INSERT INTO {ks}.buckets (conversation_id, bucket) VALUES (?, ?)",
            "buckets_at_most": f"SELECT bucket FROM {ks}.buckets WHERE conversation_id = ? AND bucket <= ? LIMIT ?",
            "buckets_after": f"SELECT bucket FROM {ks}.buckets WHERE conversation_id = ? AND bucket > ? "
            "ORDER BY bucket ASC LIMIT ?",
            "put_message": f"INSERT INTO {ks}.messages (conversation_id, bucket, {_MESSAGE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            "get_message": f"SELECT {_MESSAGE_COLUMNS} FROM {ks}.messages "
            "WHERE conversation_id = ? AND bucket = ? AND message_id = ?",
            "older": f"SELECT {_MESSAGE_COLUMNS} FROM {ks}.messages "
            "WHERE conversation_id = ? AND bucket = ? AND message_id < ? LIMIT ?",
            "newer": f"SELECT {_MESSAGE_COLUMNS} FROM {ks}.messages "
            "WHERE conversation_id = ? AND bucket = ? AND message_id > ? ORDER BY message_id ASC LIMIT ?",
            "ids_after": f"SELECT message_id FROM {ks}.messages "
            "WHERE conversation_id = ? AND bucket = ? AND message_id > ? LIMIT ?",
            "get_claim": f"SELECT message_id, bucket FROM {ks}.client_messages "
            "WHERE conversation_id = ? AND sender_id = ? AND client_message_id = ?",
            "claim": f"INSERT INTO {ks}.client_messages (conversation_id, sender_id, client_message_id, message_id, "
            "bucket) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS",
            "read_mark": f"SELECT up_to FROM {ks}.read_marks WHERE user_id = ? AND conversation_id = ? LIMIT 1",
            "put_read_mark": f"INSERT INTO {ks}.read_marks (user_id, conversation_id, up_to) VALUES (?, ?, ?)",
            "trim_read_marks": f"DELETE FROM {ks}.read_marks WHERE user_id = ? AND conversation_id = ? AND up_to < ?",
            "drop_read_marks": f"DELETE FROM {ks}.read_marks WHERE user_id = ? AND conversation_id = ?",
            "drop_inbox_all": f"DELETE FROM {ks}.inbox WHERE user_id = ?",
        }
        prepared = await asyncio.gather(*(cql.prepare(self.session, q) for q in queries.values()))
        self._st = dict(zip(queries, prepared))

    async def _run(self, name: str, params: tuple) -> list:
        return await cql.execute(self.session, self._st[name], params)

    # -- conversations -----------------------------------------------------------

    async def get_conversation(self, conversation_id: int) -> ConversationRow | None:
        rows = await self._run("get_conversation", (conversation_id,))
        return _conversation(rows[0]) if rows else None

    async def get_conversations(self, conversation_ids: list[int]) -> dict[int, ConversationRow]:
        """The conversations that exist among conversation_ids, by id, in one read per 100."""
        rows = await cql.rows_by_key(
            self.session, self._st["get_conversations"], conversation_ids, key_of=lambda row: row.conversation_id
        )
        return {conversation_id: _conversation(row) for conversation_id, row in rows.items()}

    async def conversation_for(self, key: str) -> int | None:
        rows = await self._run("get_key", (key,))
        return rows[0].conversation_id if rows else None

    async def write_conversation(self, conversation_id: int, members: set[int], key: str) -> None:
        """The conversation's own row; it is reachable only once its key points at it."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(self._st["put_conversation"], (conversation_id, members, key))
        batch.add(self._st["set_activity"], (write_micros(conversation_id), conversation_id, conversation_id))
        await cql.execute(self.session, batch)

    async def point_key(self, key: str, conversation_id: int, replacing: int | None) -> bool:
        """Points the key at a new conversation if it still names `replacing`
        (None: no conversation). False when another create won the race."""
        if replacing is None:
            rows = await self._run("claim_key", (key, conversation_id))
        else:
            rows = await self._run("swap_key", (conversation_id, key, replacing))
        return bool(rows and rows[0][0])

    async def list_in_inboxes(self, conversation: ConversationRow) -> None:
        """An inbox row for every member at the conversation's latest activity
        (idempotent; a row a later message made stale is dropped at read)."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for member in conversation.members:
            batch.add(self._st["put_inbox"], (member, conversation.last_activity_id, conversation.conversation_id))
        await cql.execute(self.session, batch)

    async def inbox_page(self, user_id: int, before: int | None, limit: int) -> list[tuple[int, int]]:
        """(activity_id, conversation_id) rows, newest first; may hold stale rows."""
        if before is None:
            rows = await self._run("inbox_first", (user_id, limit))
        else:
            rows = await self._run("inbox_before", (user_id, before, limit))
        return [(r.activity_id, r.conversation_id) for r in rows]

    async def drop_inbox_rows(self, user_id: int, rows: list[tuple[int, int]]) -> None:
        await asyncio.gather(*(self._run("drop_inbox", (user_id, a, c)) for a, c in rows))

    async def leave(self, conversation: ConversationRow, user_id: int) -> None:
        """Removes the member and their inbox row together, then frees the
        participants key, so the same set of people makes a new conversation."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(self._st["remove_member"], ({user_id}, conversation.conversation_id))
        batch.add(self._st["drop_inbox"], (user_id, conversation.last_activity_id, conversation.conversation_id))
        await cql.execute(self.session, batch)
        await self._run("release_key", (conversation.participants_key, conversation.conversation_id))

    async def forget_member(self, conversation: ConversationRow, user_id: int) -> None:
        """A deleted account leaves: its read mark first (nothing finds it once
        the inbox row is gone), then the usual leave."""
        await self._run("drop_read_marks", (user_id, conversation.conversation_id))
        await self.leave(conversation, user_id)

    async def drop_inbox(self, user_id: int) -> None:
        """The user's whole inbox partition (stale rows included)."""
        await self._run("drop_inbox_all", (user_id,))

    # -- messages ----------------------------------------------------------------

    async def get_claim(self, conversation_id: int, sender_id: int, client_message_id: str) -> Claim | None:
        rows = await self._run("get_claim", (conversation_id, sender_id, client_message_id))
        return Claim(rows[0].message_id, rows[0].bucket) if rows else None

    async def claim(self, conversation_id: int, sender_id: int, client_message_id: str, claim: Claim) -> Claim:
        """Claims the clientMessageId for `claim`; returns the claim that holds it
        (another one when an earlier send took it first)."""
        rows = await self._run("claim", (conversation_id, sender_id, client_message_id, claim.message_id, claim.bucket))
        if rows and rows[0][0]:
            return claim
        held = await self.get_claim(conversation_id, sender_id, client_message_id)
        return held if held is not None else claim

    async def get_message(self, conversation_id: int, bucket: int, message_id: int) -> MessageRow | None:
        rows = await self._run("get_message", (conversation_id, bucket, message_id))
        return _message(conversation_id, rows[0]) if rows else None

    async def append(
        self,
        message: MessageRow,
        bucket: int,
        conversation: ConversationRow,
        event_id: int,
        event: bytes,
    ) -> None:
        """The message, its bucket, the conversation's latest activity, every
        member's inbox row, the sender's read mark and the event: one LOGGED
        batch, all or nothing."""
        cid, mid = message.conversation_id, message.message_id
        batch = outbox.OutboxBatch()
        batch.add(
            self._st["put_message"],
            (
                cid,
                bucket,
                mid,
                message.sender_id,
                message.text,
                list(message.media_ids),
                list(message.product_ids),
                message.client_message_id,
            ),
        )
        batch.add(self._st["put_bucket"], (cid, bucket))
        batch.add(self._st["set_last_message"], (write_micros(mid), mid, mid, bucket, cid))
        if mid > conversation.last_activity_id:  # not for a late-completed claim older than the latest
            for member in conversation.members:
                batch.add(self._st["put_inbox"], (member, mid, cid))
                if conversation.last_activity_id:
                    batch.add(self._st["drop_inbox"], (member, conversation.last_activity_id, cid))
        batch.add(self._st["put_read_mark"], (message.sender_id, cid, mid))
        self.outbox.add(batch, event_id, kafka.CONVERSATIONS_TOPIC, str(cid).encode(), event)
        await self.outbox.commit(batch)

    async def _buckets_at_most(self, conversation_id: int, at_most: int, limit: int) -> list[int]:
        return [r.bucket for r in await self._run("buckets_at_most", (conversation_id, at_most, limit))]

    async def older(self, conversation_id: int, before: int | None, limit: int) -> list[MessageRow]:
        """Up to `limit` messages older than `before` (None: the newest), newest first."""
        cursor = before if before is not None else (1 << 63) - 1
        ceiling = timestamp_ms(before) if before is not None else (1 << 63) - 1
        found: list[MessageRow] = []
        while len(found) < limit:
            buckets = await self._buckets_at_most(conversation_id, ceiling, BUCKET_SCAN)
            for bucket in buckets:
                rows = await self._run("older", (conversation_id, bucket, cursor, limit - len(found)))
                found.extend(_message(conversation_id, r) for r in rows)
                if len(found) >= limit:
                    break
            if len(buckets) < BUCKET_SCAN:
                break
            ceiling = buckets[-1] - 1
        return found

    async def newer(self, conversation_id: int, after: int, limit: int) -> list[MessageRow]:
        """Up to `limit` messages newer than `after`, oldest first."""
        containing = await self._buckets_at_most(conversation_id, timestamp_ms(after), 1)
        floor = containing[0] if containing else -1
        buckets = list(containing)
        found: list[MessageRow] = []
        while len(found) < limit:
            for bucket in buckets:
                rows = await self._run("newer", (conversation_id, bucket, after, limit - len(found)))
                found.extend(_message(conversation_id, r) for r in rows)
                if len(found) >= limit:
                    return found
            buckets = [r.bucket for r in await self._run("buckets_after", (conversation_id, floor, BUCKET_SCAN))]
            if not buckets:
                break
            floor = buckets[-1]
        return found

    # -- read marks and unread counts -------------------------------------------

    async def read_mark(self, user_id: int, conversation_id: int) -> int:
        rows = await self._run("read_mark", (user_id, conversation_id))
        return rows[0].up_to if rows else 0

    async def put_read_mark(self, user_id: int, conversation_id: int, up_to: int) -> None:
        """Marks only move forward: the newest row is the mark, older ones are trimmed."""
        await self._run("put_read_mark", (user_id, conversation_id, up_to))
        await self._run("trim_read_marks", (user_id, conversation_id, up_to))

    async def count_after(self, conversation_id: int, after: int, cap: int) -> int:
        """Messages newer than `after`, counted up to `cap`."""
        count = 0
        ceiling = (1 << 63) - 1
        floor_ms = timestamp_ms(after) if after else 0
        while count < cap:
            buckets = await self._buckets_at_most(conversation_id, ceiling, BUCKET_SCAN)
            for bucket in buckets:
                rows = await self._run("ids_after", (conversation_id, bucket, after, cap - count))
                count += len(rows)
                if bucket <= floor_ms or count >= cap:
                    return min(count, cap)
            if len(buckets) < BUCKET_SCAN:
                break
            ceiling = buckets[-1] - 1
        return min(count, cap)


def _message(conversation_id: int, r) -> MessageRow:
    return MessageRow(
        conversation_id,
        r.message_id,
        r.sender_id,
        r.text or "",
        tuple(r.media_ids or ()),
        tuple(r.product_ids or ()),
        r.client_message_id or "",
    )


def _conversation(r) -> ConversationRow:
    return ConversationRow(
        r.conversation_id,
        frozenset(r.members or ()),
        r.participants_key or "",
        r.last_activity_id or 0,
        r.last_message_id or 0,
        r.last_message_bucket or 0,
    )

"""ConversationsService: conversations between the caller and up to 19 others,
their messages, read marks and the live stream (services/conversations/README.md).

The acting user is always the verified caller. Anyone who is not a member
of a conversation (never was, or left) gets NOT_FOUND for it, the same answer
as for an id that does not exist.
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.message import DecodeError
from prometheus_client import Gauge

from aviary.conversations.v1 import conversations_pb2, conversations_pb2_grpc
from aviary.events.v1 import events_pb2
from services.conversations import hydrate
from services.conversations.settings import ConversationsSettings
from services.conversations.store import Claim, ConversationRow, ConversationStore, MessageRow, participants_key
from services.conversations.store import bucket_of
from services.kit.events.account_deletions import AccountDeletions
from services.kit.events import kafka
from services.kit.events.consumer import ConsumerLoop
from services.kit.events.live import LiveHub, publish_command
from services.kit.peers import accounts, clients, media, safety
from services.kit.server import startup
from services.kit.server.auth import caller_id, stream_deadline
from services.kit.server.errors import failed_precondition, invalid_argument, not_found, permission_denied, unavailable
from services.kit.server.ids import IdGenerator, parse_id, parse_ids, timestamp_ms
from services.kit.server.paging import cursor_int, decode_token, encode_token, int_cursor, page_size
from services.kit.stores import cql, redis_client
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

MAX_PEOPLE = 20  # the caller included
MAX_TEXT = 2000  # code points
MAX_MEDIA = 4
MAX_PRODUCTS = 10
MAX_CLIENT_MESSAGE_ID = 64
LIVE_GROUP = "conversations-live"
# Account deletions (identity's AccountDeleted): one group for all replicas.
ACCOUNTS_GROUP = "conversations-accounts"
INBOX_PAGE = 100  # inbox rows read per page while a deleted account leaves
CLAIM_WAIT_SECONDS = 2.0  # how long a repeated send waits for the first one's message to land

WATCHERS = Gauge("aviary_conversations_watchers", "Open WatchConversations streams")


def live_channel(user_id: int) -> str:
    """Redis pub/sub channel of one user's new messages (hash-tagged for Cluster)."""
    return f"live:cv:{{{user_id}}}"


class ConversationsServicer(conversations_pb2_grpc.ConversationsServiceServicer):
    def __init__(self, settings: ConversationsSettings) -> None:
        self.settings = settings
        self.timeout = settings.rpc_timeout_seconds
        self.store = ConversationStore(settings, bucket_ms=settings.bucket_ms)
        self.ids = IdGenerator(settings.worker_id)
        # Only the relay uses the producer; request paths never touch Kafka.
        self.producer = kafka.Producer(settings.kafka_bootstrap)
        self.redis = redis_client.client(settings)
        self.hub = LiveHub(self.redis)
        # Blocks either way keep people from messaging each other.
        self.hidden_authors = safety.HiddenAuthors(self.redis, timeout=self.timeout)
        self.cards = hydrate.Cards(
            settings.media_cache_seconds, settings.product_cache_seconds, settings.sender_cache_seconds
        )
        # Suspended and deleted accounts can neither send nor be added.
        self.gone = accounts.GoneAccounts(self.redis)
        # From the earliest offset: no deletion is skipped, whenever the group starts.
        self.second_sweeps = accounts.SecondSweeps(self.gone, self.remove_account)
        self.account_deletions = AccountDeletions(
            settings.kafka_bootstrap, ACCOUNTS_GROUP, self._on_account_deleted, second_sweeps=self.second_sweeps
        )
        # One group for all replicas: each event is pushed once; Redis pub/sub
        # reaches the watchers on every replica. New messages only: a group
        # starting late does not replay old ones to live streams.
        self.live = ConsumerLoop(
            settings.kafka_bootstrap,
            LIVE_GROUP,
            [kafka.CONVERSATIONS_TOPIC],
            self._push,
            auto_offset_reset="latest",
            # Conversations side by side (one slow hydration holds up only its
            # own conversation); each conversation's messages in order.
            parallel_topics=frozenset({kafka.CONVERSATIONS_TOPIC}),
        )

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        await startup.retry_until_up(self._start_backends, "backends")

    async def _start_backends(self) -> None:
        await self.store.start(self.producer)
        await self.redis.ping()

    async def stop(self) -> None:
        await self.hub.close()
        await self.producer.close()
        await self.store.stop()
        await self.redis.aclose()
        await clients.close_all()

    async def relay(self) -> None:
        """Background job: publishes stored outbox events to Kafka, forever."""
        await kafka.relay_ensuring_topic(
            self.store.outbox.relay_forever, self.settings.kafka_bootstrap, kafka.CONVERSATIONS_TOPIC
        )

    async def push_live(self) -> None:
        """Background job: new-message events -> every recipient's live channel."""
        try:
            await kafka.ensure_topics_async(self.settings.kafka_bootstrap, {kafka.CONVERSATIONS_TOPIC: 6})
        except Exception as exc:
            log.warning("could not ensure the Kafka topic; consuming anyway", extra={"error": error_text(exc)})
        await self.live.run()

    async def consume_account_events(self) -> None:
        """Background job: deleted accounts leave their conversations."""
        await self.account_deletions.run()

    async def _on_account_deleted(self, event: events_pb2.AccountEvent) -> None:
        await self.remove_account(event.deleted.user_id)

    async def remove_account(self, user_id: int) -> None:
        """A deleted account leaves every conversation it is in (its read
        marks and inbox go; the key is released as for any leave). Its
        messages stay for the others, shown from a deleted account (see
        hydrate). Idempotent and resumable: the inbox rows lead to the
        conversations still to leave, and go last."""
        left = 0
        before = None
        while True:
            rows = await self.store.inbox_page(user_id, before, INBOX_PAGE)
            conversations = await self.store.get_conversations(list(dict.fromkeys(c for _, c in rows)))
            for conversation in conversations.values():
                if user_id in conversation.members:
                    await self.store.forget_member(conversation, user_id)
                    left += 1
            if len(rows) < INBOX_PAGE:
                break
            before = rows[-1][0]
        await self.store.drop_inbox(user_id)
        log.info("deleted account left its conversations", extra={"user_id": user_id, "conversations": left})

    async def _push(self, topic: str, key: bytes | None, value: bytes) -> None:
        event = conversations_pb2.ConversationEvent()
        try:
            event.ParseFromString(value)
        except DecodeError:
            log.warning("undecodable conversations event skipped")
            return
        if not event.HasField("message_sent"):
            return
        message = conversations_pb2.Message()
        message.CopyFrom(event.message_sent)
        await self.cards.attach([message], self.timeout)
        payload = conversations_pb2.WatchConversationsResponse(message=message).SerializeToString()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for recipient in event.recipient_ids:
                    pipe.execute_command(publish_command(self.redis), live_channel(int(recipient)), payload)
                await pipe.execute()
        except Exception as exc:
            # Best effort: the message is stored; a watcher that missed it
            # sees it on its next list.
            log.warning("live push failed", extra={"message_id": message.id, "error": error_text(exc)})

    # -- RPCs --------------------------------------------------------------------

    @cql.outage_as_unavailable("conversations")
    async def CreateConversation(self, request, context):
        me = caller_id(context)
        people = await self._people(request.participant_ids, me)
        await self._refuse_blocked(me, people)
        key = participants_key(people)
        for _ in range(5):
            current_id = await self.store.conversation_for(key)
            current = await self.store.get_conversation(current_id) if current_id else None
            if current is not None and current.members == people:
                await self.store.list_in_inboxes(current)  # heals a create cut short
                return await self._conversation_view(current, me)
            new_id = self.ids.next_id()
            await self.store.write_conversation(new_id, people, key)
            if await self.store.point_key(key, new_id, current_id):
                created = ConversationRow(new_id, frozenset(people), key, new_id, 0, 0)
                await self.store.list_in_inboxes(created)
                log.info("conversation created", extra={"conversation_id": new_id, "people": len(people)})
                return await self._conversation_view(created, me)
        raise unavailable("the conversation is being created by someone else right now; try again")

    @cql.outage_as_unavailable("conversations")
    async def ListConversations(self, request, context):
        me = caller_id(context)
        size = page_size(request.page_size)
        before = int_cursor(request.page_token, "before")
        shown: list[ConversationRow] = []
        last_seen = before
        exhausted = False
        while len(shown) <= size and not exhausted:
            want = size + 1 - len(shown)
            rows = await self.store.inbox_page(me, last_seen, want * 2)
            exhausted = len(rows) < want * 2
            conversations = await self.store.get_conversations(list(dict.fromkeys(c for _, c in rows)))
            stale = []
            for activity_id, conversation_id in rows:
                c = conversations.get(conversation_id)
                if c is None or me not in c.members or c.last_activity_id != activity_id:
                    stale.append((activity_id, conversation_id))
                elif len(shown) <= size:
                    shown.append(c)
            if stale:
                await self.store.drop_inbox_rows(me, stale)
            if rows and len(shown) <= size:
                last_seen = rows[-1][0]
        has_more = len(shown) > size
        shown = shown[:size]
        views = await asyncio.gather(*(self._conversation_view(c, me, hydrated=False) for c in shown))
        # The page's last messages hydrated together: one lookup per owner, not one per conversation.
        await self.cards.attach([v.last_message for v in views if v.HasField("last_message")], self.timeout)
        token = encode_token({"before": shown[-1].last_activity_id}) if has_more else ""
        return conversations_pb2.ListConversationsResponse(conversations=views, next_page_token=token)

    @cql.outage_as_unavailable("conversations")
    async def GetConversation(self, request, context):
        me = caller_id(context)
        return await self._conversation_view(await self._member_of(request.conversation_id, me), me)

    @cql.outage_as_unavailable("conversations")
    async def ListMessages(self, request, context):
        me = caller_id(context)
        conversation = await self._member_of(request.conversation_id, me)
        size = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        cid = conversation.conversation_id
        if cursor is not None and "after" in cursor:
            after = cursor_int(cursor, "after")
            rows = await self.store.newer(cid, after, size + 1)
            has_newer = len(rows) > size
            rows = list(reversed(rows[:size]))
            older_token = encode_token({"before": rows[-1].message_id}) if rows else ""
            newer_token = encode_token({"after": rows[0].message_id}) if has_newer and rows else ""
        else:
            before = cursor_int(cursor, "before") if cursor is not None else None
            rows = await self.store.older(cid, before, size + 1)
            has_older = len(rows) > size
            rows = rows[:size]
            older_token = encode_token({"before": rows[-1].message_id}) if has_older and rows else ""
            newer_token = encode_token({"after": rows[0].message_id}) if before is not None and rows else ""
        messages = [_message_proto(r) for r in rows]
        await self.cards.attach(messages, self.timeout)
        return conversations_pb2.ListMessagesResponse(
            messages=messages, next_page_token=older_token, previous_page_token=newer_token
        )

    @cql.outage_as_unavailable("conversations")
    async def SendMessage(self, request, context):
        me = caller_id(context)
        conversation = await self._member_of(request.conversation_id, me)
        text, media_ids, product_ids, client_id = _message_fields(request)
        cid = conversation.conversation_id
        await self._refuse_closed(conversation, me)
        held = await self.store.get_claim(cid, me, client_id) if client_id else None
        if held is not None and (earlier := await self._sent(cid, held)) is not None:
            return earlier
        await self._refuse_blocked(me, conversation.members)
        await media.check_own_uploads(media_ids, me, self.timeout)
        await self.cards.check_products(product_ids, self.timeout)
        claim = held
        if claim is None:
            message_id = self.ids.next_id()
            claim = Claim(message_id, bucket_of(message_id, self.settings.bucket_ms))
            if client_id:
                winner = await self.store.claim(cid, me, client_id, claim)
                if winner != claim and (earlier := await self._sent(cid, winner)) is not None:
                    return earlier
                claim = winner
        # A claim whose send never finished (it failed after claiming) is
        # completed by this repeat, under the claimed id.
        message_id = claim.message_id
        row = MessageRow(cid, message_id, me, text, tuple(media_ids), tuple(product_ids), client_id)
        message = _message_proto(row)
        event = conversations_pb2.ConversationEvent(
            event_id=str(self.ids.next_id()),
            message_sent=message,
            recipient_ids=[str(m) for m in sorted(conversation.members)],
        )
        await self.store.append(row, claim.bucket, conversation, int(event.event_id), event.SerializeToString())
        await self.cards.attach([message], self.timeout)
        return message

    @cql.outage_as_unavailable("conversations")
    async def MarkConversationRead(self, request, context):
        me = caller_id(context)
        conversation = await self._member_of(request.conversation_id, me)
        up_to = parse_id(request.up_to_id, "up_to_id") if request.up_to_id else conversation.last_message_id
        # Never past the newest message: one sent later is unread whatever the client sent.
        mark = min(up_to, conversation.last_message_id)
        cid = conversation.conversation_id
        if mark > await self.store.read_mark(me, cid):
            await self.store.put_read_mark(me, cid, mark)
        unread = await self._unread(conversation, me)
        return conversations_pb2.MarkConversationReadResponse(unread_count=unread)

    @cql.outage_as_unavailable("conversations")
    async def LeaveConversation(self, request, context):
        me = caller_id(context)
        conversation = await self._member_of(request.conversation_id, me)
        await self.store.leave(conversation, me)
        log.info("conversation left", extra={"conversation_id": conversation.conversation_id, "user_id": me})
        return conversations_pb2.LeaveConversationResponse()

    async def WatchConversations(self, request, context):
        me = caller_id(context)
        # The stream ends when the token it was opened with expires.
        deadline = stream_deadline(context)
        async with self.hub.listen([live_channel(me)]) as queue:
            # Headers now: the client learns the stream is subscribed, so
            # nothing sent later is missed.
            await context.send_initial_metadata(())
            WATCHERS.inc()
            try:
                while True:
                    raw = await deadline.next_message(queue, self.settings.watch_heartbeat_seconds)
                    if raw is None:
                        yield conversations_pb2.WatchConversationsResponse()
                        continue
                    event = conversations_pb2.WatchConversationsResponse()
                    try:
                        event.ParseFromString(raw)
                    except DecodeError:
                        continue
                    yield event
            finally:
                WATCHERS.dec()

    # -- helpers -----------------------------------------------------------------

    async def _people(self, participant_ids, me: int) -> set[int]:
        """The caller plus the named users: 2..MAX_PEOPLE existing accounts,
        none of them suspended or deleted."""
        ids = parse_ids(participant_ids, "participant_ids", max_items=MAX_PEOPLE)
        gone = await self.gone.ids()
        if me in gone:
            raise permission_denied("your account is suspended or deleted: it cannot start conversations")
        people = {me, *ids}
        if len(people) < 2:
            raise invalid_argument("participant_ids", "name at least one other person")
        if len(people) > MAX_PEOPLE:
            raise invalid_argument(
                "participant_ids", f"a conversation holds at most {MAX_PEOPLE} people (you included), got {len(people)}"
            )
        known = await clients.user_summaries(sorted(people - {me}), self.timeout, counts=False)
        for i, user_id in enumerate(ids):
            if user_id != me and (user_id not in known or user_id in gone):
                raise not_found(f"participant_ids[{i}]: no such user {user_id}")
        return people

    async def _refuse_blocked(self, me: int, people) -> None:
        """Refuses (403, as Twitter does for direct messages) when the caller
        blocks, or is blocked by, anyone else in the conversation: in a group
        a message would reach them too."""
        hidden = await self.hidden_authors.of(me)
        blocked = sorted((hidden.blocking | hidden.blocked_by) & (set(people) - {me}))
        if blocked:
            raise permission_denied(f"you cannot message user {blocked[0]}: one of you blocks the other")

    async def _refuse_closed(self, conversation: ConversationRow, me: int) -> None:
        """A gone sender cannot send (403); a one-to-one conversation whose
        other person deleted their account takes no new messages (412: the
        history stays readable, but nobody is there to read a new one)."""
        gone = await self.gone.ids()
        if me in gone:
            raise permission_denied("your account is suspended or deleted: it cannot send messages")
        started_with = {int(u) for u in conversation.participants_key.split(",") if u}
        if len(started_with) != 2:
            return
        (other,) = started_with - {me}
        if other in conversation.members and other not in gone:
            return
        # Left, suspended or deleted: identity answers all but deleted accounts.
        if other not in await clients.user_summaries([other], self.timeout, counts=False):
            raise failed_precondition(f"user {other} deleted their account: this conversation takes no new messages")

    async def _member_of(self, raw_id: str, me: int) -> ConversationRow:
        conversation_id = parse_id(raw_id, "conversation_id")
        conversation = await self.store.get_conversation(conversation_id)
        if conversation is None or me not in conversation.members:
            raise not_found(f"no conversation {conversation_id}")
        return conversation

    async def _sent(self, conversation_id: int, claim: Claim) -> conversations_pb2.Message | None:
        """The message an earlier send with the same clientMessageId made,
        waiting briefly while that send is still writing it; None when it
        never landed (that send failed after claiming)."""
        deadline = asyncio.get_running_loop().time() + CLAIM_WAIT_SECONDS
        while True:
            row = await self.store.get_message(conversation_id, claim.bucket, claim.message_id)
            if row is not None:
                message = _message_proto(row)
                await self.cards.attach([message], self.timeout)
                return message
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(0.05)

    async def _unread(self, conversation: ConversationRow, me: int) -> int:
        if not conversation.last_message_id:
            return 0
        mark = await self.store.read_mark(me, conversation.conversation_id)
        if conversation.last_message_id <= mark:
            return 0
        return await self.store.count_after(conversation.conversation_id, mark, self.settings.unread_cap)

    async def _conversation_view(
        self, c: ConversationRow, me: int, *, hydrated: bool = True
    ) -> conversations_pb2.Conversation:
        last, unread = await asyncio.gather(
            self.store.get_message(c.conversation_id, c.last_message_bucket, c.last_message_id)
            if c.last_message_id
            else _none(),
            self._unread(c, me),
        )
        view = conversations_pb2.Conversation(
            id=str(c.conversation_id),
            participant_ids=[str(m) for m in sorted(c.members)],
            unread_count=unread,
        )
        view.updated_at.FromMilliseconds(timestamp_ms(c.last_activity_id or c.conversation_id))
        if last is not None:
            view.last_message.CopyFrom(_message_proto(last))
            if hydrated:
                await self.cards.attach([view.last_message], self.timeout)
        return view


async def _none() -> None:
    return None


def _message_fields(request) -> tuple[str, list[int], list[int], str]:
    """SendMessage's content, validated before anything is written."""
    text = request.text.strip()
    if len(text) > MAX_TEXT:
        raise invalid_argument("text", f"at most {MAX_TEXT} characters, got {len(text)}")
    media_ids = parse_ids(request.media_ids, "media_ids", max_items=MAX_MEDIA)
    product_ids = parse_ids(request.product_ids, "product_ids", max_items=MAX_PRODUCTS)
    if len(set(media_ids)) != len(media_ids):
        raise invalid_argument("media_ids", "a media id is listed more than once")
    if not text and not media_ids and not product_ids:
        raise invalid_argument("text", "is required unless media or products are attached")
    client_id = request.client_message_id
    if len(client_id) > MAX_CLIENT_MESSAGE_ID:
        raise invalid_argument("client_message_id", f"at most {MAX_CLIENT_MESSAGE_ID} characters")
    return text, media_ids, product_ids, client_id


def _message_proto(row: MessageRow) -> conversations_pb2.Message:
    message = conversations_pb2.Message(
        id=str(row.message_id),
        conversation_id=str(row.conversation_id),
        sender_id=str(row.sender_id),
        text=row.text,
        media_ids=[str(m) for m in row.media_ids],
        product_ids=[str(p) for p in row.product_ids],
        client_message_id=row.client_message_id,
    )
    message.created_at.FromMilliseconds(timestamp_ms(row.message_id))
    return message

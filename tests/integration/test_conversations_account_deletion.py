"""conversations when an account is deleted (identity's AccountDeleted, consumer
group conversations-accounts): the account leaves every conversation, its
read marks and inbox go, its messages stay for the others from a "Deleted
account"; a one-to-one with it takes no new messages (412), nobody can start
one with it (404); gone accounts cannot send (403). Against the running
identity and conversations processes."""

from __future__ import annotations

import secrets

import grpc
import pytest

from aviary.conversations.v1 import conversations_pb2 as pb
from aviary.conversations.v1 import conversations_pb2_grpc
from aviary.identity.v1 import identity_pb2
from devstack.backends import cassandra_session
from services.conversations.hydrate import DELETED_DISPLAY_NAME
from services.conversations.store import KEYSPACE
from services.kit.settings import service_addr
from tests.integration.account_events import account_deleted, mark_back, mark_gone, publish, wait_until
from tests.integration.support import wait_serving

PASSWORD = "correct horse battery"


class Account:
    def __init__(self, created) -> None:
        self.id = created.user.id
        self.username = created.user.username
        self.auth = (("authorization", f"Bearer {created.access_token}"),)


def sign_up(identity) -> Account:
    request = identity_pb2.CreateAccountRequest(username=f"c_{secrets.token_hex(4)}", password=PASSWORD)
    return Account(identity.CreateAccount(request, timeout=15))


@pytest.fixture(scope="module")
def conversations():
    channel = wait_serving(service_addr("conversations"))
    yield conversations_pb2_grpc.ConversationsServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def cql():
    cluster, session = cassandra_session(KEYSPACE)
    yield session
    cluster.shutdown()


def create(conversations, who: Account, *others: Account) -> pb.Conversation:
    request = pb.CreateConversationRequest(participant_ids=[o.id for o in others])
    return conversations.CreateConversation(request, metadata=who.auth, timeout=10)


def send(conversations, who: Account, conversation: pb.Conversation, text: str) -> pb.Message:
    request = pb.SendMessageRequest(conversation_id=conversation.id, text=text)
    return conversations.SendMessage(request, metadata=who.auth, timeout=10)


def history(conversations, who: Account, conversation: pb.Conversation) -> list[pb.Message]:
    request = pb.ListMessagesRequest(conversation_id=conversation.id)
    return list(conversations.ListMessages(request, metadata=who.auth, timeout=10).messages)


def people(conversations, who: Account, conversation: pb.Conversation) -> list[str]:
    listed = conversations.ListConversations(pb.ListConversationsRequest(), metadata=who.auth, timeout=10)
    return next(list(c.participant_ids) for c in listed.conversations if c.id == conversation.id)


def refusal(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_a_deleted_account_leaves_and_its_messages_stay_from_a_deleted_account(identity, conversations, cql):
    gone, friend, third, marker = (sign_up(identity) for _ in range(4))
    pair = create(conversations, gone, friend)
    group = create(conversations, gone, friend, third)
    send(conversations, gone, pair, "from the soon gone")
    send(conversations, friend, pair, "reply")
    send(conversations, gone, group, "hello all")
    shown = history(conversations, friend, pair)
    assert (shown[1].sender.id, shown[1].sender.username) == (gone.id, gone.username)
    assert cql.execute(
        f"SELECT up_to FROM {KEYSPACE}.read_marks WHERE user_id = %s ALLOW FILTERING", (int(gone.id),)
    ).all()

    identity.DeleteAccount(identity_pb2.DeleteAccountRequest(password=PASSWORD), metadata=gone.auth, timeout=15)

    wait_until(lambda: people(conversations, friend, pair) == [friend.id])
    assert sorted(people(conversations, third, group)) == sorted([friend.id, third.id])

    def from_deleted_account() -> bool:
        texts = {m.text: m.sender for m in history(conversations, friend, pair)}
        sender = texts["from the soon gone"]
        return (sender.id, sender.username, sender.display_name) == (gone.id, "", DELETED_DISPLAY_NAME)

    wait_until(from_deleted_account)  # once the sender cache (10 s) lets go of the old summary
    # The conversation list's last messages too (hydrated together for the page).
    listed = conversations.ListConversations(pb.ListConversationsRequest(), metadata=third.auth, timeout=10)
    last = next(c.last_message for c in listed.conversations if c.id == group.id)
    assert (last.text, last.sender.display_name, last.sender.username) == ("hello all", DELETED_DISPLAY_NAME, "")
    assert history(conversations, friend, pair)[0].sender.username == friend.username
    assert [m.text for m in history(conversations, third, group)] == ["hello all"]
    # Its unread state and inbox are gone.
    assert not cql.execute(
        f"SELECT up_to FROM {KEYSPACE}.read_marks WHERE user_id = %s ALLOW FILTERING", (int(gone.id),)
    ).all()
    assert not cql.execute(f"SELECT conversation_id FROM {KEYSPACE}.inbox WHERE user_id = %s", (int(gone.id),)).all()

    # The one-to-one takes no new message; the group goes on.
    err = refusal(send, conversations, friend, pair, "anyone there?")
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "deleted" in err.details()
    assert send(conversations, friend, group, "still here").text == "still here"
    # Nobody starts a conversation with the deleted account.
    err = refusal(create, conversations, friend, gone)
    assert err.code() == grpc.StatusCode.NOT_FOUND and "participant_ids[0]" in err.details()

    # Redelivered: nothing changes. The marker's deletion goes out behind it on
    # the same partition, so once the marker has left, the redelivery was applied.
    marked = create(conversations, marker, third)
    publish(account_deleted(gone.id, gone.username))
    publish(account_deleted(marker.id, marker.username), key=gone.id)
    wait_until(lambda: people(conversations, third, marked) == [third.id])
    assert people(conversations, friend, pair) == [friend.id]
    assert [m.text for m in history(conversations, friend, pair)] == ["reply", "from the soon gone"]
    assert sorted(people(conversations, third, group)) == sorted([friend.id, third.id])


def test_a_gone_account_cannot_send_or_start_conversations(identity, conversations):
    sender, other = sign_up(identity), sign_up(identity)
    pair = create(conversations, sender, other)
    mark_gone(sender.id)
    try:

        def refused() -> grpc.StatusCode | None:
            try:
                send(conversations, sender, pair, "hi")
            except grpc.RpcError as err:
                return err.code()
            return None

        assert wait_until(refused) == grpc.StatusCode.PERMISSION_DENIED
        assert refusal(create, conversations, sender, other).code() == grpc.StatusCode.PERMISSION_DENIED
        # Nor can anyone start a conversation with a gone account.
        assert refusal(create, conversations, other, sender).code() == grpc.StatusCode.NOT_FOUND
    finally:
        mark_back(sender.id)


def test_a_conversation_racing_the_deletion_is_left_once_the_account_shows_as_gone(identity, conversations):
    gone, friend, other = sign_up(identity), sign_up(identity), sign_up(identity)
    first = create(conversations, friend, gone)
    publish(account_deleted(gone.id, gone.username))
    wait_until(lambda: people(conversations, friend, first) == [friend.id])
    # Identity has not marked the account gone yet: this create gets through
    # after the first removal, as one racing the deletion would.
    late = create(conversations, other, gone)
    assert sorted(late.participant_ids) == sorted([gone.id, other.id])
    mark_gone(gone.id)
    try:
        wait_until(lambda: people(conversations, other, late) == [other.id], timeout=15)
    finally:
        mark_back(gone.id)

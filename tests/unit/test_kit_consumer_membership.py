"""The consumer loop's watch for a consumer that left its group and does not
rejoin (services/kit/events/consumer.py, _Membership): replaced only after
REJOIN_WAIT_SECONDS without a member id, never while it has one; and the
replaced consumer neither holds up its replacement nor touches its state."""

from __future__ import annotations

import threading
import time

import confluent_kafka

from services.kit.events import consumer
from services.kit.events.kafka import TopicPartition


class _Consumer:
    """Answers memberid() as librdkafka does: the id, or None out of the group."""

    def __init__(self) -> None:
        self.member_id: str | None = "rdkafka-1"

    def memberid(self) -> str | None:
        return self.member_id


def test_a_consumer_out_of_its_group_is_lost_only_after_the_wait(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(consumer.time, "monotonic", lambda: now[0])
    member, watch = _Consumer(), consumer._Membership()
    seen = []
    for step in range(0, 100, 2):
        now[0] = 1000.0 + step
        if step == 10:
            member.member_id = None  # a session timeout: out of the group
        seen.append((step, watch.lost(member)))  # type: ignore[arg-type]
    # Last seen in the group at step 8: lost from the first look more than the wait after it.
    first_lost = next(step for step, _ in seen if step - 8 > consumer.REJOIN_WAIT_SECONDS)
    assert [step for step, lost in seen if lost] == [step for step, _ in seen if step >= first_lost]


def test_a_member_that_rejoins_in_time_is_not_lost(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(consumer.time, "monotonic", lambda: now[0])
    member, watch = _Consumer(), consumer._Membership()
    for step in range(200):
        now[0] = float(step)
        # Out of the group for a rebalance's few seconds, every 20 s.
        member.member_id = None if step % 20 < 5 else "rdkafka-1"
        assert not watch.lost(member)  # type: ignore[arg-type]


class _HangingConsumer:
    """A client that would not rejoin: close() never returns."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.closing = threading.Event()

    def close(self) -> None:
        self.closing.set()
        self.release.wait()


def test_a_replaced_consumer_that_hangs_in_close_does_not_hold_up_its_replacement():
    hanging = _HangingConsumer()
    started = time.monotonic()
    consumer._close_aside(hanging, "g")  # type: ignore[arg-type]
    returned_after = time.monotonic() - started
    assert hanging.closing.wait(5.0), "close() was never called"
    assert returned_after < 1.0
    hanging.release.set()


def test_a_detached_consumers_callbacks_leave_the_shared_state_alone():
    positions = {TopicPartition("t", 0): 7}
    serial = consumer._SerialProgress()
    serial.offsets[TopicPartition("t", 0)] = 5
    rebalances = consumer._Rebalances(None, positions, serial, frozenset())
    rebalances.detach()
    gone = consumer.KafkaError(consumer.KafkaError._TRANSPORT)
    # Run by the old consumer's close(): a revocation, an empty assignment, a failed commit.
    rebalances.revoked(None, [confluent_kafka.TopicPartition("t", 0)])  # type: ignore[arg-type]
    rebalances.assigned(None, [])  # type: ignore[arg-type]
    rebalances.committed(gone, [confluent_kafka.TopicPartition("t", 1, 40)])
    assert positions == {TopicPartition("t", 0): 7}
    assert serial.offsets == {TopicPartition("t", 0): 5}


def test_an_attached_consumers_failed_commit_is_taken_back():
    serial = consumer._SerialProgress()
    rebalances = consumer._Rebalances(None, {}, serial, frozenset())
    gone = consumer.KafkaError(consumer.KafkaError._TRANSPORT)
    rebalances.committed(gone, [confluent_kafka.TopicPartition("t", 1, 40)])
    assert serial.offsets == {TopicPartition("t", 1): 40}


def test_forgetting_an_assignment_drops_positions_and_uncommitted_serial_progress():
    positions = {TopicPartition("t", 0): 7}
    serial = consumer._SerialProgress()
    serial.offsets[TopicPartition("t", 0)] = 5
    consumer._forget_assignment(None, positions, serial)
    assert positions == {} and serial.offsets == {}

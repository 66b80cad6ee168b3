"""The consumer loop's watch for a consumer that left its group and does not
rejoin (services/kit/events/consumer.py, _Membership): replaced only after
REJOIN_WAIT_SECONDS without a member id, never while it has one."""

from __future__ import annotations

from services.kit.events import consumer


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

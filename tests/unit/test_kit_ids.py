"""Snowflake ids: ordering and the time <-> id helpers the outbox relies on."""

from services.kit.server.ids import IdGenerator, min_id_at, timestamp_ms


def test_ids_increase_and_carry_their_time():
    gen = IdGenerator(worker_id=7)
    ids = [gen.next_id() for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for id_ in ids[::500]:
        ms = timestamp_ms(id_)
        assert min_id_at(ms) <= id_ < min_id_at(ms + 1)
        assert timestamp_ms(min_id_at(ms)) == ms

"""How the bulk path finds a command's slot and reads a CLUSTER SLOTS reply
(services/kit/stores/redis_cluster_bulk.py)."""

from __future__ import annotations

from redis.crc import key_slot

from services.kit.stores.redis_cluster_bulk import _slots_from, command_slot


def test_a_commands_slot_is_its_first_keys_and_a_scripts_is_keys_1():
    assert command_slot((b"GET", b"home:{42}")) == key_slot(b"42")
    assert command_slot(("HMGET", "eng:c:{7}", "l")) == key_slot(b"7")
    assert command_slot((b"EVALSHA", b"f00", b"2", b"home:{9}", b"seen:{9}", b"arg")) == key_slot(b"9")
    assert command_slot((b"EVAL", b"return 1", 0)) == key_slot(b"")


def test_a_slot_map_names_each_slots_master_and_needs_every_slot():
    ranges = [
        [0, 8191, [b"10.0.0.1", 7000, b"id1"], [b"10.0.0.4", 7003, b"id4"]],
        [8192, 16383, [b"", 7001, b"id2"]],
    ]
    slots = _slots_from(ranges, ("10.0.0.9", 7005))
    assert slots is not None and slots[0] == ("10.0.0.1", 7000) and slots[16383] == ("10.0.0.9", 7001)
    assert _slots_from(ranges[:1], ("h", 1)) is None

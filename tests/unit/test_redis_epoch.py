from services.kit.stores.redis_epoch import epoch_of


def _master(run_id: str, replid: str) -> dict:
    return {"run_id": run_id, "master_replid": replid, "role": "master"}


def test_the_epoch_names_every_masters_history_in_any_order():
    a, b = _master("r1", "x1"), _master("r2", "x2")
    assert epoch_of([a, b]) == epoch_of([b, a])
    assert len(epoch_of([a, b])) == 16


def test_a_promotion_or_a_restart_moves_the_epoch():
    before = epoch_of([_master("r1", "x1"), _master("r2", "x2")])
    promoted = epoch_of([_master("r3", "x3"), _master("r2", "x2")])  # a replica took r1's slots
    restarted = epoch_of([_master("r1b", "x1"), _master("r2", "x2")])  # same replication id, new process
    assert len({before, promoted, restarted}) == 3

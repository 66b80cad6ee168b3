from services.kit.stores.redis_epoch import RedisEpoch, epoch_of


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


class _Info:
    """A stand-in for a standalone Redis's INFO: counts the asks."""

    def __init__(self) -> None:
        self.run_id = "r1"
        self.asked = 0
        self.down = False

    async def info(self, *sections):
        self.asked += 1
        if self.down:
            raise OSError("redis down")
        return _master(self.run_id, "x1")


async def test_a_process_without_a_watch_reads_the_epoch_at_most_once_per_max_age():
    redis = _Info()
    epoch = RedisEpoch(redis)  # type: ignore[arg-type]
    first = await epoch.current_within(60)
    assert first is not None and redis.asked == 1
    redis.run_id = "r2"  # restarted
    assert await epoch.current_within(60) == first and redis.asked == 1, "read less than max_age ago"
    moved = await epoch.current_within(0)
    assert moved not in (None, first) and redis.asked == 2


async def test_an_unreadable_epoch_is_unknown():
    redis = _Info()
    epoch = RedisEpoch(redis)  # type: ignore[arg-type]
    assert await epoch.current_within(0) is not None
    redis.down = True
    assert await epoch.current_within(0) is None

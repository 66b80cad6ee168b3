"""The consumer every service runs to remove what it holds of a deleted account.

Identity publishes AccountDeleted on identity.events.v1 (keyed by user id)
through its outbox; each service reads it in a consumer group of its own and
applies it idempotently (redelivery happens), the offset committed only after
the handler returns. Suspensions and reinstatements travel on the same topic
but change nothing stored: the gone-accounts set (peers.accounts) hides a
suspended account.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from google.protobuf.message import DecodeError

from aviary.events.v1 import events_pb2
from services.kit.events import kafka
from services.kit.events.consumer import ConsumerLoop, PoisonRecord
from services.kit.peers.accounts import SecondSweeps

# Called with the whole event (its `deleted` set, user_id > 0).
OnDeleted = Callable[[events_pb2.AccountEvent], Awaitable[None]]


class AccountDeletions:
    """A consumer group of identity.events.v1 that hands each account deletion
    to `on_deleted`, and, given `second_sweeps`, schedules the removal again
    for when every process sees the account gone."""

    def __init__(
        self, bootstrap: str, group: str, on_deleted: OnDeleted, *, second_sweeps: SecondSweeps | None = None
    ) -> None:
        self._bootstrap = bootstrap
        self._on_deleted = on_deleted
        self._second_sweeps = second_sweeps
        self.consumer = ConsumerLoop(bootstrap, group, [kafka.IDENTITY_TOPIC], self._on_record)

    async def run(self) -> None:
        """Background job: consumes forever, creating the topic side by side if missing."""
        await kafka.relay_ensuring_topic(self.consumer.run, self._bootstrap, kafka.IDENTITY_TOPIC)

    async def _on_record(self, topic: str, key: bytes | None, value: bytes) -> None:
        try:
            event = events_pb2.AccountEvent.FromString(value)
        except DecodeError as exc:
            raise PoisonRecord(f"not an AccountEvent: {exc}") from exc
        if event.WhichOneof("kind") != "deleted" or event.deleted.user_id <= 0:
            return
        await self._on_deleted(event)
        if self._second_sweeps is not None:
            self._second_sweeps.schedule(event.deleted.user_id)

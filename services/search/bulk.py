"""Index and delete actions from concurrent callers, sent to OpenSearch
together: one `_bulk` request at a time, carrying every action that arrived
while the one before it was out.

Each request costs OpenSearch far more than each document in it, so events
applied side by side (search's consumer runs a poll's records at once) cost
one request between them instead of one each. A caller awaits only its own
action's outcome; an action that fails fails only its caller.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from opensearchpy import AsyncOpenSearch

# More than this waiting goes out in several requests, one after another.
MAX_ACTIONS = 500

INDEXED = "indexed"
STALE = "stale"  # the index holds this or a newer version already
DELETED = "deleted"
ABSENT = "absent"  # nothing to delete, or a newer version is there


class BulkActionFailed(Exception):
    """OpenSearch refused one action of a bulk request (its status and reason)."""

    def __init__(self, status: int, error: object) -> None:
        super().__init__(f"bulk action refused ({status}): {error}")
        self.status = status


@dataclass
class _Action:
    op: str
    meta: dict
    source: dict | None
    outcome: asyncio.Future


class BulkWriter:
    def __init__(self, client: AsyncOpenSearch) -> None:
        self._client = client
        self._waiting: list[_Action] = []
        self._sender: asyncio.Task | None = None

    async def index(self, index: str, doc_id: int, version: int, doc: dict) -> str:
        """Stores the document unless the index holds this version or a newer
        one (external versions: a replayed older event never wins); INDEXED or STALE."""
        refused = await self._submit("index", index, doc_id, version, doc)
        return STALE if refused else INDEXED

    async def delete(self, index: str, doc_id: int, version: int) -> str:
        """Deletes the document unless a newer version is there; DELETED or ABSENT."""
        refused = await self._submit("delete", index, doc_id, version, None)
        return ABSENT if refused else DELETED

    async def _submit(self, op: str, index: str, doc_id: int, version: int, source: dict | None) -> bool:
        """Whether OpenSearch answered with one of the op's expected refusals."""
        meta = {op: {"_index": index, "_id": str(doc_id), "version": version, "version_type": "external_gte"}}
        action = _Action(op, meta, source, asyncio.get_running_loop().create_future())
        self._waiting.append(action)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_while_waiting())
        return await action.outcome

    async def _send_while_waiting(self) -> None:
        try:
            # Callers started in this same turn of the loop join the first request.
            await asyncio.sleep(0)
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_ACTIONS], self._waiting[MAX_ACTIONS:]
                await self._send(batch)
        except asyncio.CancelledError as stopped:
            waiting, self._waiting = self._waiting, []
            for action in waiting:
                _settle(action.outcome, exception=stopped)
            raise

    async def _send(self, batch: list[_Action]) -> None:
        try:
            response = await self._client.bulk(body=_ndjson(batch))
        except BaseException as exc:
            for action in batch:
                _settle(action.outcome, exception=exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for action, item in zip(batch, response["items"]):
            result = next(iter(item.values()))
            status = result.get("status", 0)
            if status < 300:
                _settle(action.outcome, refused=False)
            elif status in _EXPECTED_REFUSALS[action.op]:
                _settle(action.outcome, refused=True)
            else:
                _settle(action.outcome, exception=BulkActionFailed(status, result.get("error")))


# Answers that are outcomes, not failures: a version conflict (the index is
# newer), and a delete of a document that is not there.
_EXPECTED_REFUSALS = {"index": (409,), "delete": (404, 409)}


def _ndjson(batch: list[_Action]) -> str:
    lines = []
    for action in batch:
        lines.append(json.dumps(action.meta))
        if action.source is not None:
            lines.append(json.dumps(action.source))
    return "\n".join(lines) + "\n"


def _settle(outcome: asyncio.Future, *, refused: bool = False, exception: BaseException | None = None) -> None:
    # A caller cancelled meanwhile (its record is replayed) no longer listens.
    if outcome.done():
        return
    if exception is not None:
        outcome.set_exception(exception)
    else:
        outcome.set_result(refused)

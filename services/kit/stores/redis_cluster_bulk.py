"""The bulk path (redis_bulk) on a Redis Cluster: each command goes to the
master of its key's slot, one write and one read per node, all nodes at once.

The slot map comes from CLUSTER SLOTS on any node the URL names (or learnt
since) and is read again after a MOVED reply or a dropped connection (a
failover moves slots to a promoted replica). MOVED and ASK replies are
followed for the commands that got them, not surfaced; every other error
reply comes back as a value, as on one node.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, Sequence

import hiredis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ResponseError

Address = tuple[str, int]

# Redirections one command may follow (a resharding slot can answer ASK,
# then MOVED) before the call gives up.
_MAX_REDIRECTS = 5
_SCRIPT_COMMANDS = (b"EVALSHA", b"EVAL", b"EVALSHA_RO", b"EVAL_RO")


def _pack(command: Sequence[Any]) -> bytes:
    return hiredis.pack_command(tuple(command))


class NotReplicated(ResponseError):
    """Writes that ran but that too few replicas acknowledged in time."""


class Node(Protocol):
    async def execute_packed(self, payload: bytes, count: int) -> list: ...

    async def close(self) -> None: ...


class NodeFactory(Protocol):
    def __call__(self, host: str, port: int) -> Node: ...


def command_slot(command: Sequence[Any]) -> int:
    """The slot of a command's first key (scripts: KEYS[1]; keyless: slot 0)."""
    name = _bytes(command[0]).upper()
    if name in _SCRIPT_COMMANDS:
        key = command[3] if int(command[2]) > 0 else b""
    else:
        key = command[1] if len(command) > 1 else b""
    return key_slot_of(key)


def key_slot_of(key: Any) -> int:
    return key_slot(_bytes(key))


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class ClusterBulk:
    def __init__(self, seeds: Sequence[Address], node_factory: NodeFactory) -> None:
        self._seeds = list(seeds)
        self._node_factory = node_factory
        self._nodes: dict[Address, Node] = {}
        self._slots: list[Address] | None = None
        self._mapping = asyncio.Lock()

    async def send(
        self,
        commands: Sequence[tuple],
        *,
        resend_if_dropped: bool,
        script: str | None = None,
        replicas: int = 0,
        wait_ms: int = 100,
    ) -> list:
        """Every command's reply, in order. `script`: the body of the EVALSHAs
        among them, sent as EVAL to a node that answers NOSCRIPT (which also
        loads it there). `replicas`: each node's batch ends with WAIT for that
        many of its replicas (at most `wait_ms`), and NotReplicated is raised
        when fewer acknowledged: a failover before then may lose the writes."""
        commands = list(commands)
        replies: list = [None] * len(commands)
        # index -> (node it was redirected to, whether ASKING must precede it)
        pending: dict[int, tuple[Address, bool] | None] = dict.fromkeys(range(len(commands)))
        dropped_once = False
        for _ in range(_MAX_REDIRECTS + 1):
            slots = await self._slot_map()
            groups: dict[Address, list[tuple[int, bool]]] = {}
            for index, redirect in pending.items():
                address, asking = redirect or (slots[command_slot(commands[index])], False)
                groups.setdefault(address, []).append((index, asking))
            results = await asyncio.gather(
                *(self._send_to(address, commands, group, replicas, wait_ms) for address, group in groups.items()),
                return_exceptions=True,
            )
            pending = {}
            for (address, group), result in zip(groups.items(), results):
                if isinstance(result, BaseException):
                    self._slots = None
                    if not (isinstance(result, OSError) and resend_if_dropped and not dropped_once):
                        raise result
                    pending.update(dict.fromkeys(i for i, _ in group))
                    continue
                for (index, _), reply in zip(group, result):
                    redirect = self._redirect(reply)
                    if redirect is not None:
                        pending[index] = redirect
                    elif script is not None and is_noscript(reply):
                        command = commands[index]
                        commands[index] = (b"EVAL", script, *command[2:])
                        pending[index] = (address, False)
                    else:
                        replies[index] = reply
            if any(redirect is None for redirect in pending.values()):
                dropped_once = True
            if not pending:
                return replies
        raise ResponseError(f"{len(pending)} commands still redirected after {_MAX_REDIRECTS} redirections")

    async def _send_to(
        self, address: Address, commands: list[tuple], group: list[tuple[int, bool]], replicas: int, wait_ms: int
    ) -> list:
        packed: list[bytes] = []
        for index, asking in group:
            if asking:
                packed.append(_pack((b"ASKING",)))
            packed.append(_pack(commands[index]))
        if replicas:
            packed.append(_pack((b"WAIT", replicas, wait_ms)))
        replies = await self._node(address).execute_packed(b"".join(packed), len(packed))
        answers = iter(replies)
        mine = []
        for _, asking in group:
            if asking:
                next(answers)  # ASKING's OK is not the caller's
            mine.append(next(answers))
        if replicas:
            acknowledged = next(answers)
            if isinstance(acknowledged, hiredis.ReplyError) or acknowledged < replicas:
                raise NotReplicated(f"{address[0]}:{address[1]}: {acknowledged} of {replicas} replicas acknowledged")
        return mine

    def _redirect(self, reply: Any) -> tuple[Address, bool] | None:
        if not isinstance(reply, hiredis.ReplyError):
            return None
        kind, _, rest = str(reply).partition(" ")
        if kind not in ("MOVED", "ASK"):
            return None
        host, _, port = rest.partition(" ")[2].rpartition(":")
        if kind == "MOVED":
            self._slots = None
        return (host, int(port)), kind == "ASK"

    def _node(self, address: Address) -> Node:
        node = self._nodes.get(address)
        if node is None:
            node = self._nodes[address] = self._node_factory(*address)
        return node

    async def _slot_map(self) -> list[Address]:
        slots = self._slots
        if slots is not None:
            return slots
        async with self._mapping:
            if self._slots is None:
                self._slots = await self._read_slot_map()
            return self._slots

    async def _read_slot_map(self) -> list[Address]:
        failures: list[str] = []
        # The nodes known from the last map first: after a failover the URL's
        # seeds may be the ones that are down.
        for address in dict.fromkeys([*self._nodes, *self._seeds]):
            try:
                (ranges,) = await self._node(address).execute_packed(_pack((b"CLUSTER", b"SLOTS")), 1)
            except OSError as exc:
                failures.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            if isinstance(ranges, hiredis.ReplyError):
                failures.append(f"{address[0]}:{address[1]}: {ranges}")
                continue
            slots = _slots_from(ranges, address)
            if slots is not None:
                return slots
            failures.append(f"{address[0]}:{address[1]}: not every slot is served")
        raise ConnectionError(f"no Redis Cluster node gave a full slot map ({'; '.join(failures)})")

    async def close(self) -> None:
        for node in self._nodes.values():
            await node.close()


def _slots_from(ranges: list, asked: Address) -> list[Address] | None:
    slots: list[Address | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    for start, end, master, *_replicas in ranges:
        host = master[0].decode() if master[0] else asked[0]
        address = (host, int(master[1]))
        for slot in range(int(start), int(end) + 1):
            slots[slot] = address
    if any(address is None for address in slots):
        return None
    return [address for address in slots if address is not None]


def is_noscript(reply: Any) -> bool:
    """Whether a reply says the server does not know the script (first use, or a restart)."""
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT")

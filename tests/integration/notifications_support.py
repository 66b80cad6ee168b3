"""What the notifications integration tests share: signed-up users, stubs to
the running services, a Kafka producer into the real topics, and inbox reads
that poll until a predicate holds. Each test module subclasses the harness
with the stubs and events it needs."""

from __future__ import annotations

import asyncio
import secrets
import time

import grpc
import pytest

from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from services.kit.settings import load_settings, service_addr
from services.kit.events.kafka import Producer
from tests.integration.support import User, wait_serving

NT = notifications_pb2
RPC_TIMEOUT = 10.0


class NotificationsHarness:
    # How long wait_inbox polls before failing the test.
    deadline = 10.0

    def __init__(self) -> None:
        self.settings = load_settings()
        self._channels: list[grpc.Channel] = []
        self.identity = identity_pb2_grpc.IdentityServiceStub(self.channel("identity"))
        self.notifications = notifications_pb2_grpc.NotificationsServiceStub(self.channel("notifications"))
        self._loop = asyncio.new_event_loop()
        self._producer = Producer(self.settings.kafka_bootstrap)

    def channel(self, name: str) -> grpc.Channel:
        channel = wait_serving(service_addr(name))
        self._channels.append(channel)
        return channel

    def close(self) -> None:
        self._loop.run_until_complete(self._producer.close())
        self._loop.close()
        for channel in self._channels:
            channel.close()

    def sign_up(self, prefix: str = "n", display_name: str = "") -> User:
        username = f"{prefix}_{secrets.token_hex(4)}"
        reply = self.identity.CreateAccount(
            identity_pb2.CreateAccountRequest(
                username=username, password=secrets.token_urlsafe(12), display_name=display_name or username
            ),
            timeout=RPC_TIMEOUT,
        )
        return User(int(reply.user.id), username, reply.access_token)

    def send(self, topic: str, key: bytes, payloads) -> None:
        self._loop.run_until_complete(self._producer.send_all([(topic, key, p) for p in payloads]))

    # -- reads -----------------------------------------------------------------

    def inbox(self, user: User, page_size: int = 100, token: str = "") -> NT.ListNotificationsResponse:
        return self.notifications.ListNotifications(
            NT.ListNotificationsRequest(page_size=page_size, page_token=token),
            metadata=user.auth,
            timeout=RPC_TIMEOUT,
        )

    def wait_inbox(self, user: User, predicate, timeout: float | None = None) -> NT.ListNotificationsResponse:
        deadline = time.monotonic() + (self.deadline if timeout is None else timeout)
        while True:
            page = self.inbox(user)
            if predicate(page.notifications):
                return page
            if time.monotonic() >= deadline:
                pytest.fail(f"inbox of {user.username} never matched; last: {list(page.notifications)}")
            time.sleep(0.1)

    def mark_read(self, user: User, up_to: str = "") -> int:
        return self.notifications.MarkNotificationsRead(
            NT.MarkNotificationsReadRequest(up_to_id=up_to), metadata=user.auth, timeout=RPC_TIMEOUT
        ).marked

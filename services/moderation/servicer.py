"""ModerationService: reports from users, decisions from operators."""

from __future__ import annotations

import logging

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from aviary.events.v1 import events_pb2
from aviary.moderation.v1 import moderation_pb2, moderation_pb2_grpc
from aviary.posts.v1 import posts_pb2
from services.kit.events import kafka
from services.kit.peers import clients
from services.kit.server import startup
from services.kit.server.auth import caller_id
from services.kit.server.errors import failed_precondition, invalid_argument, not_found, unavailable
from services.kit.server.ids import IdGenerator, parse_id
from services.kit.server.operators import operator
from services.kit.server.paging import encode_token, int_cursor, page_size
from services.kit.stores import migrations
from services.moderation import rules
from services.moderation.settings import ModerationSettings
from services.moderation.store import OPEN, RESOLVED, SCHEMA, AlreadyResolved, ModerationStore, NewReport, ReportRow

log = logging.getLogger(__name__)

SCOPE = "moderation"
_STATUSES = {
    moderation_pb2.REPORT_STATUS_UNSPECIFIED: OPEN,
    moderation_pb2.REPORT_STATUS_OPEN: OPEN,
    moderation_pb2.REPORT_STATUS_RESOLVED: RESOLVED,
}


class ModerationServicer(moderation_pb2_grpc.ModerationServiceServicer):
    def __init__(self, settings: ModerationSettings) -> None:
        self.settings = settings
        # Only the outbox relay uses the producer; request paths never touch Kafka.
        self.producer = kafka.Producer(settings.kafka_bootstrap)
        self.store = ModerationStore(settings, self.producer)
        self.ids = IdGenerator(settings.worker_id)

    async def start(self) -> None:
        await startup.retry_until_up(self._migrate, "postgresql")
        await self.store.start()

    async def _migrate(self) -> None:
        await migrations.upgrade_async("moderation", SCHEMA, self.settings.pg_dsn)

    async def stop(self) -> None:
        await self.store.stop()
        await self.producer.close()
        await clients.close_all()

    async def relay(self) -> None:
        """Background: the outbox's decisions -> moderation.events.v1, forever."""
        await kafka.relay_ensuring_topic(
            self.store.outbox.relay_forever, self.settings.kafka_bootstrap, kafka.MODERATION_TOPIC
        )

    # -- people --------------------------------------------------------------------

    async def CreateReport(self, request, context):
        reporter = caller_id(context)
        rules.exactly_one_target(request.post_id, request.user_id)
        reason = rules.reason_of(request.reason)
        comment = rules.text_of("comment", request.comment, self.settings.max_comment_chars)
        post_id: int | None = None
        if request.post_id:
            post_id = parse_id(request.post_id, "post_id")
            user_id = await self._author_of(post_id)
        else:
            post_id, user_id = None, parse_id(request.user_id, "user_id")
            await self._check_account(user_id)
        if user_id == reporter:
            field = "post_id" if post_id else "user_id"
            raise invalid_argument(field, "you cannot report yourself or your own posts")
        row, created = await self.store.create(
            NewReport(self.ids.next_id(), reporter, post_id, user_id, reason, comment)
        )
        if created:
            log.info("report created", extra={"report_id": row.report_id, "reason": reason})
        return _report(row)

    async def _author_of(self, post_id: int) -> int:
        try:
            reply = await clients.posts().BatchGetPosts(
                posts_pb2.BatchGetPostsRequest(post_ids=[str(post_id)], skip_engagement=True),
                timeout=self.settings.rpc_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            raise unavailable(f"cannot check the post right now (posts: {exc.code().name}); try again") from exc
        if not reply.posts:
            raise not_found(f"post {post_id} not found")
        return int(reply.posts[0].author_id)

    async def _check_account(self, user_id: int) -> None:
        found = await clients.user_summaries([user_id], self.settings.rpc_timeout_seconds)
        if user_id not in found:
            raise not_found(f"user {user_id} not found")

    # -- operators -----------------------------------------------------------------

    async def ListReports(self, request, context):
        operator(context, SCOPE)
        status = _STATUSES.get(request.status)
        if status is None:
            raise invalid_argument("status", "REPORT_STATUS_OPEN or REPORT_STATUS_RESOLVED")
        size = page_size(request.page_size)
        after = int_cursor(request.page_token, "after") or 0
        rows = await self.store.page(status, after, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        token = encode_token({"after": rows[-1].report_id}) if more else ""
        return moderation_pb2.ListReportsResponse(reports=[_report(r) for r in rows], next_page_token=token)

    async def GetReport(self, request, context):
        operator(context, SCOPE)
        row = await self.store.get(parse_id(request.report_id, "report_id"))
        if row is None:
            raise not_found(f"report {request.report_id} not found")
        return _report(row)

    async def ReinstateAccount(self, request, context):  # TODO(issue 19): being built
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "ReinstateAccount is not built yet")

    async def ResolveReport(self, request, context):
        who = operator(context, SCOPE)
        report_id = parse_id(request.report_id, "report_id")
        decision = rules.decision_of(request.decision)
        note = rules.text_of("note", request.note, self.settings.max_comment_chars)
        try:
            closed = await self.store.resolve(report_id, decision, who.name, note, self._resolved_event)
        except AlreadyResolved as done:
            raise failed_precondition(
                f"report {report_id} was already resolved ({done.row.decision} by {done.row.resolved_by})"
            ) from None
        if not closed:
            raise not_found(f"report {report_id} not found")
        log.info(
            "reports resolved",
            extra={"report_id": report_id, "decision": decision, "operator": who.name, "closed": len(closed)},
        )
        return _report(closed[0])

    def _resolved_event(self, row: ReportRow) -> tuple[int, bytes, bytes]:
        event_id = self.ids.next_id()
        event = events_pb2.ModerationEvent(
            event_id=event_id,
            report_resolved=events_pb2.ReportResolved(
                report_id=row.report_id,
                reporter_id=row.reporter_id,
                post_id=row.post_id or 0,
                user_id=row.user_id,
                decision=row.decision,
            ),
        )
        event.occur_time.GetCurrentTime()
        return event_id, str(row.reporter_id).encode(), event.SerializeToString()


def _timestamp(value) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _report(row: ReportRow) -> moderation_pb2.Report:
    status = moderation_pb2.REPORT_STATUS_OPEN if row.status == OPEN else moderation_pb2.REPORT_STATUS_RESOLVED
    return moderation_pb2.Report(
        id=str(row.report_id),
        reporter_id=str(row.reporter_id),
        post_id=str(row.post_id) if row.post_id else "",
        user_id=str(row.user_id),
        reason=moderation_pb2.ReportReason.Value("REPORT_REASON_" + row.reason),
        comment=row.comment,
        status=status,
        decision=moderation_pb2.ReportDecision.Value("REPORT_DECISION_" + (row.decision or "UNSPECIFIED")),
        resolved_by=row.resolved_by,
        resolution_note=row.resolution_note,
        create_time=_timestamp(row.created_at),
        resolve_time=_timestamp(row.resolved_at),
    )

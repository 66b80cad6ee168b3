"""ModerationService: reports from users, decisions from operators."""

from __future__ import annotations

import logging

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from aviary.events.v1 import events_pb2
from aviary.identity.v1 import identity_pb2
from aviary.moderation.v1 import moderation_pb2, moderation_pb2_grpc
from aviary.posts.v1 import posts_pb2
from services.kit.events import kafka
from services.kit.peers import clients
from services.kit.server import startup
from services.kit.server.auth import caller_id
from services.kit.server.errors import (
    failed_precondition,
    invalid_argument,
    not_found,
    peer_error,
    unavailable,
)
from services.kit.server.ids import IdGenerator, parse_id
from services.kit.server.operators import operator
from services.kit.server.paging import encode_token, int_cursor, page_size
from services.kit.stores import migrations
from services.moderation import rules
from services.moderation.settings import ModerationSettings
from services.moderation.store import (
    OPEN,
    RESOLVED,
    SCHEMA,
    AlreadyResolved,
    ModerationStore,
    NewReport,
    NotSuspended,
    ReportRow,
)

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
        found = await clients.user_summaries([user_id], self.settings.rpc_timeout_seconds, counts=False)
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

    async def ReinstateAccount(self, request, context):
        who = operator(context, SCOPE)
        user_id = parse_id(request.user_id, "user_id")
        note = rules.text_of("note", request.note, self.settings.max_comment_chars)

        async def carry_out() -> None:
            await self._reinstate(user_id, context)

        try:
            lifted = await self.store.reinstate(user_id, who.name, note, carry_out)
        except NotSuspended:
            raise failed_precondition(f"account {user_id} is not suspended") from None
        log.info("account reinstated", extra={"user_id": user_id, "operator": who.name})
        return moderation_pb2.ReinstateAccountResponse(user_id=str(user_id), reinstate_time=_timestamp(lifted))

    async def ResolveReport(self, request, context):
        who = operator(context, SCOPE)
        report_id = parse_id(request.report_id, "report_id")
        decision = rules.decision_of(request.decision)
        note = rules.text_of("note", request.note, self.settings.max_comment_chars)

        async def carry_out(row: ReportRow) -> None:
            await self._carry_out(decision, row, context)

        try:
            closed = await self.store.resolve(report_id, decision, who.name, note, self._resolved_event, carry_out)
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

    async def _carry_out(self, decision: str, row: ReportRow, context) -> None:
        """The decision's effect, asked of its owner before the decision is
        recorded (both calls are idempotent, so a retry after a failed
        commit repeats them harmlessly)."""
        rules.check_decision_fits(decision, row.post_id)
        if decision == rules.REMOVE_POST:
            await self._remove_post(row)
        elif decision == rules.SUSPEND_ACCOUNT:
            await self._suspend(row, context)

    async def _remove_post(self, row: ReportRow) -> None:
        request = posts_pb2.RemovePostRequest(post_id=str(row.post_id), report_id=str(row.report_id))
        try:
            await clients.posts().RemovePost(request, timeout=self.settings.rpc_timeout_seconds)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                # Never stored (a report checks its post exists): nothing to remove.
                log.warning("reported post not found to remove", extra={"post_id": row.post_id})
                return
            raise unavailable(f"cannot remove the post right now (posts: {exc.code().name}); try again") from exc
        log.info("reported post removed", extra={"post_id": row.post_id, "report_id": row.report_id})

    async def _suspend(self, row: ReportRow, context) -> None:
        request = identity_pb2.SuspendAccountRequest(user_id=str(row.user_id), report_id=str(row.report_id))
        stub = clients.identity()
        call = stub.SuspendAccount(request, timeout=self.settings.rpc_timeout_seconds, metadata=_operator(context))
        await _from_identity("suspend the account", call)
        log.info("account suspended", extra={"user_id": row.user_id, "report_id": row.report_id})

    async def _reinstate(self, user_id: int, context) -> None:
        request = identity_pb2.ReinstateAccountRequest(user_id=str(user_id))
        stub = clients.identity()
        call = stub.ReinstateAccount(request, timeout=self.settings.rpc_timeout_seconds, metadata=_operator(context))
        status = await _from_identity("reinstate the account", call)
        if status.suspended:
            raise unavailable(f"identity still has account {user_id} suspended; try again")

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


# Identity's answers that say the account cannot be suspended or reinstated.
_IDENTITY_REFUSALS = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)


async def _from_identity(what: str, call) -> identity_pb2.AccountStatus:
    """Identity's answer to SuspendAccount or ReinstateAccount. Its refusals
    (an unknown or deleted account) reach the operator as identity said
    them; anything else is UNAVAILABLE, and nothing is recorded."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() in _IDENTITY_REFUSALS:
            raise peer_error(exc) from exc
        raise unavailable(f"cannot {what} right now (identity: {exc.code().name}); try again") from exc


def _operator(context) -> tuple[tuple[str, str], ...]:
    # The operator's token goes along, so identity can check it should it
    # ever require one on these internal methods.
    return clients.forward_auth(context)


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

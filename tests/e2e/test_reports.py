"""Reports through Envoy, and the operators' queue over internal gRPC with an
operator credential (never a user token)."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest

from aviary.moderation.v1 import moderation_pb2, moderation_pb2_grpc
from services.kit.server import operators
from services.kit.settings import load_settings
from tests.e2e.edge import error_message, post, sign_up, wait_until
from devstack.mesh_channels import open_channel

pytestmark = pytest.mark.e2e


def _report(http, who, **body):
    return http.post("/v1/reports", json={"reason": "REPORT_REASON_ABUSE", **body}, headers=who.auth)


@pytest.fixture(scope="module")
def operator_token() -> str:
    keys = load_settings()
    return operators.issue(keys.operator_private_key.read_bytes(), "e2e-operator", ["moderation"], 600)


@pytest.fixture
async def queue():
    channel = open_channel("moderation", aio=True)
    yield moderation_pb2_grpc.ModerationServiceStub(channel)
    await channel.close()


def _as(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def _open_reports(queue, token: str) -> list[moderation_pb2.Report]:
    found, page = [], ""
    while True:
        reply = await queue.ListReports(
            moderation_pb2.ListReportsRequest(page_size=100, page_token=page), metadata=_as(token)
        )
        found.extend(reply.reports)
        if not (page := reply.next_page_token):
            return found


def test_a_post_report_names_its_author_and_reporting_again_returns_it(http):
    author, reader = sign_up(http, "rp"), sign_up(http, "rp")
    target = post(http, author, "something to report")
    first = _report(http, reader, postId=target["id"], comment="  rude  ")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["postId"] == target["id"] and body["userId"] == author.id and body["reporterId"] == reader.id
    assert body["status"] == "REPORT_STATUS_OPEN" and body["comment"] == "rude"
    again = _report(http, reader, postId=target["id"], reason="REPORT_REASON_SPAM")
    assert again.status_code == 200 and again.json()["id"] == body["id"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "post_id"),
        ({"postId": "1", "userId": "2"}, "post_id"),
        ({"userId": "2", "reason": "REPORT_REASON_UNSPECIFIED"}, "reason"),
    ],
)
def test_a_report_must_name_one_target_and_a_reason(http, body, field):
    reader = sign_up(http, "rp")
    r = http.post("/v1/reports", json={"reason": "REPORT_REASON_SPAM", **body}, headers=reader.auth)
    assert r.status_code == 400, r.text
    assert error_message(r).startswith(f"{field}:")


def test_reporting_what_does_not_exist_or_oneself_is_refused(http):
    reader = sign_up(http, "rp")
    assert _report(http, reader, postId="123456789").status_code == 404
    assert _report(http, reader, userId="123456789").status_code == 404
    own = post(http, reader, "mine")
    assert _report(http, reader, postId=own["id"]).status_code == 400
    assert _report(http, reader, userId=reader.id).status_code == 400
    assert http.post("/v1/reports", json={"userId": reader.id, "reason": "REPORT_REASON_SPAM"}).status_code == 401


async def test_operators_see_the_queue_and_a_dismissal_closes_every_report_of_the_target(http, queue, operator_token):
    accused, first, second = sign_up(http, "rp"), sign_up(http, "rp"), sign_up(http, "rp")
    one = _report(http, first, userId=accused.id).json()
    two = _report(http, second, userId=accused.id, reason="REPORT_REASON_IMPERSONATION").json()
    open_ids = [r.id for r in await _open_reports(queue, operator_token)]
    assert one["id"] in open_ids and two["id"] in open_ids
    assert open_ids.index(one["id"]) < open_ids.index(two["id"])  # oldest first

    resolved = await queue.ResolveReport(
        moderation_pb2.ResolveReportRequest(
            report_id=one["id"], decision=moderation_pb2.REPORT_DECISION_DISMISS, note="no rule broken"
        ),
        metadata=_as(operator_token),
    )
    assert resolved.status == moderation_pb2.REPORT_STATUS_RESOLVED
    assert resolved.decision == moderation_pb2.REPORT_DECISION_DISMISS and resolved.resolved_by == "e2e-operator"
    other = await queue.GetReport(moderation_pb2.GetReportRequest(report_id=two["id"]), metadata=_as(operator_token))
    assert other.status == moderation_pb2.REPORT_STATUS_RESOLVED and other.resolution_note == "no rule broken"
    open_ids = [r.id for r in await _open_reports(queue, operator_token)]
    assert one["id"] not in open_ids and two["id"] not in open_ids

    with pytest.raises(grpc.aio.AioRpcError) as again:
        await queue.ResolveReport(
            moderation_pb2.ResolveReportRequest(report_id=one["id"], decision=moderation_pb2.REPORT_DECISION_DISMISS),
            metadata=_as(operator_token),
        )
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # A new report of the same account opens a new case.
    assert _report(http, first, userId=accused.id).json()["id"] != one["id"]

    # Both reporters are told of the outcome, once; the accused is not.
    def told(who) -> list[dict]:
        body = http.get("/v1/notifications", headers=who.auth).json()
        return [n for n in body.get("notifications", []) if n.get("kind") == "NOTIFICATION_KIND_REPORT_RESOLVED"]

    for reporter in (first, second):
        notices = wait_until(lambda r=reporter: told(r) or None, timeout=20)
        assert len(notices) == 1 and "no rule broken" in notices[0]["text"], notices
    assert told(accused) == []


async def test_user_tokens_and_forged_operator_tokens_are_not_operators(http, queue):
    user = sign_up(http, "rp")
    # Operator claims, but signed with identity's key rather than the operators'.
    identity_key = load_settings().jwt_private_key.read_bytes()
    claims = {"iss": operators.ISSUER, "aud": operators.AUDIENCE, "sub": "mallory", "scope": "moderation"}
    forged = jwt.encode({**claims, "exp": int(time.time()) + 600}, identity_key, algorithm="RS256")
    for token in (user.token, forged, ""):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await queue.ListReports(moderation_pb2.ListReportsRequest(), metadata=_as(token))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The edge has no route to operator methods at all.
    r = http.post("/aviary.moderation.v1.ModerationService/ListReports", content=b"", headers=user.auth)
    assert r.status_code in (404, 415), r.text

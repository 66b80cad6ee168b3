"""What a report must say, and how its words map to storage and back."""

from __future__ import annotations

from aviary.moderation.v1 import moderation_pb2
from services.kit.server.errors import invalid_argument

REASONS: dict[int, str] = {
    moderation_pb2.REPORT_REASON_SPAM: "SPAM",
    moderation_pb2.REPORT_REASON_ABUSE: "ABUSE",
    moderation_pb2.REPORT_REASON_ILLEGAL: "ILLEGAL",
    moderation_pb2.REPORT_REASON_IMPERSONATION: "IMPERSONATION",
    moderation_pb2.REPORT_REASON_OTHER: "OTHER",
}
DISMISS = "DISMISS"
REMOVE_POST = "REMOVE_POST"
SUSPEND_ACCOUNT = "SUSPEND_ACCOUNT"
DECISIONS: dict[int, str] = {
    moderation_pb2.REPORT_DECISION_DISMISS: DISMISS,
    moderation_pb2.REPORT_DECISION_REMOVE_POST: REMOVE_POST,
    moderation_pb2.REPORT_DECISION_SUSPEND_ACCOUNT: SUSPEND_ACCOUNT,
}


def reason_of(value: int) -> str:
    if value not in REASONS:
        raise invalid_argument("reason", "say why: one of " + ", ".join(f"REPORT_REASON_{r}" for r in REASONS.values()))
    return REASONS[value]


def decision_of(value: int) -> str:
    if value not in DECISIONS:
        allowed = ", ".join(f"REPORT_DECISION_{d}" for d in DECISIONS.values())
        raise invalid_argument("decision", f"one of {allowed}")
    return DECISIONS[value]


def check_decision_fits(decision: str, post_id: int | None) -> None:
    """A post can be removed only when a post was reported."""
    if decision == REMOVE_POST and not post_id:
        raise invalid_argument(
            "decision", "REPORT_DECISION_REMOVE_POST is only for post reports; this report is of an account"
        )


def text_of(field: str, value: str, max_chars: int) -> str:
    text = value.strip()
    if len(text) > max_chars:
        raise invalid_argument(field, f"at most {max_chars} characters (got {len(text)})")
    return text


def exactly_one_target(post_id: str, user_id: str) -> None:
    if bool(post_id) == bool(user_id):
        raise invalid_argument("post_id", "report exactly one thing: a post (post_id) or an account (user_id)")

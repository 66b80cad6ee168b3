"""Pure rules of moderation: which decisions exist and which fit a report."""

import grpc
import pytest

from aviary.moderation.v1 import moderation_pb2
from services.kit.server.errors import ApiError
from services.moderation import rules


def test_every_decision_of_the_contract_is_known_by_its_stored_name():
    assert rules.decision_of(moderation_pb2.REPORT_DECISION_DISMISS) == "DISMISS"
    assert rules.decision_of(moderation_pb2.REPORT_DECISION_REMOVE_POST) == "REMOVE_POST"
    assert rules.decision_of(moderation_pb2.REPORT_DECISION_SUSPEND_ACCOUNT) == "SUSPEND_ACCOUNT"
    # The stored name is the enum's name without its prefix, as reports are read back.
    for number, name in rules.DECISIONS.items():
        assert moderation_pb2.ReportDecision.Name(number) == f"REPORT_DECISION_{name}"


def test_no_decision_is_refused_naming_the_field():
    with pytest.raises(ApiError) as refused:
        rules.decision_of(moderation_pb2.REPORT_DECISION_UNSPECIFIED)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(refused.value).startswith("decision:")


def test_only_a_post_report_can_have_its_post_removed():
    rules.check_decision_fits(rules.REMOVE_POST, 42)
    with pytest.raises(ApiError) as refused:
        rules.check_decision_fits(rules.REMOVE_POST, None)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(refused.value).startswith("decision:")


@pytest.mark.parametrize("post_id", [42, None])
def test_dismissal_and_suspension_fit_any_report(post_id):
    rules.check_decision_fits(rules.DISMISS, post_id)
    rules.check_decision_fits(rules.SUSPEND_ACCOUNT, post_id)

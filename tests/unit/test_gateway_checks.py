"""The gateway's request checks on the real route table, without a stack."""

from __future__ import annotations

import json

import pytest

from gateway.checks import check
from gateway.routes import routes, template_regex


def test_every_public_method_is_in_the_table_with_a_declared_access():
    table = routes()
    assert {r.access for r in table} == {"public", "optional", "required"}
    assert ("POST", "/v1/accounts", "public") in {(r.verb, r.template, r.access) for r in table}
    assert all(r.grpc_path.startswith("/aviary.") for r in table)


def test_a_variable_never_takes_a_custom_verb():
    assert template_regex("/v1/posts/{post_id}") == r"^/v1/posts/[^/:]+$"
    assert check("GET", "/v1/posts/1:like", "", None).status == 405
    assert check("POST", "/v1/posts/1:like", "", b"{}") is None


@pytest.mark.parametrize(
    "verb, path, status",
    [
        ("GET", "/v1/nope", 404),
        ("GET", "/elsewhere", 404),
        ("DELETE", "/v1/products", 405),
        ("PUT", "/v1/posts/1", 405),
        ("OPTIONS", "/v1/posts", 204),
        ("GET", "/healthz", None),
        ("POST", "/healthz", 405),
        ("GET", "/media/123.jpg", None),
        ("GET", "/v1/trends", None),
    ],
)
def test_paths_and_methods(verb, path, status):
    refusal = check(verb, path, "", None)
    assert (refusal.status if refusal else None) == status


def test_405_lists_the_allowed_methods():
    refusal = check("DELETE", "/v1/products", "", None)
    assert refusal.headers == {"allow": "GET, POST"}
    assert refusal.body() == {"code": 12, "message": "method DELETE is not allowed on /v1/products; allowed: GET, POST"}


@pytest.mark.parametrize(
    "query, field, problem",
    [
        ("pageSize=x", "pageSize", "must be an integer"),
        ("page_size=99999999999", "page_size", "must be between -2147483648 and 2147483647"),
        ("pageToken=%FF", "pageToken", "is not valid UTF-8"),
        (
            "colour=red",
            "colour",
            "unknown query parameter; this endpoint takes: sellerId, pageSize, pageToken, includeInactive",
        ),
    ],
)
def test_query_parameters(query, field, problem):
    refusal = check("GET", "/v1/products", query, None)
    assert refusal.status == 400
    assert refusal.violations == [(field, problem)]
    assert refusal.body()["details"][0]["fieldViolations"] == [{"field": field, "description": problem}]


def test_both_spellings_of_a_parameter_are_accepted():
    assert check("GET", "/v1/products", "pageSize=5&page_token=abc", None) is None


@pytest.mark.parametrize(
    "body, field",
    [
        ({"text": "hi", "txt": "typo"}, "txt"),
        ({"text": 1}, "text"),
        ({"text": "hi", "mediaIds": [1]}, "mediaIds[0]"),
        ({"text": "hi", "replyToId": {"id": "1"}}, "replyToId"),
    ],
)
def test_body_fields(body, field):
    refusal = check("POST", "/v1/posts", "", json.dumps(body).encode())
    assert refusal.status == 400
    assert [f for f, _ in refusal.violations] == [field]


def test_nested_and_enum_body_values():
    assert check("POST", "/v1/orders/1:advanceDelivery", "", b'{"status": "delivery_status_shipped"}') is None
    refusal = check("POST", "/v1/orders/1:advanceDelivery", "", b'{"status": 99}')
    assert refusal.violations[0][0] == "status"
    assert refusal.violations[0][1].startswith("must be one of: DELIVERY_STATUS_PENDING")
    # A path variable is not a body field, even where the body is the whole request.
    refusal = check("POST", "/v1/orders/1:advanceDelivery", "", b'{"orderId": "2"}')
    assert [f for f, _ in refusal.violations] == ["orderId"]


def test_malformed_or_cut_short_bodies():
    assert check("POST", "/v1/posts", "", b'{"text": ').violations[0][0] == "body"
    assert check("POST", "/v1/posts", "", b"[]").violations == [("body", "must be a JSON object")]
    assert check("POST", "/v1/posts", "", None) is None  # not forwarded whole: the service decides
    assert check("POST", "/v1/media", "", b"\xff\xd8 raw image bytes") is None

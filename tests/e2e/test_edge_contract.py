"""The edge answers every request it cannot serve with the right 4xx, from
the route table the protos declare: 404 and 405 without a token, 401 exactly
where a method requires one, 400 naming unknown parameters and fields and
text that is not UTF-8, 431 for oversized requests; and it publishes the
OpenAPI document of exactly the public routes."""

from __future__ import annotations

import re

import httpx
import pytest

from gateway.routes import routes
from tests.e2e.edge import sign_up

pytestmark = pytest.mark.e2e

BAD_TOKEN = {"Authorization": "Bearer not.a.token"}


def _concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", template)


def _violations(r: httpx.Response) -> dict[str, str]:
    body = r.json()
    [details] = body["details"]
    assert details["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    return {v["field"]: v["description"] for v in details["fieldViolations"]}


@pytest.mark.parametrize(
    "route", [r for r in routes() if r.access == "required"], ids=lambda r: f"{r.verb} {r.template}"
)
def test_a_method_that_requires_a_token_is_401_without_one(http, route):
    r = http.request(route.verb, _concrete(route.template))
    assert r.status_code == 401, r.text
    assert r.json()["code"] == 16


@pytest.mark.parametrize(
    "route", [r for r in routes() if r.access != "required"], ids=lambda r: f"{r.verb} {r.template}"
)
def test_a_public_or_optional_method_serves_anonymous_callers(http, route):
    r = http.request(route.verb, _concrete(route.template))
    assert r.status_code != 401, r.text
    assert r.status_code < 500, r.text
    bad = http.request(route.verb, _concrete(route.template), headers=BAD_TOKEN)
    # An optional method checks a token that is sent; a public one never reads it.
    assert (bad.status_code == 401) == (route.access == "optional"), bad.text


def test_raw_grpc_paths_at_the_edge_need_the_same_token(http):
    grpc = {"content-type": "application/grpc"}
    required = next(r for r in routes() if r.access == "required")
    r = http.post(required.grpc_path, headers=grpc, content=b"")
    assert r.headers.get("grpc-status") == "16", r.headers  # UNAUTHENTICATED
    # An internal method has no route at the edge: UNIMPLEMENTED to a gRPC client.
    internal = http.post("/aviary.payments.v1.PaymentsService/AuthorizePayment", headers=grpc, content=b"")
    assert internal.headers.get("grpc-status") == "12", internal.headers


def test_unknown_paths_are_404_even_without_a_token(http):
    for path in ("/v1/nope", "/v1/users/1/nope", "/v2/posts", "/nothing"):
        r = http.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json() == {"code": 5, "message": f"no such endpoint: GET {path}"}


def test_a_wrong_method_is_405_naming_the_allowed_ones(http):
    r = http.delete("/v1/products")
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == "GET, POST"
    assert r.json()["message"] == "method DELETE is not allowed on /v1/products; allowed: GET, POST"
    # A path variable never swallows a custom verb: this is the :like route.
    assert http.get("/v1/posts/1:like").status_code == 405


def test_a_preflight_is_never_401(http):
    r = http.options(
        "/v1/posts",
        headers={
            "Origin": "https://elsewhere.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert r.status_code == 204, r.text
    assert r.headers["allow"] == "POST"
    # No third-party origin is configured: nothing is granted to one.
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    "path, field",
    [
        ("/v1/users:lookup?username=%FF", "username"),
        ("/v1/search/posts?q=%FF", "q"),
        ("/v1/search/products?q=ok%C3", "q"),
        ("/v1/posts/%FF", "postId"),
        ("/v1/users/%FE%FF/posts", "userId"),
        ("/v1/products?pageToken=%FF", "pageToken"),
    ],
)
def test_text_that_is_not_utf8_is_400_naming_the_parameter(http, path, field):
    r = http.get(path)
    assert r.status_code == 400, r.text
    assert _violations(r) == {field: "is not valid UTF-8"}
    assert r.json()["message"] == f"{field}: is not valid UTF-8"


def test_unknown_query_parameters_are_refused_by_name(http):
    r = http.get("/v1/users:lookup", params={"usernme": "alice"})
    assert r.status_code == 400, r.text
    assert _violations(r) == {"usernme": "unknown query parameter; this endpoint takes: username"}
    r = http.get("/v1/trends", params={"pageSize": "abc"})
    assert r.status_code == 400, r.text
    assert _violations(r) == {"pageSize": "must be an integer"}


def test_unknown_body_fields_are_refused_by_name_and_nothing_changes(http):
    me = sign_up(http, "u")
    r = http.patch("/v1/users/me", json={"avatarUrl": "https://x.example/a.png"}, headers=me.auth)
    assert r.status_code == 400, r.text
    violations = _violations(r)
    assert list(violations) == ["avatarUrl"]
    assert violations["avatarUrl"].startswith("unknown field; allowed here: displayName, bio")
    r = http.patch("/v1/users/me", json={"bio": "hello", "bioo": "typo"}, headers=me.auth)
    assert r.status_code == 400 and list(_violations(r)) == ["bioo"]
    assert http.get(f"/v1/users/{me.id}").json()["bio"] == ""


@pytest.mark.parametrize(
    "body, field, problem",
    [
        ({"text": 5}, "text", "must be a string"),
        ({"text": "hi", "productIds": "1"}, "productIds", "must be a JSON array"),
        ({"text": "hi", "productIds": [7]}, "productIds[0]", "must be a string"),
    ],
)
def test_body_values_of_the_wrong_type_are_refused_by_name(http, body, field, problem):
    me = sign_up(http, "w")
    r = http.post("/v1/posts", json=body, headers=me.auth)
    assert r.status_code == 400, r.text
    assert _violations(r) == {field: problem}


def test_malformed_json_and_undefined_enums_are_400(http):
    me = sign_up(http, "j")
    r = http.post("/v1/posts", content=b'{"text": "unterminated', headers=me.auth)
    assert r.status_code == 400 and list(_violations(r)) == ["body"]
    r = http.post("/v1/orders/1:advanceDelivery", json={"status": 99}, headers=me.auth)
    assert r.status_code == 400, r.text
    assert _violations(r)["status"].startswith("must be one of: DELIVERY_STATUS_PENDING")


def test_oversized_urls_and_headers_are_431_with_a_plain_message(http):
    for r in (
        http.get("/v1/trends", params={"q": "a" * 20_000}),
        http.get("/v1/trends", headers={"x-filler": "b" * 20_000}),
    ):
        assert r.status_code == 431, r.text
        assert r.json() == {"code": 3, "message": "the URL and headers are too large: at most 16 KiB together"}


def test_the_openapi_document_lists_every_public_route(http):
    r = http.get("/openapi.json")
    assert r.status_code == 200, r.text
    document = r.json()
    assert document["openapi"].startswith("3.")
    operations = {(verb.upper(), path): op for path, item in document["paths"].items() for verb, op in item.items()}
    expected = {
        (route.verb, re.sub(r"\{([a-z_]+)\}", lambda m: "{" + _camel(m.group(1)) + "}", route.template)): route
        for route in routes()
    }
    assert set(operations) == set(expected)
    for key, route in expected.items():
        security = operations[key]["security"]
        assert security == {"public": [], "optional": [{"bearer": []}, {}], "required": [{"bearer": []}]}[route.access]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)

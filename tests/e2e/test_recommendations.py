"""Recommendations through Envoy (GET /v1/recommendations), plus the feed's
internal GetFeedSignals over gRPC: candidates follow likes, reposts, follows
of sellers, purchases and deactivations as their events arrive from Kafka."""

from __future__ import annotations

import grpc
import pytest

from aviary.recommendations.v1 import recommendations_pb2, recommendations_pb2_grpc
from tests.e2e.commerce import add_to_cart, checkout, create_product, sign_up_seller
from tests.e2e.edge import error_message, follow, sign_up, wait_until
from devstack.mesh_channels import open_channel

ENGAGED = "RECOMMENDATION_REASON_ENGAGED"
FOLLOWED_SELLER = "RECOMMENDATION_REASON_FOLLOWED_SELLER"
POPULAR = "RECOMMENDATION_REASON_POPULAR"
# Events travel through outboxes and Kafka before they count.
EVENTUALLY = 30


@pytest.fixture(scope="module")
def seller(http):
    return sign_up_seller(http)


@pytest.fixture(scope="module")
def signals_stub():
    with open_channel("recommendations") as channel:
        yield recommendations_pb2_grpc.RecommendationsServiceStub(channel)


def recommendations(http, who, **params) -> list[dict]:
    r = http.get("/v1/recommendations", params={"pageSize": 100, **params}, headers=who.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body.get("nextPageToken", "") == ""
    return body.get("recommendations", [])


def reasons(http, who) -> dict[str, str]:
    return {rec["product"]["id"]: rec["reason"] for rec in recommendations(http, who)}


def feed_signals(stub, who) -> recommendations_pb2.GetFeedSignalsResponse:
    return stub.GetFeedSignals(
        recommendations_pb2.GetFeedSignalsRequest(user_id=int(who.id), max_products=200), timeout=5
    )


def tagged_post(http, author, product_ids: list[str], text: str = "look at this") -> dict:
    r = http.post("/v1/posts", json={"text": text, "productIds": product_ids}, headers=author.auth)
    assert r.status_code == 200, r.text
    return r.json()


def act(http, who, post_id: str, verb: str) -> None:
    r = http.post(f"/v1/posts/{post_id}:{verb}", json={}, headers=who.auth)
    assert r.status_code == 200, r.text


def test_a_new_user_gets_popular_and_newest_active_products(http, seller):
    create_product(http, seller, stock=3)  # at least one active product exists
    newcomer = sign_up(http, "rn")
    recs = wait_until(lambda: recommendations(http, newcomer), timeout=EVENTUALLY, interval=0.2)
    assert recs, "a brand-new user got no recommendations"
    assert len(recs) <= 100
    for rec in recs:
        assert rec["reason"] == POPULAR
        assert rec["product"].get("active") is True and int(rec["product"].get("stock", "0")) > 0
    scores = [rec["score"] for rec in recs]
    assert scores == sorted(scores, reverse=True)
    assert len(recommendations(http, newcomer, pageSize=2)) <= 2


def test_a_liked_tagged_product_ranks_above_popular_ones_and_unliking_takes_it_back(http, seller, signals_stub):
    product = create_product(http, seller, stock=5)
    author, reader = sign_up(http, "ra"), sign_up(http, "rl")
    post = tagged_post(http, author, [product["id"]])
    act(http, reader, post["id"], "like")

    assert wait_until(lambda: reasons(http, reader).get(product["id"]) == ENGAGED, timeout=EVENTUALLY, interval=0.2)
    recs = recommendations(http, reader)
    ids = [rec["product"]["id"] for rec in recs]
    popular_positions = [i for i, rec in enumerate(recs) if rec["reason"] == POPULAR]
    assert popular_positions, "expected popular products next to the engaged one"
    assert ids.index(product["id"]) < min(popular_positions)
    # The feed sees the same candidate, and the author as someone the reader engages with.
    signals = feed_signals(signals_stub, reader)
    assert any(
        c.product_id == int(product["id"]) and c.reason == recommendations_pb2.RECOMMENDATION_REASON_ENGAGED
        for c in signals.products
    )
    assert [a.author_id for a in signals.authors] == [int(author.id)]
    assert signals.authors[0].score > 0

    act(http, reader, post["id"], "unlike")
    assert wait_until(lambda: reasons(http, reader).get(product["id"]) != ENGAGED, timeout=EVENTUALLY, interval=0.2)
    assert wait_until(lambda: not feed_signals(signals_stub, reader).authors, timeout=EVENTUALLY, interval=0.2)


def test_reposting_a_tagged_post_counts_as_engagement(http, seller):
    product = create_product(http, seller, stock=5)
    author, reposter = sign_up(http, "ra"), sign_up(http, "rr")
    post = tagged_post(http, author, [product["id"]])
    act(http, reposter, post["id"], "repost")
    assert wait_until(lambda: reasons(http, reposter).get(product["id"]) == ENGAGED, timeout=EVENTUALLY, interval=0.2)


def test_following_a_seller_brings_their_products(http):
    shop = sign_up_seller(http)
    first, second = create_product(http, shop, stock=2), create_product(http, shop, stock=2)
    fan = sign_up(http, "rf")
    follow(http, fan, shop)
    wanted = {first["id"]: FOLLOWED_SELLER, second["id"]: FOLLOWED_SELLER}

    def seen():
        got = reasons(http, fan)
        return {pid: got.get(pid) for pid in wanted} == wanted

    assert wait_until(seen, timeout=EVENTUALLY, interval=0.2)


def test_a_bought_product_is_never_recommended_to_the_buyer_again(http, seller, signals_stub):
    product, marker = create_product(http, seller, stock=5), create_product(http, seller, stock=5)
    author, buyer = sign_up(http, "ra"), sign_up(http, "rb")
    act(http, buyer, tagged_post(http, author, [product["id"]])["id"], "like")
    assert wait_until(lambda: reasons(http, buyer).get(product["id"]) == ENGAGED, timeout=EVENTUALLY, interval=0.2)

    add_to_cart(http, buyer, product["id"], 1)
    r = checkout(http, buyer, payment_method="pm_card_visa")
    assert r.status_code == 200, r.text
    assert wait_until(lambda: product["id"] not in reasons(http, buyer), timeout=EVENTUALLY, interval=0.2)

    # More engagement with it later changes nothing: a post tagging it and a
    # marker product is liked; once the marker counts, the bought one still is not there.
    act(http, buyer, tagged_post(http, author, [product["id"], marker["id"]])["id"], "like")
    assert wait_until(lambda: reasons(http, buyer).get(marker["id"]) == ENGAGED, timeout=EVENTUALLY, interval=0.2)
    assert product["id"] not in reasons(http, buyer)
    assert int(product["id"]) not in [c.product_id for c in feed_signals(signals_stub, buyer).products]
    # Others still get it.
    other = sign_up(http, "ro")
    act(http, other, tagged_post(http, author, [product["id"]])["id"], "like")
    assert wait_until(lambda: reasons(http, other).get(product["id"]) == ENGAGED, timeout=EVENTUALLY, interval=0.2)


def test_a_deactivated_product_disappears(http, seller, signals_stub):
    product = create_product(http, seller, stock=5)
    author, reader = sign_up(http, "ra"), sign_up(http, "rd")
    act(http, reader, tagged_post(http, author, [product["id"]])["id"], "like")
    assert wait_until(lambda: reasons(http, reader).get(product["id"]) == ENGAGED, timeout=EVENTUALLY, interval=0.2)

    r = http.patch(f"/v1/products/{product['id']}", json={"active": False}, headers=seller.auth)
    assert r.status_code == 200, r.text
    # Hydration drops it at once; the candidates themselves once the catalog event arrives.
    assert product["id"] not in reasons(http, reader)
    assert wait_until(
        lambda: int(product["id"]) not in [c.product_id for c in feed_signals(signals_stub, reader).products],
        timeout=EVENTUALLY,
        interval=0.2,
    )


def test_bad_input_is_refused_naming_the_field(http, signals_stub):
    reader = sign_up(http, "rx")
    r = http.get("/v1/recommendations", params={"pageSize": 101}, headers=reader.auth)
    assert r.status_code == 400 and error_message(r).startswith("page_size:")
    r = http.get("/v1/recommendations", params={"pageToken": "abc"}, headers=reader.auth)
    assert r.status_code == 400 and error_message(r).startswith("page_token:")
    assert http.get("/v1/recommendations").status_code == 401

    for request, field in [
        (recommendations_pb2.GetFeedSignalsRequest(), "user_id"),
        (recommendations_pb2.GetFeedSignalsRequest(user_id=int(reader.id), max_products=201), "max_products"),
        (recommendations_pb2.GetFeedSignalsRequest(user_id=int(reader.id), max_authors=501), "max_authors"),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            signals_stub.GetFeedSignals(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith(f"{field}:")

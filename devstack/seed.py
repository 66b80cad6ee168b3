"""Seeds a small demo through the public HTTP/JSON API (so it exercises the
real edge, services and fanout) and prints example calls. Idempotent: a stack
that already has the demo users is left as it is."""

from __future__ import annotations

import time

import httpx

from .proc import say
from .services import ENVOY_PORT, FANOUT_THRESHOLD

PASSWORD = "aviary-demo-pw"
BASE = f"http://127.0.0.1:{ENVOY_PORT}"

USERS = {
    "alice": "Alice Liddell",
    "bob": "Bob Builder",
    "carol": "Carol Danvers",
    "dave": "Dave Grohl",
    "erin": "Erin Brockovich",
    "frank": "Frank Ocean",
    "celeb": "Celebrity Chef",
}
# Everyone follows celeb, which takes it above the (demo) fanout threshold.
FOLLOWS = [(u, "celeb") for u in USERS if u != "celeb"] + [
    ("alice", "bob"),
    ("alice", "carol"),
    ("bob", "alice"),
    ("carol", "alice"),
    ("dave", "erin"),
    ("erin", "frank"),
    ("frank", "alice"),
]
POSTS = [
    ("alice", "Hello Aviary! First post from the demo #hello"),
    ("bob", "Building something new today #diy @alice"),
    ("carol", "Higher, further, faster #space"),
    ("celeb", "New recipe drops tomorrow, stay tuned #cooking"),
    ("celeb", "Thanks for 6 followers, everyone! #milestone"),
    ("dave", "Rehearsal tonight #music"),
    ("alice", "Reading Through the Looking-Glass again #books @carol"),
    # Three people on one tag: enough for GET /v1/trends (at least 3 users).
    ("erin", "Trying the #aviary feed: it mixes shop picks into my timeline"),
    ("frank", "Morning walk, three herons #birds #aviary"),
    ("bob", "Anyone else following the #aviary launch?"),
]
# Engagement on the posts above, by index into POSTS: likes, reposts, replies.
LIKES = [("bob", 0), ("carol", 0), ("dave", 0), ("alice", 3), ("bob", 3), ("erin", 3), ("frank", 3), ("carol", 6)]
REPOSTS = [("bob", 3), ("frank", 0)]
REPLIES = [("carol", 0, "Welcome aboard, @alice!"), ("alice", 1, "Show us when it's done #diy")]


# The shop: a seller account, its products (with stock) and a post tagging one.
SELLER = ("makers", "Makers Market")
PRODUCTS = [
    {
        "title": "Aviary enamel mug",
        "description": "Speckled blue enamel, 350 ml. Survives campfires.",
        "priceMinor": "1800",
        "currency": "USD",
        "stock": "25",
    },
    {
        "title": "Birdwatching field guide",
        "description": "600 species, waterproof cover.",
        "priceMinor": "2499",
        "currency": "USD",
        "stock": "10",
    },
    {
        "title": "Feather-light travel hoodie",
        "description": "Packs into its own pocket.",
        "priceMinor": "5900",
        "currency": "USD",
        "stock": "5",
    },
]
# (who posts, text, index into PRODUCTS of the tagged product)
PRODUCT_POST = ("alice", "My new favourite mug for #books and tea", 0)


def _token(client: httpx.Client, username: str) -> str | None:
    r = client.post("/v1/sessions", json={"username": username, "password": PASSWORD})
    return r.json()["accessToken"] if r.status_code == 200 else None


def seed_demo() -> None:
    with httpx.Client(base_url=BASE, timeout=30.0) as client:
        _seed_social(client)
        _seed_shop(client)


def _seed_social(client: httpx.Client) -> None:
    if client.get("/v1/users:lookup", params={"username": "celeb"}).status_code == 200:
        say("seed: demo already present")
        return
    started = time.monotonic()
    tokens, ids = {}, {}
    for username, display in USERS.items():
        r = client.post("/v1/accounts", json={"username": username, "password": PASSWORD, "displayName": display})
        r.raise_for_status()
        tokens[username] = r.json()["accessToken"]
        ids[username] = r.json()["user"]["id"]
    for who, whom in FOLLOWS:
        client.put(f"/v1/users/me/following/{ids[whom]}", headers=_auth(tokens[who])).raise_for_status()
    post_ids = []
    for author, text in POSTS:
        r = client.post("/v1/posts", json={"text": text}, headers=_auth(tokens[author]))
        r.raise_for_status()
        post_ids.append(r.json()["id"])
    for who, index in LIKES:
        client.post(f"/v1/posts/{post_ids[index]}:like", json={}, headers=_auth(tokens[who])).raise_for_status()
    for who, index in REPOSTS:
        client.post(f"/v1/posts/{post_ids[index]}:repost", json={}, headers=_auth(tokens[who])).raise_for_status()
    for who, index, text in REPLIES:
        client.post(
            "/v1/posts", json={"text": text, "replyToId": post_ids[index]}, headers=_auth(tokens[who])
        ).raise_for_status()
    say(
        f"seed: {len(USERS)} users, {len(FOLLOWS)} follows, {len(POSTS)} posts, {len(LIKES)} likes, "
        f"{len(REPOSTS)} reposts, {len(REPLIES)} replies in {time.monotonic() - started:.1f}s "
        f"(celeb has {len(USERS) - 1} followers > threshold {FANOUT_THRESHOLD})"
    )


def _seed_shop(client: httpx.Client) -> None:
    """The seller, any of its products still missing (matched by title), and
    the demo post tagging one unless it is there already."""
    seller_token = _token(client, SELLER[0])
    if seller_token is None:
        r = client.post(
            "/v1/accounts",
            json={"username": SELLER[0], "password": PASSWORD, "displayName": SELLER[1], "role": "SELLER"},
        )
        r.raise_for_status()
        seller_token = r.json()["accessToken"]
    seller_id = client.get("/v1/users:lookup", params={"username": SELLER[0]}).json()["id"]
    listed = client.get("/v1/products", params={"sellerId": seller_id, "pageSize": 100})
    listed.raise_for_status()
    by_title = {p["title"]: p["id"] for p in listed.json().get("products", [])}
    created = 0
    for product in PRODUCTS:
        if product["title"] not in by_title:
            r = client.post("/v1/products", json=product, headers=_auth(seller_token))
            r.raise_for_status()
            by_title[product["title"]] = r.json()["id"]
            created += 1

    author, text, index = PRODUCT_POST
    product_id = by_title[PRODUCTS[index]["title"]]
    author_id = client.get("/v1/users:lookup", params={"username": author}).json()["id"]
    own = client.get(f"/v1/users/{author_id}/posts", params={"pageSize": 100}).json().get("posts", [])
    posted = any(product_id in p.get("productIds", []) for p in own)
    if not posted:
        token = _token(client, author)
        if token is None:
            raise RuntimeError(f"seed: demo user {author} cannot log in")
        client.post(
            "/v1/posts", json={"text": text, "productIds": [product_id]}, headers=_auth(token)
        ).raise_for_status()
    if created or not posted:
        say(
            f"seed: shop '{SELLER[0]}' with {created} new of {len(PRODUCTS)} products"
            f"{'' if posted else f', and a post by {author} tagging one'}"
        )
    else:
        say("seed: shop already present")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def print_examples() -> None:
    say(f"""
Aviary is up: HTTP/JSON at {BASE}, demo users {", ".join(USERS)} and seller {SELLER[0]} (password {PASSWORD}).

  TOKEN=$(curl -s {BASE}/v1/sessions -d '{{"username":"alice","password":"{PASSWORD}"}}' | jq -r .accessToken)
  curl -s {BASE}/v1/timelines/home -H "Authorization: Bearer $TOKEN"
  curl -s {BASE}/v1/feed -H "Authorization: Bearer $TOKEN"        # ranked posts with a product every 5th item
  curl -s '{BASE}/v1/search/posts?q=herons'
  curl -s {BASE}/v1/trends
  curl -s -X POST {BASE}/v1/posts -H "Authorization: Bearer $TOKEN" -d '{{"text":"hello #aviary"}}'
  curl -s -X POST {BASE}/v1/posts/<postId>:like -H "Authorization: Bearer $TOKEN"
  curl -s {BASE}/v1/notifications -H "Authorization: Bearer $TOKEN"
  curl -s '{BASE}/v1/users:lookup?username=celeb'
  curl -s '{BASE}/v1/products?pageSize=5'
  SELLER=$(curl -s {BASE}/v1/sessions -d '{{"username":"{SELLER[0]}","password":"{PASSWORD}"}}' | jq -r .accessToken)
  curl -s -X POST {BASE}/v1/products -H "Authorization: Bearer $SELLER" \\
       -d '{{"title":"Tea towel","priceMinor":"900","currency":"USD","stock":"12"}}'
  M="-cacert .devstack/mesh/ca.pem -cert .devstack/mesh/operator.pem -key .devstack/mesh/operator-key.pem"
  grpcurl $M -servername posts 127.0.0.1:50053 list
  grpcurl $M -servername identity -H "authorization: Bearer $TOKEN" -d '{{"user_id":"me"}}' 127.0.0.1:50051 aviary.identity.v1.IdentityService/GetUser
""")

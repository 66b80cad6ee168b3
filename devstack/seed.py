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
    ("alice", "bob"), ("alice", "carol"), ("bob", "alice"), ("carol", "alice"),
    ("dave", "erin"), ("erin", "frank"), ("frank", "alice"),
]
POSTS = [
    ("alice", "Hello Aviary! First post from the demo #hello"),
    ("bob", "Building something new today #diy @alice"),
    ("carol", "Higher, further, faster #space"),
    ("celeb", "New recipe drops tomorrow, stay tuned #cooking"),
    ("celeb", "Thanks for 6 followers, everyone! #milestone"),
    ("dave", "Rehearsal tonight #music"),
    ("alice", "Reading Through the Looking-Glass again #books @carol"),
]
# Engagement on the posts above, by index into POSTS: likes, reposts, replies.
LIKES = [("bob", 0), ("carol", 0), ("dave", 0), ("alice", 3), ("bob", 3), ("erin", 3), ("frank", 3), ("carol", 6)]
REPOSTS = [("bob", 3), ("frank", 0)]
REPLIES = [("carol", 0, "Welcome aboard, @alice!"), ("alice", 1, "Show us when it's done #diy")]


def _token(client: httpx.Client, username: str) -> str | None:
    r = client.post("/v1/sessions", json={"username": username, "password": PASSWORD})
    return r.json()["accessToken"] if r.status_code == 200 else None


def seed_demo() -> None:
    with httpx.Client(base_url=BASE, timeout=30.0) as client:
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
            client.post("/v1/posts", json={"text": text, "replyToId": post_ids[index]},
                        headers=_auth(tokens[who])).raise_for_status()
        say(f"seed: {len(USERS)} users, {len(FOLLOWS)} follows, {len(POSTS)} posts, {len(LIKES)} likes, "
            f"{len(REPOSTS)} reposts, {len(REPLIES)} replies in {time.monotonic() - started:.1f}s "
            f"(celeb has {len(USERS) - 1} followers > threshold {FANOUT_THRESHOLD})")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def print_examples() -> None:
    say(f"""
Aviary is up: HTTP/JSON at {BASE}, demo users {', '.join(USERS)} (password {PASSWORD}).

  TOKEN=$(curl -s {BASE}/v1/sessions -d '{{"username":"alice","password":"{PASSWORD}"}}' | jq -r .accessToken)
  curl -s {BASE}/v1/timelines/home -H "Authorization: Bearer $TOKEN"
  curl -s -X POST {BASE}/v1/posts -H "Authorization: Bearer $TOKEN" -d '{{"text":"hello #aviary"}}'
  curl -s -X POST {BASE}/v1/posts/<postId>:like -H "Authorization: Bearer $TOKEN"
  curl -s {BASE}/v1/notifications -H "Authorization: Bearer $TOKEN"
  curl -s '{BASE}/v1/users:lookup?username=celeb'
  grpcurl -plaintext 127.0.0.1:50053 list
  grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d '{{"user_id":"me"}}' 127.0.0.1:50051 aviary.identity.v1.IdentityService/GetUser
""")

"""IdentityService: sign-up, log-in, profiles, and user summaries for hydration."""
from __future__ import annotations

import asyncio
import logging

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from aviary.graph.v1 import graph_pb2
from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.media.v1 import media_pb2
from aviary.posts.v1 import posts_pb2
from services.identity import validation
from services.kit.cache import TtlCache
from services.identity.passwords import Passwords
from services.identity.store import IdentityStore, UserRecord, UsernameTaken
from services.kit import clients, profiles, redis_client, startup
from services.kit.auth import TokenIssuer, caller_id
from services.kit.config import Settings, env_float, env_int
from services.kit.errors import (
    already_exists,
    invalid_argument,
    not_found,
    permission_denied,
    unauthenticated,
    unavailable,
)
from services.kit.ids import IdGenerator, parse_id, parse_ids

log = logging.getLogger(__name__)

BATCH_GET_MAX = 500
_BAD_LOGIN = "username or password is incorrect"


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = IdentityStore(settings)
        self.passwords = Passwords()
        self.ids = IdGenerator(settings.worker_id)
        # Summaries for hydration. An edit on this replica drops its entry at
        # once, one on another replica through the profile announcements; the
        # TTL only bounds an announcement lost while Redis was unreachable.
        self.summaries: TtlCache[int, UserRecord] = TtlCache(
            ttl_seconds=env_float("AVIARY_IDENTITY_USER_CACHE_SECONDS", 60.0),
            max_entries=env_int("AVIARY_IDENTITY_USER_CACHE_ENTRIES", 50_000),
        )
        self._issuer: TokenIssuer | None = None
        self.redis = redis_client.client(settings)

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        await startup.retry_until_up(self.store.start, "postgresql")
        await self.passwords.start()
        try:
            self._token_issuer()
        except FileNotFoundError:
            # Not fatal: the keys may be created after we start; retried per request.
            log.warning("JWT private key missing; sign-up and log-in fail until it exists",
                        extra={"path": str(self.settings.jwt_private_key)})

    async def follow_profile_changes(self) -> None:
        await profiles.follow(self.redis, self.summaries.discard, self.summaries.clear)

    async def stop(self) -> None:
        await clients.close_all()
        await self.redis.aclose()
        await self.store.stop()
        self.passwords.stop()

    def _token_issuer(self) -> TokenIssuer:
        if self._issuer is None:
            self._issuer = TokenIssuer(self.settings.jwt_private_key.read_bytes(), self.settings.jwt_ttl_seconds)
        return self._issuer

    # -- RPCs --------------------------------------------------------------

    async def CreateAccount(self, request, context):
        username = validation.check_username(request.username)
        password = validation.check_password(request.password)
        display_name = validation.display_name_or_default(request.display_name, username)
        role = validation.check_role(request.role)

        # Cheap early answer that also saves an Argon2 hash; the unique index
        # below is what actually guarantees uniqueness under races.
        if await self.store.find_by_username(username) is not None:
            raise _username_taken(username)
        password_hash = await self.passwords.hash(password)
        try:
            user = await self.store.insert_user(
                user_id=self.ids.next_id(), username=username, display_name=display_name,
                password_hash=password_hash, role=role,
            )
        except UsernameTaken:
            raise _username_taken(username) from None
        token, expires = self._token_issuer().issue(user.id, user.username, user.role)
        log.info("account created", extra={"user_id": user.id, "role": user.role})
        return identity_pb2.CreateAccountResponse(
            user=user_summary(user), access_token=token, expire_time=Timestamp(seconds=expires)
        )

    async def CreateSession(self, request, context):
        if not request.username:
            raise invalid_argument("username", "is required")
        if not request.password:
            raise invalid_argument("password", "is required")
        user = await self._check_credentials(request.username, request.password)
        token, expires = self._token_issuer().issue(user.id, user.username, user.role)
        return identity_pb2.CreateSessionResponse(
            access_token=token, user=user_summary(user), expire_time=Timestamp(seconds=expires)
        )

    async def GetUser(self, request, context):
        user_id = caller_id(context) if request.user_id == "me" else parse_id(request.user_id, "user_id")
        user, counts = await asyncio.gather(
            self.store.get_user(user_id), self._counts(user_id), return_exceptions=True
        )
        if isinstance(user, BaseException):
            raise user
        if user is None:
            raise not_found(f"user {user_id} does not exist")
        if isinstance(counts, BaseException):
            raise counts
        return _with_counts(user_summary(user), counts)

    async def LookupUser(self, request, context):
        if not request.username:
            raise invalid_argument("username", "is required")
        user = None
        if validation.could_be_username(request.username):
            user = await self.store.find_by_username(request.username)
        if user is None:
            raise not_found(f"user '{request.username[:40]}' does not exist")
        return _with_counts(user_summary(user), await self._counts(user.id))

    async def UpdateProfile(self, request, context):
        user_id = caller_id(context)
        changes = {}
        if request.HasField("display_name"):
            changes["display_name"] = validation.check_display_name(request.display_name)
        if request.HasField("bio"):
            changes["bio"] = validation.check_bio(request.bio)
        if request.HasField("avatar_media_id"):
            changes["avatar_url"] = await self._avatar_url(user_id, request.avatar_media_id)
        if not changes:
            raise invalid_argument("display_name", "set at least one of display_name, bio, avatar_media_id")
        user = await self.store.update_profile(user_id, changes)
        if user is None:
            raise not_found(f"user {user_id} does not exist")
        self.summaries.discard(user_id)
        await profiles.announce(self.redis, user_id)
        log.info("profile updated", extra={"user_id": user_id, "fields": sorted(changes)})
        return _with_counts(user_summary(user), await self._counts(user_id))

    async def BatchGetUsers(self, request, context):
        user_ids = list(dict.fromkeys(parse_ids(request.user_ids, "user_ids", max_items=BATCH_GET_MAX)))
        cached, missing = self.summaries.get_many(user_ids)
        if missing:
            version = self.summaries.version()
            fetched = await self.store.get_users(missing)
            self.summaries.put_many(((u.id, u) for u in fetched), version=version)
            cached.update((u.id, u) for u in fetched)
        return identity_pb2.BatchGetUsersResponse(users=[user_summary(cached[i]) for i in user_ids if i in cached])

    # -- helpers -------------------------------------------------------------

    async def _check_credentials(self, username: str, password: str) -> UserRecord:
        found = None
        # A name no account can have, or a password no account can have, still
        # costs one verification: response time must not reveal which part was wrong.
        if validation.could_be_username(username) and len(password) <= validation.PASSWORD_MAX:
            found = await self.store.credentials_by_username(username)
        if found is None:
            await self.passwords.burn_dummy_verify(password[: validation.PASSWORD_MAX])
            raise unauthenticated(_BAD_LOGIN)
        if not await self.passwords.verify(found.password_hash, password):
            log.info("login refused", extra={"user_id": found.user.id})
            raise unauthenticated(_BAD_LOGIN)
        if self.passwords.needs_rehash(found.password_hash):
            await self._rehash(found.user.id, found.password_hash, password)
        return found.user

    async def _rehash(self, user_id: int, old_hash: str, password: str) -> None:
        # Best effort: the login already succeeded, an old-parameter hash still works.
        try:
            await self.store.replace_password_hash(user_id, old_hash, await self.passwords.hash(password))
            log.info("password rehashed with current parameters", extra={"user_id": user_id})
        except Exception:
            log.warning("password rehash failed", extra={"user_id": user_id}, exc_info=True)

    async def _avatar_url(self, user_id: int, raw_media_id: str) -> str:
        """The URL of the caller's own uploaded image `raw_media_id`; "" clears the avatar."""
        if raw_media_id == "":
            return ""
        media_id = parse_id(raw_media_id, "avatar_media_id")
        try:
            media = await clients.media().GetMedia(
                media_pb2.GetMediaRequest(media_id=str(media_id)), timeout=self.settings.rpc_timeout_seconds
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise invalid_argument(
                    "avatar_media_id", f"media {media_id} does not exist; upload the image first (POST /v1/media)"
                ) from None
            log.warning("media lookup failed", extra={"code": exc.code().name, "details": exc.details()})
            raise unavailable(
                f"cannot check avatar_media_id right now (media service: {exc.code().name}); try again"
            ) from exc
        if media.owner_id != str(user_id):
            raise permission_denied(
                f"avatar_media_id: media {media_id} was uploaded by someone else; use an image you uploaded"
            )
        if not media.content_type.startswith("image/"):
            raise invalid_argument(
                "avatar_media_id", f"media {media_id} is {media.content_type}, not an image"
            )
        return media.url

    async def _counts(self, user_id: int) -> tuple[int, int, int]:
        """(followers, following, posts) from graph and posts, asked in parallel."""
        timeout = self.settings.rpc_timeout_seconds
        stats, posts = await asyncio.gather(
            clients.graph().GetFollowStats(graph_pb2.GetFollowStatsRequest(user_id=str(user_id)), timeout=timeout),
            clients.posts().GetAuthorStats(posts_pb2.GetAuthorStatsRequest(user_id=str(user_id)), timeout=timeout),
            return_exceptions=True,
        )
        for service, result in (("graph", stats), ("posts", posts)):
            if isinstance(result, grpc.aio.AioRpcError):
                log.warning("count lookup failed", extra={"peer": service, "code": result.code().name,
                                                         "details": result.details(), "user_id": user_id})
                raise unavailable(
                    f"the profile counts of user {user_id} are unavailable right now "
                    f"({service} service: {result.code().name}); try again"
                )
            if isinstance(result, BaseException):
                raise result
        return stats.follower_count, stats.following_count, posts.post_count


def _username_taken(username: str):
    return already_exists(f"username: '{username}' is already taken")


def user_summary(user: UserRecord) -> identity_pb2.User:
    created_at = Timestamp()
    created_at.FromDatetime(user.created_at)
    return identity_pb2.User(
        id=str(user.id),
        username=user.username,
        display_name=user.display_name,
        bio=user.bio,
        avatar_url=user.avatar_url,
        created_at=created_at,
        role=user.role,
    )


def _with_counts(user: identity_pb2.User, counts: tuple[int, int, int]) -> identity_pb2.User:
    user.follower_count, user.following_count, user.post_count = counts
    return user

"""IdentityService: sign-up, log-in, profiles, and user summaries for hydration."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

import grpc
from argon2 import PasswordHasher
import redis.exceptions
from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from aviary.events.v1 import events_pb2
from aviary.graph.v1 import graph_pb2
from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.media.v1 import media_pb2
from aviary.orders.v1 import orders_pb2
from aviary.posts.v1 import posts_pb2
from services.identity import sessions, throttle, validation
from services.kit.events import kafka
from services.kit.stores.cache import TtlCache
from services.identity.passwords import Passwords
from services.identity.store import (
    AttemptStore,
    Credentials,
    EventFor,
    IdentityStore,
    NewRefreshToken,
    OutboxEvent,
    UserRecord,
    UsernameTaken,
)
from services.kit.peers import accounts, clients, profiles
from services.kit.server import client_address, operators, startup
from services.kit.stores import redis_client
from services.kit.server.auth import ROLE_SELLER, TokenIssuer, caller, caller_id, optional_caller_id
from services.identity.settings import IdentitySettings
from services.kit.server.errors import (
    ApiError,
    already_exists,
    bad_request,
    failed_precondition,
    invalid_argument,
    not_found,
    nothing_to_change,
    permission_denied,
    resource_exhausted,
    unauthenticated,
    unavailable,
)
from services.kit.server.ids import IdGenerator, parse_id, parse_ids
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)
_Answer = TypeVar("_Answer")

BATCH_GET_MAX = 500
_BAD_LOGIN = "username or password is incorrect"
# Verdicts that hand out a new pair.
_ISSUED = (sessions.Verdict.ROTATE, sessions.Verdict.REISSUE)
_BAD_REFRESH = "refresh token is invalid, expired or revoked; log in again"
# Expired sessions deleted per transaction.
_SWEEP_BATCH = 1000
# After Redis failed, throttling is skipped this long instead of every log-in
# waiting for the client's retries first.
_COUNTERS_REST_SECONDS = 5.0
_SUSPENDED = "account is suspended"
# Operators holding it suspend and reinstate accounts and see suspended profiles.
_OPERATOR_SCOPE = "moderation"
# Items per page asked of posts and graph while exporting an account.
_EXPORT_PAGE = 100
# The whole orders stream of an export; an export is rare and may be long.
_EXPORT_ORDERS_SECONDS = 300.0
# Between tries of writing the gone-accounts set at start-up.
_GONE_RETRY_SECONDS = 5.0


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, settings: IdentitySettings) -> None:
        self.settings = settings
        # Only the outbox relay uses the producer; request paths never touch Kafka.
        self.producer = kafka.Producer(settings.kafka_bootstrap)
        self.store = IdentityStore(settings, self.producer)
        hasher = PasswordHasher(
            time_cost=settings.hash_time_cost,
            memory_cost=settings.hash_memory_kib,
            parallelism=settings.hash_parallelism,
        )
        self.passwords = Passwords(hasher, workers=settings.hash_workers, queue_max=settings.hash_queue)
        self.ids = IdGenerator(settings.worker_id)
        # Summaries for hydration. An edit on this replica drops its entry at
        # once, one on another replica through the profile announcements; the
        # TTL only bounds an announcement lost while Redis was unreachable.
        self.summaries: TtlCache[int, UserRecord] = TtlCache(
            ttl_seconds=settings.user_cache_seconds, max_entries=settings.user_cache_entries
        )
        self._issuer: TokenIssuer | None = None
        self.redis = redis_client.client(settings)
        self.attempts = AttemptStore(self.redis)
        self.limits = throttle.Limits.from_settings(settings)
        self._lock_schedule = throttle.lock_schedule(self.limits)
        self._trusted_hops = settings.xff_trusted_hops
        self._counters_down_until = 0.0

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        await startup.retry_until_up(self.store.start, "postgresql")
        await self.passwords.start()
        try:
            self._token_issuer()
        except FileNotFoundError:
            # Not fatal: the keys may be created after we start; retried per request.
            log.warning(
                "JWT private key missing; sign-up and log-in fail until it exists",
                extra={"path": str(self.settings.jwt_private_key)},
            )

    async def follow_profile_changes(self) -> None:
        await profiles.follow(self.redis, self.summaries.discard, self.summaries.clear)

    async def sweep_expired_sessions(self) -> None:
        """Deletes dead sessions now and then, so the tables hold only the
        sessions that could still refresh (and their retired tokens, to
        recognise a reuse)."""
        while True:
            await asyncio.sleep(self.settings.session_sweep_seconds)
            try:
                deleted = 0
                while (batch := await self.store.delete_expired_sessions(_SWEEP_BATCH)) > 0:
                    deleted += batch
                if deleted:
                    log.info("expired sessions deleted", extra={"sessions": deleted})
            except Exception as exc:
                log.warning("session sweep failed; retried next round", extra={"error": error_text(exc)})

    async def relay(self) -> None:
        """Background: the outbox's account events -> identity.events.v1, forever."""
        await kafka.relay_ensuring_topic(
            self.store.outbox.relay_forever, self.settings.kafka_bootstrap, kafka.IDENTITY_TOPIC
        )

    async def publish_gone_accounts(self) -> None:
        """Background, once at start-up: the Redis set of gone accounts becomes
        exactly what the rows say (suspended, or deleted within the username
        hold), so a mark lost to a Redis outage or restart is repaired."""
        while True:
            try:
                gone = await self.store.gone_account_ids(self.settings.username_hold_seconds)
                await accounts.replace_all(self.redis, gone)
            except Exception as exc:
                log.warning("gone accounts not written yet; retrying", extra={"error": error_text(exc)})
                await asyncio.sleep(_GONE_RETRY_SECONDS)
                continue
            log.info("gone accounts written", extra={"accounts": len(gone)})
            return

    async def free_held_usernames(self) -> None:
        """Now and then frees the usernames of accounts deleted longer than the
        hold ago; they leave the gone set too (their data is gone by then)."""
        while True:
            await asyncio.sleep(self.settings.username_sweep_seconds)
            try:
                freed = 0
                while batch := await self.store.free_held_usernames(self.settings.username_hold_seconds, _SWEEP_BATCH):
                    for user_id in batch:
                        await accounts.mark_back(self.redis, user_id)
                    freed += len(batch)
                if freed:
                    log.info("held usernames freed", extra={"accounts": freed})
            except Exception as exc:
                log.warning("username sweep failed; retried next round", extra={"error": error_text(exc)})

    async def stop(self) -> None:
        await clients.close_all()
        await self.producer.close()
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
        password = validation.check_password(request.password, username)
        display_name = validation.display_name_or_default(request.display_name, username)
        role = validation.check_role(request.role)
        await self._take_sign_up(self._client_address(context))

        # Cheap early answer that also saves an Argon2 hash; the unique index
        # below is what actually guarantees uniqueness under races.
        if await self.store.find_by_username(username) is not None:
            raise _username_taken(username)
        password_hash = await self.passwords.hash(password)
        issuer = self._token_issuer()
        session_id, refresh_token = self.ids.next_id(), sessions.new_refresh_token()
        try:
            user = await self.store.insert_user(
                user_id=self.ids.next_id(),
                username=username,
                display_name=display_name,
                password_hash=password_hash,
                role=role,
                session_id=session_id,
                refresh=self._new_refresh(refresh_token),
            )
        except UsernameTaken:
            raise _username_taken(username) from None
        token, expires = issuer.issue(user.id, user.username, user.role, session_id)
        log.info("account created", extra={"user_id": user.id, "role": user.role, "session_id": session_id})
        return identity_pb2.CreateAccountResponse(
            user=user_summary(user),
            access_token=token,
            expire_time=Timestamp(seconds=expires),
            refresh_token=refresh_token,
            expires_in=issuer.ttl_seconds,
        )

    async def CreateSession(self, request, context):
        if not request.username:
            raise invalid_argument("username", "is required")
        if not request.password:
            raise invalid_argument("password", "is required")
        address = self._client_address(context)
        account = throttle.account_key_id(request.username)
        await self._refuse_blocked_address(address)
        await self._claim_login(account)
        user = await self._check_credentials(request.username, request.password)
        if user is None:
            await self._counted(
                "log-in failures",
                self.attempts.count_login_failure(address, window_ms=_ms(self.limits.login_address_window_seconds)),
            )
            raise unauthenticated(_BAD_LOGIN)
        await self._counted("log-in success", self.attempts.forget_login(account))
        issuer = self._token_issuer()
        session_id, refresh_token = self.ids.next_id(), sessions.new_refresh_token()
        # Checked again with the session's start: the account may have been
        # suspended or deleted since its password was read.
        user = await self.store.start_session(session_id, user.id, self._new_refresh(refresh_token))
        if user is None or user.deleted:
            raise unauthenticated(_BAD_LOGIN)
        if user.suspended:
            # Said only to whoever knows the password.
            log.info("log-in refused: account suspended", extra={"user_id": user.id})
            raise permission_denied(_SUSPENDED)
        token, expires = issuer.issue(user.id, user.username, user.role, session_id)
        log.info("session started", extra={"user_id": user.id, "session_id": session_id})
        return identity_pb2.CreateSessionResponse(
            access_token=token,
            user=user_summary(user),
            expire_time=Timestamp(seconds=expires),
            refresh_token=refresh_token,
            expires_in=issuer.ttl_seconds,
        )

    async def RefreshSession(self, request, context):
        presented = request.refresh_token
        if not presented:
            raise invalid_argument("refresh_token", "is required")
        if not sessions.could_be_refresh_token(presented):
            raise unauthenticated(_BAD_REFRESH)
        issuer = self._token_issuer()
        successor = sessions.new_refresh_token()
        rotation = await self.store.rotate_refresh_token(
            sessions.refresh_token_hash(presented), self._new_refresh(successor), _now()
        )
        if rotation.verdict is sessions.Verdict.SUSPENDED:
            raise permission_denied(_SUSPENDED)
        if rotation.verdict is sessions.Verdict.REUSED and rotation.found is not None:
            log.warning(
                "a rotated refresh token was presented again; session revoked",
                extra={"user_id": rotation.found.user_id, "session_id": rotation.found.session_id},
            )
            raise unauthenticated("refresh token was already used; the session is revoked for safety, log in again")
        if rotation.verdict not in _ISSUED or rotation.found is None:
            raise unauthenticated(_BAD_REFRESH)
        if rotation.verdict is sessions.Verdict.REISSUE:
            log.info(
                "a retired refresh token came back before its successor was used; reissued",
                extra={"user_id": rotation.found.user_id, "session_id": rotation.found.session_id},
            )
        user = await self.store.get_user(rotation.found.user_id)
        if user is None or user.deleted:
            raise unauthenticated(_BAD_REFRESH)
        token, expires = issuer.issue(user.id, user.username, user.role, rotation.found.session_id)
        return identity_pb2.RefreshSessionResponse(
            access_token=token,
            refresh_token=successor,
            expires_in=issuer.ttl_seconds,
            user=user_summary(user),
            expire_time=Timestamp(seconds=expires),
        )

    async def DeleteSession(self, request, context):
        who = caller(context)
        # A token minted outside a log-in has no session to end.
        if who.session_id is not None:
            if await self.store.revoke_session(who.session_id, who.user_id, sessions.REVOKED_LOGGED_OUT):
                log.info("logged out", extra={"user_id": who.user_id, "session_id": who.session_id})
        return empty_pb2.Empty()

    async def ChangePassword(self, request, context):
        who = caller(context)
        if not request.current_password:
            raise invalid_argument("current_password", "is required")
        found = _own_credentials(await self.store.credentials_by_id(who.user_id), who.user_id)
        new_password = validation.check_password(request.new_password, found.user.username, field="new_password")
        # Guesses of the current password with a stolen access token count
        # against the account name like log-in guesses do.
        account = throttle.account_key_id(found.user.username)
        await self._claim_login(account)
        if not await self._is_password(found.password_hash, request.current_password):
            raise _wrong_password("current_password")
        await self._counted("password change", self.attempts.forget_login(account))
        if new_password == request.current_password:
            raise invalid_argument("new_password", "is the current password; choose a different one")
        new_hash = await self.passwords.hash(new_password)
        revoked = await self.store.change_password(
            who.user_id, found.password_hash, new_hash, keep_session_id=who.session_id
        )
        if revoked is None:
            raise failed_precondition("the password was changed meanwhile; log in again with the new one")
        log.info(
            "password changed; other sessions revoked",
            extra={"user_id": who.user_id, "session_id": who.session_id, "revoked": revoked},
        )
        return identity_pb2.ChangePasswordResponse(revoked_sessions=revoked)

    async def GetUser(self, request, context):
        user_id = caller_id(context) if request.user_id == "me" else parse_id(request.user_id, "user_id")
        viewer = _viewer(context)
        user, counts, flags = await asyncio.gather(
            self.store.get_user(user_id),
            self._counts(user_id),
            self._viewer_flags(viewer, user_id),
            return_exceptions=True,
        )
        if isinstance(user, BaseException):
            raise user
        if user is None or not _visible(user, context):
            raise not_found(f"user {user_id} does not exist")
        if isinstance(counts, BaseException):
            raise counts
        if isinstance(flags, BaseException):
            raise flags
        return _with_viewer_flags(_with_counts(user_summary(user), counts), flags)

    async def LookupUser(self, request, context):
        if not request.username:
            raise invalid_argument("username", "is required")
        user = None
        if validation.could_be_username(request.username):
            user = await self.store.find_by_username(request.username)
        if user is None or not _visible(user, context):
            raise not_found(f"user '{request.username[:40]}' does not exist")
        counts, flags = await asyncio.gather(self._counts(user.id), self._viewer_flags(_viewer(context), user.id))
        return _with_viewer_flags(_with_counts(user_summary(user), counts), flags)

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
            raise nothing_to_change("display_name", "bio", "avatar_media_id")
        user = await self.store.update_profile(user_id, changes)
        if user is None:
            raise not_found(f"user {user_id} does not exist")
        self.summaries.discard(user_id)
        await profiles.announce(self.redis, user_id)
        log.info("profile updated", extra={"user_id": user_id, "fields": sorted(changes)})
        return _with_counts(user_summary(user), await self._counts(user_id))

    async def DeleteAccount(self, request, context):
        who = caller(context)
        if not request.password:
            raise invalid_argument("password", "is required")
        found = _own_credentials(await self.store.credentials_by_id(who.user_id), who.user_id)
        # Guessed like a log-in: the same per-name throttle.
        account = throttle.account_key_id(found.user.username)
        await self._claim_login(account)
        if not await self._is_password(found.password_hash, request.password):
            raise _wrong_password("password")
        await self._counted("account deletion", self.attempts.forget_login(account))
        if found.user.role == ROLE_SELLER:
            await self._refuse_open_sales(found.user.id)
        deleted = await self.store.delete_account(who.user_id, found.password_hash, self._event_for(_deleted))
        if deleted is None:
            raise failed_precondition("the account changed meanwhile (its password, or it was suspended); try again")
        self.summaries.discard(who.user_id)
        # Best effort: the account is deleted either way, and the set is
        # written again from the rows at the next start.
        await self._mark_best_effort(accounts.mark_gone, who.user_id)
        await profiles.announce(self.redis, who.user_id)
        log.info("account deleted", extra={"user_id": who.user_id, "role": deleted.role})
        return empty_pb2.Empty()

    async def ExportAccount(self, request, context):
        """The profile, then every post, follow and order, one record at a
        time: only one page of each is held at once."""
        who = caller(context)
        user = _own_user(await self.store.get_user(who.user_id), who.user_id)
        yield identity_pb2.ExportRecord(profile=_with_counts(user_summary(user), await self._counts(user.id)))
        as_caller = clients.forward_auth(context)
        done = identity_pb2.ExportComplete()
        async for post in self._exported_posts(user.id, as_caller):
            done.post_count += 1
            yield identity_pb2.ExportRecord(post=post)
        async for follow in self._exported_follows(user.id, as_caller):
            done.follow_count += 1
            yield identity_pb2.ExportRecord(follow=follow)
        async for order in self._exported_orders(user.id):
            done.order_count += 1
            yield identity_pb2.ExportRecord(order=order)
        # Over HTTP an error after the first line ends the body like success
        # does: this last record is how a client knows it has everything.
        yield identity_pb2.ExportRecord(complete=done)
        log.info("account exported", extra={"user_id": user.id})

    async def SuspendAccount(self, request, context):
        # Moderation passes on the deciding operator's token.
        operators.operator(context, _OPERATOR_SCOPE)
        user_id = parse_id(request.user_id, "user_id")
        report_id = parse_id(request.report_id, "report_id") if request.report_id else 0
        change = await self.store.suspend(
            user_id,
            self._event_for(lambda u: {"suspended": events_pb2.AccountSuspended(user_id=u.id, report_id=report_id)}),
        )
        if change is None:
            raise not_found(f"user {user_id} does not exist")
        # Marked on every call, so a repeated call mends a mark that failed.
        await self._mark(accounts.mark_gone, user_id)
        if change.changed:
            log.info("account suspended", extra={"user_id": user_id, "report_id": report_id})
        return identity_pb2.AccountStatus(user_id=str(user_id), suspended=True)

    async def ReinstateAccount(self, request, context):
        operators.operator(context, _OPERATOR_SCOPE)
        user_id = parse_id(request.user_id, "user_id")
        change = await self.store.reinstate(
            user_id, self._event_for(lambda u: {"reinstated": events_pb2.AccountReinstated(user_id=u.id)})
        )
        if change is None:
            raise not_found(f"user {user_id} does not exist")
        await self._mark(accounts.mark_back, user_id)
        if change.changed:
            log.info("account reinstated", extra={"user_id": user_id})
        return identity_pb2.AccountStatus(user_id=str(user_id), suspended=False)

    async def BatchGetUsers(self, request, context):
        user_ids = list(dict.fromkeys(parse_ids(request.user_ids, "user_ids", max_items=BATCH_GET_MAX)))
        cached, missing = self.summaries.get_many(user_ids)
        if missing:
            version = self.summaries.version()
            fetched = await self.store.get_users(missing)
            self.summaries.put_many(((u.id, u) for u in fetched), version=version)
            cached.update((u.id, u) for u in fetched)
        found = [i for i in user_ids if i in cached]
        counts = {} if request.skip_counts else await self._summary_counts(found)
        return identity_pb2.BatchGetUsersResponse(
            users=[_with_counts(user_summary(cached[i]), counts.get(i, (0, 0, 0))) for i in found]
        )

    # -- suspension, deletion and export ---------------------------------------

    def _event_for(self, kind: Callable[[UserRecord], dict]) -> EventFor:
        """Builds an AccountEvent of `kind` (the oneof field and its message)
        from the account as the change left it."""

        def build(user: UserRecord) -> OutboxEvent:
            event_id = self.ids.next_id()
            occurred = Timestamp()
            occurred.GetCurrentTime()
            event = events_pb2.AccountEvent(event_id=event_id, occur_time=occurred, **kind(user))
            return OutboxEvent(event_id=event_id, payload=event.SerializeToString())

        return build

    async def _mark(self, mark: Callable[..., Awaitable[None]], user_id: int) -> None:
        """Updates the gone-accounts set; UNAVAILABLE when Redis cannot be
        written (the change itself is committed: calling again is safe)."""
        try:
            await mark(self.redis, user_id)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("gone-accounts set not written", extra={"user_id": user_id, "error": error_text(exc)})
            raise unavailable("the account's standing is saved but not yet applied everywhere; call again") from exc

    async def _mark_best_effort(self, mark: Callable[..., Awaitable[None]], user_id: int) -> None:
        try:
            await self._mark(mark, user_id)
        except ApiError:
            pass

    async def _refuse_open_sales(self, seller_id: int) -> None:
        """FAILED_PRECONDITION while the seller has unfulfilled sales; when
        orders cannot say, UNAVAILABLE: never delete without knowing."""
        try:
            answer = await clients.orders().CountOpenSales(
                orders_pb2.CountOpenSalesRequest(seller_id=str(seller_id)), timeout=self.settings.rpc_timeout_seconds
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("open sales unknown", extra={"code": exc.code().name, "details": exc.details()})
            raise unavailable(
                f"cannot check your open sales right now (orders service: {exc.code().name}); "
                "nothing was deleted, try again later"
            ) from exc
        if answer.open_order_count > 0:
            raise failed_precondition(
                f"you have {answer.open_order_count} unfulfilled order(s) to ship or cancel before deleting the account"
            )

    async def _exported_posts(self, user_id: int, auth) -> AsyncIterator[identity_pb2.ExportedPost]:
        """The user's posts newest first, a page at a time, read as the user."""
        pages = _pages(
            "posts",
            lambda token: clients.posts().ListUserPosts(
                posts_pb2.ListUserPostsRequest(user_id=str(user_id), page_size=_EXPORT_PAGE, page_token=token),
                timeout=self.settings.rpc_timeout_seconds,
                metadata=auth,
            ),
        )
        async for page in pages:
            for post in page.posts:
                yield _exported_post(post)

    async def _exported_follows(self, user_id: int, auth) -> AsyncIterator[identity_pb2.ExportedFollow]:
        """The accounts the user follows, a page at a time."""
        pages = _pages(
            "graph",
            lambda token: clients.graph().ListFollowing(
                graph_pb2.ListFollowingRequest(user_id=str(user_id), page_size=_EXPORT_PAGE, page_token=token),
                timeout=self.settings.rpc_timeout_seconds,
                metadata=auth,
            ),
        )
        async for page in pages:
            for followed in page.users:
                yield identity_pb2.ExportedFollow(user_id=followed.id, username=followed.username)

    async def _exported_orders(self, user_id: int) -> AsyncIterator[identity_pb2.ExportedOrder]:
        """The user's orders as a buyer, newest first, as orders streams them."""
        call = clients.orders().ExportBuyerOrders(
            orders_pb2.ExportBuyerOrdersRequest(buyer_id=str(user_id)), timeout=_EXPORT_ORDERS_SECONDS
        )
        try:
            async for order in call:
                yield _exported_order(order)
        except grpc.aio.AioRpcError as exc:
            raise _peer_unavailable("orders", exc) from exc
        finally:
            call.cancel()  # the client went away mid-export: stop the stream too

    # -- throttling (rules in throttle.py, counters in Redis) -------------------

    def _client_address(self, context) -> str:
        address = client_address.from_metadata(context.invocation_metadata() or (), self._trusted_hops)
        # A caller that did not come through Envoy counts under its own address.
        return throttle.address_bucket(address or client_address.from_peer(context.peer()))

    async def _take_sign_up(self, address: str) -> None:
        wait_ms = await self._counted(
            "sign-ups",
            self.attempts.take_sign_up(
                address, limit=self.limits.sign_ups_per_address, window_ms=_ms(self.limits.sign_up_window_seconds)
            ),
        )
        if wait_ms:
            log.info("sign-up throttled", extra={"address": address})
            raise _try_again_later("too many sign-ups from your network address", wait_ms)

    async def _refuse_blocked_address(self, address: str) -> None:
        wait_ms = await self._counted(
            "log-in failures",
            self.attempts.login_address_blocked(address, limit=self.limits.login_failures_per_address),
        )
        if wait_ms:
            log.info("log-in throttled for the address", extra={"address": address})
            raise _try_again_later("too many failed log-ins from your network address", wait_ms)

    async def _claim_login(self, account: str) -> None:
        # The same answer whether or not the account exists.
        wait_ms = await self._counted(
            "log-ins",
            self.attempts.claim_login(
                account,
                memory_ms=_ms(self.limits.login_failure_memory_seconds),
                free_failures=self.limits.login_free_failures,
                locks_ms=self._lock_schedule,
            ),
        )
        if wait_ms:
            raise _try_again_later("too many failed log-ins for this username", wait_ms)

    async def _counted(self, what: str, counting):
        """The result of a counter call, or 0 (allowed) when Redis is down:
        throttling must never take log-in or sign-up down."""
        if time.monotonic() < self._counters_down_until:
            counting.close()
            return 0
        try:
            return await counting
        except (redis.exceptions.RedisError, OSError) as exc:
            self._counters_down_until = time.monotonic() + _COUNTERS_REST_SECONDS
            log.warning(
                "attempt counters unreachable; %s not throttled for %.0f s",
                what,
                _COUNTERS_REST_SECONDS,
                extra={"error": error_text(exc)},
            )
            return 0

    # -- helpers -------------------------------------------------------------

    async def _check_credentials(self, username: str, password: str) -> UserRecord | None:
        """The user when `password` is theirs, else None."""
        found = None
        # A name no account can have, or a password no account can have, still
        # costs one verification: response time must not reveal which part was wrong.
        if validation.could_be_username(username) and len(password) <= validation.PASSWORD_MAX:
            found = await self.store.credentials_by_username(username)
        # A deleted account's name is only held: it has no password any more.
        if found is None or found.user.deleted:
            await self.passwords.burn_dummy_verify(password[: validation.PASSWORD_MAX])
            return None
        if not await self.passwords.verify(found.password_hash, password):
            log.info("login refused", extra={"user_id": found.user.id})
            return None
        if self.passwords.needs_rehash(found.password_hash):
            await self._rehash(found.user.id, found.password_hash, password)
        return found.user

    async def _is_password(self, password_hash: str, password: str) -> bool:
        # Longer than any password may be: never hashed, but the same cost.
        if len(password) > validation.PASSWORD_MAX:
            await self.passwords.burn_dummy_verify(password[: validation.PASSWORD_MAX])
            return False
        return await self.passwords.verify(password_hash, password)

    def _new_refresh(self, token: str) -> NewRefreshToken:
        return NewRefreshToken(
            token_hash=sessions.refresh_token_hash(token),
            expires_at=sessions.refresh_expiry(_now(), self.settings.refresh_token_seconds),
        )

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
            raise invalid_argument("avatar_media_id", f"media {media_id} is {media.content_type}, not an image")
        return media.url

    async def _counts(self, user_id: int) -> tuple[int, int, int]:
        """(followers, following, posts) from graph and posts, asked in parallel."""
        timeout = self.settings.rpc_timeout_seconds
        stats, posts = await asyncio.gather(
            clients.graph().GetFollowStats(graph_pb2.GetFollowStatsRequest(user_id=str(user_id)), timeout=timeout),
            clients.posts().GetAuthorStats(posts_pb2.GetAuthorStatsRequest(user_id=str(user_id)), timeout=timeout),
            return_exceptions=True,
        )
        follow_stats = _count_answer("graph", user_id, stats)
        author_stats = _count_answer("posts", user_id, posts)
        return follow_stats.follower_count, follow_stats.following_count, author_stats.post_count

    async def _viewer_flags(self, viewer: int | None, user_id: int) -> graph_pb2.Relationship | None:
        """How a signed-in caller stands with another user, asked of graph on
        every call: it is the caller's own view, so it is never cached (the
        profile and its counts are the same for everyone). None when signed
        out or looking at oneself."""
        if viewer is None or viewer == user_id:
            return None
        try:
            answer = await clients.graph().GetRelationships(
                graph_pb2.GetRelationshipsRequest(viewer_id=str(viewer), user_ids=[str(user_id)]),
                timeout=self.settings.rpc_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("relationship lookup failed", extra={"code": exc.code().name, "user_id": user_id})
            raise unavailable(
                f"how you stand with user {user_id} is unavailable right now (graph service: {exc.code().name}); "
                "try again"
            ) from exc
        return answer.relationships[0] if answer.relationships else None

    async def _summary_counts(self, user_ids: list[int]) -> dict[int, tuple[int, int, int]]:
        """(followers, following, posts) per user from graph and posts, in
        batches asked in parallel; never cached here, so a caller's own cache
        (posts' author summaries) is the only staleness. Never fails: while
        graph or posts cannot answer, summaries go out without counts."""
        try:
            return await clients.summary_counts(user_ids, self._post_counts, self.settings.rpc_timeout_seconds)
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "summary counts unavailable; users go out without them",
                extra={"code": exc.code().name, "details": exc.details()},
            )
            return {}

    async def _post_counts(self, user_ids: list[int]) -> dict[int, int]:
        posts = await clients.posts().BatchGetAuthorStats(
            posts_pb2.BatchGetAuthorStatsRequest(user_ids=[str(u) for u in user_ids]),
            timeout=self.settings.rpc_timeout_seconds,
        )
        return {int(s.user_id): s.post_count for s in posts.stats}


def _count_answer(service: str, user_id: int, result: _Answer | BaseException) -> _Answer:
    """A peer's answer to a count lookup; UNAVAILABLE when it could not answer."""
    if isinstance(result, grpc.aio.AioRpcError):
        log.warning(
            "count lookup failed",
            extra={"peer": service, "code": result.code().name, "details": result.details(), "user_id": user_id},
        )
        raise unavailable(
            f"the profile counts of user {user_id} are unavailable right now "
            f"({service} service: {result.code().name}); try again"
        )
    if isinstance(result, BaseException):
        raise result
    return result


class _Page(Protocol):
    next_page_token: str


_PageT = TypeVar("_PageT", bound=_Page)


async def _pages(service: str, read_page: Callable[[str], Awaitable[_PageT]]) -> AsyncIterator[_PageT]:
    """Every page of a peer's paged list, each read with the last one's next_page_token."""
    token = ""
    while True:
        page = await _from_peer(service, read_page(token))
        yield page
        if not (token := page.next_page_token):
            return


async def _from_peer(service: str, call: Awaitable[_Answer]) -> _Answer:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise _peer_unavailable(service, exc) from exc


def _peer_unavailable(service: str, exc: grpc.aio.AioRpcError) -> ApiError:
    log.warning("export read failed", extra={"peer": service, "code": exc.code().name, "details": exc.details()})
    return unavailable(f"cannot export your data right now ({service} service: {exc.code().name}); try again")


def _visible(user: UserRecord | None, context) -> bool:
    """Whether this caller may see the profile: never a deleted one, a
    suspended one only with an operator token."""
    if user is None or user.deleted:
        return False
    return not user.suspended or _is_operator(context)


def _viewer(context) -> int | None:
    """The signed-in user looking, for the viewer flags: none for an operator's
    token (not a user's) or for nobody signed in; a bad user token is refused."""
    try:
        return optional_caller_id(context)
    except ApiError:
        if _is_operator(context):
            return None
        raise


def _is_operator(context) -> bool:
    try:
        operators.operator(context, _OPERATOR_SCOPE)
    except ApiError:
        return False
    return True


def _own_user(user: UserRecord | None, user_id: int) -> UserRecord:
    """The caller's own account: 404 once deleted, 403 while suspended (a
    token issued before either still verifies until it expires)."""
    if user is None or user.deleted:
        raise not_found(f"user {user_id} does not exist")
    if user.suspended:
        raise permission_denied(_SUSPENDED)
    return user


def _own_credentials(found: Credentials | None, user_id: int) -> Credentials:
    _own_user(None if found is None else found.user, user_id)
    assert found is not None
    return found


def _deleted(user: UserRecord) -> dict:
    return {"deleted": events_pb2.AccountDeleted(user_id=user.id, username=user.username, role=user.role)}


def _exported_post(post: posts_pb2.Post) -> identity_pb2.ExportedPost:
    return identity_pb2.ExportedPost(
        id=post.id,
        text=post.text,
        reply_to_id=post.reply_to_id,
        repost_of_id=post.repost_of_id,
        media_ids=post.media_ids,
        product_ids=post.product_ids,
        create_time=post.created_at,
    )


def _exported_order(order: orders_pb2.Order) -> identity_pb2.ExportedOrder:
    return identity_pb2.ExportedOrder(
        id=order.id,
        status=orders_pb2.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_"),
        total_minor=order.total_minor,
        currency=order.currency,
        lines=[
            identity_pb2.ExportedOrderLine(
                product_id=item.product_id, quantity=item.quantity, unit_price_minor=item.unit_price_minor
            )
            for item in order.items
        ],
        create_time=order.created_at,
    )


def _username_taken(username: str):
    return already_exists(f"username: '{username}' is already taken")


def _try_again_later(problem: str, wait_ms: int):
    seconds = throttle.retry_after_seconds(wait_ms)
    return resource_exhausted(f"{problem}; try again in {seconds} s", seconds)


def _wrong_password(field: str) -> ApiError:
    # Forbidden rather than a malformed request, with the field named for
    # clients that point at it in a form.
    problem = "is not the account's current password"
    return ApiError(grpc.StatusCode.PERMISSION_DENIED, f"{field}: {problem}", [bad_request(field, problem)])


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


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


def _with_viewer_flags(user: identity_pb2.User, relation: graph_pb2.Relationship | None) -> identity_pb2.User:
    """The caller's view of the user, on a copy made for this answer only."""
    if relation is not None:
        user.followed_by_me = relation.followed_by_viewer
        user.follows_me = relation.follows_viewer
        user.blocked_by_me = relation.blocked_by_viewer
        user.muted_by_me = relation.muted_by_viewer
    return user

"""Storage of identity: accounts and sessions in PostgreSQL (schema `identity`) and the
log-in and sign-up attempt counters in Redis; the only code that talks to either."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import redis.asyncio as redis
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.identity import sessions
from services.kit.events.kafka import IDENTITY_TOPIC, Producer
from services.kit.events.pg_outbox import PgOutbox, create_table_sql
from services.kit.stores import pg
from services.identity.settings import IdentitySettings

log = logging.getLogger(__name__)

SCHEMA = "identity"
# What a deleted account's password hash becomes: no Argon2 hash, so nothing verifies against it.
UNUSABLE_PASSWORD_HASH = "!deleted"

# Any constant works; it only has to be the same in every identity process so
# concurrent starts take turns creating the schema.
_SCHEMA_LOCK_KEY = 0x41_56_49_44  # "AVID"

_DDL = [
    "CREATE SCHEMA IF NOT EXISTS identity",
    """CREATE TABLE IF NOT EXISTS identity.users (
        id bigint PRIMARY KEY,
        username text NOT NULL,
        username_lower text NOT NULL UNIQUE,
        display_name text NOT NULL,
        bio text NOT NULL DEFAULT '',
        avatar_url text NOT NULL DEFAULT '',
        password_hash text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )""",
    # Added with commerce: sellers may list products. Existing accounts are users.
    "ALTER TABLE identity.users ADD COLUMN IF NOT EXISTS role text NOT NULL DEFAULT 'USER'",
    # Added with sessions you can end: one row per log-in, revoked by log-out,
    # a password change or a reused refresh token.
    """CREATE TABLE IF NOT EXISTS identity.sessions (
        id bigint PRIMARY KEY,
        user_id bigint NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        revoked_reason text
    )""",
    "CREATE INDEX IF NOT EXISTS sessions_live_by_user ON identity.sessions (user_id) WHERE revoked_at IS NULL",
    # Every refresh token a session was given, by hash; only the one not yet
    # rotated works, the others are kept to recognise their reuse.
    """CREATE TABLE IF NOT EXISTS identity.refresh_tokens (
        token_hash bytea PRIMARY KEY,
        session_id bigint NOT NULL REFERENCES identity.sessions (id) ON DELETE CASCADE,
        issued_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        rotated_at timestamptz
    )""",
    "CREATE INDEX IF NOT EXISTS refresh_tokens_by_session ON identity.refresh_tokens (session_id)",
    # When the session's current refresh token expires: past it the session
    # is dead and swept (its tokens with it).
    "ALTER TABLE identity.sessions ADD COLUMN IF NOT EXISTS expires_at timestamptz",
    "CREATE INDEX IF NOT EXISTS sessions_by_expiry ON identity.sessions (expires_at)",
    # Added with moderation and account deletion: a suspended account cannot
    # log in; a deleted one keeps its row (its username held, then freed by
    # the sweep) so its id is never answered as someone else's.
    "ALTER TABLE identity.users ADD COLUMN IF NOT EXISTS suspended_at timestamptz",
    "ALTER TABLE identity.users ADD COLUMN IF NOT EXISTS deleted_at timestamptz",
    "CREATE INDEX IF NOT EXISTS users_suspended ON identity.users (id) WHERE suspended_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS users_deleted ON identity.users (deleted_at) WHERE deleted_at IS NOT NULL",
    # Account events (identity.events.v1), written with the change they describe.
    create_table_sql(SCHEMA),
]

_metadata = sa.MetaData(schema="identity")
users = sa.Table(
    "users",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("username", sa.Text, nullable=False),
    sa.Column("username_lower", sa.Text, nullable=False, unique=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("bio", sa.Text, nullable=False),
    sa.Column("avatar_url", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("suspended_at", sa.DateTime(timezone=True)),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
)

sessions_table = sa.Table(
    "sessions",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_reason", sa.Text),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
)
refresh_tokens = sa.Table(
    "refresh_tokens",
    _metadata,
    sa.Column("token_hash", sa.LargeBinary, primary_key=True),
    sa.Column("session_id", sa.BigInteger, nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rotated_at", sa.DateTime(timezone=True)),
)

_PROFILE_COLUMNS = [
    users.c.id,
    users.c.username,
    users.c.display_name,
    users.c.bio,
    users.c.avatar_url,
    users.c.created_at,
    users.c.role,
    users.c.suspended_at,
    users.c.deleted_at,
]
# Built once, as catalog's lookup by ids is: building a select per call cost 40% of running it.
_LIVE_USERS_BY_IDS = sa.select(*_PROFILE_COLUMNS).where(
    users.c.id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.BigInteger))), users.c.deleted_at.is_(None)
)


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    display_name: str
    bio: str
    avatar_url: str
    created_at: datetime.datetime
    role: str = "USER"
    # An operator suspended it: it cannot log in and only operators see its profile.
    suspended: bool = False
    # Its owner deleted it: nobody sees it; the row only holds the username.
    deleted: bool = False


@dataclass(frozen=True)
class Credentials:
    user: UserRecord
    password_hash: str


class UsernameTaken(Exception):
    """The unique index on username_lower refused the insert."""


@dataclass(frozen=True)
class OutboxEvent:
    """A serialized AccountEvent for the outbox, keyed by its account."""

    event_id: int
    payload: bytes


# Builds the event of a change from the account as the change left it.
EventFor = Callable[["UserRecord"], OutboxEvent]


@dataclass(frozen=True)
class StatusChange:
    """An account after a suspension or reinstatement; `changed` is False when
    it already stood so (nothing written, no event)."""

    user: UserRecord
    changed: bool


@dataclass(frozen=True)
class NewRefreshToken:
    """A refresh token to store for a session: its hash and expiry."""

    token_hash: bytes
    expires_at: datetime.datetime


@dataclass(frozen=True)
class Rotation:
    """The outcome of presenting a refresh token (`found` is None when unknown)."""

    verdict: sessions.Verdict
    found: sessions.PresentedToken | None


class IdentityStore:
    def __init__(self, settings: IdentitySettings, producer: Producer | None = None) -> None:
        self._settings = settings
        self._producer = producer
        self._engine: AsyncEngine | None = None
        self._autocommit: AsyncEngine | None = None
        self._outbox: PgOutbox | None = None

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "call start() first"
        return self._engine

    @property
    def autocommit(self) -> AsyncEngine:
        """For single reads: no transaction around them (pg.autocommit)."""
        assert self._autocommit is not None, "call start() first"
        return self._autocommit

    @property
    def outbox(self) -> PgOutbox:
        assert self._outbox is not None, "call start() first"
        return self._outbox

    async def start(self) -> None:
        self._engine = pg.engine(self._settings)
        self._autocommit = pg.autocommit(self._engine)
        await self._ensure_schema()
        # Without a producer (tools, tests) events are stored for a relay elsewhere.
        self._outbox = PgOutbox(self._engine, SCHEMA, self._producer)  # type: ignore[arg-type]

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    async def _ensure_schema(self) -> None:
        async with self.engine.begin() as conn:
            # Transaction-scoped lock: released on commit, even if we crash.
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            for statement in _DDL:
                await conn.execute(sa.text(statement))
        log.info("identity schema ready")

    async def insert_user(
        self,
        *,
        user_id: int,
        username: str,
        display_name: str,
        password_hash: str,
        role: str,
        session_id: int,
        refresh: NewRefreshToken,
    ) -> UserRecord:
        """The new account, with its first session in the same transaction."""
        stmt = (
            sa.insert(users)
            .values(
                id=user_id,
                username=username,
                username_lower=username.lower(),
                display_name=display_name,
                bio="",
                avatar_url="",
                password_hash=password_hash,
                role=role,
                created_at=sa.func.now(),
            )
            .returning(*_PROFILE_COLUMNS)
        )
        try:
            async with self.engine.begin() as conn:
                row = (await conn.execute(stmt)).one()
                await _insert_session(conn, session_id, user_id, refresh)
        except IntegrityError as exc:
            if "username_lower" in (_violated_constraint(exc) or ""):
                raise UsernameTaken(username) from exc
            raise
        return _record(row)

    async def update_profile(self, user_id: int, changes: dict[str, str]) -> UserRecord | None:
        """Applies column -> value changes to one user; None when there is no
        such user (or it is suspended or deleted)."""
        stmt = (
            sa.update(users)
            # Nobody sees a suspended or deleted profile, so nobody edits one.
            .where(users.c.id == user_id, users.c.deleted_at.is_(None), users.c.suspended_at.is_(None))
            .values(**changes)
            .returning(*_PROFILE_COLUMNS)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _record(row)

    async def get_user(self, user_id: int) -> UserRecord | None:
        async with self.autocommit.connect() as conn:
            row = (await conn.execute(sa.select(*_PROFILE_COLUMNS).where(users.c.id == user_id))).first()
        return None if row is None else _record(row)

    async def find_by_username(self, username: str) -> UserRecord | None:
        stmt = sa.select(*_PROFILE_COLUMNS).where(users.c.username_lower == username.lower())
        async with self.autocommit.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _record(row)

    async def credentials_by_username(self, username: str) -> Credentials | None:
        stmt = sa.select(*_PROFILE_COLUMNS, users.c.password_hash).where(users.c.username_lower == username.lower())
        async with self.autocommit.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            return None
        return Credentials(user=_record(row), password_hash=row.password_hash)

    async def get_users(self, user_ids: list[int]) -> list[UserRecord]:
        """One round trip for any number of ids; unknown and deleted ids are
        simply absent (suspended ones are answered: references still render)."""
        if not user_ids:
            return []
        async with self.autocommit.connect() as conn:
            rows = (await conn.execute(_LIVE_USERS_BY_IDS, {"ids": user_ids})).all()
        return [_record(row) for row in rows]

    async def credentials_by_id(self, user_id: int) -> Credentials | None:
        stmt = sa.select(*_PROFILE_COLUMNS, users.c.password_hash).where(users.c.id == user_id)
        async with self.autocommit.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else Credentials(user=_record(row), password_hash=row.password_hash)

    async def change_password(
        self, user_id: int, old_hash: str, new_hash: str, *, keep_session_id: int | None
    ) -> int | None:
        """Sets the new hash if the password is still `old_hash` and revokes
        every live session of the user but `keep_session_id`, in one transaction.
        How many sessions were revoked; None when the password changed meanwhile."""
        set_hash = (
            sa.update(users)
            .where(users.c.id == user_id, users.c.password_hash == old_hash)
            .values(password_hash=new_hash)
        )
        revoke = _revoke(sessions_table.c.user_id == user_id, sessions.REVOKED_PASSWORD_CHANGED)
        if keep_session_id is not None:
            revoke = revoke.where(sessions_table.c.id != keep_session_id)
        async with self.engine.begin() as conn:
            if (await conn.execute(set_hash)).rowcount == 0:
                return None
            return (await conn.execute(revoke)).rowcount

    # -- sessions ----------------------------------------------------------

    async def start_session(self, session_id: int, user_id: int, refresh: NewRefreshToken) -> UserRecord | None:
        """Starts a session of the account as it stands now: its record, or
        None (no session) when it is no longer live."""
        async with self.engine.begin() as conn:
            # Shared lock: waits for a suspension or deletion in flight, whose
            # revocation would otherwise miss this session.
            stmt = sa.select(*_PROFILE_COLUMNS).where(users.c.id == user_id).with_for_update(read=True)
            row = (await conn.execute(stmt)).first()
            if row is None:
                return None
            user = _record(row)
            if not (user.suspended or user.deleted):
                await _insert_session(conn, session_id, user_id, refresh)
        return user

    async def rotate_refresh_token(
        self, token_hash: bytes, successor: NewRefreshToken, now: datetime.datetime
    ) -> Rotation:
        """Judges a presented refresh token (sessions.judge) and acts on the
        verdict in one transaction: ROTATE retires it and stores `successor`,
        REISSUE stores `successor` in place of the session's unused current
        token, REUSED revokes its session. The rows are locked, so concurrent
        refreshes of one session are judged one after another."""
        async with self.engine.begin() as conn:
            found = await _presented_token(conn, token_hash)
            verdict = sessions.judge(found, now, self._settings.refresh_reissue_seconds)
            if found is None:
                return Rotation(verdict, None)
            if verdict is sessions.Verdict.ROTATE:
                await conn.execute(
                    sa.update(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash).values(rotated_at=now)
                )
                await _store_successor(conn, found.session_id, successor)
            elif verdict is sessions.Verdict.REISSUE:
                # The lost successor stops working; its retirement time stays,
                # so the grace runs from the first refresh.
                await conn.execute(
                    sa.delete(refresh_tokens).where(
                        refresh_tokens.c.session_id == found.session_id, refresh_tokens.c.rotated_at.is_(None)
                    )
                )
                await _store_successor(conn, found.session_id, successor)
            elif verdict is sessions.Verdict.REUSED:
                await conn.execute(_revoke(sessions_table.c.id == found.session_id, sessions.REVOKED_TOKEN_REUSED))
        return Rotation(verdict, found)

    async def delete_expired_sessions(self, limit: int) -> int:
        """Deletes up to `limit` sessions whose current refresh token has
        expired, with all their tokens; how many. Replicas sweeping at once
        skip each other's rows."""
        doomed = (
            sa.select(sessions_table.c.id)
            .where(sessions_table.c.expires_at < sa.func.now())
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(sa.delete(sessions_table).where(sessions_table.c.id.in_(doomed)))).rowcount

    async def revoke_session(self, session_id: int, user_id: int, reason: str) -> bool:
        """Revokes one live session of `user_id`; False when there was none to revoke."""
        stmt = _revoke((sessions_table.c.id == session_id) & (sessions_table.c.user_id == user_id), reason)
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount > 0

    # -- suspension and deletion -------------------------------------------

    async def suspend(self, user_id: int, event_for: EventFor) -> StatusChange | None:
        """Suspends a live account, revokes every session of it and stores its
        AccountSuspended event, in one transaction. None when there is no
        such account (or it was deleted)."""
        async with self.engine.begin() as conn:
            user = await _locked_live_user(conn, user_id)
            if user is None or user.suspended:
                return None if user is None else StatusChange(user, changed=False)
            await conn.execute(sa.update(users).where(users.c.id == user_id).values(suspended_at=sa.func.now()))
            await conn.execute(_revoke(sessions_table.c.user_id == user_id, sessions.REVOKED_ACCOUNT_SUSPENDED))
            suspended = replace(user, suspended=True)
            await self._add_event(conn, user_id, event_for(suspended))
        self.outbox.notify()
        return StatusChange(suspended, changed=True)

    async def reinstate(self, user_id: int, event_for: EventFor) -> StatusChange | None:
        """Lifts a live account's suspension and stores its AccountReinstated
        event, in one transaction. None when there is no such account."""
        async with self.engine.begin() as conn:
            user = await _locked_live_user(conn, user_id)
            if user is None or not user.suspended:
                return None if user is None else StatusChange(user, changed=False)
            await conn.execute(sa.update(users).where(users.c.id == user_id).values(suspended_at=None))
            reinstated = replace(user, suspended=False)
            await self._add_event(conn, user_id, event_for(reinstated))
        self.outbox.notify()
        return StatusChange(reinstated, changed=True)

    async def delete_account(self, user_id: int, password_hash: str, event_for: EventFor) -> UserRecord | None:
        """Deletes a live, unsuspended account whose password hash is still
        `password_hash`, in one transaction: the row is marked deleted (its
        username still held), its profile cleared and its password made
        unusable; every session is revoked; AccountDeleted is stored. The
        account as it was; None when it changed meanwhile (or is gone)."""
        async with self.engine.begin() as conn:
            user = await _locked_live_user(conn, user_id)
            if user is None or user.suspended:
                return None
            cleared = await conn.execute(
                sa.update(users)
                .where(users.c.id == user_id, users.c.password_hash == password_hash)
                .values(
                    deleted_at=sa.func.now(),
                    display_name="",
                    bio="",
                    avatar_url="",
                    password_hash=UNUSABLE_PASSWORD_HASH,
                )
            )
            if cleared.rowcount == 0:
                return None
            await conn.execute(_revoke(sessions_table.c.user_id == user_id, sessions.REVOKED_ACCOUNT_DELETED))
            await self._add_event(conn, user_id, event_for(replace(user, deleted=True)))
        self.outbox.notify()
        return user

    async def free_held_usernames(self, hold_seconds: float, limit: int) -> list[int]:
        """Frees the usernames of up to `limit` accounts deleted more than
        `hold_seconds` ago: the name may be taken again. Their ids. Replicas
        sweeping at once skip each other's rows."""
        doomed = (
            sa.select(users.c.id)
            .where(users.c.deleted_at <= _hold_start(hold_seconds), users.c.username != "")
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        # "~" is in no username, so the freed row can never collide.
        freed = (
            sa.update(users)
            .where(users.c.id.in_(doomed))
            .values(username="", username_lower=sa.literal("~") + sa.cast(users.c.id, sa.Text))
            .returning(users.c.id)
        )
        async with self.engine.begin() as conn:
            return list((await conn.execute(freed)).scalars())

    async def gone_account_ids(self, hold_seconds: float) -> list[int]:
        """Every suspended account and every account deleted within `hold_seconds`."""
        stmt = sa.select(users.c.id).where(
            sa.or_(users.c.suspended_at.is_not(None), users.c.deleted_at > _hold_start(hold_seconds))
        )
        async with self.autocommit.connect() as conn:
            return list((await conn.execute(stmt)).scalars())

    async def _add_event(self, conn, user_id: int, event: OutboxEvent) -> None:
        await self.outbox.add(conn, event.event_id, IDENTITY_TOPIC, str(user_id).encode(), event.payload)

    async def replace_password_hash(self, user_id: int, old_hash: str, new_hash: str) -> None:
        # Compare-and-set so a concurrent password change is never overwritten.
        stmt = (
            sa.update(users)
            .where(users.c.id == user_id, users.c.password_hash == old_hash)
            .values(password_hash=new_hash)
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)


async def _locked_live_user(conn, user_id: int) -> UserRecord | None:
    """The account, its row locked for the transaction; None when there is
    none or it was deleted."""
    stmt = sa.select(*_PROFILE_COLUMNS).where(users.c.id == user_id).with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None or row.deleted_at is not None:
        return None
    return _record(row)


def _hold_start(hold_seconds: float):
    """Accounts deleted since this still hold their usernames."""
    return sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, hold_seconds)


async def _insert_session(conn, session_id: int, user_id: int, refresh: NewRefreshToken) -> None:
    await conn.execute(
        sa.insert(sessions_table).values(
            id=session_id, user_id=user_id, created_at=sa.func.now(), expires_at=refresh.expires_at
        )
    )
    await conn.execute(sa.insert(refresh_tokens).values(**_token_row(session_id, refresh)))


async def _presented_token(conn, token_hash: bytes) -> sessions.PresentedToken | None:
    """What is known of a presented refresh token, its row and its session's
    locked until the transaction ends."""
    find = (
        sa.select(
            refresh_tokens.c.session_id,
            refresh_tokens.c.expires_at,
            refresh_tokens.c.rotated_at,
            sessions_table.c.user_id,
            sessions_table.c.revoked_at,
            users.c.suspended_at,
        )
        .join(sessions_table, sessions_table.c.id == refresh_tokens.c.session_id)
        .join(users, users.c.id == sessions_table.c.user_id)
        .where(refresh_tokens.c.token_hash == token_hash)
        # The account row is only read: a suspension waits for the session
        # row, which is locked, so it revokes after this rotation or this
        # rotation sees the suspension.
        .with_for_update(of=[refresh_tokens, sessions_table])
    )
    row = (await conn.execute(find)).first()
    if row is None:
        return None
    retired_last = False
    if row.rotated_at is not None:
        # Stable while judged: every rotation of the session locks its row.
        last = sa.select(sa.func.max(refresh_tokens.c.rotated_at)).where(refresh_tokens.c.session_id == row.session_id)
        retired_last = (await conn.execute(last)).scalar() == row.rotated_at
    return sessions.PresentedToken(
        session_id=row.session_id,
        user_id=row.user_id,
        expires_at=row.expires_at,
        rotated_at=row.rotated_at,
        session_revoked=row.revoked_at is not None,
        account_suspended=row.suspended_at is not None,
        retired_last=retired_last,
    )


async def _store_successor(conn, session_id: int, successor: NewRefreshToken) -> None:
    """The session's new current token; the session lives as long as it does."""
    await conn.execute(sa.insert(refresh_tokens).values(**_token_row(session_id, successor)))
    await conn.execute(
        sa.update(sessions_table).where(sessions_table.c.id == session_id).values(expires_at=successor.expires_at)
    )


def _token_row(session_id: int, token: NewRefreshToken) -> dict:
    return {
        "token_hash": token.token_hash,
        "session_id": session_id,
        "issued_at": sa.func.now(),
        "expires_at": token.expires_at,
    }


def _revoke(which, reason: str):
    """An UPDATE revoking the live sessions `which` selects."""
    return (
        sa.update(sessions_table)
        .where(which, sessions_table.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now(), revoked_reason=reason)
    )


def _violated_constraint(exc: IntegrityError) -> str | None:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def _record(row) -> UserRecord:
    return UserRecord(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        bio=row.bio,
        avatar_url=row.avatar_url,
        created_at=row.created_at,
        role=row.role,
        suspended=row.suspended_at is not None,
        deleted=row.deleted_at is not None,
    )


# KEYS[1]: one account name's log-in attempts (hash: n = attempts since the
# last success, until = locked until, ms). ARGV: memory ms, free failures, then
# the lock (ms) for the free-failures-th attempt onwards, the last one capped.
# Returns ms still locked (nothing counted), else 0 with this attempt counted
# as a failure up front: concurrent guesses cannot all slip in before a lock.
_CLAIM_LOGIN_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local locked_until = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if locked_until > now then
  return locked_until - now
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local keep = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
if n >= free then
  local lock = tonumber(ARGV[math.min(3 + n - free, #ARGV)])
  redis.call('HSET', KEYS[1], 'until', now + lock)
  keep = keep + lock
end
redis.call('PEXPIRE', KEYS[1], keep)
return 0
"""

# KEYS[1]: a counter that lives one window from its first count. ARGV: limit,
# window ms, how many to add. Returns ms until the window ends when the counter
# is at its limit (nothing added), else 0.
_TAKE_LUA = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  return math.max(redis.call('PTTL', KEYS[1]), 1)
end
if tonumber(ARGV[3]) > 0 then
  redis.call('INCRBY', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
end
return 0
"""


_NO_LIMIT = 2**53


class AttemptStore:
    """Log-in and sign-up attempt counters in Redis, shared by every identity
    replica. One key per script call, so each works on Redis Cluster too."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._claim_login = client.register_script(_CLAIM_LOGIN_LUA)
        self._take = client.register_script(_TAKE_LUA)

    async def claim_login(self, account: str, *, memory_ms: int, free_failures: int, locks_ms: list[int]) -> int:
        """Counts a log-in attempt for `account` as failed until forget_login
        says otherwise; ms it is still locked for (nothing counted), else 0."""
        return int(await self._claim_login(keys=[_account_key(account)], args=[memory_ms, free_failures, *locks_ms]))

    async def forget_login(self, account: str) -> None:
        await self._redis.delete(_account_key(account))

    async def login_address_blocked(self, address: str, *, limit: int) -> int:
        """ms until `address` may fail log-ins again, or 0."""
        return int(await self._take(keys=[_login_address_key(address)], args=[limit, 1, 0]))

    async def count_login_failure(self, address: str, *, window_ms: int) -> None:
        # _TAKE_LUA with a limit never reached: counted, in a window from the first failure.
        await self._take(keys=[_login_address_key(address)], args=[_NO_LIMIT, window_ms, 1])

    async def take_sign_up(self, address: str, *, limit: int, window_ms: int) -> int:
        """Counts a sign-up from `address`; ms until it may sign up again when at its limit, else 0."""
        return int(await self._take(keys=[_sign_up_key(address)], args=[limit, window_ms, 1]))


def _account_key(account: str) -> str:
    return f"login:acct:{{{account}}}"


def _login_address_key(address: str) -> str:
    return f"login:addr:{{{address}}}"


def _sign_up_key(address: str) -> str:
    return f"signup:addr:{{{address}}}"

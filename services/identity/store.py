"""PostgreSQL storage for accounts (schema `identity`): the only code that talks SQL."""
from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import pg
from services.kit.config import Settings

log = logging.getLogger(__name__)

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
)

_PROFILE_COLUMNS = [
    users.c.id,
    users.c.username,
    users.c.display_name,
    users.c.bio,
    users.c.avatar_url,
    users.c.created_at,
    users.c.role,
]


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    display_name: str
    bio: str
    avatar_url: str
    created_at: datetime.datetime
    role: str = "USER"


@dataclass(frozen=True)
class Credentials:
    user: UserRecord
    password_hash: str


class UsernameTaken(Exception):
    """The unique index on username_lower refused the insert."""


class IdentityStore:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "call start() first"
        return self._engine

    async def start(self) -> None:
        self._engine = pg.engine(self._settings)
        await self._ensure_schema()

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
        self, *, user_id: int, username: str, display_name: str, password_hash: str, role: str
    ) -> UserRecord:
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
        except IntegrityError as exc:
            if "username_lower" in (_violated_constraint(exc) or ""):
                raise UsernameTaken(username) from exc
            raise
        return _record(row)

    async def update_profile(self, user_id: int, changes: dict[str, str]) -> UserRecord | None:
        """Applies column -> value changes to one user; None when there is no such user."""
        stmt = sa.update(users).where(users.c.id == user_id).values(**changes).returning(*_PROFILE_COLUMNS)
        async with self.engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _record(row)

    async def get_user(self, user_id: int) -> UserRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(*_PROFILE_COLUMNS).where(users.c.id == user_id))).first()
        return None if row is None else _record(row)

    async def find_by_username(self, username: str) -> UserRecord | None:
        stmt = sa.select(*_PROFILE_COLUMNS).where(users.c.username_lower == username.lower())
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _record(row)

    async def credentials_by_username(self, username: str) -> Credentials | None:
        stmt = sa.select(*_PROFILE_COLUMNS, users.c.password_hash).where(
            users.c.username_lower == username.lower()
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            return None
        return Credentials(user=_record(row), password_hash=row.password_hash)

    async def get_users(self, user_ids: list[int]) -> list[UserRecord]:
        """One round trip for any number of ids; unknown ids are simply absent."""
        if not user_ids:
            return []
        ids = sa.bindparam("ids", value=user_ids, type_=postgresql.ARRAY(sa.BigInteger))
        stmt = sa.select(*_PROFILE_COLUMNS).where(users.c.id == sa.any_(ids))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_record(row) for row in rows]

    async def replace_password_hash(self, user_id: int, old_hash: str, new_hash: str) -> None:
        # Compare-and-set so a concurrent password change is never overwritten.
        stmt = (
            sa.update(users)
            .where(users.c.id == user_id, users.c.password_hash == old_hash)
            .values(password_hash=new_hash)
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)


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
    )

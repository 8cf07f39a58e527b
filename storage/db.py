"""The async engine, the session factory and schema migrations.

SQLite (the default) runs in WAL mode with foreign keys on, so the scheduler and the Slack
listeners can read while one of them writes. PostgreSQL is reached through asyncpg.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Multi-workspace installs: slack_sdk's stores own these tables (migration 0008 creates them).
SLACK_OAUTH_TABLES = ("slack_installations", "slack_bots", "slack_oauth_states")

Session = AsyncSession


class Database:
    """The engine and its session factory; what the rest of the bot holds instead of SQLAlchemy."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> AsyncSession:
        """A new session; use it as ``async with db.session() as session, session.begin(): …``."""
        return self._sessions()

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def migrate(self) -> tuple[str | None, str | None]:
        return await migrate(self.engine)

    async def dispose(self) -> None:
        await self.engine.dispose()

    def installation_store(self, *, client_id: str) -> AsyncSQLAlchemyInstallationStore:
        """slack_sdk's store of each workspace's installation (its bot token), in this database."""
        return AsyncSQLAlchemyInstallationStore(client_id=client_id, engine=self.engine)

    def oauth_state_store(self, *, expiration_seconds: int) -> AsyncSQLAlchemyOAuthStateStore:
        """slack_sdk's store of OAuth states, here so that any replica can finish an install another began."""
        return AsyncSQLAlchemyOAuthStateStore(expiration_seconds=expiration_seconds, engine=self.engine)


def create_engine(database_url: str) -> AsyncEngine:
    """An async engine for ``database_url``; SQLite gets its folder created and its pragmas set."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def slack_oauth_metadata() -> MetaData:
    """slack_sdk's installation, bot and OAuth-state tables, as its async SQLAlchemy stores define them."""
    metadata = MetaData()
    AsyncSQLAlchemyInstallationStore.build_installations_table(metadata, SLACK_OAUTH_TABLES[0])
    AsyncSQLAlchemyInstallationStore.build_bots_table(metadata, SLACK_OAUTH_TABLES[1])
    AsyncSQLAlchemyOAuthStateStore.build_oauth_states_table(metadata, SLACK_OAUTH_TABLES[2])
    return metadata


def include_in_migrations(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate compares the SQLModel tables only: slack_sdk's tables are not theirs to drop."""
    table = obj.table.name if type_ in ("column", "index", "unique_constraint", "foreign_key_constraint") else name
    return table not in SLACK_OAUTH_TABLES


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


async def migrate(engine: AsyncEngine) -> tuple[str | None, str | None]:
    """Bring the schema to the newest revision; return (revision before, revision after).

    Safe to run on every start and from several replicas: PostgreSQL serialises it with an
    advisory lock, and an up-to-date database is left untouched.
    """
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(727375)"))
        before = await connection.run_sync(_current_revision)
        await connection.run_sync(_upgrade)
        after = await connection.run_sync(_current_revision)
    return before, after


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")


def run_migrations(database_url: str) -> tuple[str | None, str | None]:
    """Synchronous wrapper for the command line."""

    async def _run() -> tuple[str | None, str | None]:
        database = Database(database_url)
        try:
            return await database.migrate()
        finally:
            await database.dispose()
            await let_sqlite_threads_finish()

    return asyncio.run(_run())


async def let_sqlite_threads_finish(timeout: float = 2.0) -> None:
    """Before a command gives up on its database: aiosqlite hands a failed connection's last answer back
    from its own thread, and if the event loop has closed by then, that thread dies with a traceback on
    stderr after the command's one line. Waiting for those threads here keeps the line alone."""
    deadline = time.monotonic() + timeout
    for worker in threading.enumerate():
        if worker.name.endswith("(_connection_worker_thread)"):
            await asyncio.to_thread(worker.join, max(0.0, deadline - time.monotonic()))


# What a database outage raises (the server down or restarting, a connection dropped).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (DBAPIError, OSError)


def unusable_database(error: BaseException, database_url: str) -> str | None:
    """The one line to show when ``error`` means the database cannot be used at all (a wrong URL, a
    server that is down or refuses us, a folder SQLite cannot write); None for any other error."""
    try:
        where = make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:
        where = "(not a database URL)"
    if isinstance(error, ArgumentError | NoSuchModuleError):
        reason = "it is not a URL the bot can use (sqlite:///path or postgresql://user@host:port/database)"
    elif isinstance(error, DBAPIError):
        reason = str(error.orig or error).strip().splitlines()[0]
    elif isinstance(error, ModuleNotFoundError):
        reason = f"no driver for it is installed ({error.name}); use sqlite:/// or postgresql://"
    elif isinstance(error, OSError):
        reason = f"cannot reach it ({error.strerror or type(error).__name__})"
    else:
        return None
    return f"cannot use the database {where}: {reason}. Fix DATABASE_URL (or the data folder's permissions)."

"""Real databases for tests: a throwaway PostgreSQL database, SQLite run as the applier runs it.

PostgreSQL (server from ``MF_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``)::

    @pytest.fixture(scope="module")
    def pg_url():
        with dbutil.temporary_postgres_database("dialect") as url:   # skips or fails, see below
            yield url

    session = dbutil.PostgresSession(pg_url)     # asyncpg, driven from sync tests
    session.execute("CREATE TABLE ...")
    session.migrate(operations)                  # through the applier's own runner

A module makes one database (creating one takes a while) and isolates its tests with
schemas (``session.fresh_schema()``). When the server cannot be reached the test is
skipped with the reason, except under ``CI=true``, where that is a failure: CI must
not go green without PostgreSQL.

SQLite::

    connection = dbutil.sqlite_connect()         # a file of its own; autocommit, keys on
    dbutil.migrate_sqlite(connection, operations)  # through the applier's own runner

Migrations run as ``mf migrate`` runs each of its migrations: ``step_for`` translates
the operations with the dialect, ``applier.apply_step`` runs the step (its
transaction, foreign keys switched off where the dialect asks, its ledger row). A
statement the database refuses is a DatabaseError carrying the database's code:
``with dbutil.refused(asyncpg.NotNullViolationError): ...``.
"""
from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import shutil
import sqlite3
import tempfile
import uuid
from typing import Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

import pytest

from mfcore import applier
from mfcore.config import Config
from mfcore.dialects import dialect_for
from mfcore.errors import DatabaseError
from mfcore.steps import Step, step_for
from mfcore.store import Migration, MigrationFile

POSTGRES_URL = os.environ.get("MF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"

_unreachable: dict = {}
_numbers = itertools.count(1)


# ---------------------------------------------------------------- through the applier

def step(driver: str, operations, *, atomic: bool = True, online: bool = False) -> Step:
    """A migration of ``operations`` translated for ``driver`` as migrate translates one;
    by default as one transaction with the plain forms (``online``: cut into steps
    where the dialect would)."""
    number = next(_numbers)
    name = f"{number:04d}_test.json"
    migration = Migration(MigrationFile(number, name, name), tuple(operations), atomic, f"{number:064x}", False)
    return step_for(dialect_for(driver), migration, online=online)


@contextlib.contextmanager
def refused(kind=None, match: Optional[str] = None):
    """The migration failed: a DatabaseError whose database code is ``kind``'s (an
    asyncpg exception class: its SQLSTATE; sqlite3.IntegrityError: a constraint), and
    whose message matches ``match``."""
    with pytest.raises(DatabaseError, match=match) as caught:
        yield caught
    code = getattr(caught.value, "code", None)
    if kind is sqlite3.IntegrityError:
        assert code is not None and code.startswith("SQLITE_CONSTRAINT"), code
    elif kind is not None:
        assert code == kind.sqlstate, (code, kind)


# ---------------------------------------------------------------- PostgreSQL

def _run(coroutine):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def postgres_unreachable() -> Optional[str]:
    """Why the test server cannot be used, or None when it can (asked once per process)."""
    if "reason" not in _unreachable:
        async def probe():
            import asyncpg

            connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
            await connection.close()

        try:
            _run(probe())
            _unreachable["reason"] = None
        except Exception as exc:  # any failure to connect means: no server for these tests
            _unreachable["reason"] = f"PostgreSQL at {_safe(POSTGRES_URL)} is unreachable: {exc}"
    return _unreachable["reason"]


def require_postgres() -> None:
    """Skip the test when there is no server, with the reason; under CI=true, fail instead."""
    reason = postgres_unreachable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests may not be skipped)")
    pytest.skip(reason)


@contextlib.contextmanager
def temporary_postgres_database(prefix: str = "mf_test") -> Iterator[str]:
    """A new, uniquely named database; yields its URL and drops it afterwards."""
    require_postgres()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}".lower()

    async def admin(statement):
        import asyncpg

        connection = await asyncpg.connect(POSTGRES_URL, timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    _run(admin(f'CREATE DATABASE "{name}"'))
    try:
        parts = urlsplit(POSTGRES_URL)
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        _run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class PostgresSession:
    """One asyncpg connection used from synchronous tests, on an event loop of its own."""

    def __init__(self, url: str):
        import asyncpg

        self.url = url
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(asyncpg.connect(url, timeout=10))
        self.schema: Optional[str] = None

    def execute(self, sql: str, *args):
        return self.loop.run_until_complete(self.connection.execute(sql, *args))

    def fetch(self, sql: str, *args) -> list:
        return [tuple(row) for row in self.loop.run_until_complete(self.connection.fetch(sql, *args))]

    def fetchval(self, sql: str, *args):
        return self.loop.run_until_complete(self.connection.fetchval(sql, *args))

    def migrate(self, operations, *, atomic: bool = True) -> None:
        """Apply ``operations`` as one migration through the applier, on this session's
        connection (so in its schema)."""
        self.run_step(step("postgresql", operations, atomic=atomic))

    def run_step(self, prepared: Step) -> None:
        from mfcore.drivers import PostgresConnection

        import asyncpg

        connection = PostgresConnection(self.connection, asyncpg, self.url)
        config = Config("postgresql", self.url, "", "")
        self.loop.run_until_complete(applier.apply_step(connection, config, prepared))

    def read_catalog(self, tables=None):
        """The dialect's catalog reader on this session's connection (its schema)."""
        from mfcore.drivers import PostgresConnection

        import asyncpg

        connection = PostgresConnection(self.connection, asyncpg, self.url)
        return self.loop.run_until_complete(dialect_for("postgresql").read_catalog(connection, tables))

    def fresh_schema(self) -> str:
        """A new empty schema, made the only one on the search path (and the last one dropped)."""
        self.drop_schema()
        self.schema = f"t_{uuid.uuid4().hex[:10]}"
        self.execute(f'CREATE SCHEMA "{self.schema}"')
        self.execute(f'SET search_path TO "{self.schema}"')
        return self.schema

    def drop_schema(self) -> None:
        if self.schema is not None:
            self.execute("SET search_path TO public")
            self.execute(f'DROP SCHEMA "{self.schema}" CASCADE')  # test cleanup only
            self.schema = None
            # asyncpg caches prepared statements and enum types by OID: forget them.
            self.loop.run_until_complete(self.connection.reload_schema_state())

    def close(self) -> None:
        self.drop_schema()
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


def _safe(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


# ---------------------------------------------------------------- SQLite

_sqlite_directory: list = []


def sqlite_connect(path: Optional[str] = None) -> sqlite3.Connection:
    """A connection as the applier opens one: autocommit (transactions are explicit),
    keys on; to a new file of its own unless ``path`` is given (the applier opens the
    file again for each migration)."""
    if path is None:
        if not _sqlite_directory:
            _sqlite_directory.append(tempfile.mkdtemp(prefix="mf_sqlite_"))
            atexit.register(shutil.rmtree, _sqlite_directory[0], True)
        path = os.path.join(_sqlite_directory[0], f"{uuid.uuid4().hex[:12]}.db")
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def migrate_sqlite(connection: sqlite3.Connection, operations) -> None:
    """Apply ``operations`` as one migration through the applier, on the file that
    ``connection`` has open."""
    run_sqlite_step(connection, step("sqlite", operations))


def run_sqlite_step(connection: sqlite3.Connection, prepared: Step) -> None:
    from mfcore.drivers import connect

    path = connection.execute("PRAGMA database_list").fetchone()[2]
    config = Config("sqlite", path, "", "")

    async def run():
        async with await connect(config) as mf_connection:
            await applier.apply_step(mf_connection, config, prepared)

    _run(run())
    # The applier changed the schema through a connection of its own: a read makes this
    # one reload it (PRAGMAs such as foreign_key_list answer from the schema in memory).
    connection.execute("SELECT count(*) FROM sqlite_master").fetchall()


def read_sqlite_catalog(connection: sqlite3.Connection, tables=None):
    """The dialect's catalog reader on the file that ``connection`` has open."""
    from mfcore.drivers import connect

    config = Config("sqlite", connection.execute("PRAGMA database_list").fetchone()[2], "", "")

    async def run():
        async with await connect(config) as mf_connection:
            return await dialect_for("sqlite").read_catalog(mf_connection, tables)

    return _run(run())

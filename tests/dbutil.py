"""Real databases for tests: a throwaway PostgreSQL database, SQLite run as the applier runs it.

PostgreSQL (server from ``MF_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``)::

    @pytest.fixture(scope="module")
    def pg_url():
        with dbutil.temporary_postgres_database("dialect") as url:   # skips or fails, see below
            yield url

    session = dbutil.PostgresSession(pg_url)     # asyncpg, driven from sync tests
    session.execute("CREATE TABLE ...")
    session.apply(statements)                    # one transaction, as the applier does

A module makes one database (creating one takes a while) and isolates its tests with
schemas (``session.fresh_schema()``). When the server cannot be reached the test is
skipped with the reason, except under ``CI=true``, where that is a failure: CI must
not go green without PostgreSQL.

SQLite::

    connection = dbutil.sqlite_connect(path)     # autocommit, foreign keys on
    dbutil.apply_sqlite(connection, statements, foreign_keys_off=True)
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import uuid
from typing import Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

import pytest

POSTGRES_URL = os.environ.get("MF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"

_unreachable: dict = {}


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

        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(asyncpg.connect(url, timeout=10))
        self.schema: Optional[str] = None

    def execute(self, sql: str, *args):
        return self.loop.run_until_complete(self.connection.execute(sql, *args))

    def fetch(self, sql: str, *args) -> list:
        return [tuple(row) for row in self.loop.run_until_complete(self.connection.fetch(sql, *args))]

    def fetchval(self, sql: str, *args):
        return self.loop.run_until_complete(self.connection.fetchval(sql, *args))

    def apply(self, statements, *, atomic: bool = True) -> None:
        """Run a migration's statements the way the applier does: in one transaction
        (rolled back on failure), or one by one when ``atomic`` is false."""
        async def run():
            if not atomic:
                for statement in statements:
                    await self.connection.execute(statement)
                return
            async with self.connection.transaction():
                for statement in statements:
                    await self.connection.execute(statement)

        self.loop.run_until_complete(run())

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

def sqlite_connect(path: str = ":memory:") -> sqlite3.Connection:
    """A connection as the applier opens one: autocommit (transactions are explicit), keys on."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


class ForeignKeyViolation(Exception):
    """PRAGMA foreign_key_check found rows whose reference the migration broke."""


def apply_sqlite(connection: sqlite3.Connection, statements, *, foreign_keys_off: bool = False) -> None:
    """Run a migration's statements the way the applier does (see mfcore/dialects/base.py):
    keys off outside the transaction when the dialect asks, BEGIN IMMEDIATE, the
    statements, foreign_key_check, COMMIT; ROLLBACK on any failure."""
    if foreign_keys_off:
        connection.execute("PRAGMA foreign_keys=OFF")
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                connection.execute(statement)
            if foreign_keys_off:
                problems = connection.execute("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise ForeignKeyViolation(f"foreign key check failed: {problems}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    finally:
        if foreign_keys_off:
            connection.execute("PRAGMA foreign_keys=ON")

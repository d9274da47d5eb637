"""One small async interface over asyncpg (PostgreSQL) and aiosqlite (SQLite).

The applier talks to a Connection: ``execute``, ``fetch``, ``close`` and ``driver``
(the name that picks the dialect, which writes the SQL). Everything a driver raises for a statement becomes a
StatementError carrying the server's message and code, so the applier can name
the migration and the statement around it; a connection that cannot be opened
is a DatabaseError with the DSN's password masked.

Driver modules are imported only when a connection is opened, so ``import mfcore``
stays light.
"""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, Optional, Sequence

import anyio

from . import dsn as dsn_text
from .config import Config, mask_dsn
from .errors import ConfigError, DatabaseError

# TCP keepalives on mf's side of a PostgreSQL connection: a server (or a network)
# that died without closing it is noticed after about half a minute of silence,
# and unacknowledged data counts the same.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 15, 5, 3
TCP_USER_TIMEOUT_MS = 30_000


class StatementError(Exception):
    """A statement the database refused; ``code`` is the SQLSTATE (PostgreSQL) or the
    SQLite result code name (SQLITE_BUSY, SQLITE_CONSTRAINT_UNIQUE, ...)."""

    def __init__(self, message: str, code: str | None = None, position: int = 0):
        super().__init__(message)
        self.message = message
        self.code = code
        self.position = position  # in execute_each: which of the statements (from 0)

    @property
    def is_lock_timeout(self) -> bool:
        """The statement gave up waiting for a lock (PostgreSQL lock_timeout, SQLite busy)."""
        return self.code in ("55P03", "SQLITE_BUSY", "SQLITE_LOCKED") or self.message == "database is locked"

    @property
    def is_missing_table(self) -> bool:
        return self.code == "42P01" or self.message.startswith("no such table")


class Connection:
    """What the applier needs of a database connection (autocommit; transactions are
    begun and ended with explicit statements)."""

    driver: str = ""
    display_dsn: str = "the database"   # where it is, password masked

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:  # pragma: no cover
        raise NotImplementedError

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list:  # pragma: no cover
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover
        raise NotImplementedError

    async def prepare(self, sql: str) -> "PreparedQuery":
        """``sql``, made ready now to be run later (and again) by the result's fetch().
        Where the server parses a statement in one exchange and runs it in another
        (PostgreSQL's extended protocol), that later run is a single exchange ending in
        Sync: a client that goes quiet after it leaves no server session waiting
        half-way through a statement, holding what it holds."""
        return PreparedQuery(self, sql)

    async def execute_each(self, statements: Sequence[str]) -> None:
        """Each statement in order, as execute() runs it; the first refused stops the
        rest and raises its StatementError with ``position`` set."""
        for position, sql in enumerate(statements):
            try:
                await self.execute(sql)
            except StatementError as exc:
                exc.position = position
                raise

    def start_heartbeat(self, interval: float) -> None:
        """Ask the server something every ``interval`` seconds while the connection is
        otherwise idle, until its next statement or its close: a session the server
        ends when idle (a lease) then ends only when this process is gone."""

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, exc_type, exc, traceback) -> None:
        # Closing must finish even when the caller is being cancelled: an open
        # transaction is rolled back by the close, never left to the garbage collector.
        with anyio.CancelScope(shield=True):
            await self.close()
        if isinstance(exc, StatementError):
            # Callers catch the statement errors they can word better (naming the
            # migration and the statement); any other (a connection lost at BEGIN, a
            # ledger that cannot be read) leaves as a DatabaseError naming the database.
            raise DatabaseError(f"the database {self.display_dsn} refused a statement: {exc.message}") from None


class PreparedQuery:
    """A query of one connection, run by fetch(args) (see Connection.prepare)."""

    def __init__(self, connection: Connection, sql: str):
        self.connection, self.sql = connection, sql

    async def fetch(self, args: Sequence[Any] = ()) -> list:
        return await self.connection.fetch(self.sql, args)


# ---------------------------------------------------------------- SQLite

class SQLiteConnection(Connection):
    """aiosqlite in autocommit mode (isolation_level=None): sqlite3 opens no implicit
    transactions, so BEGIN IMMEDIATE ... COMMIT is exactly what runs. Never
    executescript(), which commits first."""

    driver = "sqlite"

    def __init__(self, raw, sqlite3_module):
        self._raw = raw
        self._errors = sqlite3_module.Error

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        try:
            await self._raw.execute_fetchall(sql, tuple(args))
        except self._errors as exc:
            raise _sqlite_error(exc) from None

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list:
        try:
            return list(await self._raw.execute_fetchall(sql, tuple(args)))
        except self._errors as exc:
            raise _sqlite_error(exc) from None

    async def execute_each(self, statements: Sequence[str]) -> None:
        """All of them in one trip to aiosqlite's thread: a trip per statement costs
        more than SQLite's own work on most DDL (a 2,000-table first migration: 9.0 s
        against 7.0 s). aiosqlite has no public call for a function in its thread;
        without ``_execute`` this is execute() statement by statement."""
        run_in_thread = getattr(self._raw, "_execute", None)
        if run_in_thread is None:
            await super().execute_each(statements)
            return
        refused = await run_in_thread(_execute_each, self._raw._conn, statements, self._errors)
        if refused is not None:
            position, exc = refused
            error = _sqlite_error(exc)
            error.position = position
            raise error

    async def close(self) -> None:
        try:
            await self._raw.close()
        except (self._errors, ValueError):
            pass


def _execute_each(connection, statements, errors):
    """In aiosqlite's thread: run the statements as execute_fetchall runs one; (position,
    error) of the first refused, else None."""
    for position, sql in enumerate(statements):
        try:
            connection.execute(sql).fetchall()
        except errors as exc:
            return position, exc
    return None


def _sqlite_error(exc) -> StatementError:
    return StatementError(str(exc), getattr(exc, "sqlite_errorname", None))


async def _connect_sqlite(config: Config) -> SQLiteConnection:
    import sqlite3

    import aiosqlite

    try:
        # timeout is SQLite's busy timeout: a writer waits this long for another
        # process's BEGIN IMMEDIATE to finish instead of failing at once.
        raw = await aiosqlite.connect(config.dsn, isolation_level=None, timeout=config.lock_timeout)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open the SQLite database {config.dsn}{config.dsn_origin}: {exc}") from None
    connection = SQLiteConnection(raw, sqlite3)
    connection.display_dsn = config.dsn
    try:
        await connection.execute("PRAGMA foreign_keys=ON")
        # Reading the schema is what finds a file that is not a database at all.
        await connection.fetch("SELECT count(*) FROM sqlite_master")
    except StatementError as exc:
        await connection.close()
        raise DatabaseError(f"cannot use the SQLite database {config.dsn}: {exc.message}") from None
    return connection


# ---------------------------------------------------------------- PostgreSQL

class PostgresConnection(Connection):
    """asyncpg outside any implicit transaction; a statement without arguments goes
    through the simple-query protocol, so DDL needs no prepared statement.

    A statement the server does not answer within command_timeout, and a connection
    lost, cut the connection at once (the server rolls back what it had not
    committed) and raise DatabaseError: nothing more is asked of a connection in an
    unknown state, so no later statement or ROLLBACK waits out a timeout again."""

    driver = "postgresql"

    def __init__(self, raw, asyncpg_module, dsn: str, pool=None, command_timeout: float = 0.0):
        self._raw = raw
        self._asyncpg = asyncpg_module
        self._dsn = dsn
        self._display_dsn = self.display_dsn = mask_dsn(dsn)
        self._pool = pool  # given back there on close (see shared_connections)
        self._command_timeout = command_timeout
        self._heartbeat = None  # (task, stop event) while a heartbeat runs

    def _hide(self, exc) -> str:
        return dsn_text.hide(str(exc) or type(exc).__name__, self._dsn)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        await self._call(self._raw.execute, sql, *args)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list:
        return await self._call(self._raw.fetch, sql, *args)

    async def prepare(self, sql: str) -> PreparedQuery:
        statement = await self._call(self._raw.prepare, sql)
        return _PostgresPrepared(self, sql, statement)

    async def _call(self, method, sql: str, *args):
        import asyncio

        await self._stop_heartbeat()
        try:
            return await method(sql, *args)
        except self._asyncpg.PostgresError as exc:
            error = _postgres_error(exc)
            error.message = dsn_text.hide(error.message, self._dsn)
            raise error from None
        except asyncio.TimeoutError:
            self._cut()
            raise DatabaseError(
                f"{self._display_dsn} did not answer within {self._command_timeout:g} s "
                "(database.command_timeout); mf closed the connection, and the server rolls back what it "
                "had not committed") from None
        except (OSError, self._asyncpg.InterfaceError) as exc:
            self._cut()
            raise DatabaseError(f"lost the connection to {self._display_dsn}: {self._hide(exc)}") from None

    def _cut(self) -> None:
        if not self._raw.is_closed():
            self._raw.terminate()  # a pool replaces a terminated connection

    def start_heartbeat(self, interval: float) -> None:
        import asyncio

        stop = asyncio.Event()
        self._heartbeat = (asyncio.get_running_loop().create_task(self._beat(interval, stop)), stop)

    async def _beat(self, interval: float, stop) -> None:
        import asyncio

        while True:
            try:
                await asyncio.wait_for(stop.wait(), interval)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await self._raw.execute("SELECT 1")
            except Exception:  # noqa: BLE001 - the next statement reports a lost connection
                return

    async def _stop_heartbeat(self) -> None:
        if self._heartbeat is None:
            return
        task, stop = self._heartbeat
        self._heartbeat = None
        stop.set()
        with anyio.CancelScope(shield=True):
            await task  # a SELECT 1 under way is answered first: never two statements at once

    async def close(self) -> None:
        await self._stop_heartbeat()
        if self._raw.is_closed():
            return
        try:
            with anyio.fail_after(min(5.0, self._command_timeout or 5.0)):
                if self._pool is not None:
                    # The pool's reset rolls back, frees advisory locks and RESETs settings.
                    await self._pool.release(self._raw)
                    return
                await self._raw.close()
        except Exception:  # noqa: BLE001 - a connection we cannot close politely is cut
            self._raw.terminate()


class _PostgresPrepared(PreparedQuery):
    """A server-side prepared statement: each fetch sends Bind, Execute and Sync at once."""

    def __init__(self, connection: PostgresConnection, sql: str, statement):
        super().__init__(connection, sql)
        self._statement = statement

    async def fetch(self, args: Sequence[Any] = ()) -> list:
        return await self.connection._call(lambda _sql, *values: self._statement.fetch(*values), self.sql, *args)


def _keep_alive(raw) -> None:
    """TCP keepalives (and TCP_USER_TIMEOUT, where the system has it) on the socket of
    asyncpg connection ``raw``; asyncpg itself sets none."""
    import socket

    transport = getattr(raw, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # a Unix socket has no network to lose
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                        ("TCP_KEEPCNT", KEEPALIVE_COUNT), ("TCP_USER_TIMEOUT", TCP_USER_TIMEOUT_MS)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    for level, option, value in options:
        try:
            sock.setsockopt(level, option, value)
        except OSError:
            pass  # a system without the option keeps its default


def _postgres_error(exc) -> StatementError:
    # str(exc) already appends DETAIL and HINT lines: take the message alone, then each once.
    message = (exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)) or type(exc).__name__
    detail = getattr(exc, "detail", None)
    hint = getattr(exc, "hint", None)
    if detail:
        message += f" ({detail})"
    if hint:
        message += f" hint: {hint}"
    return StatementError(message, getattr(exc, "sqlstate", None))


async def _connect_postgres(config: Config) -> PostgresConnection:
    import asyncio

    import asyncpg

    from .dialects import dialect_for

    shown = mask_dsn(config.dsn)
    dialect = dialect_for("postgresql")
    shared = _shared.get()
    try:
        url = dsn_text.to_asyncpg(config.dsn)
    except dsn_text.DsnError as exc:
        raise ConfigError(f"cannot read the dsn '{shown}': {exc}") from None
    try:
        if shared is not None:
            pool = await shared.pool_for(url, config, dialect.server_settings(config.command_timeout))
            raw = await pool.acquire(timeout=config.connect_timeout)
            if config.schema is not None:
                try:
                    await raw.execute(dialect.use_schema_sql(config.schema))
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await pool.release(raw)
                    raise
            return PostgresConnection(raw, asyncpg, config.dsn, pool, config.command_timeout)
        settings = {"application_name": "mf", **dialect.server_settings(config.command_timeout),
                    **dialect.session_settings(config.schema)}
        raw = await asyncpg.connect(url, timeout=config.connect_timeout, command_timeout=config.command_timeout,
                                    server_settings=settings)
        _keep_alive(raw)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError, ValueError) as exc:
        reason = dsn_text.hide(str(exc) or type(exc).__name__, config.dsn)
        raise DatabaseError(f"cannot connect to {shown}{config.dsn_origin}: {reason}") from None
    return PostgresConnection(raw, asyncpg, config.dsn, command_timeout=config.command_timeout)


class _SharedConnections:
    """One asyncpg pool per PostgreSQL DSN, made on first use."""

    def __init__(self, size: int):
        self.size = size
        self.pools: dict = {}
        self.making = anyio.Lock()

    async def pool_for(self, dsn: str, config: Config, settings: dict):
        """The pool of ``dsn``, made with the timeouts of the first ``config`` that asks."""
        async with self.making:
            pool = self.pools.get(dsn)
            if pool is None:
                import asyncpg

                async def keep_alive(raw):
                    _keep_alive(raw)

                pool = await asyncpg.create_pool(dsn, min_size=0, max_size=self.size,
                                                 timeout=config.connect_timeout,
                                                 command_timeout=config.command_timeout, init=keep_alive,
                                                 server_settings={"application_name": "mf", **settings})
                self.pools[dsn] = pool
            return pool

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            for pool in self.pools.values():
                try:
                    with anyio.fail_after(10):
                        await pool.close()
                except Exception:  # noqa: BLE001 - connections we cannot close politely are cut
                    pool.terminate()


_shared: ContextVar[Optional[_SharedConnections]] = ContextVar("mf_shared_connections", default=None)


@asynccontextmanager
async def shared_connections(size: int):
    """Inside it (and in the tasks started inside it), a connection to a PostgreSQL
    server is taken from a pool of at most ``size`` per DSN, switched to the target's
    schema, and given back on close: a fleet of tenant schemas opens a few
    connections, not two per tenant. Closing a pooled connection resets it (rolls
    back, frees advisory locks, RESET ALL), so the next target starts clean."""
    shared = _SharedConnections(size)
    token = _shared.set(shared)
    try:
        yield
    finally:
        _shared.reset(token)
        await shared.close()


# ---------------------------------------------------------------- entry point

def database_exists(config: Config) -> bool:
    """False only for an SQLite file not created yet (connecting would create it)."""
    config.check_database_settings()
    return config.driver != "sqlite" or config.dsn == ":memory:" or os.path.exists(config.dsn)


async def connect(config: Config) -> Connection:
    """An open connection to the configured database (use it with ``async with``)."""
    config.check_database_settings()
    if config.driver == "sqlite":
        return await _connect_sqlite(config)
    if config.driver == "postgresql":
        return await _connect_postgres(config)
    raise DatabaseError(f"unknown database driver '{config.driver}'")

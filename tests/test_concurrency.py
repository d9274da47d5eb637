"""Exactly once under concurrency (SPEC §6.3): tasks in one event loop, and processes.

Whoever calls migrate at the same moment, each migration is applied once: the
others wait for the lock, see it done and return.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

import dbutil
from mfcore import applier
from mfcore.dialects.postgresql import ADVISORY_LOCK_KEY
from mfcore.config import config_for
from mfcore.differ import diff
from mfcore.language.parser import parse
from mfcore.schema import Schema
from mfcore.store import suffix_for, write_migration

REPO = Path(__file__).resolve().parents[1]


def write_chain(directory: Path, count: int) -> list:
    """``count`` migrations: 001 creates table item; each later one adds a column and
    changes column n (type and nullability, in turn), which rewrites the table: a
    table rebuild on SQLite, ALTER COLUMN ... TYPE on PostgreSQL. With rows in the
    table that takes a while, so concurrent runs and kills overlap with it."""
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    old = Schema()
    for number in range(1, count + 1):
        n = "IntegerField()" if number % 2 else "BigIntegerField(null=true)"
        columns = "".join(f"    c{i} = IntegerField(default={i})\n" for i in range(1, number + 1))
        new = parse(f"model Item extends Model {{\n    id = AutoField()\n    n = {n}\n{columns}}}\n")
        operations = diff(old, new)
        names.append(os.path.basename(write_migration(str(directory), number, suffix_for(operations),
                                                      operations)))
        old = new
    return names


def fill(dsn: str, rows: int) -> None:
    """Put ``rows`` rows into table item (made by migration 001)."""
    if "://" not in dsn:
        connection = sqlite3.connect(dsn, isolation_level=None)
        connection.execute("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) "
                           "INSERT INTO item (n, c1) SELECT i, 1 FROM s", (rows,))
        connection.close()
        return
    session = dbutil.PostgresSession(dsn)
    try:
        session.execute(f"INSERT INTO item (n, c1) SELECT i, 1 FROM generate_series(1, {int(rows)}) AS i")
    finally:
        session.loop.run_until_complete(session.connection.close())
        session.loop.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """(dsn, ledger reader) of an empty database."""
    if request.param == "sqlite":
        path = str(tmp_path / "app.db")

        def ledger():
            connection = sqlite3.connect(path)
            try:
                return [r[0] for r in connection.execute("SELECT name FROM mf_migrations ORDER BY id")]
            finally:
                connection.close()
        return path, ledger
    session = request.getfixturevalue("pg_session")
    schema = session.fresh_schema()
    return (f"{request.getfixturevalue('pg_url')}?search_path={schema}",
            lambda: [r[0] for r in session.fetch("SELECT name FROM mf_migrations ORDER BY id")])


def test_five_tasks_in_one_event_loop_apply_each_migration_once(database, tmp_path):
    dsn, ledger = database
    names = write_chain(tmp_path / "migrations", 12)
    config = config_for(dsn, str(tmp_path / "migrations"))
    results = []

    async def main():
        async def one():
            results.append(await applier.migrate(config))

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(one)

    anyio.run(main)

    everything = [name for result in results for name in result]
    assert sorted(everything) == names  # each exactly once, nothing left out
    assert ledger() == names
    assert json.loads((tmp_path / "migrations" / ".applied").read_text()) == {"applied": names}


def test_eight_processes_at_once_apply_each_of_thirty_migrations_once(database, tmp_path):
    """Eight `mf db migrate` processes all wait behind one holder of the database's
    write lock (SQLite) or migration lock (PostgreSQL); once it lets go, the eight
    contend for the thirty pending migrations, and each is applied exactly once."""
    dsn, ledger = database
    names = write_chain(tmp_path / "migrations", 31)
    anyio.run(lambda: applier.migrate(config_for(dsn, str(tmp_path / "migrations")), to=1))
    fill(dsn, 1000)
    (tmp_path / "language_config.yaml").write_text(
        'database:\n  driver: "sqlite"\n  dsn: "./unused.db"\nmigrations: "migrations"\n')
    env = dict(os.environ, MF_DATABASE_URL=dsn if "://" in dsn else f"sqlite:///{dsn}",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with held_lock(dsn) as waiting:
        processes = [subprocess.Popen([sys.executable, "-m", "mfcore.cli", "db", "migrate", "--json"],
                                      cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
                     for _ in range(8)]
        deadline = time.monotonic() + 60
        while not waiting(processes):
            assert time.monotonic() < deadline, "the eight runs never all waited for the lock"
            time.sleep(0.01)
        assert ledger() == names[:1]  # all eight are waiting, none has applied anything
    outcomes = [(p.returncode, out, err) for p in processes for out, err in [p.communicate(timeout=120)]]

    assert [code for code, _out, _err in outcomes] == [0] * 8, outcomes
    applied = [json.loads(out)["applied"] for _code, out, _err in outcomes]
    everything = [name for result in applied for name in result]
    print("migrations applied by each process:", [len(a) for a in applied])
    assert sorted(everything) == names[1:]  # each of the 30 exactly once
    assert ledger() == names
    assert json.loads((tmp_path / "migrations" / ".applied").read_text()) == {"applied": names}
    assert count_rows(dsn) == 1000  # thirty rewrites of table item, every row kept


@contextlib.contextmanager
def held_lock(dsn: str):
    """Hold what a migration must take before it runs: SQLite's write lock (BEGIN
    IMMEDIATE) or mf's migration lock on PostgreSQL. Gives a check of a list of `mf`
    processes: true once every one of them is waiting for it."""
    if "://" not in dsn:
        holder = sqlite3.connect(dsn, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        database_file = os.path.realpath(dsn)

        def waiting(processes) -> bool:
            # Each has the database open; none can write past the lock held here.
            return all(database_file in open_files(p.pid) for p in processes)
        try:
            yield waiting
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    holder = dbutil.PostgresSession(dsn)
    assert holder.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY)
    holder_pid = holder.fetchval("SELECT pg_backend_pid()")

    def waiting(processes) -> bool:
        return holder.fetchval(
            "SELECT count(DISTINCT pid) FROM pg_stat_activity WHERE datname = current_database() AND "
            "application_name = 'mf' AND pid <> $1 AND query LIKE '%pg_try_advisory_lock(%'",
            holder_pid) >= len(processes)
    try:
        yield waiting
    finally:
        holder.execute("SELECT pg_advisory_unlock_all()")
        holder.loop.run_until_complete(holder.connection.close())
        holder.loop.close()


def open_files(pid: int) -> set:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return found


def count_rows(dsn: str) -> int:
    if "://" not in dsn:
        connection = sqlite3.connect(dsn)
        try:
            return connection.execute("SELECT count(*) FROM item").fetchone()[0]
        finally:
            connection.close()
    session = dbutil.PostgresSession(dsn)
    try:
        return session.fetchval("SELECT count(*) FROM item")
    finally:
        session.loop.run_until_complete(session.connection.close())
        session.loop.close()


def test_a_killed_lock_holder_frees_the_lock_and_the_waiter_carries_on(pg_url, pg_session, tmp_path):
    import asyncpg

    schema = pg_session.fresh_schema()
    dsn = f"{pg_url}?search_path={schema}"
    names = write_chain(tmp_path / "migrations", 3)
    holder = dbutil.PostgresSession(dsn)  # another mf run, holding the migration lock
    assert holder.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY)
    holder_pid = holder.fetchval("SELECT pg_backend_pid()")
    results = []

    async def main():
        async def waiter():
            results.append(await applier.migrate(config_for(dsn, str(tmp_path / "migrations"))))

        observer = await asyncpg.connect(pg_url)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(waiter)
                # The waiter's lock session has asked for the lock the holder has: it was refused.
                await wait_until(lambda: observer.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                    "application_name = 'mf' AND pid <> $1 AND query LIKE '%pg_try_advisory_lock(%'",
                    holder_pid), "the waiting run never asked for the migration lock")
                assert results == []  # still waiting for the lock, and nothing applied meanwhile
                assert not await observer.fetchval(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema)
                holder.connection.terminate()  # the holder dies without a word
        finally:
            await observer.close()

    anyio.run(main)
    holder.loop.close()
    assert results == [names]


async def wait_until(condition, failure: str, timeout: float = 30.0) -> None:
    """Wait for ``await condition()`` to be true: the event a test needs to have happened."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, failure
        await anyio.sleep(0.01)

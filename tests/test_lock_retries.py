"""Migrations that wait for locks without blocking traffic (PostgreSQL, through the CLI).

Each migration transaction waits at most statement_lock_timeout for a lock, is then
rolled back and run again from BEGIN after a jittered pause (lock_retries times), and
finally gives up with exit 3 naming the session that holds the lock. Statements in a
transaction stop after statement_timeout. A run killed inside a statement leaves its
transaction on the server for a moment: the next run waits for it instead of failing.

Contention is made by a session of the test that holds a conflicting lock; the test
watches pg_locks / the printed notices to know the migrator waits, never the clock.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dbutil
from conftest import Project, tree_state
from mfcore.dialects.postgresql import transaction_marker_key

REPO = Path(__file__).resolve().parents[1]

ITEM = "model Item extends Model {\n    id = AutoField()\n    name = CharField(max_length=50)\n}\n"
ITEM_WITH_NOTE = ("model Item extends Model {\n    id = AutoField()\n    name = CharField(max_length=50)\n"
                  "    note = TextField(null=true)\n}\n")


@pytest.fixture
def pg(pg_url, tmp_path):
    """(project, session): a PostgreSQL project whose database is a schema of its own,
    with migration 001 (table item, two rows) applied; the session is the test's own
    connection, in that schema."""
    session = dbutil.PostgresSession(pg_url)
    schema = session.fresh_schema()
    root = tmp_path / "app"
    root.mkdir()
    project = Project(root)
    project.dsn = pg_url + ("&" if "?" in pg_url else "?") + f"options=-csearch_path%3D{schema}"
    configure(project)
    project.write_models(ITEM)
    assert project.run("db", "makemigrations").code == 0
    first = project.run("db", "migrate")
    assert first.code == 0, first
    session.execute("INSERT INTO item (name) VALUES ('a'), ('b')")
    yield project, session
    session.close()


def configure(project: Project, **settings) -> None:
    """language_config.yaml with the project's database and these database settings."""
    lines = [f"  {key}: {json.dumps(value)}" for key, value in settings.items()]
    project.write("language_config.yaml", "database:\n  driver: postgresql\n"
                  f"  dsn: {json.dumps(project.dsn)}\n" + "".join(line + "\n" for line in lines)
                  + "migrations: migrations\n")


def add_note(project: Project) -> None:
    project.write_models(ITEM_WITH_NOTE)
    assert project.run("db", "makemigrations").code == 0


def data_migration(project: Project, name: str, statements, atomic: bool = True) -> str:
    """A migration of run_sql steps (written after the newest)."""
    number = len(project.migration_names()) + 1
    document = {"format": 1, "ops": [{"op": "run_sql", "sql": sql, "reverse_sql": ""} for sql in statements]}
    if not atomic:
        document["atomic"] = False
    file_name = f"{number:03d}_{name}.json"
    project.write(f"migrations/{file_name}", json.dumps(document, indent=2) + "\n")
    return file_name


def start_migrate(project: Project, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MF_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "mfcore.cli", "db", "migrate", *args], cwd=project.path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(process: subprocess.Popen, text: str) -> list:
    """The lines the process prints, up to the first that holds ``text`` (the CLI prints
    notices as they happen); fails when the process ends first."""
    lines = []
    while True:
        line = process.stdout.readline()
        if not line:
            rest = process.communicate(timeout=60)
            pytest.fail(f"mf ended (exit {process.returncode}) before printing {text!r}: {lines} {rest}")
        lines.append(line)
        if text in line:
            return lines


def ledger(session) -> list:
    return [r[0] for r in session.fetch("SELECT name FROM mf_migrations ORDER BY id")]


def columns(session) -> list:
    return [r[0] for r in session.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'item' ORDER BY ordinal_position")]


def wait_for(session, query: str, *args, what: str):
    """Poll until ``query`` returns a row; its first row. A deadline far beyond what the
    awaited event needs turns a hang into a failure."""
    deadline = time.monotonic() + 60
    while True:
        rows = session.fetch(query, *args)
        if rows:
            return rows[0]
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.02)


# ---------------------------------------------------------------- lock retries

def test_a_blocker_released_after_a_retry_lets_migrate_succeed(pg):
    project, session = pg
    add_note(project)
    blocker = session.fetchval("SELECT pg_backend_pid()")
    session.execute("BEGIN")
    session.execute("LOCK TABLE item IN ACCESS SHARE MODE")  # a reader's lock: ALTER TABLE must wait
    process = start_migrate(project)
    try:
        printed = read_until(process, "retry 1 of 10")
        # Contention happened: the migration waited for the test's lock, and was told who held it.
        assert f"held by pid {blocker}" in printed[-1], printed
        assert "002_add_note.json: waited longer than statement_lock_timeout 1s for a lock" in printed[-1]
        time.sleep(2)  # setup: the blocker holds on a while longer, then lets go
    finally:
        session.execute("ROLLBACK")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, (out, err)
    assert "Applied 1 migration(s):\n  002_add_note.json\n" in out
    assert ledger(session) == ["001_create_item.json", "002_add_note.json"]
    assert columns(session) == ["id", "name", "note"]


def test_a_blocker_never_released_exits_3_naming_its_pid_and_changes_nothing(pg):
    project, session = pg
    configure(project, lock_retries=2, lock_retry_max_wait=0.2)
    add_note(project)
    files = tree_state(project.path)
    blocker = session.fetchval("SELECT pg_backend_pid()")
    session.execute("SET application_name = 'nightly report'")
    session.execute("BEGIN")
    session.execute("LOCK TABLE item IN ACCESS SHARE MODE")
    try:
        result = project.run("db", "migrate")
    finally:
        session.execute("ROLLBACK")
    assert result.code == 3, result
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    error = result.err.strip()
    assert error.startswith("error: migration 002_add_note.json failed"), error
    assert "lock timeout" in error and "3 times" in error and "(2 retries)" in error
    assert f"the lock is held by pid {blocker} (application_name 'nightly report', idle in transaction, " \
           "last statement: LOCK TABLE item IN ACCESS SHARE MODE)" in error, error
    assert "It was rolled back" in error
    # The two retries were said before the error.
    assert [line for line in result.out.splitlines() if "rolled back, retry" in line][-1].count("retry 2 of 2") == 1
    assert ledger(session) == ["001_create_item.json"]
    assert columns(session) == ["id", "name"]
    assert tree_state(project.path) == files


def test_no_retries_means_one_wait(pg):
    project, session = pg
    configure(project, lock_retries=0, statement_lock_timeout="200ms")
    add_note(project)
    session.execute("BEGIN")
    session.execute("LOCK TABLE item IN ACCESS SHARE MODE")
    try:
        result = project.run("db", "migrate")
    finally:
        session.execute("ROLLBACK")
    assert result.code == 3, result
    assert "retry" not in result.out
    assert "it waited longer than statement_lock_timeout 200ms for a lock;" in result.err
    assert ledger(session) == ["001_create_item.json"]


def test_a_rollback_waits_and_retries_too(pg):
    project, session = pg
    configure(project, lock_retry_max_wait=0.2)
    add_note(project)
    assert project.run("db", "migrate").code == 0
    blocker = session.fetchval("SELECT pg_backend_pid()")
    session.execute("BEGIN")
    session.execute("LOCK TABLE item IN ACCESS SHARE MODE")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MF_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "mfcore.cli", "db", "migrate", "--to", "1"],
                               cwd=project.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = read_until(process, "retry 1 of 10")
        assert f"held by pid {blocker}" in printed[-1], printed
    finally:
        session.execute("ROLLBACK")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, (out, err)
    assert ledger(session) == ["001_create_item.json"]
    assert columns(session) == ["id", "name"]


def start_mf(project: Project, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MF_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "mfcore.cli", *args], cwd=project.path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_mf_db_rollback_says_each_retry_as_it_happens(pg):
    project, session = pg
    configure(project, lock_retry_max_wait=0.2)
    add_note(project)
    assert project.run("db", "migrate").code == 0
    blocker = session.fetchval("SELECT pg_backend_pid()")
    session.execute("BEGIN")
    session.execute("LOCK TABLE item IN ACCESS SHARE MODE")  # the undo's DROP COLUMN must wait
    process = start_mf(project, "db", "rollback")
    try:
        printed = read_until(process, "retry 1 of 10")
        # Printed while the rollback still waits: the test's lock is still held here.
        assert f"held by pid {blocker}" in printed[-1], printed
        assert "002_add_note.json: waited longer than statement_lock_timeout 1s for a lock" in printed[-1]
    finally:
        session.execute("ROLLBACK")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, (out, err)
    assert "Rolled back 1 migration(s):\n  002_add_note.json\n" in out
    assert ledger(session) == ["001_create_item.json"]
    assert columns(session) == ["id", "name"]


def test_mf_db_rollback_json_lists_the_retries_in_notices(pg):
    project, session = pg
    configure(project, lock_retry_max_wait=0.2)
    add_note(project)
    assert project.run("db", "migrate").code == 0
    session.execute("BEGIN")
    session.execute("LOCK TABLE item IN ACCESS SHARE MODE")
    process = start_mf(project, "db", "rollback", "--json")
    try:
        # With --json the notices go to stderr, as they happen; stdout holds the document only.
        while "retry 1 of 10" not in (line := process.stderr.readline()):
            assert line, "mf ended before saying it retried"
    finally:
        session.execute("ROLLBACK")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, (out, err)
    document = json.loads(out)
    assert document["rolled_back"] == ["002_add_note.json"]
    assert any("rolled back, retry 1 of 10" in notice for notice in document["notices"]), document
    assert columns(session) == ["id", "name"]


# ---------------------------------------------------------------- statement_timeout

def test_a_statement_longer_than_statement_timeout_fails_and_is_rolled_back(pg):
    project, session = pg
    configure(project, statement_timeout="1s")
    name = data_migration(project, "slow", ["UPDATE item SET name = 'changed'", "SELECT pg_sleep(5)"])
    result = project.run("db", "migrate")
    assert result.code == 3, result
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert f"migration {name} failed" in result.err
    assert "canceling statement due to statement timeout (it ran longer than statement_timeout 1s; raise " \
           "database.statement_timeout" in result.err, result.err
    assert "Statement 2 of 2: SELECT pg_sleep(5)" in result.err
    assert sorted(r[0] for r in session.fetch("SELECT name FROM item")) == ["a", "b"]  # the UPDATE rolled back
    assert ledger(session) == ["001_create_item.json"]


def test_statement_timeout_is_set_in_each_migration_transaction_only(pg):
    project, session = pg
    configure(project, statement_timeout="1500ms")
    data_migration(project, "inside", ["CREATE TABLE seen AS SELECT current_setting('statement_timeout') AS value"])
    # Outside a transaction (a non-atomic migration) the session's own setting applies.
    data_migration(project, "outside", ["INSERT INTO seen SELECT current_setting('statement_timeout')"],
                   atomic=False)
    result = project.run("db", "migrate")
    assert result.code == 0, result
    inside, outside = [r[0] for r in session.fetch("SELECT value FROM seen")]
    assert inside == "1500ms"
    assert outside == "1h"  # command_timeout's 3600 s


def test_statement_timeout_0_sets_none(pg):
    project, session = pg
    configure(project, statement_timeout="0")
    data_migration(project, "inside", ["CREATE TABLE seen AS SELECT current_setting('statement_timeout') AS value"])
    assert project.run("db", "migrate").code == 0
    assert session.fetchval("SELECT value FROM seen") == "1h"


# ---------------------------------------------------------------- the settings

@pytest.mark.parametrize("key,value,message", [
    ("lock_retries", -1, "database.lock_retries must be a whole number from 0 to 1000, got -1"),
    ("lock_retries", 1001, "database.lock_retries must be a whole number from 0 to 1000, got 1001"),
    ("lock_retries", 2.5, "database.lock_retries must be a whole number"),
    ("lock_retries", "many", "database.lock_retries must be a whole number"),
    ("lock_retries", True, "database.lock_retries must be a whole number"),
    ("lock_retry_max_wait", -1, "database.lock_retry_max_wait must be a number of seconds from 0 to 3600"),
    ("lock_retry_max_wait", 3601, "database.lock_retry_max_wait must be a number of seconds from 0 to 3600"),
    ("lock_retry_max_wait", "10s", "database.lock_retry_max_wait must be a number of seconds"),
    ("lock_retry_max_wait", float("inf"), "database.lock_retry_max_wait must be a number of seconds"),
    ("statement_timeout", "soon", "database.statement_timeout must be a duration like 1s, 500ms, 1min or 2h"),
    ("statement_timeout", "-1s", "database.statement_timeout must be a duration"),
    ("statement_timeout", 1.5, "database.statement_timeout must be a duration"),
    ("statement_timeout", "30d", "database.statement_timeout must be a duration"),
    ("statement_timeout", "25000h", "database.statement_timeout must be a duration"),
    ("statement_lock_timeout", "1 sec", "database.statement_lock_timeout must be a duration"),
    ("statement_lock_timeout", True, "database.statement_lock_timeout must be a duration"),
])
def test_bad_settings_exit_2_naming_the_key_and_change_nothing(pg, key, value, message):
    project, session = pg
    add_note(project)
    configure(project, **{key: value}) if value != float("inf") else project.write(
        "language_config.yaml", f"database:\n  driver: postgresql\n  dsn: {json.dumps(project.dsn)}\n"
        f"  {key}: .inf\nmigrations: migrations\n")
    files = tree_state(project.path)
    result = project.run("db", "migrate")
    assert result.code == 2, result
    assert message in result.err, result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert ledger(session) == ["001_create_item.json"]
    assert columns(session) == ["id", "name"]
    assert tree_state(project.path) == files


def test_the_prologue_of_a_migration_transaction():
    from mfcore.dialects import dialect_for

    postgres, sqlite = dialect_for("postgresql"), dialect_for("sqlite")
    assert postgres.transaction_prologue("1s", "1min") == ["SET LOCAL lock_timeout = '1s'",
                                                           "SET LOCAL statement_timeout = '1min'"]
    assert postgres.transaction_prologue("1s", "0") == ["SET LOCAL lock_timeout = '1s'"]
    assert postgres.transaction_prologue("1s", "0ms") == ["SET LOCAL lock_timeout = '1s'"]
    assert sqlite.transaction_prologue("1s", "1min") == []
    assert postgres.transaction_marker_sql("tenant_a") != postgres.transaction_marker_sql("tenant_b")
    assert sqlite.transaction_marker_sql() is None


# ---------------------------------------------------------------- a killed run's transaction

def test_the_next_run_waits_for_an_earlier_runs_transaction_still_on_the_server(pg):
    """What a killed run leaves: its transaction, marked as a migration's, still holding
    its locks after the migration lock was freed (here the test's session plays it)."""
    project, session = pg
    configure(project, lock_retries=0)  # without the wait, the first lock timeout would end the run
    add_note(project)
    earlier = session.fetchval("SELECT pg_backend_pid()")
    session.execute("BEGIN")
    session.execute(f"SELECT pg_advisory_xact_lock({transaction_marker_key()})")
    session.execute("LOCK TABLE item IN ACCESS SHARE MODE")
    process = start_migrate(project)
    try:
        # The new run waits for the earlier transaction's mark (an ungranted advisory lock).
        # (In this database: pg_locks shows the whole server's, other suites' included.)
        wait_for(session, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                          "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                          "AND ((classid::bigint << 32) | objid::bigint) = $1", transaction_marker_key(),
                 what="the new run waiting for the earlier transaction")
    finally:
        session.execute("ROLLBACK")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, (out, err)
    assert "Waiting for the transaction of an earlier mf run on" in out
    assert f"pid {earlier} (" in out.split("Waiting for the transaction")[1].splitlines()[0]
    assert "The earlier run's transaction ended after" in out
    assert ledger(session) == ["001_create_item.json", "002_add_note.json"]


def test_an_earlier_runs_transaction_that_never_ends_stops_the_run_naming_it(pg):
    project, session = pg
    configure(project, lock_timeout=1)
    add_note(project)
    files = tree_state(project.path)
    earlier = session.fetchval("SELECT pg_backend_pid()")
    session.execute("BEGIN")
    session.execute(f"SELECT pg_advisory_xact_lock({transaction_marker_key()})")
    try:
        result = project.run("db", "migrate")
    finally:
        session.execute("ROLLBACK")
    assert result.code == 3, result
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert f"error: the transaction of an earlier mf run, pid {earlier} (" in result.err
    assert "after lock_timeout 1 s" in result.err and "nothing was applied" in result.err
    assert ledger(session) == ["001_create_item.json"]
    assert columns(session) == ["id", "name"]
    assert tree_state(project.path) == files


def test_a_run_killed_inside_a_long_statement_does_not_stop_the_next(pg):
    project, session = pg
    # The next run must carry on without lock retries, and within lock_timeout, well
    # before the dead client's 60 s statement would end by itself.
    configure(project, lock_retries=0, lock_timeout=30)
    session.execute("CREATE TABLE sleep_for (seconds float)")
    session.execute("INSERT INTO sleep_for VALUES (60)")
    name = data_migration(project, "slow", ["UPDATE item SET name = 'changed'",
                                            "SELECT pg_sleep((SELECT seconds FROM sleep_for))"])
    first = start_migrate(project)
    try:
        pid, = wait_for(session, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND application_name = 'mf' AND state = 'active' AND query LIKE 'SELECT pg_sleep(%'",
                        what="the first run inside its long statement")
        # Contention: the first run's transaction holds a lock on item (its UPDATE's).
        assert session.fetchval("SELECT count(*) FROM pg_locks WHERE pid = $1 AND relation = 'item'::regclass",
                                pid)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    session.execute("UPDATE sleep_for SET seconds = 0")
    second = project.run("db", "migrate")
    assert second.code == 0, second
    assert f"Applied 1 migration(s):\n  {name}\n" in second.out
    assert ledger(session) == ["001_create_item.json", name]
    assert sorted(r[0] for r in session.fetch("SELECT name FROM item")) == ["changed", "changed"]

"""A fleet: every target of targets: and tenants: migrated at once (api.migrate_all,
status_all, `mf db migrate --all`), each by its own single-database run.

SQLite targets are files; PostgreSQL targets are databases of the test server and
tenant schemas inside one. What is asserted is read back from each target's ledger.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import dbutil
from conftest import Project, Result
from mfcore import api
from mfcore.config import load_fleet
from mfcore.dialects import dialect_for
from mfcore.dialects.postgresql import ADVISORY_LOCK_KEY, advisory_lock_key
from mfcore.differ import diff
from mfcore.errors import ConfigError, DataLossError
from mfcore.language.parser import parse
from mfcore.schema import Schema
from mfcore.store import suffix_for, write_migration

REPO = Path(__file__).resolve().parents[1]

MODELS = [
    "model Item extends Model {\n    id = AutoField()\n    title = CharField(max_length=40)\n}\n",
    "model Item extends Model {\n    id = AutoField()\n    title = CharField(max_length=40)\n"
    "    price = IntegerField(default=0)\n}\n",
    "model Item extends Model {\n    id = AutoField()\n    title = CharField(max_length=40)\n"
    "    price = IntegerField(default=0)\n}\nmodel Tag extends Model {\n    id = AutoField()\n}\n",
]


def write_project(root: Path, targets: dict, tenants=None, migrations: int = 3) -> list:
    """A project whose config names ``targets`` (name -> (driver, dsn)), with the first
    ``migrations`` migrations of MODELS; returns their names."""
    directory = root / "migrations"
    directory.mkdir(parents=True, exist_ok=True)
    old, names = Schema(), []
    for number, text in enumerate(MODELS[:migrations], 1):
        new = parse(text)
        operations = diff(old, new)
        names.append(os.path.basename(write_migration(str(directory), number, suffix_for(operations), operations)))
        old = new
    (root / "models.mp").write_text(MODELS[migrations - 1])
    doc = {"targets": {name: {"driver": driver, "dsn": dsn} for name, (driver, dsn) in targets.items()},
           "models": "models.mp", "migrations": "migrations"}
    if tenants is not None:
        doc["tenants"] = tenants
    (root / "language_config.yaml").write_text(json.dumps(doc))  # JSON is YAML
    return names


def sqlite_ledger(path: Path) -> list:
    connection = sqlite3.connect(path)
    try:
        return [row[0] for row in connection.execute("SELECT name FROM mf_migrations ORDER BY id")]
    finally:
        connection.close()


def run_cli(root: Path, *args) -> Result:
    return Project(root).run("db", *args, env={"NO_COLOR": "1"})


# ---------------------------------------------------------------- SQLite files

@pytest.fixture
def sqlite_fleet(tmp_path):
    targets = {name: ("sqlite", str(tmp_path / f"{name}.db")) for name in ("north", "south", "west")}
    names = write_project(tmp_path, targets)
    return tmp_path, names


def test_migrate_all_applies_every_migration_to_every_sqlite_file(sqlite_fleet):
    root, names = sqlite_fleet
    results = anyio.run(lambda: api.migrate_all(root / "language_config.yaml"))
    assert [(r.name, r.applied, r.error) for r in results] == [(n, names, None) for n in ("north", "south", "west")]
    for name in ("north", "south", "west"):
        assert sqlite_ledger(root / f"{name}.db") == names
    assert not (root / "migrations" / ".applied").exists()  # it mirrors one database, not a fleet
    again = anyio.run(lambda: api.migrate_all(root / "language_config.yaml"))
    assert all(r.ok and r.applied == [] for r in again)


def test_a_failing_target_does_not_stop_the_others_and_a_rerun_does_what_is_left(sqlite_fleet):
    root, names = sqlite_fleet
    blocker = sqlite3.connect(root / "south.db")
    blocker.execute("CREATE TABLE tag (id INTEGER)")  # migration 003 creates table tag
    blocker.close()

    result = run_cli(root, "migrate", "--all")
    assert result.code == 3, result.err
    assert "2 of 3 target(s) migrated, 1 failed." in result.out
    assert f"south at {names[2]}" in result.err and "already exists" in result.err
    assert sqlite_ledger(root / "north.db") == names and sqlite_ledger(root / "west.db") == names
    assert sqlite_ledger(root / "south.db") == names[:2]

    status = run_cli(root, "status", "--all", "--json")
    assert status.code == 0, status.err
    pending = {t["name"]: [m["name"] for m in t["migrations"] if not m["applied"]]
               for t in json.loads(status.out)["targets"]}
    assert pending == {"north": [], "south": [names[2]], "west": []}

    fixed = sqlite3.connect(root / "south.db")
    fixed.execute("DROP TABLE tag")
    fixed.close()
    results = anyio.run(lambda: api.migrate_all(root / "language_config.yaml"))
    assert {r.name: r.applied for r in results} == {"north": [], "south": [names[2]], "west": []}
    assert sqlite_ledger(root / "south.db") == names


def test_fail_fast_stops_the_fleet_at_the_first_failure(sqlite_fleet):
    root, names = sqlite_fleet
    blocker = sqlite3.connect(root / "north.db")
    blocker.execute("CREATE TABLE item (id INTEGER)")  # migration 001 creates table item
    blocker.close()
    results = anyio.run(lambda: api.migrate_all(root / "language_config.yaml", concurrency=1, fail_fast=True))
    north, south, west = results
    assert north.error is not None and north.migration == names[0]
    assert not south.finished and not west.finished
    assert not (root / "west.db").exists()


def test_target_choice_and_status_lines(sqlite_fleet):
    root, names = sqlite_fleet
    result = run_cli(root, "migrate", "--target", "west", "--target", "north")
    assert result.code == 0, result.err
    assert not (root / "south.db").exists()
    status = run_cli(root, "status", "--all")
    assert status.code == 0, status.err
    assert status.out.splitlines() == ["  north  3 applied, 0 pending", "  south  0 applied, 3 pending",
                                       "  west  3 applied, 0 pending", "3 of 3 target(s) read."]
    wrong = run_cli(root, "migrate", "--target", "east")
    assert wrong.code == 2 and "no target named 'east'" in wrong.err
    mixed = run_cli(root, "migrate", "--all", "--fake")
    assert mixed.code == 2 and "--fake works on one database" in mixed.err


def test_a_target_ahead_of_the_files_is_told_by_name_and_the_others_are_not(tmp_path):
    """What a single run tells (here: the database has a migration newer than every
    file, applied by newer code) is told for its target in a fleet run too."""
    targets = {name: ("sqlite", str(tmp_path / f"{name}.db")) for name in ("north", "west")}
    newer, older = tmp_path / "newer", tmp_path / "older"
    names = write_project(newer, targets)
    assert run_cli(newer, "migrate", "--target", "west").code == 0
    write_project(older, targets, migrations=2)  # the same project, one release before

    result = run_cli(older, "migrate", "--all")
    assert result.code == 0 and result.err == "", result.err  # told once, not logged again on stderr
    told = [line for line in result.out.splitlines() if ": " in line and not line.startswith("  ")]
    assert told == [f"⚠ west: The database is ahead of these migration files: {names[2]} was applied by newer "
                    f"code (the files here end at {names[1]}); nothing here is left to apply."]
    assert result.out.splitlines()[-1] == "2 of 2 target(s) migrated."
    assert sqlite_ledger(tmp_path / "north.db") == names[:2] and sqlite_ledger(tmp_path / "west.db") == names

    as_json = {t["name"]: t for t in json.loads(run_cli(older, "migrate", "--all", "--json").out)["targets"]}
    assert as_json["north"]["notices"] == [] and as_json["north"]["warnings"] == []
    assert as_json["west"]["warnings"] == as_json["west"]["notices"] == [told[0][len("⚠ west: "):]]

    status = run_cli(older, "status", "--all")
    assert status.code == 0, status.err
    assert f"west: {told[0][len('⚠ west: '):]}" in status.out.splitlines()
    assert not any(line.startswith("north: ") for line in status.out.splitlines())


def test_tenant_schemas_need_a_database_with_schemas(tmp_path):
    write_project(tmp_path, {"files": ("sqlite", str(tmp_path / "a.db"))},
                  tenants={"target": "files", "schemas": ["a", "b"]})
    with pytest.raises(ConfigError, match="tenant schemas need postgresql"):
        load_fleet(str(tmp_path / "language_config.yaml"))


# ---------------------------------------------------------------- the dialect

def test_each_tenant_schema_has_its_own_lock_key_and_search_path():
    dialect = dialect_for("postgresql")
    assert advisory_lock_key(None) == ADVISORY_LOCK_KEY
    keys = {advisory_lock_key(f"tenant_{n}") for n in range(1000)}
    assert len(keys) == 1000 and ADVISORY_LOCK_KEY not in keys
    assert str(advisory_lock_key("acme")) in dialect.try_lock_sql("acme")
    assert dialect.session_settings('Acme "EU"') == {"search_path": '"Acme ""EU"""'}
    assert dialect.session_settings(None) == {}


# ---------------------------------------------------------------- PostgreSQL databases and schemas

@pytest.fixture(scope="module")
def pg_databases():
    with dbutil.temporary_postgres_database("fleet_a") as first:
        with dbutil.temporary_postgres_database("fleet_b") as second:
            yield first, second


TENANTS = ["acme", "Globex Corp", 'quote"d']


@pytest.fixture
def pg_fleet(tmp_path, pg_databases):
    first, second = pg_databases
    session = dbutil.PostgresSession(first)
    for database in (first, second):
        other = dbutil.PostgresSession(database)
        other.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")  # test cleanup only
        other.loop.run_until_complete(other.connection.close())
    for schema in TENANTS:
        quoted = dialect_for("postgresql").quote(schema)
        session.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE; CREATE SCHEMA {quoted}")  # test cleanup only
    session.execute("CREATE TABLE public.tenants (schema_name text)")
    session.execute("INSERT INTO public.tenants SELECT unnest($1::text[])", TENANTS)
    names = write_project(tmp_path, {"shared": ("postgresql", second), "tenanted": ("postgresql", first)},
                          tenants={"target": "tenanted",
                                   "schemas": {"query": "SELECT schema_name FROM public.tenants"}})
    yield tmp_path, names, session
    session.loop.run_until_complete(session.connection.close())


def pg_ledger(session, schema: str) -> list:
    quoted = dialect_for("postgresql").quote(schema)
    return [row[0] for row in session.fetch(f"SELECT name FROM {quoted}.mf_migrations ORDER BY id")]


def test_two_fleet_runs_at_once_apply_each_migration_once_per_target(pg_fleet, pg_databases):
    root, names, session = pg_fleet
    config = root / "language_config.yaml"
    runs: list = []

    async def both():
        async def one():
            runs.append(await api.migrate_all(config, concurrency=3))
        async with anyio.create_task_group() as group:
            group.start_soon(one)
            group.start_soon(one)

    anyio.run(both)
    expected = ["shared"] + [f"tenanted.{t}" for t in TENANTS]
    for results in runs:
        assert [r.name for r in results] == expected and all(r.ok for r in results)
    for index, name in enumerate(expected):
        applied = runs[0][index].applied + runs[1][index].applied
        assert sorted(applied) == names, name  # each migration by exactly one of the two runs
    for schema in TENANTS:
        assert pg_ledger(session, schema) == names
        assert session.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'item'",
                                schema) == 1
    # Tenants' tables live in their schemas only: the host database's public holds the tenant list.
    assert session.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == [("tenants",)]
    shared = dbutil.PostgresSession(pg_databases[1])
    assert pg_ledger(shared, "public") == names
    shared.loop.run_until_complete(shared.connection.close())


def test_a_failing_tenant_is_reported_and_the_rerun_finishes_it(pg_fleet):
    root, names, session = pg_fleet
    session.execute('CREATE TABLE "Globex Corp".tag (id integer)')  # migration 003 creates table tag
    result = run_cli(root, "migrate", "--tenant", "acme", "--tenant", "Globex Corp", "--concurrency", "2")
    assert result.code == 3
    assert f"tenanted.Globex Corp at {names[2]}" in result.err and "already exists" in result.err
    assert pg_ledger(session, "acme") == names and pg_ledger(session, "Globex Corp") == names[:2]
    assert session.fetchval("SELECT to_regclass('\"quote\"\"d\".mf_migrations')") is None  # not chosen

    session.execute('DROP TABLE "Globex Corp".tag')
    results = anyio.run(lambda: api.migrate_all(root / "language_config.yaml", targets=["tenanted"]))
    assert {r.name: r.applied for r in results} == {"tenanted.acme": [], "tenanted.Globex Corp": [names[2]],
                                                    'tenanted.quote"d': names}
    status = anyio.run(lambda: api.status_all(root / "language_config.yaml"))
    assert {r.name: sum(s.applied for s in r.records) for r in status} == {
        "shared": 0, "tenanted.acme": 3, "tenanted.Globex Corp": 3, 'tenanted.quote"d': 3}


# ---------------------------------------------------------------- engines without real advisory locks

def test_an_engine_whose_advisory_locks_are_stubs_is_refused(tmp_path, pg_databases):
    """Some PostgreSQL-compatible engines answer pg_try_advisory_lock with true and lock
    nothing. Imitated here by a function of that name found before pg_catalog's."""
    first, _second = pg_databases
    session = dbutil.PostgresSession(first)
    session.execute("DROP SCHEMA IF EXISTS stub CASCADE; CREATE SCHEMA stub; "  # test cleanup only
                    "CREATE FUNCTION stub.pg_try_advisory_lock(bigint) RETURNS boolean "
                    "LANGUAGE sql AS 'SELECT true'")
    names = write_project(tmp_path, {"stubbed": ("postgresql", first + "?search_path=stub,pg_catalog,public")})
    results = anyio.run(lambda: api.migrate_all(tmp_path / "language_config.yaml"))
    assert results[0].error is not None and "advisory locks do not lock" in str(results[0].error)
    assert session.fetchval("SELECT to_regclass('public.mf_migrations')") is None  # nothing applied
    session.execute("DROP SCHEMA stub CASCADE")
    session.loop.run_until_complete(session.connection.close())


def test_an_engine_without_advisory_lock_functions_is_refused(tmp_path, pg_databases):
    """Imitated by a pg_try_advisory_lock found first that fails as a missing function does."""
    first, _second = pg_databases
    session = dbutil.PostgresSession(first)
    session.execute("DROP SCHEMA IF EXISTS nolocks CASCADE; CREATE SCHEMA nolocks; "  # test cleanup only
                    "CREATE FUNCTION nolocks.pg_try_advisory_lock(bigint) RETURNS boolean LANGUAGE plpgsql AS "
                    "$$BEGIN RAISE EXCEPTION 'unknown function: pg_try_advisory_lock()' USING ERRCODE = '42883'; "
                    "END$$")
    write_project(tmp_path, {"nolocks": ("postgresql", first + "?search_path=nolocks,pg_catalog,public")})
    result = run_cli(tmp_path, "migrate", "--all")
    assert result.code == 3
    assert "cannot give mf its migration lock (unknown function: pg_try_advisory_lock())" in result.err
    assert "nothing was applied" in result.err
    assert session.fetch("SELECT tablename FROM pg_tables WHERE schemaname IN ('nolocks', 'public') "
                         "AND tablename <> 'tenants'") == []  # public.tenants: the tenant list of other tests
    session.execute("DROP SCHEMA nolocks CASCADE")
    session.loop.run_until_complete(session.connection.close())


def test_the_transactional_ddl_probe_reads_a_servers_answers():
    dialect = dialect_for("postgresql")
    assert dialect.transactional_ddl_refusal("pg://db", survived=False) is None  # PostgreSQL's answer
    refusal = dialect.transactional_ddl_refusal("pg://db", survived=True)
    assert refusal.startswith("pg://db does not roll DDL back: a table created inside a transaction was still "
                              "there after ROLLBACK.")
    assert refusal.endswith("it refuses this database and applied nothing")
    assert dialect_for("sqlite").transactional_ddl_probe("t") is None  # SQLite's DDL is transactional


def test_postgresql_answers_the_transactional_ddl_probe_as_transactional(pg_databases):
    dialect = dialect_for("postgresql")
    session = dbutil.PostgresSession(pg_databases[0])
    probe, check, _cleanup = dialect.transactional_ddl_probe("mf_probe_table")
    session.execute(probe)
    gone = session.fetchval(check)
    assert gone is True and dialect.transactional_ddl_refusal("db", survived=not gone) is None
    assert session.fetchval("SELECT to_regclass('mf_probe_table')") is None
    session.loop.run_until_complete(session.connection.close())


def test_an_engine_whose_ddl_survives_rollback_is_refused_before_anything_is_applied(tmp_path, pg_databases):
    """Imitated by a to_regclass found before pg_catalog's that finds every table: the
    answer of an engine that commits DDL on its own."""
    first, _second = pg_databases
    session = dbutil.PostgresSession(first)
    session.execute("DROP SCHEMA IF EXISTS keeps CASCADE; CREATE SCHEMA keeps; "  # test cleanup only
                    "CREATE FUNCTION keeps.to_regclass(text) RETURNS regclass LANGUAGE sql "
                    "AS $$SELECT 'pg_class'::regclass$$")
    write_project(tmp_path, {"keeps": ("postgresql", first + "?search_path=keeps,pg_catalog,public")})
    result = run_cli(tmp_path, "migrate", "--all", "--json")
    assert result.code == 3
    error = json.loads(result.out)["targets"][0]["error"]
    assert "does not roll DDL back: a table created inside a transaction was still there after ROLLBACK" \
        in error and "applied nothing" in error
    assert session.fetch("SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ('keeps', 'public') "
                         "AND tablename <> 'tenants'") == []  # public.tenants: the tenant list of other tests
    session.execute("DROP SCHEMA keeps CASCADE")
    session.loop.run_until_complete(session.connection.close())


def test_an_engine_that_refuses_ddl_in_a_transaction_stops_with_its_words_and_nothing_applied(tmp_path):
    """Imitated by an event trigger that refuses CREATE TABLE, in a database of its own.
    The probe does not claim to know why the table could not be made; the first
    migration's transaction fails and is rolled back."""
    with dbutil.temporary_postgres_database("fleet_noddl") as url:
        session = dbutil.PostgresSession(url)
        session.execute("CREATE FUNCTION no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS "
                        "$$BEGIN RAISE EXCEPTION 'DDL statements are not allowed in transactions'; END$$; "
                        "CREATE EVENT TRIGGER no_ddl ON ddl_command_start WHEN TAG IN ('CREATE TABLE') "
                        "EXECUTE FUNCTION no_ddl()")
        write_project(tmp_path, {"noddl": ("postgresql", url)})
        result = run_cli(tmp_path, "migrate", "--all")
        assert result.code == 3
        assert "cannot create the ledger mf_migrations" in result.err
        assert "DDL statements are not allowed in transactions" in result.err
        assert session.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == []
        session.loop.run_until_complete(session.connection.close())


def test_a_tenant_schema_that_does_not_exist_is_a_failed_target(tmp_path, pg_databases):
    first, _second = pg_databases
    session = dbutil.PostgresSession(first)
    session.execute("DROP SCHEMA IF EXISTS present CASCADE; CREATE SCHEMA present")  # test cleanup only
    names = write_project(tmp_path, {"db": ("postgresql", first)},
                          tenants={"target": "db", "schemas": ["present", "absent"]})
    result = run_cli(tmp_path, "migrate", "--all", "--json")
    assert result.code == 3
    targets = {t["name"]: t for t in json.loads(result.out)["targets"]}
    assert targets["db.present"]["applied"] == names and not targets["db.present"]["failed"]
    assert "cannot create the ledger mf_migrations" in targets["db.absent"]["error"]
    assert "in schema absent" in targets["db.absent"]["error"]
    session.loop.run_until_complete(session.connection.close())


# ---------------------------------------------------------------- kill -9 in the middle of a fleet

# The first runs uninterrupted, to measure a run; MF_KILL_TRIALS=20 (say) for a longer hunt.
KILL_TRIALS = int(os.environ.get("MF_KILL_TRIALS", "7")) + 1
KILL_TENANTS = ["k1", "k2", "k3", "k4"]


def test_a_killed_fleet_run_resumes_to_every_migration_once_per_tenant(tmp_path, pg_databases):
    """`mf db migrate --all` killed at random instants; each time every tenant holds each
    migration fully applied and recorded or not at all, and the next run completes them
    all, exactly once each."""
    import random
    import signal
    import time

    from mfcore import applier
    from mfcore.config import Config
    from test_concurrency import fill, write_chain
    from test_crash import ROWS, Database, check_consistent

    first, _second = pg_databases
    names = write_chain(tmp_path / "migrations", 5)
    # Each migration one transaction (online: false, which the targets take from the
    # database section): a kill leaves each tenant's migrations applied whole or not at all.
    (tmp_path / "language_config.yaml").write_text(json.dumps({
        "database": {"driver": "postgresql", "dsn": first, "online": False},
        "targets": {"db": {"driver": "postgresql", "dsn": first}},
        "tenants": {"target": "db", "schemas": KILL_TENANTS}}))
    session = dbutil.PostgresSession(first)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    seed = int(os.environ.get("MF_CRASH_SEED", random.randrange(1 << 30)))
    chance = random.Random(seed)
    run_time, killed_inside = None, 0
    for trial in range(KILL_TRIALS):
        for schema in KILL_TENANTS:
            session.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')  # test cleanup
            config = Config("postgresql", first, str(tmp_path / "models.mp"), str(tmp_path / "migrations"),
                            schema=schema, mirrors_applied_file=False)
            anyio.run(lambda: applier.migrate(config, to=1))
            fill(f"{first}?search_path={schema}", ROWS)
        started = time.monotonic()
        process = subprocess.Popen([sys.executable, "-m", "mfcore.cli", "db", "migrate", "--all", "--concurrency",
                                    "2"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if run_time is None:
            assert process.wait(timeout=120) == 0, process.stderr.read()
            run_time = time.monotonic() - started
        else:
            time.sleep(chance.uniform(0.2, run_time))
            if process.poll() is None:
                killed_inside += 1
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=120)
        process.stderr.close()
        Database("postgresql", first, session).wait_for_killed_sessions()
        context = f"trial {trial} (MF_CRASH_SEED={seed})"
        for schema in KILL_TENANTS:
            session.execute(f'SET search_path TO "{schema}"')
            check_consistent(Database("postgresql", first, session), names, context)
        session.execute("SET search_path TO public")
        rerun = run_cli(tmp_path, "migrate", "--all")
        assert rerun.code == 0, rerun.err
        for schema in KILL_TENANTS:
            session.execute(f'SET search_path TO "{schema}"')
            assert check_consistent(Database("postgresql", first, session), names, context) == len(names)
        session.execute("SET search_path TO public")
    assert killed_inside >= (KILL_TRIALS - 1) // 2, f"most kills should land inside a run (MF_CRASH_SEED={seed})"
    session.loop.run_until_complete(session.connection.close())


def test_the_default_concurrency_stays_well_under_max_connections(pg_databases):
    from mfcore import fleet
    from mfcore.config import Config

    first, _second = pg_databases
    session = dbutil.PostgresSession(first)
    most = int(session.fetchval("SHOW max_connections"))
    session.loop.run_until_complete(session.connection.close())
    targets = {f"t{n}": Config("postgresql", first, "", "", schema=f"s{n}") for n in range(3)}
    expected = min(fleet.DEFAULT_CONCURRENCY, max(1, most // fleet.SERVER_SHARE // 2))
    assert anyio.run(fleet.default_concurrency, targets) == expected
    assert anyio.run(fleet.default_concurrency, {"f": Config("sqlite", "/nonexistent/x.db", "", "")}) == \
        fleet.DEFAULT_CONCURRENCY


# ---------------------------------------------------------------- rollback --all

DROPPED_PRICE = MODELS[2].replace("    price = IntegerField(default=0)\n", "")


def add_migration(root: Path, number: int, old_text: str, new_text: str) -> str:
    """Write migration ``number`` for the change old_text -> new_text; returns its name."""
    operations = diff(parse(old_text), parse(new_text))
    written = write_migration(str(root / "migrations"), number, suffix_for(operations), operations)
    (root / "models.mp").write_text(new_text)
    return os.path.basename(written)


def sqlite_tables(path: Path) -> set:
    connection = sqlite3.connect(path)
    try:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        connection.close()


def sqlite_columns(path: Path, table: str) -> list:
    connection = sqlite3.connect(path)
    try:
        return [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]
    finally:
        connection.close()


def sqlite_state(root: Path, names) -> dict:
    """Each file's ledger and its tables with their columns: what "nothing changed" compares."""
    return {name: (sqlite_ledger(root / f"{name}.db"),
                   {t: sqlite_columns(root / f"{name}.db", t) for t in sorted(sqlite_tables(root / f"{name}.db"))})
            for name in names}


def test_rollback_all_undoes_on_every_sqlite_file_and_each_catalog_follows(sqlite_fleet):
    root, names = sqlite_fleet
    anyio.run(lambda: api.migrate_all(root / "language_config.yaml"))

    preview = run_cli(root, "rollback", "--all", "--dry-run", "--json")
    assert preview.code == 0, preview.err
    previewed = {t["name"]: ([s["name"] for s in t["sql"]], t["rolled_back"])
                 for t in json.loads(preview.out)["targets"]}
    assert previewed == {n: ([names[2]], [names[2]]) for n in ("north", "south", "west")}
    assert all(sqlite_ledger(root / f"{n}.db") == names for n in ("north", "south", "west"))  # a dry run

    result = run_cli(root, "rollback", "--all")
    assert result.code == 0, result.err
    assert f"  north  rolled back 1: {names[2]}" in result.out.splitlines()
    assert result.out.splitlines()[-1] == "3 of 3 target(s) rolled back."
    for name in ("north", "south", "west"):
        assert sqlite_ledger(root / f"{name}.db") == names[:2]
        assert "tag" not in sqlite_tables(root / f"{name}.db") and "item" in sqlite_tables(root / f"{name}.db")

    results = anyio.run(lambda: api.rollback_all(root / "language_config.yaml", to=0, targets=["south", "west"]))
    assert [(r.name, r.rolled_back, r.error) for r in results] == [
        ("south", [names[1], names[0]], None), ("west", [names[1], names[0]], None)]
    assert sqlite_ledger(root / "north.db") == names[:2]
    for name in ("south", "west"):
        assert sqlite_ledger(root / f"{name}.db") == [] and "item" not in sqlite_tables(root / f"{name}.db")
    again = anyio.run(lambda: api.rollback_all(root / "language_config.yaml", targets=["south"]))
    assert again[0].ok and again[0].rolled_back == []


def test_rollback_all_refuses_an_undo_without_reverse_on_any_target_before_touching_one(sqlite_fleet):
    root, names = sqlite_fleet
    anyio.run(lambda: api.migrate_all(root / "language_config.yaml"))
    fourth = "004_fill_prices.json"
    (root / "migrations" / fourth).write_text(json.dumps(
        {"format": 1, "ops": [{"op": "run_sql", "sql": "UPDATE item SET price = 1"}]}))
    anyio.run(lambda: api.migrate_all(root / "language_config.yaml", targets=["west"]))
    before = sqlite_state(root, ("north", "south", "west"))
    assert before["west"][0] == names + [fourth]

    # One at a time, west last: a rollback that checked targets only as it reached
    # them would have undone 003 on north and south by then.
    refused = run_cli(root, "rollback", "--all", "--concurrency", "1")
    assert refused.code == 2, refused.err
    assert refused.err.startswith(f"error: 1 of 3 target(s) cannot be rolled back: west: cannot undo {fourth}: ")
    assert refused.err.rstrip().endswith("Nothing was undone on any target.")
    assert refused.out == ""
    assert sqlite_state(root, ("north", "south", "west")) == before

    as_json = run_cli(root, "rollback", "--all", "--to", "000", "--json")
    assert as_json.code == 2
    assert json.loads(as_json.out)["error"]["kind"] == "IrreversibleError"
    assert sqlite_state(root, ("north", "south", "west")) == before


def test_rollback_all_refuses_data_loss_on_any_target_unless_allowed(sqlite_fleet):
    root, names = sqlite_fleet
    anyio.run(lambda: api.migrate_all(root / "language_config.yaml"))
    fourth = add_migration(root, 4, MODELS[2], DROPPED_PRICE)
    anyio.run(lambda: api.migrate_all(root / "language_config.yaml", targets=["west"]))
    assert "price" not in sqlite_columns(root / "west.db", "item")
    before = sqlite_state(root, ("north", "south", "west"))

    refused = run_cli(root, "rollback", "--all", "--concurrency", "1")
    assert refused.code == 2
    assert refused.err == (f"error: undoing would lose data on 1 of 3 target(s): west: {fourth}: column "
                           "item.price comes back empty. Nothing was undone on any target; pass "
                           "--allow-data-loss (allow_data_loss=True) to go ahead.\n")
    assert sqlite_state(root, ("north", "south", "west")) == before

    asked = []
    with pytest.raises(DataLossError, match="Nothing was undone on any target"):
        anyio.run(lambda: api.rollback_all(root / "language_config.yaml",
                                           confirm_data_loss=lambda losses: asked.append(losses) or False))
    assert asked == [{"west": [f"{fourth}: column item.price comes back empty"]}]
    assert sqlite_state(root, ("north", "south", "west")) == before

    allowed = run_cli(root, "rollback", "--all", "--allow-data-loss", "--json")
    assert allowed.code == 0, allowed.err
    doc = {t["name"]: (t["rolled_back"], t["losses"]) for t in json.loads(allowed.out)["targets"]}
    assert doc == {"north": ([names[2]], []), "south": ([names[2]], []),
                   "west": ([fourth], [f"{fourth}: column item.price comes back empty"])}
    assert sqlite_ledger(root / "west.db") == names and "price" in sqlite_columns(root / "west.db", "item")
    assert sqlite_ledger(root / "north.db") == names[:2]


def test_a_target_that_cannot_be_read_fails_alone_or_with_fail_fast_stops_all_before_any_undo(sqlite_fleet):
    root, names = sqlite_fleet
    anyio.run(lambda: api.migrate_all(root / "language_config.yaml"))
    (root / "south.db").write_bytes(b"not a database " * 40)

    stopped = run_cli(root, "rollback", "--all", "--fail-fast")
    assert stopped.code == 3
    assert "0 of 3 target(s) rolled back, 1 failed, 2 not finished (--fail-fast)." in stopped.out
    assert "error: south: cannot use the SQLite database" in stopped.err
    assert sqlite_ledger(root / "north.db") == names and sqlite_ledger(root / "west.db") == names

    carried_on = run_cli(root, "rollback", "--all")
    assert carried_on.code == 3
    assert "2 of 3 target(s) rolled back, 1 failed." in carried_on.out
    assert sqlite_ledger(root / "north.db") == names[:2] and sqlite_ledger(root / "west.db") == names[:2]


def test_rollback_all_arguments_are_those_of_rollback(sqlite_fleet):
    root, _names = sqlite_fleet
    both = run_cli(root, "rollback", "2", "--to", "001", "--all")
    assert both.code == 2 and "a number of migrations or a target (--to), not both" in both.err
    mixed = run_cli(root, "rollback", "--all", "--target", "north")
    assert mixed.code == 2 and "--all takes every target" in mixed.err
    assert not (root / "north.db").exists()


def test_two_fleet_rollbacks_at_once_undo_each_migration_once_per_target(pg_fleet, pg_databases):
    root, names, session = pg_fleet
    config = root / "language_config.yaml"
    anyio.run(lambda: api.migrate_all(config))
    runs: list = []

    async def both():
        async def one():
            runs.append(await api.rollback_all(config, to=1, concurrency=3))
        async with anyio.create_task_group() as group:
            group.start_soon(one)
            group.start_soon(one)

    anyio.run(both)
    expected = ["shared"] + [f"tenanted.{t}" for t in TENANTS]
    for results in runs:
        assert [r.name for r in results] == expected and all(r.ok for r in results)
    for index, name in enumerate(expected):
        undone = runs[0][index].rolled_back + runs[1][index].rolled_back
        assert sorted(undone) == names[1:], name  # each undo by exactly one of the two runs
    for schema in TENANTS:
        assert pg_ledger(session, schema) == names[:1]
        columns = session.fetch("SELECT column_name FROM information_schema.columns WHERE table_schema = $1 "
                                "AND table_name = 'item' ORDER BY ordinal_position", schema)
        assert [c[0] for c in columns] == ["id", "title"]
        assert session.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'tag'",
                                schema) == 0
    shared = dbutil.PostgresSession(pg_databases[1])
    assert pg_ledger(shared, "public") == names[:1]
    assert shared.fetchval("SELECT to_regclass('public.tag')") is None
    shared.loop.run_until_complete(shared.connection.close())


def test_a_tenant_whose_undo_fails_is_reported_and_the_others_are_rolled_back(pg_fleet):
    root, names, session = pg_fleet
    anyio.run(lambda: api.migrate_all(root / "language_config.yaml", targets=["tenanted"]))
    session.execute('CREATE VIEW "Globex Corp".tags AS SELECT * FROM "Globex Corp".tag')  # blocks DROP TABLE tag
    result = run_cli(root, "rollback", "--target", "tenanted", "--concurrency", "2")
    assert result.code == 3
    assert f"  ✓ tenanted.acme  rolled back 1: {names[2]}" not in result.out  # NO_COLOR: no marks
    assert f"  tenanted.acme  rolled back 1: {names[2]}" in result.out.splitlines()
    assert "2 of 3 target(s) rolled back, 1 failed." in result.out
    assert f"error: tenanted.Globex Corp at {names[2]}: undoing {names[2]} failed" in result.err
    assert "depend" in result.err
    assert pg_ledger(session, "acme") == names[:2] and pg_ledger(session, 'quote"d') == names[:2]
    assert pg_ledger(session, "Globex Corp") == names
    assert session.fetchval("SELECT to_regclass('\"Globex Corp\".tag')") is not None

    session.execute('DROP VIEW "Globex Corp".tags')
    results = anyio.run(lambda: api.rollback_all(root / "language_config.yaml", to=2, targets=["tenanted"]))
    assert {r.name: r.rolled_back for r in results} == {
        "tenanted.acme": [], "tenanted.Globex Corp": [names[2]], 'tenanted.quote"d': []}
    assert all(pg_ledger(session, schema) == names[:2] for schema in TENANTS)


ROLLBACK_ALL_DRIVER = """
import sys, anyio
from mfcore import api

print("start 1", flush=True)

def finished(result, done, total):
    if done < total:
        print("start", done + 1, flush=True)

anyio.run(lambda: api.rollback_all(sys.argv[1], to=1, concurrency=2, on_result=finished))
"""


def test_a_killed_fleet_rollback_resumes_to_a_consistent_state(tmp_path, pg_databases):
    """`rollback --all --to 001` killed at random instants; each tenant is left with every
    migration fully applied and recorded or fully undone, and the rerun finishes the rest."""
    import random

    from mfcore import applier
    from mfcore.config import Config
    from test_concurrency import fill, write_chain
    from test_crash import PER_TRIAL, ROWS, Database, check_consistent, run_and_kill

    assert len(KILL_TENANTS) == PER_TRIAL  # run_and_kill's steps are the tenants here
    first, _second = pg_databases
    names = write_chain(tmp_path / "migrations", 5)
    config_path = tmp_path / "language_config.yaml"
    config_path.write_text(json.dumps({
        "targets": {"db": {"driver": "postgresql", "dsn": first}},
        "tenants": {"target": "db", "schemas": KILL_TENANTS}}))
    session = dbutil.PostgresSession(first)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    seed = int(os.environ.get("MF_CRASH_SEED", random.randrange(1 << 30)))
    chance = random.Random(seed)
    step_time, killed_inside, outcomes = None, 0, []
    for trial in range(KILL_TRIALS):
        for schema in KILL_TENANTS:
            session.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')  # test cleanup
            config = Config("postgresql", first, str(tmp_path / "models.mp"), str(tmp_path / "migrations"),
                            schema=schema, mirrors_applied_file=False)
            anyio.run(lambda: applier.migrate(config, to=1))
            fill(f"{first}?search_path={schema}", ROWS)
            anyio.run(lambda: applier.migrate(config))
        step_time, killed = run_and_kill([ROLLBACK_ALL_DRIVER, str(config_path)], env, chance, step_time, 0.9)
        killed_inside += killed
        Database("postgresql", first, session).wait_for_killed_sessions()
        context = f"trial {trial} (MF_CRASH_SEED={seed})"
        left = []
        for schema in KILL_TENANTS:
            session.execute(f'SET search_path TO "{schema}"')
            left.append(check_consistent(Database("postgresql", first, session), names, context))
        outcomes.append("/".join(map(str, left)))
        session.execute("SET search_path TO public")
        rerun = run_cli(tmp_path, "rollback", "--all", "--to", "001")
        assert rerun.code == 0, rerun.err
        for schema in KILL_TENANTS:
            session.execute(f'SET search_path TO "{schema}"')
            assert check_consistent(Database("postgresql", first, session), names, context) == 1
        session.execute("SET search_path TO public")
    print("migrations left applied per tenant when killed:", ", ".join(outcomes))
    assert killed_inside >= (KILL_TRIALS - 1) // 2, f"most kills should land inside a run (MF_CRASH_SEED={seed})"
    assert any(set(o.split("/")) - {"1", "5"} or len(set(o.split("/"))) > 1 for o in outcomes[1:]), \
        f"some kills should land between a tenant's undos (MF_CRASH_SEED={seed})"
    session.loop.run_until_complete(session.connection.close())

"""Large migrations within PostgreSQL's lock table: makemigrations splits a migration
touching more than max_tables_per_migration tables into consecutive files, each
applying and rolling back on its own; migrate refuses, before running anything, a
migration whose transaction would take more locks than the server holds.

The guarantees hold for split files as for any: kill -9 during a split migration and
several migrators at once, on both databases.
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

import dbutil
from conftest import Project, tree_state
from mfcore import api, applier
from mfcore.config import config_for
from mfcore.dialects import dialect_for
from mfcore.operations import lock_estimate
from mfcore.operations.locks import LEDGER_LOCKS
from mfcore.schema import Schema
from mfcore.store import list_migration_files, read_migration
from test_crash import DRIVER, run_and_kill

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from generate import generate_models  # noqa: E402

MODELS = 60
MAX_TABLES = 20
CRASH_TRIALS = 4   # per database; the first runs uninterrupted


def make_project(root: Path, models: int = MODELS, max_tables=None, dsn: str = "./dev.db") -> Project:
    root.mkdir(parents=True)
    driver = "postgresql" if "://" in dsn else "sqlite"
    extra = f"max_tables_per_migration: {max_tables}\n" if max_tables is not None else ""
    (root / "language_config.yaml").write_text(f'database:\n  driver: "{driver}"\n  dsn: "{dsn}"\n{extra}')
    project = Project(root)
    project.write_models(generate_models(models))
    return project


def file_ops(project: Project) -> list:
    """[(file name, [op document, ...]), ...] in numeric order."""
    return [(f.name, json.loads(Path(f.path).read_text())["ops"])
            for f in list_migration_files(str(project.migrations))]


def created_tables(ops) -> set:
    return {op["table"] for op in ops if op["op"] == "create_model"}


# ---------------------------------------------------------------- makemigrations

def test_a_migration_over_the_table_limit_is_split_into_files_that_add_up_to_it(tmp_path):
    split = make_project(tmp_path / "split", max_tables=MAX_TABLES)
    whole = make_project(tmp_path / "whole", max_tables=10_000)

    result = split.run("db", "makemigrations", "--name", "initial")
    assert result.code == 0, result
    assert whole.run("db", "makemigrations", "--name", "initial").code == 0

    files = file_ops(split)
    [(whole_name, whole_ops)] = file_ops(whole)
    assert whole_name == "001_initial.json"
    assert len(files) > MODELS // MAX_TABLES
    assert [name for name, _ops in files] == [f"{n:03d}_initial_part{n}.json" for n in range(1, len(files) + 1)]
    # Nothing lost, nothing reordered: the parts, one after another, are the migration.
    assert [op for _name, ops in files for op in ops] == whole_ops
    assert "Split into" in result.out and f"max_tables_per_migration ({MAX_TABLES})" in result.out
    for name, _ops in files:
        assert f"migrations/{name}" in result.out

    # Each file stands alone: a table it creates points only at tables that exist by then.
    existing: set = set()
    for name, ops in files:
        document = json.loads((split.migrations / name).read_text())
        assert document.get("atomic", True) is True
        touched = set()
        for op in ops:
            if op["op"] == "create_model":
                existing.add(op["table"])
                touched.add(op["table"])
                for field in op["table_def"]["model"]["fields"]:
                    if "to" in field and field["name"] not in op.get("deferred_keys", []):
                        target = next(o["table"] for _n, all_ops in files for o in all_ops
                                      if o["op"] == "create_model" and o["model"] == field["to"])
                        assert target in existing, f"{name}: {op['table']} points at {target}, created later"
                        touched.add(target)
        assert len(touched) <= MAX_TABLES, name

    # schema.json is the same schema, naming the newest file; the next run finds nothing.
    split_schema = json.loads((split.migrations / "schema.json").read_text())
    whole_schema = json.loads((whole.migrations / "schema.json").read_text())
    assert split_schema.pop("migration") == files[-1][0]
    whole_schema.pop("migration")
    # (The digest sealing the sources covers the file, the newest file's name included.)
    split_schema["sources"].pop("sha1")
    whole_schema["sources"].pop("sha1")
    assert split_schema == whole_schema
    again = split.run("db", "makemigrations")
    assert again.code == 0 and "No changes detected." in again.out


def test_a_split_migration_that_cannot_be_written_whole_leaves_no_file(tmp_path):
    """The files are made and written one at a time: when one of them (here schema.json,
    written last, larger than a file size limit the others fit in) cannot be written,
    the ones written before it go, and the project is as it was."""
    import resource

    sizes = make_project(tmp_path / "sizes", max_tables=MAX_TABLES)
    assert sizes.run("db", "makemigrations").code == 0
    largest_file = max(path.stat().st_size for path in sizes.migrations.glob("0*.json"))
    assert (sizes.migrations / "schema.json").stat().st_size > largest_file

    project = make_project(tmp_path / "app", max_tables=MAX_TABLES)
    models = project.path / "models.mp"
    generated = models.read_text()
    models.write_text("model Seed extends Model {\n    n = IntegerField()\n}\n")
    assert project.run("db", "makemigrations", "--name", "initial").code == 0
    models.write_text(generated + "model Seed extends Model {\n    n = IntegerField()\n}\n")
    before = tree_state(project.path)

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (largest_file + 4096, largest_file + 4096))

    done = subprocess.run([sys.executable, "-m", "mfcore.cli", "db", "makemigrations"], cwd=project.path,
                          capture_output=True, text=True, preexec_fn=limit_file_size, timeout=300)
    assert done.returncode != 0
    assert "cannot" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert tree_state(project.path) == before
    assert project.migration_names() == ["001_initial.json"]


def test_the_files_of_a_split_migration_are_read_one_document_at_a_time(tmp_path):
    """migrate reads every pending file before it runs one; the JSON of each is let go
    once the file is understood, so reading many files costs, beyond what they hold
    when read, the memory of one document, not of all of them."""
    import tracemalloc

    from mfcore.store import read_migrations

    project = make_project(tmp_path / "app", models=400, max_tables=50)
    assert api.makemigrations(str(project.path / "language_config.yaml")).written
    files = list_migration_files(str(project.migrations))
    assert len(files) >= 8

    def transient(wanted) -> int:
        """The memory read_migrations used beyond what its result keeps."""
        tracemalloc.start()
        try:
            read = read_migrations(str(project.migrations), files, wanted)
            kept, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert sorted(read) == sorted(f.name for f in wanted)
        return peak - kept

    largest = max(files, key=lambda f: os.path.getsize(f.path))
    assert transient(files) < 2 * transient([largest])


def test_a_history_of_many_files_is_read_one_document_at_a_time(tmp_path):
    """Folding the history (migrate where the ledger is missing or empty, drift, lint,
    squash, rollback) also lets each file's JSON go once the file is understood."""
    import tracemalloc

    from mfcore.store import load_history

    project = make_project(tmp_path / "app", models=400, max_tables=50)
    assert api.makemigrations(str(project.path / "language_config.yaml")).written
    files = list_migration_files(str(project.migrations))

    def transient(some) -> int:
        tracemalloc.start()
        try:
            history, _schema = load_history(str(project.migrations), some)
            kept, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert [m.name for m in history] == [f.name for f in some]
        return peak - kept

    largest = max(files, key=lambda f: os.path.getsize(f.path))
    assert transient(files) < 2 * transient([largest])


def test_the_command_line_limit_overrides_the_config_and_json_lists_every_file(tmp_path):
    project = make_project(tmp_path / "app", models=12)
    result = project.run("--json", "db", "makemigrations", "--max-tables", "5", "--dry-run")
    assert result.code == 0, result
    document = json.loads(result.out)
    assert len(document["files"]) >= 3 and document["file"] == document["files"][0]
    assert "max_tables_per_migration (5)" in document["split"]
    assert not project.migrations.exists()  # a dry run

    result = project.run("db", "makemigrations")  # the default limit: one file
    assert result.code == 0 and "Split" not in result.out
    assert len(file_ops(project)) == 1


def test_split_file_names_keep_within_the_suffix_limit(tmp_path):
    project = make_project(tmp_path / "app", models=12)
    name = "a_rather_long_description_of_the_first_version_of_every_table_here"
    result = api.makemigrations(str(project.path / "language_config.yaml"), name=name, max_tables=3)
    suffixes = [Path(planned.path).stem.split("_", 1)[1] for planned in result.files]
    assert len(suffixes) >= 10
    assert all(len(suffix) <= 60 for suffix in suffixes)
    assert [suffix.rsplit("_", 1)[1] for suffix in suffixes] == [f"part{n}" for n in range(1, len(suffixes) + 1)]
    assert len({suffix.rsplit("_", 1)[0] for suffix in suffixes}) == 1
    assert name.startswith(suffixes[0].rsplit("_", 1)[0])


@pytest.mark.parametrize("value", ["0", "-3", "many", "true", "2.5", "[]"])
def test_a_bad_max_tables_per_migration_is_refused_naming_the_key(tmp_path, value):
    project = make_project(tmp_path / "app", models=3)
    config = project.path / "language_config.yaml"
    config.write_text(config.read_text() + f"max_tables_per_migration: {value}\n")
    before = tree_state(project.path)
    result = project.run("db", "makemigrations")
    assert result.code == 2, result
    assert "max_tables_per_migration" in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert tree_state(project.path) == before


def test_a_bad_max_tables_option_is_a_usage_error(tmp_path):
    project = make_project(tmp_path / "app", models=3)
    result = project.run("db", "makemigrations", "--max-tables", "0")
    assert result.code == 2 and "--max-tables" in result.err
    assert not project.migrations.exists()


# ---------------------------------------------------------------- applying and undoing, both databases

class Target:
    """An empty database (a SQLite file, or a fresh PostgreSQL schema) and its catalog."""

    def __init__(self, kind, dsn, read_catalog, ledger):
        self.kind, self.dsn, self.read_catalog, self.ledger = kind, dsn, read_catalog, ledger

    def tables(self) -> set:
        return set(self.read_catalog().tables) - {"mf_migrations"}


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """target() -> a new empty database of the kind."""
    if request.param == "sqlite":
        def make():
            path = str(tmp_path / f"db{len(list(tmp_path.glob('db*.sqlite')))}.sqlite")
            sqlite3.connect(path).close()

            def read_catalog():
                return dbutil.read_sqlite_catalog(sqlite3.connect(path))

            def ledger():
                connection = sqlite3.connect(path)
                try:
                    return [r[0] for r in connection.execute("SELECT name FROM mf_migrations ORDER BY id")]
                except sqlite3.OperationalError:
                    return []
                finally:
                    connection.close()
            return Target("sqlite", path, read_catalog, ledger)
        yield make
        return

    url = request.getfixturevalue("pg_url")
    sessions = []

    def make():
        session = dbutil.PostgresSession(url)
        sessions.append(session)
        schema = session.fresh_schema()

        def ledger():
            if not session.fetchval("SELECT to_regclass('mf_migrations') IS NOT NULL"):
                return []
            return [r[0] for r in session.fetch("SELECT name FROM mf_migrations ORDER BY id")]
        return Target("postgresql", f"{url}?search_path={schema}", session.read_catalog, ledger)
    yield make
    for session in sessions:
        session.close()


def test_split_files_apply_in_order_build_the_unsplit_catalog_and_roll_back_to_zero(target, tmp_path):
    split = make_project(tmp_path / "split", max_tables=MAX_TABLES)
    whole = make_project(tmp_path / "whole", max_tables=10_000)
    assert api.makemigrations(str(split.path / "language_config.yaml")).written
    assert api.makemigrations(str(whole.path / "language_config.yaml")).written
    names = [name for name, _ops in file_ops(split)]
    assert len(names) > 1 and len(file_ops(whole)) == 1

    split_db, whole_db = target(), target()
    split_config = config_for(split_db.dsn, str(split.migrations))
    assert anyio.run(lambda: applier.migrate(split_config)) == names
    assert split_db.ledger() == names
    split_catalog = split_db.read_catalog()
    anyio.run(lambda: applier.migrate(config_for(whole_db.dsn, str(whole.migrations))))
    whole_catalog = whole_db.read_catalog()
    assert len(split_db.tables()) == MODELS
    assert {t: v for t, v in split_catalog.tables.items() if t != "mf_migrations"} == \
        {t: v for t, v in whole_catalog.tables.items() if t != "mf_migrations"}

    # Undo one part: exactly its tables go; then everything, newest first.
    last_tables = created_tables(file_ops(split)[-1][1])
    assert anyio.run(lambda: applier.rollback(split_config, count=1)) == names[-1:]
    assert split_db.tables() == created_tables([op for _n, ops in file_ops(split) for op in ops]) - last_tables
    assert anyio.run(lambda: applier.rollback(split_config, to=0)) == names[-2::-1]
    assert split_db.tables() == set()
    assert split_db.ledger() == []


def test_kill_9_during_a_split_migration_leaves_each_file_all_or_nothing(target, tmp_path):
    seed = int(os.environ.get("MF_CRASH_SEED", time.time_ns() % 1_000_000))
    chance = random.Random(seed)
    project = make_project(tmp_path / "app", max_tables=12)
    api.makemigrations(str(project.path / "language_config.yaml"))
    files = file_ops(project)
    names = [name for name, _ops in files]
    assert len(names) >= 4  # run_and_kill picks a step among the first four
    database = target()
    config = config_for(database.dsn, str(project.migrations))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    step_time = None
    outcomes = []
    for trial in range(CRASH_TRIALS):
        context = f"trial {trial} on {database.kind} (MF_CRASH_SEED={seed})"
        anyio.run(lambda: applier.rollback(config, to=0))
        assert database.tables() == set() and database.ledger() == [], context
        step_time, killed = run_and_kill([DRIVER, database.dsn, str(project.migrations)], env, chance,
                                         step_time, 1.2)
        if database.kind == "postgresql":
            wait_for_sessions_to_end(database.dsn)
        applied = database.ledger()
        assert applied == names[:len(applied)], context
        # Every file recorded is wholly there, and nothing of any other.
        assert database.tables() == created_tables([op for _n, ops in files[:len(applied)] for op in ops]), context
        outcomes.append(f"{len(applied)}/{len(names)}" + (" killed" if killed else ""))
        anyio.run(lambda: applier.migrate(config))
        assert database.ledger() == names, context
        assert len(database.tables()) == MODELS, context
        assert json.loads((project.migrations / ".applied").read_text()) == {"applied": names}, context
    print(f"{database.kind}: per trial:", ", ".join(outcomes))
    assert sum(1 for o in outcomes if o.endswith("killed")) >= CRASH_TRIALS - 2, f"MF_CRASH_SEED={seed}"


def wait_for_sessions_to_end(dsn: str) -> None:
    """A killed client's PostgreSQL session lives until its statement ends: wait for it."""
    session = dbutil.PostgresSession(dsn.split("?")[0])
    try:
        deadline = time.monotonic() + 60
        while session.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND application_name = 'mf'"):
            assert time.monotonic() < deadline, "a killed client's session never ended"
            time.sleep(0.02)
    finally:
        session.loop.run_until_complete(session.connection.close())
        session.loop.close()


def test_several_migrators_at_once_apply_each_split_file_exactly_once(target, tmp_path):
    project = make_project(tmp_path / "app", max_tables=MAX_TABLES)
    api.makemigrations(str(project.path / "language_config.yaml"))
    names = [name for name, _ops in file_ops(project)]
    database = target()
    env = dict(os.environ, MF_DATABASE_URL=database.dsn if "://" in database.dsn else f"sqlite:///{database.dsn}",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    processes = [subprocess.Popen([sys.executable, "-m", "mfcore.cli", "db", "migrate", "--json"],
                                  cwd=project.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
                 for _ in range(5)]
    outcomes = [(p.returncode, out, err) for p in processes for out, err in [p.communicate(timeout=120)]]

    assert [code for code, _out, _err in outcomes] == [0] * 5, outcomes
    everything = [name for _code, out, _err in outcomes for name in json.loads(out)["applied"]]
    assert sorted(everything) == names  # each part exactly once
    assert database.ledger() == names
    assert len(database.tables()) == MODELS


# ---------------------------------------------------------------- the server's lock table (PostgreSQL)

def test_the_estimate_is_at_or_a_little_above_the_locks_postgresql_holds(pg_url, tmp_path):
    project = make_project(tmp_path / "app", models=40, max_tables=10_000)
    api.makemigrations(str(project.path / "language_config.yaml"))
    [file] = list_migration_files(str(project.migrations))
    operations = read_migration(file, Schema()).operations
    estimate = lock_estimate(operations) - LEDGER_LOCKS
    statements = dialect_for("postgresql").migration_sql(operations)
    session = dbutil.PostgresSession(pg_url)
    try:
        session.fresh_schema()
        session.execute("BEGIN")
        for statement in statements:
            session.execute(statement)
        held = session.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT locktype, database, relation, classid, objid, objsubid "
            "FROM pg_locks WHERE pid = pg_backend_pid() AND locktype IN ('relation', 'object')) AS objects")
        session.execute("ROLLBACK")
    finally:
        session.close()
    print(f"40 tables: estimated {estimate} locks, PostgreSQL held {held}")
    assert held <= estimate <= held * 1.1


def test_migrate_refuses_a_migration_the_lock_table_cannot_hold_before_running_anything(pg_url, pg_session, tmp_path):
    per_transaction, connections, prepared = pg_session.fetch(
        "SELECT current_setting('max_locks_per_transaction')::int, current_setting('max_connections')::int, "
        "current_setting('max_prepared_transactions')::int")[0]
    budget = per_transaction * (connections + prepared)
    models = budget // 8 + 50  # the generated tables take about nine locks each
    if models > 3000:
        pytest.skip(f"this server's lock table ({budget}) needs too large a schema to overflow")
    schema = pg_session.fresh_schema()
    project = make_project(tmp_path / "app", models=models, max_tables=100_000,
                           dsn=f"{pg_url}?search_path={schema}")
    # A first migration that fits, applied; then one that does not, made by hand (nothing split).
    full = (project.path / "models.mp").read_text()
    project.write_models(generate_models(3))
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate").code == 0
    project.write_models(full)
    assert project.run("db", "makemigrations", "--name", "everything").code == 0
    big = list_migration_files(str(project.migrations))[-1]
    estimate = lock_estimate(read_migration(big, Schema()).operations)
    assert estimate > budget
    tables = set(pg_session.read_catalog().tables)
    ledger = pg_session.fetch("SELECT name, checksum FROM mf_migrations ORDER BY id")
    files = tree_state(project.path)

    result = project.run("db", "migrate")
    assert result.code == 3, result
    message = result.err.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    for part in (big.name, f"about {estimate} locks", f"{budget} (max_locks_per_transaction {per_transaction}",
                 "max_tables_per_migration", "raise max_locks_per_transaction"):
        assert part in message, part
    assert set(pg_session.read_catalog().tables) == tables
    assert pg_session.fetch("SELECT name, checksum FROM mf_migrations ORDER BY id") == ledger
    assert tree_state(project.path) == files

    result = project.run("--json", "db", "migrate")
    assert result.code == 3 and json.loads(result.out)["error"]["kind"] == "LockBudgetError"


def test_a_split_counts_the_tables_among_the_objects_each_operation_locks():
    """split_operations counts only tables (locked_tables); they are those of locked_objects."""
    from mfcore import diff, parse
    from mfcore.operations import locked_objects, locked_tables, tables_of

    first = generate_models(MODELS)
    later = (first.replace("PAID, ", "").replace('table = "t_account00000"', 'table = "accounts"')
             .replace("    id = AutoField()\n", "    id = AutoField()\n    buyer = ForeignKey(Account00000, null=true)\n", 3))
    operations = diff(Schema(), parse(first)) + diff(parse(first), parse(later))
    assert {"create_model", "create_enum", "alter_enum", "add_column"} <= {op.op for op in operations}
    for operation in operations:
        assert locked_tables(operation) == tables_of(locked_objects(operation)), operation.op

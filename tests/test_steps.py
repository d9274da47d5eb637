"""Migrations made of steps on PostgreSQL (online indexes): through the CLI and the real applier.

An index on a table that exists before the migration is built CONCURRENTLY, outside
any transaction; a unique constraint added to such a table takes over an index built
so. The ledger records the step reached; the next migrate resumes there; an index a
stopped run left INVALID is dropped and built again. kill -9 between and inside the
steps, 20 trials: the next run finishes, nothing INVALID is left, rows are intact.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

import dbutil
from conftest import Project
from mfcore import applier
from mfcore.config import config_for
from mfcore.dialects import dialect_for
from mfcore.steps import step_for
from mfcore.store import list_migration_files, load_history

REPO = Path(__file__).resolve().parents[1]

MODEL = """model Item extends Model {{
    id = AutoField()
    name = CharField(max_length=50{name})
{extra}}}
"""


def models(name: str = "", extra: str = "") -> str:
    return MODEL.format(name=name, extra=extra)


@pytest.fixture
def pg(pg_url):
    session = dbutil.PostgresSession(pg_url)
    schema = session.fresh_schema()
    yield session, f"{pg_url}?search_path={schema}"
    session.close()


def pg_project(tmp_path: Path, dsn: str) -> Project:
    root = tmp_path / "app"
    root.mkdir(parents=True)
    (root / "language_config.yaml").write_text(f'database:\n  driver: "postgresql"\n  dsn: "{dsn}"\n')
    return Project(root)


def ok(result):
    assert result.code == 0, result
    return result


def ledger(session) -> list:
    return session.fetch("SELECT name, state FROM mf_migrations ORDER BY id")


def invalid_indexes(session) -> list:
    return session.fetch("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                         "JOIN pg_namespace n ON n.oid = c.relnamespace "
                         "WHERE n.nspname = current_schema() AND NOT (i.indisvalid AND i.indisready)")


def indexes(session) -> dict:
    return dict(session.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"))


def constraints(session) -> dict:
    return dict(session.fetch("SELECT conname, contype::text FROM pg_constraint c JOIN pg_namespace n "
                              "ON n.oid = c.connamespace WHERE n.nspname = current_schema()"))


def started_with_rows(tmp_path, dsn, session, rows: int = 2000, duplicates: bool = False) -> Project:
    project = pg_project(tmp_path, dsn)
    project.write_models(models())
    ok(project.run("db", "makemigrations", "--name", "init"))
    ok(project.run("db", "migrate"))
    value = "'same'" if duplicates else "'n' || i"
    session.execute(f"INSERT INTO item (name) SELECT {value} FROM generate_series(1, {rows}) AS i")
    return project


def test_an_index_and_a_unique_field_on_a_table_with_rows_run_as_steps(pg, tmp_path):
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session)
    project.write_models(models(", db_index=true", "    code = CharField(max_length=20, null=true, unique=true)\n"))
    ok(project.run("db", "makemigrations", "--name", "online"))
    shown = ok(project.run("db", "sql", "2")).out.splitlines()
    assert shown == [
        "-- 002_online.json (postgresql)",
        "-- step 1 of 4: in a transaction",
        "BEGIN;",
        "SET LOCAL lock_timeout = '1s';",
        "SET LOCAL statement_timeout = '1min';",
        'ALTER TABLE "item" ADD COLUMN "code" varchar(20);',
        "COMMIT;",
        "-- step 2 of 4: outside a transaction",
        'CREATE UNIQUE INDEX CONCURRENTLY "item_code_key" ON "item" ("code");',
        "-- step 3 of 4: in a transaction",
        "BEGIN;",
        "SET LOCAL lock_timeout = '1s';",
        "SET LOCAL statement_timeout = '1min';",
        'ALTER TABLE "item" ADD CONSTRAINT "item_code_key" UNIQUE USING INDEX "item_code_key";',
        "COMMIT;",
        "-- step 4 of 4: outside a transaction",
        'CREATE INDEX CONCURRENTLY "ix_item_name" ON "item" ("name");',
    ]
    dry = ok(project.run("db", "migrate", "--dry-run")).out
    assert "-- step 2 of 4: outside a transaction" in dry and "CREATE UNIQUE INDEX CONCURRENTLY" in dry
    ok(project.run("db", "migrate"))
    assert ledger(session) == [("001_init.json", "applied"), ("002_online.json", "applied")]
    assert invalid_indexes(session) == []
    assert constraints(session)["item_code_key"] == "u"
    assert "ix_item_name" in indexes(session)
    assert session.fetchval("SELECT count(*) FROM item") == 2000
    drift = project.run("db", "drift")
    assert drift.code == 0 and "No drift" in drift.out, drift
    # The undo is one transaction with plain statements, and works.
    undo = ok(project.run("db", "sql", "2", "--reverse")).out
    assert "step" not in undo and "CONCURRENTLY" not in undo
    ok(project.run("db", "rollback"))
    assert "ix_item_name" not in indexes(session) and "item_code_key" not in constraints(session)


def test_index_and_unique_together_on_a_table_in_use_are_built_concurrently(pg, tmp_path):
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session)
    project.write_models(models(extra="    size = IntegerField(null=true)\n    indexes = [Index(size)]\n"
                                      "    unique_together = [(name, size)]\n"))
    ok(project.run("db", "makemigrations", "--name", "together"))
    shown = ok(project.run("db", "sql", "2")).out
    assert 'CREATE INDEX CONCURRENTLY "ix_item_size"' in shown, shown
    assert 'CREATE UNIQUE INDEX CONCURRENTLY "uq_item_name_size"' in shown, shown
    ok(project.run("db", "migrate"))
    assert ledger(session)[-1] == ("002_together.json", "applied") and invalid_indexes(session) == []
    assert {"ix_item_size", "uq_item_name_size"} <= set(indexes(session))
    assert ok(project.run("db", "drift")).out.startswith("No drift")


def test_a_unique_constraint_over_columns_takes_over_an_index_built_concurrently(pg, tmp_path):
    """unique_together kept as a constraint ("constraint": true, as for a database taken over)."""
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session)
    project.write_models(models(extra="    size = IntegerField(null=true)\n    unique_together = [(name, size)]\n"))
    ok(project.run("db", "makemigrations", "--name", "together"))
    path = project.migrations / "002_together.json"
    document = json.loads(path.read_text())
    for op in document["ops"]:
        if op["op"] == "add_index":
            op["index"]["constraint"] = True
        elif "table_def" in op:
            for index in op["table_def"]["model"]["indexes"]:
                index["constraint"] = True
    path.write_text(json.dumps(document, indent=2))
    project.write_models(models(extra="    size = IntegerField(null=true)\n"))  # models.mp is not the subject
    shown = ok(project.run("db", "sql", "2")).out
    assert 'CREATE UNIQUE INDEX CONCURRENTLY "uq_item_name_size" ON "item" ("name", "size");' in shown, shown
    assert ('ALTER TABLE "item" ADD CONSTRAINT "uq_item_name_size" UNIQUE USING INDEX "uq_item_name_size";'
            in shown), shown
    ok(project.run("db", "migrate"))
    assert ledger(session)[-1] == ("002_together.json", "applied") and invalid_indexes(session) == []
    assert constraints(session)["uq_item_name_size"] == "u"
    assert ok(project.run("db", "drift")).out.startswith("No drift")
    assert ok(project.run("db", "drift")).out.startswith("No drift")


def test_two_runs_at_once_apply_a_migration_of_steps_once(pg, tmp_path):
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session, rows=50000)
    project.write_models(models(", db_index=true", "    code = CharField(max_length=20, null=true, unique=true)\n"))
    ok(project.run("db", "makemigrations", "--name", "online"))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = [subprocess.Popen([sys.executable, "-c", DRIVER, dsn, str(project.migrations)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    applied = [out.count("applied 002_online.json") for out, _err in outputs]
    assert sorted(applied) == [0, 1], outputs  # one applied it, the other found it done
    assert ledger(session) == [("001_init.json", "applied"), ("002_online.json", "applied")]
    assert invalid_indexes(session) == []


def test_an_index_on_a_table_the_migration_creates_stays_in_the_transaction(pg, tmp_path):
    session, dsn = pg
    project = pg_project(tmp_path, dsn)
    project.write_models(models(", db_index=true", "    code = CharField(max_length=20, unique=true)\n"))
    ok(project.run("db", "makemigrations", "--name", "init"))
    shown = ok(project.run("db", "sql", "1")).out.splitlines()
    # One transaction: no step headings, no CONCURRENTLY, one BEGIN ... COMMIT around it all.
    assert not any(line.startswith("-- step") or "CONCURRENTLY" in line for line in shown), shown
    assert (shown[1], shown[-1], shown.count("BEGIN;")) == ("BEGIN;", "COMMIT;", 1)
    ok(project.run("db", "migrate"))
    assert ledger(session) == [("001_init.json", "applied")]


def test_a_migration_without_markers_gives_the_same_statements_as_before(tmp_path):
    """SQLite, and PostgreSQL migrations with nothing to build online: the statements
    of the plan that is not online, no steps."""
    project = pg_project(tmp_path, "postgresql://127.0.0.1/none")
    project.write_models(models())
    ok(project.run("db", "makemigrations", "--name", "init"))
    project.write_models(models(extra="    size = IntegerField(null=true)\n"))
    ok(project.run("db", "makemigrations", "--name", "size"))
    project.write_models(models(", db_index=true", "    size = IntegerField(null=true)\n"))
    ok(project.run("db", "makemigrations", "--name", "index"))
    history, _schema = load_history(str(project.migrations), list_migration_files(str(project.migrations)))
    for driver in ("sqlite", "postgresql"):
        dialect = dialect_for(driver)
        for migration in history:
            step = step_for(dialect, migration)
            plain = dialect.migration_sql(migration.operations, atomic=True)
            if driver == "sqlite" or migration.name != "003_index.json":
                assert step.parts is None and list(step.statements) == plain, (driver, migration.name)
                assert [type(s) for s in step.statements] == [type(s) for s in plain]
            else:
                assert [len(p[1]) for p in step.parts] == [1] and step.parts[0][0]


def test_a_failed_build_leaves_a_partial_migration_that_status_shows_rollback_refuses_and_migrate_finishes(
        pg, tmp_path):
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session, duplicates=True)
    project.write_models(models(", unique=true", "    size = IntegerField(null=true)\n"))
    ok(project.run("db", "makemigrations", "--name", "unique"))
    failed = project.run("db", "migrate")
    assert failed.code == 3, failed
    assert "step 2 of 3" in failed.err and "resumes at step 2" in failed.err and "Traceback" not in failed.err
    assert ledger(session) == [("001_init.json", "applied"), ("002_unique.json", "step 1")]
    assert "the INVALID index item_name_key it left was dropped" in failed.err
    assert invalid_indexes(session) == [] and "item_name_key" not in indexes(session)

    status = project.run("db", "status")
    assert "002_unique.json  (partly applied: step 1 of 3 done; `mf db migrate` resumes at step 2)" in status.out
    document = json.loads(project.run("db", "status", "--json").out)
    partial = document["migrations"][1]
    assert (partial["state"], partial["steps_done"], partial["steps"]) == ("partial", 1, 3)
    assert document["pending"] == ["002_unique.json"]
    assert project.run("db", "status", "--check").code == 1  # pending: migrate finishes it

    before = (ledger(session), indexes(session), project.state())
    refused = project.run("db", "rollback")
    assert refused.code == 2 and "partly applied" in refused.err and "mf db migrate" in refused.err, refused
    assert "Traceback" not in refused.err and len(refused.err.strip().splitlines()) == 1
    refused_json = project.run("db", "rollback", "--json")
    assert refused_json.code == 2 and "partly applied" in json.loads(refused_json.out)["error"]["message"]
    assert (ledger(session), indexes(session), project.state()) == before

    session.execute("UPDATE item SET name = 'n' || id")
    finished = ok(project.run("db", "migrate"))
    assert "resumed at step 2 of 3" in finished.out + finished.err
    assert ledger(session) == [("001_init.json", "applied"), ("002_unique.json", "applied")]
    assert invalid_indexes(session) == [] and constraints(session)["item_name_key"] == "u"
    assert ok(project.run("db", "drift")).out.startswith("No drift")


def test_a_failed_first_step_leaves_nothing(pg, tmp_path):
    """A unique constraint over duplicates: its index build, the first step, fails; the
    INVALID index and the ledger row go, and the database is as it was."""
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session, duplicates=True)
    project.write_models(models(", unique=true"))
    ok(project.run("db", "makemigrations", "--name", "unique"))
    before = (ledger(session), indexes(session), constraints(session))
    failed = project.run("db", "migrate")
    assert failed.code == 3 and "step 1 of 2" in failed.err and "Traceback" not in failed.err, failed
    assert (ledger(session), indexes(session), constraints(session)) == before
    assert invalid_indexes(session) == []
    session.execute("UPDATE item SET name = 'n' || id")
    ok(project.run("db", "migrate"))
    assert ledger(session)[-1] == ("002_unique.json", "applied") and constraints(session)["item_name_key"] == "u"


def test_resolve_settles_a_partial_migration(pg, tmp_path):
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session, duplicates=True)
    project.write_models(models(", unique=true", "    size = IntegerField(null=true)\n"))
    ok(project.run("db", "makemigrations", "--name", "unique"))
    assert project.run("db", "migrate").code == 3
    session.execute('ALTER TABLE item DROP COLUMN size')
    resolved = ok(project.run("db", "resolve", "2", "--rolled-back"))
    assert "rolled back" in resolved.out
    assert ledger(session) == [("001_init.json", "applied")]
    session.execute("UPDATE item SET name = 'n' || id")
    ok(project.run("db", "migrate"))
    assert ledger(session)[-1] == ("002_unique.json", "applied") and invalid_indexes(session) == []


def test_an_invalid_index_of_a_non_atomic_migration_is_rebuilt_after_resolve(pg, tmp_path):
    """A hand-written "atomic": false CREATE INDEX CONCURRENTLY that failed, then
    `mf db resolve 002 --rolled-back`, then migrate: no "already exists"."""
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session, duplicates=True)
    project.write("migrations/002_ix.json", json.dumps({
        "format": 1, "atomic": False,
        "ops": [{"op": "run_sql", "sql": 'CREATE UNIQUE INDEX CONCURRENTLY "ix_item_name" ON item (name)',
                 "reverse_sql": 'DROP INDEX CONCURRENTLY "ix_item_name"'}]}))
    assert project.run("db", "migrate").code == 3
    assert invalid_indexes(session) == [("ix_item_name",)]
    ok(project.run("db", "resolve", "2", "--rolled-back"))
    session.execute("UPDATE item SET name = 'n' || id")
    finished = ok(project.run("db", "migrate"))
    assert "already exists" not in finished.err
    assert "ix_item_name was left INVALID" in finished.out + finished.err
    assert ledger(session)[-1] == ("002_ix.json", "applied") and invalid_indexes(session) == []
    assert "ix_item_name" in indexes(session)


def test_an_earlier_ledger_takes_steps_after_a_widening(pg, tmp_path):
    """A ledger whose CHECK knows only 'started' and 'applied' (created by an earlier mf)."""
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session)
    session.execute("ALTER TABLE mf_migrations DROP CONSTRAINT mf_migrations_state_check, ADD CONSTRAINT "
                    "mf_migrations_state_check CHECK (state IN ('started', 'applied'))")
    project.write_models(models(", db_index=true", "    size = IntegerField(null=true)\n"))
    ok(project.run("db", "makemigrations", "--name", "index"))
    done = ok(project.run("db", "migrate"))
    assert "now also records how far" in done.out + done.err
    assert ledger(session)[-1] == ("002_index.json", "applied")
    definition = session.fetchval("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                  "WHERE conname = 'mf_migrations_state_check'")
    assert "step %" in definition


# ---------------------------------------------------------------- online: false

def offline_plans(project: Project, dsn: str, online="false") -> None:
    """The project's config with ``database.online`` set (as written in YAML)."""
    project.write("language_config.yaml", f'database:\n  driver: "postgresql"\n  dsn: "{dsn}"\n'
                                          f"  online: {online}\n")


def columns(session) -> list:
    return [r[0] for r in session.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'item' ORDER BY ordinal_position")]


def test_online_false_runs_the_change_as_one_transaction_with_the_plain_forms(pg, tmp_path):
    """The change of the first test above, planned with online: false: one BEGIN ...
    COMMIT, no steps, no CONCURRENTLY, in `mf db sql`, the dry runs, and the lint."""
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session)
    offline_plans(project, dsn)
    project.write_models(models(", db_index=true", "    code = CharField(max_length=20, null=true, unique=true)\n"))
    drafted = ok(project.run("db", "makemigrations", "--dry-run")).out.splitlines()
    ok(project.run("db", "makemigrations", "--name", "online"))
    plain = [
        "BEGIN;",
        "SET LOCAL lock_timeout = '1s';",
        "SET LOCAL statement_timeout = '1min';",
        'ALTER TABLE "item" ADD COLUMN "code" varchar(20) CONSTRAINT "item_code_key" UNIQUE;',
        'CREATE INDEX "ix_item_name" ON "item" ("name");',
        "COMMIT;",
    ]
    assert ok(project.run("db", "sql", "2")).out.splitlines() == ["-- 002_online.json (postgresql)"] + plain
    assert drafted[drafted.index("BEGIN;"):] == plain
    assert ok(project.run("db", "migrate", "--dry-run")).out.splitlines() == ["-- 002_online.json"] + plain
    lint = json.loads(project.run("db", "lint", "--json").out)
    assert {f["rule"] for f in lint["findings"]} >= {"require-concurrent-index-creation",
                                                     "disallowed-unique-constraint"}
    ok(project.run("db", "migrate"))
    assert ledger(session) == [("001_init.json", "applied"), ("002_online.json", "applied")]
    assert constraints(session)["item_code_key"] == "u" and "ix_item_name" in indexes(session)


def test_online_false_a_change_that_fails_leaves_nothing_changed(pg, tmp_path):
    """A unique constraint over duplicates beside a new column. Online, the column's step
    commits before the index build fails (see the test above that resumes it); with
    online: false the whole migration is rolled back."""
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session, duplicates=True)
    offline_plans(project, dsn)
    project.write_models(models(", unique=true", "    size = IntegerField(null=true)\n"))
    ok(project.run("db", "makemigrations", "--name", "unique"))
    before = (ledger(session), columns(session), indexes(session), constraints(session))
    failed = project.run("db", "migrate")
    assert failed.code == 3 and "Traceback" not in failed.err, failed
    assert len(failed.err.strip().splitlines()) == 1
    assert "It was rolled back" in failed.err and " of 2: ALTER TABLE" in failed.err and "step 1" not in failed.err
    assert (ledger(session), columns(session), indexes(session), constraints(session)) == before
    assert invalid_indexes(session) == []


def test_a_partly_applied_migration_resumes_in_its_steps_after_online_is_switched_off(pg, tmp_path):
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session, duplicates=True)
    project.write_models(models(", unique=true", "    size = IntegerField(null=true)\n"))
    ok(project.run("db", "makemigrations", "--name", "unique"))
    assert project.run("db", "migrate").code == 3
    assert ledger(session)[-1] == ("002_unique.json", "step 1")
    offline_plans(project, dsn)
    assert "partly applied: step 1 of 3 done" in ok(project.run("db", "status")).out
    session.execute("UPDATE item SET name = 'n' || id")
    finished = ok(project.run("db", "migrate"))
    assert "resumed at step 2 of 3" in finished.out + finished.err
    assert ledger(session)[-1] == ("002_unique.json", "applied") and constraints(session)["item_name_key"] == "u"


@pytest.mark.parametrize("written", ['"no"', "0", "[true]"])
def test_an_online_that_is_not_true_or_false_is_a_config_error_and_nothing_changes(pg, tmp_path, written):
    session, dsn = pg
    project = started_with_rows(tmp_path, dsn, session)
    project.write_models(models(", db_index=true"))
    ok(project.run("db", "makemigrations", "--name", "index"))
    offline_plans(project, dsn, written)
    before = (ledger(session), indexes(session), project.state())
    for command in (("db", "migrate"), ("db", "sql", "2"), ("db", "lint")):
        refused = project.run(*command)
        assert refused.code == 2, refused
        assert refused.err.startswith("error: ") and "database.online must be true or false" in refused.err
        assert "Traceback" not in refused.err and len(refused.err.strip().splitlines()) == 1
    assert (ledger(session), indexes(session), project.state()) == before


# ---------------------------------------------------------------- kill -9

DRIVER = """
import sys, anyio
from mfcore import applier
from mfcore.config import config_for

config = config_for(sys.argv[1], sys.argv[2])
anyio.run(lambda: applier.migrate(config, on_event=lambda kind, name, index, total: print(kind, name, flush=True)))
print("done", flush=True)
"""

# Kills per run of the suite; MF_KILL_TRIALS=40 (say) for a longer hunt.
TRIALS = int(os.environ.get("MF_KILL_TRIALS", "14"))
ROWS = 200000


def test_kill_9_between_and_inside_steps_then_the_next_migrate_finishes(pg_url, tmp_path):
    seed = int(os.environ.get("MF_CRASH_SEED", time.time_ns() % 1_000_000))
    chance = random.Random(seed)
    session = dbutil.PostgresSession(pg_url)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run_time = None
    after_kill = []  # per trial: the ledger state of 002 after the kill, and INVALID indexes then
    try:
        for trial in range(TRIALS + 1):
            context = f"trial {trial} (MF_CRASH_SEED={seed})"
            schema = session.fresh_schema()
            dsn = f"{pg_url}?search_path={schema}"
            project = started_with_rows(tmp_path / f"t{trial}", dsn, session, rows=ROWS)
            project.write_models(models(", db_index=true",
                                        "    code = CharField(max_length=20, null=true, unique=true)\n"))
            ok(project.run("db", "makemigrations", "--name", "online"))
            config = config_for(dsn, str(project.migrations))
            process = subprocess.Popen([sys.executable, "-c", DRIVER, dsn, str(project.migrations)], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                assert process.stdout.readline().split()[:1] == ["start"], context
                began = time.monotonic()
                if run_time is None:  # the first run is not killed: how long a run takes
                    process.wait(timeout=120)
                    run_time = time.monotonic() - began
                else:
                    time.sleep(chance.uniform(0, run_time * 1.1))
                    if process.poll() is None:
                        os.kill(process.pid, signal.SIGKILL)
                    process.wait(timeout=60)
            finally:
                process.stdout.close()
                process.stderr.close()
            if trial % 2:
                # As when the server goes down with the client: the killed run's backends end
                # now, an index build among them left INVALID.
                session.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                                "datname = current_database() AND application_name = 'mf'")
            wait_for_killed_sessions(session)
            state = dict(ledger(session)).get("002_online.json")
            after_kill.append((state, len(invalid_indexes(session))))
            assert session.fetchval("SELECT count(*) FROM item") == ROWS, context
            anyio.run(lambda: applier.migrate(config))  # the next run finishes it
            assert ledger(session) == [("001_init.json", "applied"), ("002_online.json", "applied")], context
            assert invalid_indexes(session) == [], context
            assert constraints(session)["item_code_key"] == "u" and "ix_item_name" in indexes(session), context
            assert session.fetchval("SELECT count(*) FROM item") == ROWS, context
    finally:
        session.close()
    print(f"after each kill (state of 002, INVALID indexes): {after_kill}")
    killed = after_kill[1:]
    partial = [state for state, _invalid in killed if state is not None and state.startswith("step ")]
    # The kills landed between steps and inside them, not only before or after the run.
    assert len(partial) >= 3, f"kills should stop runs between their steps (MF_CRASH_SEED={seed}): {after_kill}"
    assert any(invalid for _state, invalid in killed), \
        f"some kills should land inside an index build (MF_CRASH_SEED={seed}): {after_kill}"


def wait_for_killed_sessions(session) -> None:
    """A killed client's backend ends when it notices; an index build carries on until then."""
    deadline = time.monotonic() + 60
    while session.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND application_name = 'mf'"):
        assert time.monotonic() < deadline, "a killed client's session never ended"
        time.sleep(0.02)

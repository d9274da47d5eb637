"""migrate, status, resolve, reset and sql against real SQLite and PostgreSQL databases.

Migration files are made the way a user makes them: models.mp written, then
makemigrations. Every test runs on both databases (``target``) unless what it checks
exists on one only.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import sqlite3
from pathlib import Path

import anyio
import pytest

import dbutil
from mfcore import applier, drift_check
from mfcore.dialects.postgresql import ADVISORY_LOCK_KEY
from mfcore.api import makemigrations
from mfcore.config import config_for
from mfcore.errors import (DatabaseError, DriftError, IntegrityError, LockTimeoutError, MigrationFileError,
                           ResolveError, UnresolvedMigrationError)
from mfcore.snapshot import dumps

from seed import SEED as SEED_V1, WITH_PHONE as SEED_V2, WITH_DISCOUNT as SEED_V3  # noqa: E402


def run(function, *args, **kwargs):
    """Call an async function of the API from a synchronous test, in a new event loop."""
    return anyio.run(functools.partial(function, *args, **kwargs))


# ---------------------------------------------------------------- databases

class Target:
    """An empty database of one kind, a project folder for it, and a look inside."""

    def __init__(self, driver: str, dsn: str, root: Path, session=None):
        self.driver = driver
        self.dsn = dsn
        self.root = root
        self.session = session
        self.migrations = root / "migrations"
        self.config = config_for(dsn, str(self.migrations), models_path=str(root / "models.mp"))

    # project files
    def make(self, models: str, **options) -> str:
        """Write models.mp and run makemigrations; the new file's name."""
        (self.root / "models.mp").write_text(models)
        result = makemigrations(self.config, **options)
        assert result.written, result
        return result.file_name

    def path(self, name: str) -> Path:
        return self.migrations / name

    def applied_file(self):
        path = self.migrations / ".applied"
        return json.loads(path.read_text()) if path.exists() else None

    # the database
    def fetch(self, sql: str, *args) -> list:
        if self.driver == "sqlite":
            connection = sqlite3.connect(self.dsn)
            try:
                return connection.execute(sql, args).fetchall()
            finally:
                connection.close()
        return self.session.fetch(sql, *args)

    def execute_all(self, statements) -> None:
        """Statements run one after the other on one connection (a script: an SQLite
        rebuild sets rows aside in a TEMP table)."""
        if self.driver == "sqlite":
            connection = dbutil.sqlite_connect(self.dsn)
            try:
                for statement in statements:
                    connection.execute(statement)
            finally:
                connection.close()
        else:
            for statement in statements:
                self.session.execute(statement)

    def execute(self, sql: str) -> None:
        if self.driver == "sqlite":
            connection = dbutil.sqlite_connect(self.dsn)
            try:
                connection.execute(sql)
            finally:
                connection.close()
        else:
            self.session.execute(sql)

    def tables(self) -> set:
        if self.driver == "sqlite":
            rows = self.fetch("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        else:
            rows = self.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {r[0] for r in rows}

    def columns(self, table: str) -> dict:
        """column -> its default, as the database spells it."""
        if self.driver == "sqlite":
            return {r[1]: r[4] for r in self.fetch(f'PRAGMA table_info("{table}")')}
        return dict(self.fetch("SELECT column_name, column_default FROM information_schema.columns "
                               "WHERE table_schema = current_schema() AND table_name = $1", table))

    def foreign_keys(self, table: str) -> set:
        """(column, referenced table, referenced column)"""
        if self.driver == "sqlite":
            return {(r[3], r[2], r[4]) for r in self.fetch(f'PRAGMA foreign_key_list("{table}")')}
        return set(self.fetch(
            "SELECT a.attname, c2.relname, a2.attname FROM pg_constraint k "
            "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class c2 ON c2.oid = k.confrelid "
            "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] "
            "JOIN pg_attribute a2 ON a2.attrelid = k.confrelid AND a2.attnum = k.confkey[1] "
            "WHERE k.contype = 'f' AND c.relname = $1 AND c.relnamespace = current_schema()::regnamespace",
            table))

    def ledger(self) -> list:
        if "mf_migrations" not in self.tables():
            return []
        return [tuple(r) for r in self.fetch('SELECT name, checksum, state FROM mf_migrations ORDER BY id')]

    def ledger_names(self) -> list:
        return [r[0] for r in self.ledger() if r[2] == "applied"]


def _target(driver: str, request, tmp_path) -> Target:
    root = tmp_path / "project"
    root.mkdir()
    if driver == "sqlite":
        return Target("sqlite", str(tmp_path / "app.db"), root)
    session = request.getfixturevalue("pg_session")
    url = request.getfixturevalue("pg_url")
    schema = session.fresh_schema()  # each test in a schema of its own
    return Target("postgresql", f"{url}?search_path={schema}", root, session)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    return _target(request.param, request, tmp_path)


@pytest.fixture
def sqlite_target(request, tmp_path):
    return _target("sqlite", request, tmp_path)


@pytest.fixture
def pg_target(request, tmp_path):
    return _target("postgresql", request, tmp_path)


def sha256(path: Path) -> str:
    """A migration file's checksum as the ledger keeps it: over its content, dumped as mf
    writes files (for a file mf wrote, the checksum of its bytes)."""
    content = json.dumps(json.loads(path.read_bytes()), indent=2, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(content.encode("utf-8") + b"\n").hexdigest()


# ---------------------------------------------------------------- the seed scenario

def test_seed_scenario_applies_in_order_and_records_each_migration(target):
    names = [target.make(SEED_V1), target.make(SEED_V2), target.make(SEED_V3)]
    assert names == ["001_enum_invoicestatus_enum_userrole.json", "002_add_phone.json",
                     "003_add_discount_cents.json"]
    events = []

    applied = run(applier.migrate, target.config, on_event=lambda *event: events.append(event))

    assert applied == names
    assert events == [(kind, name, i, 3) for i, name in enumerate(names, 1) for kind in ("start", "applied")]
    assert (target.migrations / ".applied").read_bytes() == \
        json.dumps({"applied": names}, indent=2).encode() + b"\n"
    assert target.ledger() == [(name, sha256(target.path(name)), "applied") for name in names]
    assert {"lt_customers", "lt_invoices", "mf_migrations"} <= target.tables()
    assert "phone" in target.columns("lt_customers")
    assert "discount_cents" in target.columns("lt_invoices")
    assert ("customer", "lt_customers", "id") in target.foreign_keys("lt_invoices")
    assert [(r.name, r.applied, r.state) for r in run(applier.status, target.config)] == \
        [(name, True, "applied") for name in names]

def test_a_run_lets_each_migration_go_once_it_has_run(target):
    """migrate reads every pending file before the first runs (a malformed one stops the
    run with nothing applied), then keeps each only until it has run: at the start of
    its last migration a run holds far less than at the start of its first."""
    import sys
    import tracemalloc

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from generate import generate_models

    target.make(generate_models(200), max_tables=25)
    held = []

    def on_event(kind, name, index, total):
        if kind == "start":
            held.append(tracemalloc.get_traced_memory()[0])

    tracemalloc.start()
    try:
        applied = run(applier.migrate, target.config, on_event=on_event)
    finally:
        tracemalloc.stop()
    assert len(applied) == len(held) >= 6
    assert held[-1] < held[0] / 2, held


def test_second_run_applies_nothing_and_leaves_files_alone(target):
    target.make(SEED_V1)
    target.make(SEED_V2)
    run(applier.migrate, target.config)
    before = (target.migrations / ".applied").stat().st_mtime_ns, target.ledger()

    assert run(applier.migrate, target.config) == []
    assert ((target.migrations / ".applied").stat().st_mtime_ns, target.ledger()) == before


def test_new_migration_after_a_run_is_the_only_one_applied(target):
    target.make(SEED_V1)
    run(applier.migrate, target.config)
    name = target.make(SEED_V2)

    assert run(applier.migrate, target.config) == [name]
    assert target.applied_file()["applied"][-1] == name


def test_to_dry_run_and_fake(target):
    names = [target.make(SEED_V1), target.make(SEED_V2), target.make(SEED_V3)]

    assert run(applier.migrate, target.config, dry_run=True) == names
    assert target.ledger() == [] and "lt_customers" not in target.tables()
    assert [name for name, _sql in run(applier.pending_sql, target.config, to=2)] == names[:2]

    assert run(applier.migrate, target.config, to=1) == names[:1]
    assert target.ledger_names() == names[:1]
    assert "phone" not in target.columns("lt_customers")

    assert run(applier.migrate, target.config, to=2, fake=True) == names[1:2]
    assert target.ledger_names() == names[:2]
    assert "phone" not in target.columns("lt_customers")  # recorded, not run
    assert target.applied_file() == {"applied": names[:2]}

    with pytest.raises(MigrationFileError, match="no migration numbered 009"):
        run(applier.migrate, target.config, to=9)


def test_migration_statements_need_no_database(target):
    target.make(SEED_V1)
    name, statements = applier.migration_statements(target.config, 1)
    assert name == "001_enum_invoicestatus_enum_userrole.json"
    assert any('"lt_customers"' in s and s.startswith("CREATE TABLE") for s in statements)
    assert target.ledger() == []
    with pytest.raises(MigrationFileError):
        applier.migration_statements(target.config, 7)


# ---------------------------------------------------------------- a failing statement

def test_failing_statement_rolls_back_only_its_migration(target):
    names = [target.make(SEED_V1), target.make(SEED_V2)]
    broken = target.make(SEED_V3.replace('table = "lt_invoices"', 'table = "lt_invoices"\n}\n'
                                         'model Tag extends Model {\n    label = CharField(30)'))
    # 003 creates table tag, then adds lt_invoices.discount_cents: make the second fail.
    first = run(applier.migrate, target.config, to=1)
    target.execute('ALTER TABLE "lt_invoices" ADD COLUMN "discount_cents" INTEGER')
    if target.driver == "postgresql":
        config = dataclasses.replace(target.config, dsn=target.dsn.replace("postgres@", "postgres:s3cret@"))
    else:
        config = target.config

    with pytest.raises(DatabaseError) as raised:
        run(applier.migrate, config)

    message = str(raised.value)
    assert broken in message
    assert 'ADD COLUMN "discount_cents"' in message
    assert "duplicate column" in message or "already exists" in message
    assert "s3cret" not in message
    assert raised.value.migration == broken
    assert first == names[:1]
    assert target.ledger_names() == names  # 002 ran and stays applied
    assert "tag" not in target.tables()     # 003's first statement was rolled back
    assert target.applied_file() == {"applied": names}

    # Fix the (pending) file: drop the conflicting operation, run again.
    document = json.loads(target.path(broken).read_text())
    document["ops"] = [op for op in document["ops"] if op.get("field_name") != "discount_cents"]
    target.path(broken).write_bytes(dumps(document))
    assert run(applier.migrate, config) == [broken]
    assert "tag" in target.tables()
    assert target.ledger()[-1] == (broken, sha256(target.path(broken)), "applied")


def test_malformed_pending_file_stops_the_run_before_anything_runs(target):
    target.make(SEED_V1)
    second = target.make(SEED_V2)
    target.path(second).write_text('{"format": 1, "ops": [{"op": "add_column"')

    with pytest.raises(MigrationFileError, match=second):
        run(applier.migrate, target.config)
    assert target.ledger() == []
    assert "lt_customers" not in target.tables()


# ---------------------------------------------------------------- integrity (§6.5)

def _applied_two_and_one_pending(target):
    names = [target.make(SEED_V1), target.make(SEED_V2)]
    run(applier.migrate, target.config)
    pending = target.make(SEED_V3)
    return names, pending


def _nothing_ran(target, names, pending):
    assert target.ledger_names() == names
    assert "discount_cents" not in target.columns("lt_invoices")


def test_edited_applied_file_is_an_integrity_error(target):
    names, pending = _applied_two_and_one_pending(target)
    edited = json.loads(target.path(names[0]).read_bytes())
    edited["ops"].append({"op": "run_sql", "sql": "SELECT 1", "reverse_sql": ""})
    target.path(names[0]).write_bytes(dumps(edited))

    with pytest.raises(IntegrityError, match=f"{names[0]} was edited after it was applied") as raised:
        run(applier.migrate, target.config)
    assert raised.value.exit_code == 2
    _nothing_ran(target, names, pending)
    assert [r.state for r in run(applier.status, target.config)] == ["edited", "applied", "pending"]


def test_deleted_applied_file_is_an_integrity_error(target):
    names, pending = _applied_two_and_one_pending(target)
    target.path(names[1]).unlink()

    with pytest.raises(IntegrityError, match=f"{names[1]} was applied but the file is gone"):
        run(applier.migrate, target.config)
    _nothing_ran(target, names, pending)
    records = run(applier.status, target.config)
    assert (records[-1].name, records[-1].state) == (names[1], "missing")


def test_renamed_applied_file_is_recognised_by_its_content_and_its_row_renamed(target):
    names, pending = _applied_two_and_one_pending(target)
    target.path(names[1]).rename(target.path("002_phone_number.json"))

    notices = []
    assert run(applier.migrate, target.config, notices=notices) == [pending]
    assert target.ledger_names() == [names[0], "002_phone_number.json", pending]
    assert any(f"{names[1]} was applied here and is now 002_phone_number.json" in n for n in notices)
    assert [r.state for r in run(applier.status, target.config)] == ["applied"] * 3


def test_two_files_with_one_number_is_an_integrity_error(target):
    names, pending = _applied_two_and_one_pending(target)
    twin = target.path("003_other_branch.json")
    twin.write_bytes(target.path(pending).read_bytes())

    with pytest.raises(IntegrityError) as raised:
        run(applier.migrate, target.config)
    assert pending in str(raised.value) and twin.name in str(raised.value)
    _nothing_ran(target, names, pending)


def test_pending_file_numbered_below_newest_applied_names_both(target):
    first = target.make(SEED_V1)
    run(applier.migrate, target.config)
    second = target.make(SEED_V2)
    target.path(second).rename(target.path("003_add_phone.json"))
    run(applier.migrate, target.config)
    late = target.path("002_late_branch.json")
    late.write_bytes(target.path("003_add_phone.json").read_bytes())  # the same column, from another branch

    with pytest.raises(IntegrityError) as raised:
        run(applier.migrate, target.config)
    message = str(raised.value)
    assert "002_late_branch.json is not applied but numbered below 003_add_phone.json" in message
    assert "`mf db rebase 002_late_branch.json`" in message
    assert target.ledger_names() == [first, "003_add_phone.json"]


# ---------------------------------------------------------------- .applied mirrors the ledger

def test_applied_file_behind_the_ledger_is_rebuilt(target):
    names = [target.make(SEED_V1), target.make(SEED_V2)]
    run(applier.migrate, target.config)
    (target.migrations / ".applied").write_text(json.dumps({"applied": names[:1]}))

    assert run(applier.migrate, target.config) == []
    assert target.applied_file() == {"applied": names}

    (target.migrations / ".applied").unlink()
    assert run(applier.migrate, target.config) == []
    assert target.applied_file() == {"applied": names}


def test_malformed_applied_file_is_reported_and_nothing_runs(target):
    target.make(SEED_V1)
    (target.migrations / ".applied").write_text('{"applied": ["001_')

    with pytest.raises(MigrationFileError, match=r"\.applied: not valid JSON"):
        run(applier.migrate, target.config)
    assert target.ledger() == [] and "lt_customers" not in target.tables()


# ---------------------------------------------------------------- adoption (§6.2)

def _compat(target, compat):
    """A writable copy of ../shared/compat/onr_demo pointed at the target database."""
    project = compat("onr_demo")
    return config_for(target.dsn, str(project.migrations))


ONR_NAMES = ["001_enum_invoicestatus_enum_userrole.json", "002_drop_role.json", "003_add_role.json"]


def test_adoption_of_an_empty_database_applies_what_applied_lists(target, compat):
    config = _compat(target, compat)

    assert run(applier.migrate, config) == ONR_NAMES
    assert target.ledger_names() == ONR_NAMES
    assert "'ADMIN'" in str(target.columns("lt_customers")["role"])
    assert ("customer", "lt_customers", "id") in target.foreign_keys("lt_invoices")
    if target.driver == "postgresql":
        assert target.fetch("SELECT udt_name FROM information_schema.columns WHERE table_schema = "
                            "current_schema() AND table_name = 'lt_customers' AND column_name = 'role'") \
            == [("userrole",)]
    assert json.loads(Path(config.migrations_dir, ".applied").read_text()) == {"applied": ONR_NAMES}


def test_adoption_of_a_database_with_the_tables_records_without_running(target, compat):
    config = _compat(target, compat)
    _as_the_earlier_tool_left_it(target, config)
    target.execute("INSERT INTO lt_customers (email, name) VALUES ('a@example.com', 'A')")

    assert run(applier.migrate, config) == []
    assert target.ledger() == [(name, sha256(Path(config.migrations_dir, name)), "applied")
                               for name in ONR_NAMES]
    assert target.fetch("SELECT email FROM lt_customers") == [("a@example.com",)]
    assert run(applier.migrate, config) == []


def test_adoption_refuses_a_database_holding_part_of_the_tables(target, compat):
    config = _compat(target, compat)
    target.execute('CREATE TABLE "lt_customers" (id INTEGER PRIMARY KEY)')

    with pytest.raises(DriftError, match="lt_invoices"):
        run(applier.migrate, config)
    assert "mf_migrations" not in target.tables()


def _as_the_earlier_tool_left_it(target, config) -> None:
    for _name, statements in run(applier.pending_sql, config):  # what the earlier tool had run
        target.execute_all(statements)


def test_adoption_reports_what_differs_as_drift_does(target, compat):
    """Adoption compares as mf db drift does: a column dropped by hand is a warning on its
    drift line, the migrations are recorded, and drift then says the same, word for word."""
    config = _compat(target, compat)
    _as_the_earlier_tool_left_it(target, config)
    target.execute('ALTER TABLE lt_invoices DROP COLUMN "text"')
    notices: list = []

    assert run(applier.migrate, config, notices=notices) == []
    assert target.ledger_names() == ONR_NAMES
    warned = [line.strip() for line in notices if line.startswith("  ")]
    assert len(warned) == 1 and warned[0].startswith("[-] column lt_invoices.text ") \
        and warned[0].endswith(" (missing from the database)"), notices
    assert [d.describe() for d in run(drift_check.detect, config).differences] == warned


def test_adoption_refuses_a_foreign_key_to_another_table_on_its_drift_line(pg_target, compat):
    config = _compat(pg_target, compat)
    _as_the_earlier_tool_left_it(pg_target, config)
    pg_target.execute("ALTER TABLE lt_invoices DROP CONSTRAINT lt_invoices_customer_fkey")
    pg_target.execute("ALTER TABLE lt_invoices ADD CONSTRAINT lt_invoices_customer_fkey FOREIGN KEY (customer)"
                      " REFERENCES lt_invoices (id)")

    with pytest.raises(DriftError) as refused:
        run(applier.migrate, config)
    assert ("\n  [~] foreign key lt_invoices.customer: -> lt_invoices(id) ON DELETE NO ACTION named "
            "lt_invoices_customer_fkey in the database, -> lt_customers(id) ON DELETE CASCADE named "
            "lt_invoices_customer_fkey expected\n") in str(refused.value)
    assert "mf_migrations" not in pg_target.tables()


def test_applied_naming_a_file_that_is_not_there_is_an_integrity_error(target, compat):
    config = _compat(target, compat)
    Path(config.migrations_dir, "003_add_role.json").unlink()

    with pytest.raises(IntegrityError, match="003_add_role.json"):
        run(applier.migrate, config)


# ---------------------------------------------------------------- locks

def test_lock_held_by_another_process_times_out(target):
    target.make(SEED_V1)
    config = dataclasses.replace(target.config, lock_timeout=0.3)
    if target.driver == "sqlite":
        holder = dbutil.sqlite_connect(target.dsn)
        holder.execute("CREATE TABLE IF NOT EXISTS other (x)")
        holder.execute("BEGIN IMMEDIATE")
    else:
        holder = dbutil.PostgresSession(target.dsn)
        assert holder.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        with pytest.raises(LockTimeoutError) as raised:
            run(applier.migrate, config)
        assert raised.value.exit_code == 3
        assert str(raised.value).startswith("another process kept the SQLite database" if target.driver == "sqlite"
                                            else "another mf run held the migration lock")
    finally:
        if target.driver == "sqlite":
            holder.execute("ROLLBACK")
            holder.close()
        else:
            holder.loop.run_until_complete(holder.connection.close())
    assert run(applier.migrate, config) == ["001_enum_invoicestatus_enum_userrole.json"]


def test_postgres_statements_wait_for_table_locks_only_as_long_as_configured(pg_target):
    target = pg_target
    target.make(SEED_V1)
    run(applier.migrate, target.config)
    name = target.make(SEED_V2)
    # One try: the retries and their pauses have tests of their own (test_lock_retries).
    config = dataclasses.replace(target.config, statement_lock_timeout="200ms", lock_retries=0)
    blocker = dbutil.PostgresSession(target.dsn)
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE lt_customers IN ACCESS SHARE MODE")  # a long-running reader
    try:
        with pytest.raises(DatabaseError, match="lock") as raised:
            run(applier.migrate, config)
        assert name in str(raised.value) and "200ms" in str(raised.value)
    finally:
        blocker.execute("ROLLBACK")
        blocker.loop.run_until_complete(blocker.connection.close())
    assert run(applier.migrate, config) == [name]


# ---------------------------------------------------------------- non-atomic migrations and resolve

def _make_non_atomic(path: Path) -> None:
    document = json.loads(path.read_text())
    document["atomic"] = False
    path.write_bytes(dumps(document))


UNIQUE_EMAIL_INDEX = SEED_V1.replace('    table = "lt_customers"',
                                     '    table = "lt_customers"\n'
                                     '    indexes = [Index(name, unique=true, name="ux_customer_name")]')


def test_non_atomic_migration_that_fails_blocks_until_resolved(pg_target):
    target = pg_target
    first = target.make(SEED_V1)
    run(applier.migrate, target.config)
    target.execute("INSERT INTO lt_customers (email, name) VALUES ('a@x', 'same'), ('b@x', 'same')")
    second = target.make(UNIQUE_EMAIL_INDEX)
    _make_non_atomic(target.path(second))
    assert "CONCURRENTLY" in " ".join(applier.migration_statements(target.config, 2)[1])

    with pytest.raises(DatabaseError, match="resolve 002") as raised:
        run(applier.migrate, target.config)
    assert "could not create unique index" in str(raised.value)
    assert target.ledger()[-1][::2] == (second, "started")
    assert run(applier.status, target.config)[-1].state == "started"
    with pytest.raises(UnresolvedMigrationError, match=f"{second}.*resolve 002 --applied"):
        run(applier.migrate, target.config)

    # The user undoes the part that ran (an invalid index), fixes the data, resolves.
    target.execute("DROP INDEX IF EXISTS ux_customer_name")
    target.execute("DELETE FROM lt_customers WHERE email = 'b@x'")
    assert "rolled back" in run(applier.resolve, target.config, 2, False)
    assert target.ledger_names() == [first]
    assert run(applier.migrate, target.config) == [second]
    assert target.ledger()[-1] == (second, sha256(target.path(second)), "applied")
    assert target.applied_file() == {"applied": [first, second]}


def test_resolve_applied_records_the_migration(target):
    first = target.make(SEED_V1)
    run(applier.migrate, target.config)
    second = target.make(SEED_V2)
    # As a run that died inside a non-atomic migration leaves it:
    target.execute("INSERT INTO mf_migrations (name, checksum, applied_at, duration, state) "
                   f"VALUES ('{second}', '{sha256(target.path(second))}', CURRENT_TIMESTAMP, 0, 'started')")
    target.execute('ALTER TABLE "lt_customers" ADD COLUMN "phone" VARCHAR(20)')
    with pytest.raises(UnresolvedMigrationError):
        run(applier.migrate, target.config)

    assert run(applier.resolve, target.config, 2, True) == f"Recorded {second} as applied."
    assert target.ledger()[-1] == (second, sha256(target.path(second)), "applied")
    assert target.applied_file() == {"applied": [first, second]}
    assert run(applier.migrate, target.config) == []
    with pytest.raises(ResolveError, match="nothing to resolve"):
        run(applier.resolve, target.config, 2, True)
    with pytest.raises(ResolveError, match="never started"):
        run(applier.resolve, target.config, 5, False)


def test_non_atomic_migration_on_sqlite_still_runs_in_one_transaction(sqlite_target):
    target = sqlite_target
    target.make(SEED_V1)
    run(applier.migrate, target.config)
    target.execute("INSERT INTO lt_customers (email, name) VALUES ('a@x', 'same'), ('b@x', 'same')")
    second = target.make(UNIQUE_EMAIL_INDEX)
    _make_non_atomic(target.path(second))

    with pytest.raises(DatabaseError, match="rolled back"):
        run(applier.migrate, target.config)
    assert [r[2] for r in target.ledger()] == ["applied"]  # no 'started' row left behind


# ---------------------------------------------------------------- SQLite rebuilds

def test_sqlite_rebuild_that_would_break_a_foreign_key_is_rolled_back(sqlite_target):
    target = sqlite_target
    target.make(SEED_V1)
    run(applier.migrate, target.config)
    connection = sqlite3.connect(target.dsn, isolation_level=None)  # foreign keys off: a bad row
    connection.execute("INSERT INTO lt_invoices (customer, total, status) VALUES (99, 1, 'DRAFT')")
    connection.close()
    rebuild = target.make(SEED_V1.replace("total = DecimalField(12, 2)", "total = DecimalField(14, 2)"))
    _name, statements = applier.migration_statements(target.config, 2)
    assert 'CREATE TEMP TABLE "_mf_old_lt_invoices" AS SELECT * FROM "lt_invoices"' in statements

    with pytest.raises(DatabaseError, match="foreign_key_check") as raised:
        run(applier.migrate, target.config)
    assert rebuild in str(raised.value)
    assert "_mf_old_lt_invoices" not in target.tables()
    assert target.fetch("SELECT count(*) FROM lt_invoices") == [(1,)]
    assert target.ledger_names() == ["001_enum_invoicestatus_enum_userrole.json"]
    assert target.fetch("PRAGMA foreign_keys") == [(0,)]  # a fresh connection's default, untouched


# ---------------------------------------------------------------- reset

def test_reset_drops_only_what_the_schema_owns(target):
    target.make(SEED_V1)
    target.make(SEED_V2)
    run(applier.migrate, target.config)
    target.execute("CREATE TABLE app_settings (key VARCHAR(20) PRIMARY KEY)")
    if target.driver == "postgresql":
        target.execute("CREATE TYPE mood AS ENUM ('ok')")

    dropped = run(applier.reset_database, target.config)

    assert dropped[:2] == ["table lt_invoices", "table lt_customers"]  # referencing table first
    assert dropped[-1] == "table mf_migrations"
    assert target.tables() == {"app_settings"}
    if target.driver == "postgresql":
        assert {"type invoicestatus", "type userrole"} <= set(dropped)
        assert target.fetch("SELECT typname FROM pg_type WHERE typtype = 'e' "
                            "AND typnamespace = current_schema()::regnamespace") == [("mood",)]
    assert run(applier.migrate, target.config) == ["001_enum_invoicestatus_enum_userrole.json",
                                                   "002_add_phone.json"]


def test_reset_refuses_when_a_table_it_does_not_own_depends_on_one(target):
    target.make(SEED_V1)
    run(applier.migrate, target.config)
    target.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES "lt_customers" (id) '
                   'ON DELETE CASCADE)')
    target.execute("INSERT INTO lt_customers (email, name) VALUES ('a@x', 'A')")
    target.execute("INSERT INTO notes (id, customer) VALUES (1, 1)")

    with pytest.raises(DatabaseError, match="notes") as raised:
        run(applier.reset_database, target.config)
    assert ("which mf does not own" if target.driver == "sqlite" else "mf never drops with CASCADE") \
        in str(raised.value)
    assert {"lt_customers", "lt_invoices", "mf_migrations", "notes"} <= target.tables()
    assert target.fetch("SELECT count(*) FROM notes") == [(1,)]


def test_reset_of_a_database_that_was_never_migrated(target):
    target.make(SEED_V1)
    assert run(applier.reset_database, target.config) == []


# ---------------------------------------------------------------- connections

def test_unreachable_database_is_a_database_error_with_the_password_masked(tmp_path):
    config = config_for("postgresql://app:hunter2@127.0.0.1:1/nowhere", str(tmp_path / "migrations"))
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001_x.json").write_bytes(dumps({"format": 1, "ops": []}))
    with pytest.raises(DatabaseError) as raised:
        run(applier.migrate, config)
    assert raised.value.exit_code == 3
    assert "hunter2" not in str(raised.value) and "app:***@" in str(raised.value)

"""`mf db reset` without --drop-db leaves a project that works, on both databases: the
files go, the ledger is emptied, the tables and their rows stay; the next makemigrations
writes a new 001 and migrate records it as applied once the catalog matches it."""
from __future__ import annotations

import json

import pytest

from bothdb import database  # noqa: F401 - the fixture
from seed import SEED, WITH_PHONE

FIRST = "001_enum_invoicestatus_enum_userrole.json"


def started_over(project, database, *texts):
    """A project migrated through ``texts``, with a customer row, then reset."""
    for text in texts:
        project.write_models(text)
        assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", env=database.env).code == 0
    database.query("INSERT INTO lt_customers (email, name, signup_at, is_active, role) "
                   "VALUES ('a@example.com', 'A', CURRENT_TIMESTAMP, true, 'ADMIN')")
    reset = project.run("db", "reset", env=database.env)
    assert reset.code == 0, reset
    return reset


def user_tables(database) -> dict:
    """The database's tables with their columns and row counts, the ledger left out."""
    return {k: v for k, v in database.snapshot().items() if k not in ("mf_migrations", "ledger rows")}


def test_reset_empties_the_ledger_and_the_next_001_is_recorded_not_run(project, database):
    reset = started_over(project, database, SEED, WITH_PHONE)
    assert "Emptied the ledger" in reset.out and "(2 row(s)); its tables stay" in reset.out
    assert project.migration_names() == [] and not (project.migrations / ".applied").exists()
    assert database.ledger() == [] and "mf_migrations" in database.tables()
    tables = user_tables(database)

    made = project.run("db", "makemigrations")
    assert made.code == 0 and project.migration_names() == [FIRST], made
    migrate = project.run("db", "migrate", env=database.env)
    assert migrate.code == 0, migrate
    assert (f"Recorded {FIRST} as applied without running it: the database already holds what it creates, "
            "and its catalog matches.") in migrate.out
    assert database.ledger() == [FIRST]
    assert user_tables(database) == tables  # the row is still there, nothing was created or dropped
    assert json.loads((project.migrations / ".applied").read_text()) == {"applied": [FIRST]}
    status = project.run("db", "status", "--check", env=database.env)
    assert (status.code, status.out.splitlines()[-1]) == (0, "Up to date."), status


def test_a_newer_migration_after_the_new_001_is_applied(project, database):
    started_over(project, database, SEED)
    assert project.run("db", "makemigrations").code == 0
    project.write_models(WITH_PHONE)
    assert project.run("db", "makemigrations").code == 0
    migrate = project.run("db", "migrate", env=database.env)
    assert migrate.code == 0, migrate
    assert f"Recorded {FIRST} as applied" in migrate.out and "002_add_phone.json" in migrate.out
    assert database.ledger() == [FIRST, "002_add_phone.json"]
    assert "phone" in database.columns("lt_customers")


def test_a_database_that_does_not_match_the_new_001_is_refused_and_left_alone(project, database):
    started_over(project, database, SEED)
    database.query("ALTER TABLE lt_customers ADD COLUMN nickname TEXT")  # a hand edit meanwhile
    assert project.run("db", "makemigrations").code == 0
    before, files = database.snapshot(), project.state()
    migrate = project.run("db", "migrate", env=database.env)
    assert migrate.code == 2, migrate
    assert "the ledger of" in migrate.err and "is empty, but the database already holds tables" in migrate.err
    assert "lt_customers.nickname" in migrate.err
    assert "Traceback" not in migrate.err
    assert database.snapshot() == before and project.state() == files
    as_json = project.run("db", "migrate", "--json", env=database.env)
    assert as_json.code == 2 and json.loads(as_json.out)["error"]["kind"] == "DriftError"


def test_reset_that_cannot_reach_the_database_removes_nothing(project):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    before = project.state()
    result = project.run("db", "reset", env={"MF_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"})
    assert result.code == 3, result
    assert result.err.startswith("error: ") and len(result.err.strip().splitlines()) == 1
    assert project.state() == before


def test_reset_json_names_the_forgotten_rows(project, database):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", env=database.env).code == 0
    result = project.run("db", "reset", "--json", env=database.env)
    assert result.code == 0, result
    assert json.loads(result.out) == {"dropped": [], "forgotten": [FIRST],
                                      "removed": [FIRST, "schema.json", ".applied"]}


def test_on_a_terminal_reset_says_what_it_removes_and_a_no_changes_nothing(project):
    import sqlite3

    from test_makemigrations import run_on_terminal

    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate").code == 0
    before = project.state()
    code, text = run_on_terminal(project, "db", "reset", answers=b"n\n")
    assert code == 0, text
    shown = project.path / "dev.db"
    assert (f"This will empty the ledger (mf_migrations) of {shown}, keeping its tables and rows, and remove the "
            "migration files, schema.json and .applied in migrations. Continue? [y/N]") in text
    assert "Reset cancelled; nothing changed." in text and project.state() == before

    code, text = run_on_terminal(project, "db", "reset", answers=b"y\n")
    assert code == 0 and f"✓ Emptied the ledger of {shown} (1 row(s)); its tables stay" in text, text
    with sqlite3.connect(project.path / "dev.db") as connection:
        assert connection.execute("SELECT count(*) FROM mf_migrations").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM lt_customers").fetchone() == (0,)  # still there


# ---------------------------------------------------------------- --drop-db: what the schema owns now

WITH_EVENTS = SEED + '''
enum Status { ON, OFF }

model Event extends Model {
    id = AutoField()
    title = CharField(50)
    state = EnumField(Status)
    customer = ForeignKey(Customer, on_delete=CASCADE)
}
'''
RENAMED = SEED.replace('table = "lt_customers"', 'table = "clients"')
MF_TABLES = {"lt_customers", "lt_invoices"}


def migrated_through(project, database, *texts) -> None:
    for text in texts:
        project.write_models(text)
        made = project.run("db", "makemigrations")
        assert made.code == 0, made
        migrate = project.run("db", "migrate", env=database.env)
        assert migrate.code == 0, migrate


def enum_types(database) -> set:
    if database.kind != "postgresql":
        return set()
    return {r[0] for r in database.query(
        "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE t.typtype = 'e' AND n.nspname = current_schema()")}


def views(database) -> set:
    if database.kind == "postgresql":
        return {r[0] for r in database.query("SELECT viewname FROM pg_views WHERE schemaname = current_schema()")}
    return {r[0] for r in database.query("SELECT name FROM sqlite_master WHERE type = 'view'")}


def expected_drops(database, tables) -> set:
    types = {"type invoicestatus", "type userrole"} if database.kind == "postgresql" else set()
    return {f"table {t}" for t in tables} | types | {"table mf_migrations"}


def test_a_table_and_enum_the_history_dropped_are_the_users_now_and_stay(project, database):
    """mf's Event model and Status enum were dropped long ago; the user has since made a
    table event and (PostgreSQL) a type status of their own, and a view over them."""
    migrated_through(project, database, WITH_EVENTS, SEED)
    assert "event" not in database.tables() and "status" not in enum_types(database)
    if database.kind == "postgresql":
        database.query("CREATE TYPE status AS ENUM ('open', 'closed')")
        database.query("CREATE TABLE event (id integer PRIMARY KEY, state status, note text)")
        database.query("INSERT INTO event VALUES (1, 'open', 'kept'), (2, 'closed', 'kept too')")
    else:
        database.query("CREATE TABLE event (id integer PRIMARY KEY, state text, note text)")
        database.query("INSERT INTO event VALUES (1, 'open', 'kept'), (2, 'closed', 'kept too')")
    database.query("CREATE VIEW open_events AS SELECT id, note FROM event WHERE state = 'open'")

    listed = project.run("db", "reset", "--drop-db", "--json", env=database.env)  # off a terminal: refused
    assert listed.code == 2, listed
    document = json.loads(listed.out)
    assert set(document["would_drop"]) == expected_drops(database, MF_TABLES)
    assert "needs --yes" in document["error"]["message"]

    result = project.run("db", "reset", "--drop-db", "--yes", "--json", env=database.env)
    assert result.code == 0, result
    dropped = json.loads(result.out)["dropped"]
    assert set(dropped) == expected_drops(database, MF_TABLES) and len(dropped) == len(set(dropped))
    assert dropped == document["would_drop"]
    assert database.tables() == ["event"]
    assert database.query("SELECT id, note FROM event ORDER BY id") == [(1, "kept"), (2, "kept too")]
    assert views(database) == {"open_events"}
    assert database.query("SELECT id FROM open_events") == [(1,)]
    if database.kind == "postgresql":
        assert enum_types(database) == {"status"}
        labels = database.query("SELECT enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
                                "WHERE t.typname = 'status' ORDER BY e.enumsortorder")
        assert labels == [("open",), ("closed",)]


def test_a_renamed_tables_old_name_is_the_users_now_and_stays(project, database):
    """mf's lt_customers became clients; the user has since made a table lt_customers."""
    migrated_through(project, database, SEED, RENAMED)
    assert "clients" in database.tables() and "lt_customers" not in database.tables()
    database.query("INSERT INTO clients (email, name, signup_at, is_active, role) "
                   "VALUES ('a@example.com', 'A', CURRENT_TIMESTAMP, true, 'ADMIN')")
    database.query("CREATE TABLE lt_customers (id integer PRIMARY KEY, email text)")
    database.query("INSERT INTO lt_customers VALUES (7, 'mine@example.com')")

    result = project.run("db", "reset", "--drop-db", "--yes", env=database.env)
    assert result.code == 0, result
    assert "table clients" in result.out and "table lt_invoices" in result.out
    assert "table lt_customers" not in result.out
    assert database.tables() == ["lt_customers"]
    assert database.query("SELECT id, email FROM lt_customers") == [(7, "mine@example.com")]
    assert enum_types(database) == set()
    assert project.migration_names() == []


def drops_in_parts(project) -> None:
    """A table at a time: on PostgreSQL each drop in a transaction of its own."""
    config = project.path / "language_config.yaml"
    config.write_text(config.read_text() + "max_tables_per_migration: 1\n")


def test_a_reset_larger_than_one_transaction_holds_drops_in_parts(project, database):
    migrated_through(project, database, SEED)
    drops_in_parts(project)
    database.query("CREATE TABLE notes (id integer PRIMARY KEY, text text)")
    listed = json.loads(project.run("db", "reset", "--drop-db", "--json", env=database.env).out)["would_drop"]
    result = project.run("db", "reset", "--drop-db", "--yes", "--json", env=database.env)
    assert result.code == 0, result
    assert json.loads(result.out)["dropped"] == listed
    assert set(listed) == expected_drops(database, MF_TABLES)
    assert database.tables() == ["notes"] and enum_types(database) == set()
    assert project.migration_names() == []


@pytest.mark.parametrize("in_parts", [False, True], ids=["one transaction", "in parts"])
def test_a_users_table_that_references_an_owned_one_stops_the_reset(project, database, in_parts):
    migrated_through(project, database, SEED)
    if in_parts:
        drops_in_parts(project)
    database.query("CREATE TABLE notes (id integer PRIMARY KEY, customer integer REFERENCES lt_customers (id))")
    before, files = database.snapshot(), project.state()
    result = project.run("db", "reset", "--drop-db", "--yes", env=database.env)
    assert result.code == 3, result
    assert result.err.startswith("error: ") and len(result.err.strip().splitlines()) == 1
    assert "notes" in result.err and "nothing was dropped" in result.err.lower()
    assert database.snapshot() == before and project.state() == files


def test_pending_migrations_own_nothing_yet(project, database):
    """A table of the user's whose name a pending (never applied) migration would create."""
    migrated_through(project, database, SEED)
    project.write_models(WITH_EVENTS)
    assert project.run("db", "makemigrations").code == 0
    database.query("CREATE TABLE event (id integer PRIMARY KEY)")
    result = project.run("db", "reset", "--drop-db", "--yes", "--json", env=database.env)
    assert result.code == 0, result
    assert set(json.loads(result.out)["dropped"]) == expected_drops(database, MF_TABLES)
    assert database.tables() == ["event"]


def test_an_edited_applied_file_stops_the_reset(project, database):
    migrated_through(project, database, SEED)
    first = project.migrations / FIRST
    first.write_text(first.read_text().replace("lt_invoices", "lt_bills"))
    before, files = database.snapshot(), project.state()
    result = project.run("db", "reset", "--drop-db", "--yes", env=database.env)
    assert result.code == 2, result
    assert f"cannot tell which tables mf owns, so nothing was dropped: {FIRST} was edited" in result.err
    assert database.snapshot() == before and project.state() == files


def test_reset_drops_nothing_when_the_database_changed_since_the_list_was_shown(project, database):
    import anyio
    import pytest

    import mfcore
    from mfcore import api

    migrated_through(project, database, SEED)
    config = api.resolve_config(project.path / "language_config.yaml", dsn=database.env["MF_DATABASE_URL"])
    shown = anyio.run(lambda: mfcore.reset_plan(config))
    assert set(shown) == expected_drops(database, MF_TABLES)
    migrated_through(project, database, RENAMED)  # meanwhile, another deploy renamed a table
    before, files = database.snapshot(), project.state()
    with pytest.raises(mfcore.DriftError, match="changed since the list of what to drop was made"):
        anyio.run(lambda: mfcore.reset(config, drop_database=True, expected=shown))
    assert database.snapshot() == before and project.state() == files


def test_on_a_terminal_drop_db_lists_what_it_drops_before_asking(project, database):
    from test_makemigrations import run_on_terminal

    migrated_through(project, database, WITH_EVENTS, SEED)
    database.query("CREATE TABLE event (id integer PRIMARY KEY)")
    before, files = database.snapshot(), project.state()
    code, text = run_on_terminal(project, "db", "reset", "--drop-db", answers=b"n\n", env=database.env)
    assert code == 0, text
    listing = text[text.index("This will drop, in "):text.index("Continue? [y/N]")]
    shown = {line.strip() for line in listing.splitlines()[1:] if line.startswith("  ")}
    assert shown == expected_drops(database, MF_TABLES), text
    assert "and nothing else in the database" in listing
    assert "Reset cancelled; nothing changed." in text
    assert database.snapshot() == before and project.state() == files

    code, text = run_on_terminal(project, "db", "reset", "--drop-db", answers=b"y\n", env=database.env)
    assert code == 0 and f"✓ Dropped {len(shown)} database object(s)" in text, text
    assert database.tables() == ["event"]

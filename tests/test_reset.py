"""`mf db reset` without --drop-db leaves a project that works, on both databases: the
files go, the ledger is emptied, the tables and their rows stay; the next makemigrations
writes a new 001 and migrate records it as applied once the catalog matches it."""
from __future__ import annotations

import json

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

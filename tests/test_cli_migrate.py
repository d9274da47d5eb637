"""`mf db migrate`, `status`, `sql` and `reset` from the user's side, on both databases."""
from __future__ import annotations

import json
import sqlite3

import pytest

import dbutil
from seed import SEED, WITH_DISCOUNT, WITH_PHONE
from test_makemigrations import run_on_terminal


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, project, tmp_path):
    """(environment for mf, a function listing the tables in the database)."""
    if request.param == "sqlite":
        path = project.path / "dev.db"

        def tables():
            if not path.exists():
                return set()
            with sqlite3.connect(path) as connection:
                return {r[0] for r in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        return {}, tables

    url = request.getfixturevalue("pg_url")
    session = dbutil.PostgresSession(url)
    schema = session.fresh_schema()
    scoped = url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"

    def tables():
        return {r[0] for r in session.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)}
    request.addfinalizer(session.close)
    return {"MF_DATABASE_URL": scoped}, tables


def test_the_seed_scenario_applies_in_order_with_the_exact_output(project, database):
    env, tables = database
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    first = project.run("db", "migrate", env=env)
    assert first.out == "Applied 1 migration(s):\n  001_enum_invoicestatus_enum_userrole.json\n", first

    project.write_models(WITH_PHONE)
    project.run("db", "makemigrations")
    project.write_models(WITH_DISCOUNT)
    project.run("db", "makemigrations")
    result = project.run("db", "migrate", env=env)
    assert result.code == 0, result
    assert result.out == ("Applied 2 migration(s):\n"
                          "  002_add_phone.json\n"
                          "  003_add_discount_cents.json\n")
    assert json.loads((project.migrations / ".applied").read_text()) == {"applied": [
        "001_enum_invoicestatus_enum_userrole.json", "002_add_phone.json", "003_add_discount_cents.json"]}
    assert {"lt_customers", "lt_invoices", "mf_migrations"} <= tables()

    again = project.run("db", "migrate", env=env)
    assert (again.code, again.out) == (0, "No unapplied migrations.\n")

    status = project.run("db", "status", env=env)
    assert status.code == 0 and status.out.count("[X]") == 3 and "Up to date." in status.out

    refused = project.run("db", "reset", "--drop-db", env=env)
    assert refused.code == 2 and "needs --yes" in refused.err
    assert project.migration_names() and "lt_customers" in tables()

    reset = project.run("db", "reset", "--drop-db", "--yes", env=env)
    assert reset.code == 0, reset
    assert tables() == set()
    assert project.migration_names() == []
    assert not (project.migrations / "schema.json").exists()
    assert not (project.migrations / ".applied").exists()


def test_marks_on_a_terminal(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    code, output = run_on_terminal(project, "db", "migrate")
    assert code == 0
    assert "✓ Applied 1 migration(s):\n  ✓ 001_enum_invoicestatus_enum_userrole.json" in output


def test_no_color_keeps_marks_off_a_terminal_too(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    result = project.run("db", "migrate", env={"NO_COLOR": "1"})
    assert "✓" not in result.out and "\033[" not in result.out


def test_dry_run_prints_sql_and_changes_nothing(project, database):
    env, tables = database
    project.write_models(SEED)
    project.run("db", "makemigrations")
    before = project.state()
    result = project.run("db", "migrate", "--dry-run", env=env)
    assert result.code == 0
    assert result.out.startswith("-- 001_enum_invoicestatus_enum_userrole.json\n")
    assert 'CREATE TABLE "lt_customers"' in result.out
    assert project.state() == before
    assert tables() == set()


def test_sql_prints_a_migration_without_a_database(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    result = project.run("db", "sql", "001")
    assert result.code == 0
    assert result.out.startswith("-- 001_enum_invoicestatus_enum_userrole.json (sqlite)\n")
    assert "\"role\" TEXT NOT NULL DEFAULT 'ADMIN'" in result.out
    assert not (project.path / "dev.db").exists()
    postgres = project.run("db", "sql", "1", env={"MF_DATABASE_URL": "postgresql://u:secret@nowhere/db"})
    assert "CREATE TYPE \"userrole\" AS ENUM ('ADMIN', 'CUSTOMER', 'STAFF')" in postgres.out


def test_a_failing_migration_exits_3_and_keeps_the_earlier_ones(project, database):
    env, tables = database
    project.write_models(SEED)
    project.run("db", "makemigrations")
    project.write_models(WITH_PHONE)
    project.run("db", "makemigrations")
    # A hand-edited pending file whose second operation renames a table that does not exist.
    path = project.migrations / "002_add_phone.json"
    document = json.loads(path.read_text())
    document["ops"].append({"op": "rename_model", "old_name": "Ghost", "new_name": "Spirit",
                            "old_table": "ix_broken", "new_table": "spirits"})
    path.write_text(json.dumps(document))
    result = project.run("db", "migrate", env=env)
    assert result.code == 3, result
    assert "002_add_phone.json" in result.err and "ix_broken" in result.err
    assert "Traceback" not in result.err
    assert json.loads((project.migrations / ".applied").read_text()) == {
        "applied": ["001_enum_invoicestatus_enum_userrole.json"]}
    assert "lt_customers" in tables()


def test_an_edited_applied_file_stops_migrate(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    project.run("db", "migrate")
    path = project.migrations / "001_enum_invoicestatus_enum_userrole.json"
    path.write_text(path.read_text().replace("lt_customers", "lt_clients"))
    project.write_models(WITH_PHONE.replace('"lt_customers"', '"lt_clients"'))
    result = project.run("db", "migrate")
    assert result.code == 2 and "001_enum_invoicestatus_enum_userrole.json" in result.err
    status = project.run("db", "status")
    assert "edited" in status.out


def test_an_unreachable_database_exits_3_with_the_password_masked(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    before = project.state()
    result = project.run("db", "migrate", env={"MF_DATABASE_URL": "postgresql://app:hunter2@127.0.0.1:1/shop"})
    assert result.code == 3, result
    assert "postgresql://app:***@127.0.0.1:1/shop" in result.err
    assert "hunter2" not in result.err + result.out and "Traceback" not in result.err
    assert project.state() == before


def test_dry_run_of_an_unreachable_database_plans_from_applied_and_says_so(project, pg_url, pg_session):
    schema = pg_session.fresh_schema()
    reachable = {"MF_DATABASE_URL": f"{pg_url}?search_path={schema}"}
    unreachable = {"MF_DATABASE_URL": "postgresql://app:hunter2@127.0.0.1:1/shop"}
    project.write_models(SEED)
    project.run("db", "makemigrations")
    first = project.migration_names()[0]
    assert project.run("db", "migrate", env=reachable).code == 0
    project.write_models(WITH_PHONE)
    project.run("db", "makemigrations")
    second = project.migration_names()[1]
    reference = project.run("db", "migrate", "--dry-run", env=reachable)
    before = project.state()

    offline = project.run("db", "migrate", "--dry-run", env=unreachable)
    assert offline.code == 0, offline
    note, rest = offline.out.split("\n", 1)
    assert note == ("-- postgresql://app:***@127.0.0.1:1/shop is unreachable, so this plan comes from "
                    "migrations/.applied, not from its ledger")
    assert rest == reference.out  # the same plan as the database's own: only 002
    assert f"-- {second}" in rest and first not in rest
    assert "hunter2" not in offline.out + offline.err

    as_json = json.loads(project.run("db", "migrate", "--dry-run", "--json", env=unreachable).out)
    assert [entry["name"] for entry in as_json["pending"]] == [second]
    assert "cannot connect to postgresql://app:***@127.0.0.1:1/shop" in as_json["offline"]
    assert json.loads(project.run("db", "migrate", "--dry-run", "--json", env=reachable).out)["offline"] is None

    # Without .applied there is nothing to plan from: the connection error, exit 3.
    (project.migrations / ".applied").unlink()
    without = project.run("db", "migrate", "--dry-run", env=unreachable)
    assert without.code == 3 and without.out == "" and "cannot connect" in without.err, without
    assert {k: v for k, v in project.state().items() if not k.endswith(".applied")} == \
        {k: v for k, v in before.items() if not k.endswith(".applied")}


def test_dry_run_to_an_older_migration_of_an_unreachable_database_plans_the_undo_from_applied(
        project, pg_url, pg_session):
    schema = pg_session.fresh_schema()
    reachable = {"MF_DATABASE_URL": f"{pg_url}?search_path={schema}"}
    unreachable = {"MF_DATABASE_URL": "postgresql://app:hunter2@127.0.0.1:1/shop"}
    project.write_models(SEED)
    project.run("db", "makemigrations")
    project.write_models(WITH_PHONE)
    project.run("db", "makemigrations")
    first, second = project.migration_names()
    assert project.run("db", "migrate", env=reachable).code == 0
    reference = project.run("db", "migrate", "--dry-run", "--to", "001", env=reachable)
    assert f"-- undo {second}" in reference.out
    before = project.state()

    offline = project.run("db", "migrate", "--dry-run", "--to", "001", env=unreachable)
    assert offline.code == 0, offline
    note, rest = offline.out.split("\n", 1)
    assert note == ("-- postgresql://app:***@127.0.0.1:1/shop is unreachable, so this plan comes from "
                    "migrations/.applied, not from its ledger")
    assert rest == reference.out  # the same undo of 002 as the database's own plan
    assert f"undo {first}" not in rest and "hunter2" not in offline.out + offline.err

    as_json = json.loads(project.run("db", "migrate", "--dry-run", "--to", "001", "--json", env=unreachable).out)
    assert [entry["name"] for entry in as_json["rollback"]] == [second] and as_json["pending"] == []
    assert "cannot connect to postgresql://app:***@127.0.0.1:1/shop" in as_json["offline"]

    # rollback --dry-run plans the same way.
    undo = project.run("db", "rollback", "--dry-run", env=unreachable)
    assert undo.code == 0 and undo.out == offline.out, undo
    as_json = json.loads(project.run("db", "rollback", "--dry-run", "--json", env=unreachable).out)
    assert [entry["name"] for entry in as_json["rollback"]] == [second] and as_json["offline"]
    assert json.loads(project.run("db", "rollback", "--dry-run", "--json", env=reachable).out)["offline"] is None
    assert project.state() == before

    # Without .applied: the connection error, exit 3, nothing printed on stdout.
    (project.migrations / ".applied").unlink()
    without = project.run("db", "migrate", "--dry-run", "--to", "001", env=unreachable)
    assert without.code == 3 and without.out == "" and "cannot connect" in without.err, without


def test_a_malformed_pending_file_applies_nothing(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    project.write_models(WITH_PHONE)
    project.run("db", "makemigrations")
    (project.migrations / "002_add_phone.json").write_text('{"format": 1, "ops": [{"op": "add_colum"}]}')
    before = project.state()
    result = project.run("db", "migrate")
    assert result.code == 2, result
    assert "002_add_phone.json" in result.err and "unknown operation 'add_colum'" in result.err
    assert project.state() == before  # not even dev.db was created


def test_plain_reset_off_a_terminal_removes_the_files_and_keeps_the_database(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    project.run("db", "migrate")
    result = project.run("db", "reset")
    assert result.code == 0, result
    assert project.migration_names() == [] and not (project.migrations / "schema.json").exists()
    with sqlite3.connect(project.path / "dev.db") as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"lt_customers", "lt_invoices"} <= tables


def test_resolve_of_a_migration_that_is_not_half_applied_exits_2_with_one_sentence(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    assert project.run("db", "migrate").code == 0

    applied = project.run("db", "resolve", "001", "--applied")
    assert applied.code == 2, applied
    assert applied.err.strip() == ("error: 001_enum_invoicestatus_enum_userrole.json is applied, not "
                                   "unresolved; nothing to resolve")
    never = project.run("db", "resolve", "002", "--rolled-back")
    assert never.code == 2 and "migration 002 was never started on this database" in never.err, never
    assert "Traceback" not in applied.err + never.err


def test_status_and_reset_speak_json(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    project.run("db", "migrate")

    status = json.loads(project.run("db", "status", "--json").out)
    assert [(m["name"], m["applied"], m["state"]) for m in status["migrations"]] == [
        ("001_enum_invoicestatus_enum_userrole.json", True, "applied")]
    reset = project.run("db", "reset", "--drop-db", "--yes", "--json")
    assert reset.code == 0, reset
    document = json.loads(reset.out)
    assert {"table lt_customers", "table lt_invoices"} <= set(document["dropped"])
    assert sorted(document["removed"]) == [".applied", "001_enum_invoicestatus_enum_userrole.json", "schema.json"]

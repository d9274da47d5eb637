"""`mf db rollback`, `migrate --to` below the applied and `sql --reverse`, on both databases:
undo newest first, each migration with its ledger row, refusals that change nothing."""
from __future__ import annotations

import json
import sqlite3

import pytest

import dbutil
from seed import SEED, WITH_DISCOUNT, WITH_PHONE

WITHOUT_PHONE_AGAIN = WITH_DISCOUNT.replace("    phone = CharField(max_length=20, null=true)\n", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, project):
    """(environment for mf, a function running one query and returning its rows)."""
    if request.param == "sqlite":
        path = project.path / "dev.db"

        def query(sql, *args):
            if not path.exists():
                return []
            with sqlite3.connect(path) as connection:
                return [tuple(r) for r in connection.execute(sql.replace("$1", "?"), args)]
        query.tables = ("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                        "ORDER BY 1")
        query.columns = "SELECT name FROM pragma_table_info($1) ORDER BY 1"
        return {}, query

    url = request.getfixturevalue("pg_url")
    session = dbutil.PostgresSession(url)
    schema = session.fresh_schema()
    scoped = url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"

    def query(sql, *args):
        session.execute(f"SET search_path TO {schema}")
        return [tuple(r) for r in session.fetch(sql, *args)]
    query.tables = f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' ORDER BY 1"
    query.columns = (f"SELECT column_name FROM information_schema.columns WHERE table_schema = '{schema}' "
                     "AND table_name = $1 ORDER BY 1")
    request.addfinalizer(session.close)
    return {"MF_DATABASE_URL": scoped}, query


def seeded(project, env, *texts):
    for text in texts:
        project.write_models(text)
        assert project.run("db", "makemigrations").code == 0
    result = project.run("db", "migrate", env=env)
    assert result.code == 0, result


def ledger(query):
    return [r[0] for r in query("SELECT name FROM mf_migrations ORDER BY name")]


def applied_file(project):
    return json.loads((project.migrations / ".applied").read_text())["applied"]


def columns(query, table):
    return [r[0] for r in query(query.columns, table)]


def test_rollback_undoes_the_newest_and_keeps_the_rows(project, database):
    env, query = database
    seeded(project, env, SEED, WITH_PHONE)
    query("INSERT INTO lt_customers (email, name, signup_at, is_active, role, phone) "
          "VALUES ('a@example.com', 'A', CURRENT_TIMESTAMP, true, 'ADMIN', '555')")
    result = project.run("db", "rollback", env=env)
    assert (result.code, result.out) == (0, "Rolled back 1 migration(s):\n  002_add_phone.json\n"), result
    assert "phone" not in columns(query, "lt_customers")
    assert query("SELECT email FROM lt_customers") == [("a@example.com",)]
    assert ledger(query) == ["001_enum_invoicestatus_enum_userrole.json"]
    assert applied_file(project) == ["001_enum_invoicestatus_enum_userrole.json"]
    again = project.run("db", "migrate", env=env)
    assert again.out == "Applied 1 migration(s):\n  002_add_phone.json\n", again
    assert "phone" in columns(query, "lt_customers")


def test_migrate_to_below_the_applied_undoes_instead_of_saying_nothing_to_do(project, database):
    env, query = database
    seeded(project, env, SEED, WITH_PHONE, WITH_DISCOUNT)
    dry = project.run("db", "migrate", "--to", "001", "--dry-run", env=env)
    assert dry.code == 0 and "No unapplied migrations." not in dry.out, dry
    assert dry.out.index("-- undo 003_add_discount_cents.json") < dry.out.index("-- undo 002_add_phone.json")
    assert "DROP COLUMN" in dry.out or "CREATE TABLE" in dry.out
    assert len(ledger(query)) == 3  # the dry run changed nothing
    result = project.run("db", "migrate", "--to", "001", env=env)
    assert result.code == 0 and "No unapplied migrations." not in result.out, result
    assert result.out == ("Rolled back 2 migration(s):\n  003_add_discount_cents.json\n  002_add_phone.json\n")
    assert ledger(query) == ["001_enum_invoicestatus_enum_userrole.json"]
    up = project.run("db", "migrate", "--to", "002", env=env)
    assert up.out == "Applied 1 migration(s):\n  002_add_phone.json\n", up


def test_rollback_to_zero_leaves_only_the_ledger(project, database):
    env, query = database
    seeded(project, env, SEED, WITH_PHONE, WITH_DISCOUNT)
    result = project.run("db", "rollback", "--to", "000", env=env)
    assert result.code == 0, result
    assert [r[0] for r in query(query.tables)] == ["mf_migrations"]
    assert ledger(query) == [] and applied_file(project) == []
    if env:  # PostgreSQL: the enum types are gone too
        assert query("SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                     "WHERE t.typtype = 'e' AND n.nspname = current_schema()") == []
    nothing = project.run("db", "rollback", env=env)
    assert (nothing.code, nothing.out) == (0, "No applied migrations to roll back.\n")


def test_a_dropped_column_coming_back_empty_is_refused_off_a_terminal(project, database):
    env, query = database
    seeded(project, env, SEED, WITH_PHONE, WITH_DISCOUNT, WITHOUT_PHONE_AGAIN)
    before = ledger(query)
    refused = project.run("db", "rollback", env=env)
    assert refused.code == 2, refused
    assert refused.err.startswith("error: undoing would lose data: 004_drop_phone.json: column "
                                  "lt_customers.phone comes back empty. Nothing was undone; pass "
                                  "--allow-data-loss"), refused
    assert ledger(query) == before and "phone" not in columns(query, "lt_customers")
    refused_too = project.run("db", "migrate", "--to", "002", env=env)
    assert refused_too.code == 2 and "--allow-data-loss" in refused_too.err, refused_too
    assert ledger(query) == before
    allowed = project.run("db", "rollback", "--allow-data-loss", env=env)
    assert allowed.code == 0, allowed
    assert "phone" in columns(query, "lt_customers")


def test_sql_reverse_prints_the_undo_without_a_database(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    project.write_models(WITH_PHONE)
    project.run("db", "makemigrations")
    result = project.run("db", "sql", "002", "--reverse")
    assert result.code == 0, result
    assert result.out.startswith("-- undo 002_add_phone.json (sqlite)\n")
    assert 'DROP COLUMN "phone"' in result.out
    assert not (project.path / "dev.db").exists()


def test_rollback_arguments_are_checked(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    both = project.run("db", "rollback", "2", "--to", "001")
    assert both.code == 2 and "not both" in both.err, both
    zero = project.run("db", "rollback", "0")
    assert zero.code == 2, zero
    unknown = project.run("db", "rollback", "--to", "007")
    assert unknown.code == 2 and "no migration numbered 007" in unknown.err, unknown


def test_migrate_to_below_the_applied_with_fake_only_removes_ledger_rows(project, database):
    env, query = database
    seeded(project, env, SEED, WITH_PHONE, WITH_DISCOUNT)
    tables = query(query.tables)
    customers, invoices = columns(query, "lt_customers"), columns(query, "lt_invoices")
    assert "phone" in customers and "discount_cents" in invoices
    result = project.run("db", "migrate", "--to", "001", "--fake", env=env)
    assert result.code == 0 and "No unapplied migrations." not in result.out, result
    assert result.out == ("Faked rollback of 2 migration(s) (ledger rows removed, nothing run):\n"
                          "  003_add_discount_cents.json\n  002_add_phone.json\n"), result
    assert query(query.tables) == tables  # no undo ran: every table and column stays
    assert (columns(query, "lt_customers"), columns(query, "lt_invoices")) == (customers, invoices)
    assert ledger(query) == ["001_enum_invoicestatus_enum_userrole.json"]
    assert applied_file(project) == ["001_enum_invoicestatus_enum_userrole.json"]
    again = project.run("db", "migrate", "--fake", env=env)  # recorded again, nothing run either
    assert again.out == "Faked 2 migration(s):\n  002_add_phone.json\n  003_add_discount_cents.json\n", again
    assert len(ledger(query)) == 3 and len(applied_file(project)) == 3


def test_rollback_fake_loses_nothing_and_still_checks_the_applied_files(project, database):
    env, query = database
    seeded(project, env, SEED, WITH_PHONE, WITH_DISCOUNT, WITHOUT_PHONE_AGAIN)
    query("INSERT INTO lt_customers (email, name, signup_at, is_active, role) "
          "VALUES ('a@example.com', 'A', CURRENT_TIMESTAMP, true, 'ADMIN')")
    newest = project.migration_names()[-1]
    document = json.loads((project.migrations / newest).read_text())
    assert project.run("db", "rollback", "--fake", env=env).code == 0  # no --allow-data-loss needed: nothing runs
    assert "phone" not in columns(query, "lt_customers") and len(ledger(query)) == 3
    assert project.run("db", "migrate", "--fake", env=env).code == 0
    # An applied file edited since stops a fake rollback as it stops every run.
    document["ops"].append({"op": "run_sql", "sql": "UPDATE lt_customers SET name = 'B'", "reverse_sql": ""})
    (project.migrations / newest).write_text(json.dumps(document))
    edited = project.run("db", "rollback", "--fake", env=env)
    assert edited.code == 2 and f"{newest} was edited after it was applied" in edited.err, edited
    assert len(ledger(query)) == 4 and applied_file(project)[-1] == newest
    assert query("SELECT name FROM lt_customers") == [("A",)]


def test_rollback_fake_removes_the_rows_of_migrations_that_cannot_be_undone(project, database):
    env, query = database
    seeded(project, env, SEED)
    project.write_models(WITH_PHONE)
    assert project.run("db", "makemigrations").code == 0
    [second] = project.migrations.glob("002_*.json")
    document = json.loads(second.read_text())
    document["ops"].append({"op": "run_sql", "sql": "UPDATE lt_customers SET phone = '1'"})
    second.write_text(json.dumps(document))
    assert project.run("db", "migrate", env=env).code == 0
    refused = project.run("db", "rollback", env=env)
    assert refused.code == 2 and "has no reverse_sql" in refused.err, refused
    faked = project.run("db", "rollback", "--fake", env=env)
    assert faked.code == 0 and faked.out.endswith(f"  {second.name}\n"), faked
    assert "phone" in columns(query, "lt_customers")
    assert ledger(query) == ["001_enum_invoicestatus_enum_userrole.json"]


@pytest.mark.parametrize("command", [("rollback", "--fake", "--dry-run"),
                                     ("migrate", "--to", "001", "--fake", "--dry-run"),
                                     ("rollback", "--fake", "--to", "007")])
def test_fake_rollback_refusals_change_nothing(project, database, command):
    env, query = database
    seeded(project, env, SEED, WITH_PHONE)
    before = (ledger(query), columns(query, "lt_customers"), project.state())
    refused = project.run("db", *command, env=env)
    assert refused.code == 2, refused
    if "--dry-run" in command:
        assert refused.err == "error: --fake runs no SQL, so --dry-run has none to show; leave one of them out\n"
    else:
        assert "no migration numbered 007" in refused.err, refused
    assert refused.out == ""
    assert (ledger(query), columns(query, "lt_customers"), project.state()) == before


def test_on_a_terminal_each_loss_is_shown_and_only_a_yes_undoes(project, database, monkeypatch):
    from test_makemigrations import run_on_terminal

    env, query = database
    seeded(project, env, SEED, WITH_PHONE, WITH_DISCOUNT, WITHOUT_PHONE_AGAIN)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = (ledger(query), columns(query, "lt_customers"), project.state())
    code, output = run_on_terminal(project, "db", "rollback", answers=b"n\n")
    assert code == 2, output
    assert "⚠ 004_drop_phone.json: column lt_customers.phone comes back empty" in output, output
    assert "Undo anyway? [y/N]" in output and "Nothing was undone." in output, output
    assert (ledger(query), columns(query, "lt_customers"), project.state()) == before
    code, output = run_on_terminal(project, "db", "rollback", answers=b"y\n")
    assert code == 0 and "004_drop_phone.json" in output, output
    assert "phone" in columns(query, "lt_customers") and len(ledger(query)) == 3


PALETTE = """enum Color { %s }
model Swatch extends Model {
    id = AutoField()
    name = CharField(20)
%s}
"""


def test_enum_values_a_migration_added_go_after_the_columns_that_use_them(project, database):
    env, query = database
    project.write_models(PALETTE % ("RED, GREEN", "    tone = EnumField(Color, default=Color.RED)\n"))
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", env=env).code == 0
    query("INSERT INTO swatch (name, tone) VALUES ('leaf', 'GREEN')")
    # One migration takes RED away with the column whose default it was, and adds BLUE
    # with a column whose default it is: its undo needs RED back before that column
    # returns, and BLUE gone only after its column went.
    project.write_models(PALETTE % ("GREEN, BLUE", "    shade = EnumField(Color, default=Color.BLUE)\n"))
    assert project.run("db", "makemigrations", "--no-input").code == 0
    assert project.run("db", "migrate", env=env).code == 0
    assert query("SELECT name, shade FROM swatch") == [("leaf", "BLUE")]
    undone = project.run("db", "rollback", "--allow-data-loss", env=env)
    assert undone.code == 0, undone
    assert columns(query, "swatch") == ["id", "name", "tone"]
    assert query("SELECT name, tone FROM swatch") == [("leaf", "RED")]  # the column came back with its default
    assert len(ledger(query)) == 1
    query("UPDATE swatch SET tone = 'GREEN'")  # RED goes again: no row may use it
    assert project.run("db", "migrate", env=env).code == 0
    assert query("SELECT name, shade FROM swatch") == [("leaf", "BLUE")]

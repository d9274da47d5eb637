"""Projects in the earlier single-plan format (compat projects customer_app, orm_demo),
carried over once by the first makemigrations or migrate. Always on copies."""
from __future__ import annotations

import hashlib
import json
import sqlite3

import orjson

import dbutil
from conftest import copy_compat
from mfcore.store import load_history
from test_branches import databases, ledger, same_catalog  # noqa: F401 (databases: a fixture)


def db_digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_customer_app_is_carried_over_and_its_database_adopted(compat):
    app = compat("customer_app")
    database = app.path / "customers.db"
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO users (name, email) VALUES ('Ann', 'ann@example.com')")

    result = app.run("db", "migrate")
    assert result.code == 0, result
    assert "Carried this project over from the earlier single-plan format: plan.initial.json became " \
           "001_create_user.json" in result.out
    # The differences, as mf db drift words them: reported, and the adoption goes on.
    assert "  [-] column users.whatsapp VARCHAR(120) NOT NULL (missing from the database)\n" in result.out
    assert app.migration_names() == ["001_create_user.json"]
    assert json.loads((app.migrations / ".applied").read_text()) == {"applied": ["001_create_user.json"]}
    assert not (app.migrations / "plan.initial.json").exists()
    assert (app.migrations / ".plans-carried-over" / "plan.initial.json").is_file()

    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT name, email FROM users").fetchall() == [("Ann", "ann@example.com")]
        assert connection.execute("SELECT name, state FROM mf_migrations").fetchall() == [
            ("001_create_user.json", "applied")]

    models = (app.path / "models.mp").read_text()
    app.write_models(models.replace("    email = CharField(120)\n",
                                    "    email = CharField(120)\n    city = CharField(80, null=true)\n"))
    made = app.run("db", "makemigrations")
    assert "migrations/002_add_city.json" in made.out, made
    applied = app.run("db", "migrate")
    assert applied.code == 0 and "002_add_city.json" in applied.out
    with sqlite3.connect(database) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(users)")]
        assert "city" in columns
        assert connection.execute("SELECT name FROM users").fetchall() == [("Ann",)]


def test_orm_demo_database_is_not_adopted_and_nothing_changes(compat):
    demo = compat("orm_demo")
    before_files = demo.state()
    before_db = db_digest(demo.path / "demo.db")
    result = demo.run("db", "migrate", env={"MF_DATABASE_URL": "sqlite:///demo.db"})
    assert result.code == 2, result
    # Each mismatch that stops the adoption, on its drift line.
    assert "  [-] table users (missing from the database)\n" in result.err
    assert ("  [~] foreign key orders.user: -> user(id) ON DELETE NO ACTION in the database, -> users(id) ON "
            "DELETE CASCADE expected\n") in result.err
    assert "  [~] orders.status: default 'OrderStatus.PENDING' in the database, default 'PENDING' expected\n" \
        in result.err
    assert "Traceback" not in result.err
    assert demo.state() == before_files
    assert db_digest(demo.path / "demo.db") == before_db


def test_orm_demo_with_a_fresh_database_applies_everything(compat):
    demo = compat("orm_demo")
    (demo.path / "demo.db").unlink()
    result = demo.run("db", "migrate", env={"MF_DATABASE_URL": "sqlite:///fresh.db"})
    assert result.code == 0, result
    assert "001_enum_orderstatus_create_user.json" in result.out
    assert "002_alter_total_drop_notes.json brings the history up to schema.json" in result.out
    with sqlite3.connect(demo.path / "fresh.db") as connection:
        keys = connection.execute("PRAGMA foreign_key_list(orders)").fetchall()
        assert [(k[2], k[3], k[4]) for k in keys] == [("users", "user", "id")]
        defaults = {row[1]: row[4] for row in connection.execute("PRAGMA table_info(orders)")}
        assert defaults["status"] == "'PENDING'"
        connection.execute("INSERT INTO users (name, email) VALUES ('a', 'b')")
        connection.execute("INSERT INTO orders (user, total, description) VALUES (1, 9.5, 'x')")
    # The history the files tell ends where models.mp is: nothing left to generate.
    assert demo.run("db", "makemigrations").out == "No changes detected.\n"
    _migrations, folded = load_history(str(demo.migrations))
    assert folded.models["Order"].field("total").max_digits == 12


def test_makemigrations_carries_over_without_a_database(compat):
    demo = compat("orm_demo")
    result = demo.run("db", "makemigrations")
    assert result.code == 0, result
    assert "Carried this project over" in result.out and "No changes detected." in result.out
    assert demo.migration_names() == ["001_enum_orderstatus_create_user.json", "002_alter_total_drop_notes.json"]
    snapshot = orjson.loads((demo.migrations / "schema.json").read_bytes())
    assert snapshot["migration"] == "002_alter_total_drop_notes.json"
    again = demo.run("db", "makemigrations")
    assert again.out == "No changes detected.\n"


def test_dry_run_and_check_say_what_would_happen_and_write_nothing(compat):
    app = compat("customer_app")
    before = app.state()
    result = app.run("db", "makemigrations", "--check")
    assert result.code == 0 and "Would carry this project over" in result.out
    assert app.state() == before


def test_orm_demo_on_an_empty_postgresql_database(compat, pg_url):
    demo = compat("orm_demo")
    result = demo.run("db", "migrate", env={"MF_DATABASE_URL": pg_url})
    assert result.code == 0, result
    session = dbutil.PostgresSession(pg_url)
    try:
        rows = session.fetch("SELECT column_default FROM information_schema.columns "
                             "WHERE table_name = 'orders' AND column_name = 'status'")
        assert rows[0][0].startswith("'PENDING'::")
        names = session.fetch("SELECT name FROM mf_migrations ORDER BY id")
        assert [r[0] for r in names] == demo.migration_names()
    finally:
        session.close()


def test_a_refused_change_leaves_the_plan_project_as_it_was(compat):
    demo = compat("orm_demo")
    models = (demo.path / "models.mp").read_text()
    demo.write_models(models.replace("    email = CharField(max_length=255)\n",
                                     "    email = CharField(max_length=255)\n    vat = CharField(max_length=20)\n"))
    before = demo.state()
    result = demo.run("db", "makemigrations")
    assert result.code == 2 and "cannot add CharField 'User.vat' as NOT NULL without a default" in result.err
    assert demo.state() == before
    assert (demo.migrations / "plan.initial.json").is_file()


# ---------------------------------------------------------------- plans over the table limit

def orm_demo(tmp_path, label: str, max_tables=None):
    """A copy of orm_demo in tmp_path/label, with max_tables_per_migration when given
    (its plan touches three tables)."""
    project = copy_compat("orm_demo", tmp_path / label)
    if max_tables is not None:
        config = project.path / "language_config.yaml"
        config.write_text(config.read_text() + f"\nmax_tables_per_migration: {max_tables}\n")
    return project


def file_ops(project) -> dict:
    return {name: json.loads((project.migrations / name).read_text())["ops"] for name in project.migration_names()}


def test_a_plan_over_the_table_limit_becomes_parts_that_apply_and_roll_back_one_by_one(tmp_path, databases):
    split, whole = orm_demo(tmp_path, "split", 1), orm_demo(tmp_path, "whole")
    for project in (split, whole):
        made = project.run("db", "makemigrations")
        assert made.code == 0 and "Carried this project over" in made.out, made
    [initial, catch_up] = whole.migration_names()
    names = split.migration_names()
    plan_parts = [name for name in names if "_drop_notes" not in name]
    assert len(plan_parts) >= 2 and len(names) > len(plan_parts)
    assert plan_parts == [f"{n:03d}_enum_orderstatus_create_user_part{n}.json" for n in range(1, len(plan_parts) + 1)]
    # The parts, one after another, are the file the plan becomes without a limit; .applied lists each.
    ops = file_ops(split)
    assert [op for name in plan_parts for op in ops[name]] == file_ops(whole)[initial]
    assert [op for name in names[len(plan_parts):] for op in ops[name]] == file_ops(whole)[catch_up]
    assert json.loads((split.migrations / ".applied").read_text()) == {"applied": plan_parts}
    assert split.run("db", "makemigrations").out == "No changes detected.\n"

    split_db, split_url = databases("split")
    whole_db, whole_url = databases("whole")
    assert split.run("db", "migrate", env={"MF_DATABASE_URL": split_url}).code == 0
    assert whole.run("db", "migrate", env={"MF_DATABASE_URL": whole_url}).code == 0
    assert ledger(split_db) == names
    same_catalog(split_db, whole_db)

    # Undone one file at a time, newest first, down to nothing; then applied again.
    for count in range(len(names), 0, -1):
        undone = split.run("--json", "db", "rollback", "--allow-data-loss", env={"MF_DATABASE_URL": split_url})
        assert json.loads(undone.out)["rolled_back"] == [names[count - 1]], undone
        assert ledger(split_db) == names[:count - 1]
    empty, _url = databases("empty")
    same_catalog(split_db, empty)
    assert split.run("db", "migrate", env={"MF_DATABASE_URL": split_url}).code == 0
    same_catalog(split_db, whole_db)


def test_a_database_the_earlier_tool_made_is_adopted_with_every_part_of_its_plan(tmp_path):
    # The earlier tool's database: what the plan creates, with a row, and no ledger.
    maker = orm_demo(tmp_path, "maker", 1)
    assert maker.run("db", "makemigrations").code == 0
    plan_parts = json.loads((maker.migrations / ".applied").read_text())["applied"]
    assert len(plan_parts) >= 2
    database = tmp_path / "earlier.db"
    url = f"sqlite:///{database}"
    assert maker.run("db", "migrate", "--to", plan_parts[-1][:3], env={"MF_DATABASE_URL": url}).code == 0
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE mf_migrations")
        connection.execute("INSERT INTO users (name, email) VALUES ('Ann', 'ann@example.com')")

    app = orm_demo(tmp_path, "app", 1)
    (app.path / "demo.db").unlink()
    result = app.run("db", "migrate", env={"MF_DATABASE_URL": url})
    assert result.code == 0, result
    assert f"became {', '.join(plan_parts)}, and " in result.out
    names = app.migration_names()
    with sqlite3.connect(database) as connection:
        assert [row[0] for row in connection.execute("SELECT name FROM mf_migrations ORDER BY id")] == names
        assert connection.execute("SELECT name FROM users").fetchall() == [("Ann",)]
        columns = [row[1] for row in connection.execute("PRAGMA table_info(orders)")]
        assert "notes" not in columns  # the catch-up after the plan's parts ran
    assert app.run("db", "status", env={"MF_DATABASE_URL": url}).out.rstrip().endswith("Up to date.")

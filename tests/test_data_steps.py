"""Hand-written data steps in migration files (run_sql): read and checked with the
file, split into statements correctly, run in the migration's transaction, shown by
`mf db sql` and the dry run, undone by their reverse_sql."""
from __future__ import annotations

import json

import pytest

from mfcore.dialects.statements import split_statements
from test_rollback import database, ledger  # noqa: F401 - the fixture, on both databases

APPLICATION = """model Application extends Model {
    id = AutoField()
    name = CharField(100)
    owner = IntegerField()
%s}
"""
FILL = {"postgresql": "UPDATE application SET client_id = name || '-' || owner::text WHERE client_id IS NULL",
        "sqlite": "UPDATE application SET client_id = name || '-' || owner WHERE client_id IS NULL"}


def edit(path, change):
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))


def without_default(value):
    """A JSON document with client_id's default taken out, wherever it is described."""
    if isinstance(value, list):
        return [without_default(item) for item in value]
    if isinstance(value, dict):
        return {key: without_default(item) for key, item in value.items()
                if not (key == "default" and value.get("name") == "client_id")}
    return value


def one_migration_with_a_filled_unique_column(project):
    """002 adds client_id, fills it from other columns (run_sql), then makes it NOT NULL
    UNIQUE: what the differ wrote as two migrations, made one by hand."""
    project.write_models(APPLICATION % "")
    assert project.run("db", "makemigrations").code == 0
    project.write_models(APPLICATION % "    client_id = CharField(120, null=true)\n")
    assert project.run("db", "makemigrations").code == 0
    # makemigrations refuses NOT NULL without a value for the rows: written with a
    # default, which the run_sql step makes needless and which is then taken out.
    project.write_models(APPLICATION % "    client_id = CharField(120, unique=true, default=\"-\")\n")
    assert project.run("db", "makemigrations", "--no-input").code == 0
    project.write_models(APPLICATION % "    client_id = CharField(120, unique=true)\n")
    second, third = sorted(project.migrations.glob("00[23]_*.json"))
    later = json.loads(third.read_text())["ops"]
    edit(second, lambda d: d["ops"].extend([{"op": "run_sql", "sql": FILL, "reverse_sql": ""}]
                                           + without_default(later)))
    third.unlink()
    edit(project.migrations / "schema.json", lambda d: d.update(without_default(d), migration=second.name))
    assert project.run("db", "makemigrations", "--check").code == 0
    return second.name


def test_a_not_null_unique_column_filled_from_other_columns_in_one_migration(project, database):
    env, query = database
    name = one_migration_with_a_filled_unique_column(project)
    assert project.run("db", "migrate", "--to", "001", env=env).code == 0
    query("INSERT INTO application (name, owner) VALUES ('web', 1)")
    query("INSERT INTO application (name, owner) VALUES ('web', 2)")
    shown = project.run("db", "sql", "002", env=env)
    assert "UPDATE application SET client_id" in shown.out, shown
    result = project.run("db", "migrate", env=env)
    assert result.out == f"Applied 1 migration(s):\n  {name}\n", result
    assert query("SELECT client_id FROM application ORDER BY id") == [("web-1",), ("web-2",)]
    duplicate = "INSERT INTO application (name, owner, client_id) VALUES ('x', 3, 'web-1')"
    with pytest.raises(Exception):
        query(duplicate)
    back = project.run("db", "rollback", env=env)
    assert back.code == 0, back
    assert query("SELECT name, owner FROM application ORDER BY id") == [("web", 1), ("web", 2)]
    again = project.run("db", "migrate", env=env)
    assert again.code == 0 and query("SELECT client_id FROM application ORDER BY id") == [("web-1",), ("web-2",)]


def test_a_step_without_sql_for_this_database_stops_the_run_before_anything(project, database):
    env, query = database
    name = one_migration_with_a_filled_unique_column(project)
    other = "sqlite" if env else "postgresql"
    edit(project.migrations / name, lambda d: d["ops"][1].update(sql={other: FILL[other]}))
    result = project.run("db", "migrate", env=env)
    assert result.code == 2, result
    here = "postgresql" if env else "sqlite"
    assert result.err == (f"error: {name}: its run_sql step has no SQL for {here} (it has: {other}); add a "
                          f"\"{here}\" entry\n"), result
    assert not [t for (t,) in query(query.tables) if t == "application"]


def test_a_step_without_reverse_sql_cannot_be_rolled_back_and_nothing_is_undone(project, database):
    env, query = database
    name = one_migration_with_a_filled_unique_column(project)
    edit(project.migrations / name, lambda d: d["ops"][1].pop("reverse_sql"))
    assert project.run("db", "migrate", env=env).code == 0
    refused = project.run("db", "rollback", env=env)
    assert refused.code == 2, refused
    assert refused.err == (f"error: cannot undo {name}: its run_sql step has no reverse_sql (give one, \"\" when "
                           "there is nothing to undo). Nothing was undone.\n"), refused
    assert len(ledger(query)) == 2 and "client_id" in [r[0] for r in query(query.columns, "application")]


def test_an_unknown_database_in_the_map_is_refused_when_the_file_is_read(project):
    project.write_models(APPLICATION % "")
    project.run("db", "makemigrations")
    edit(next(project.migrations.glob("001_*.json")),
         lambda d: d["ops"].append({"op": "run_sql", "sql": {"mysql": "SELECT 1"}}))
    result = project.run("db", "sql", "001")
    assert result.code == 2, result
    assert "ops[1]" in result.err and "unknown database 'mysql'" in result.err, result


@pytest.mark.parametrize("sql, options, expected", [
    ("INSERT INTO t VALUES ('a;b'); UPDATE t SET a = \"q;\";", {}, ["INSERT INTO t VALUES ('a;b')",
                                                                   "UPDATE t SET a = \"q;\""]),
    ("SELECT 'it''s; fine'; -- a comment; still one\nSELECT 2", {},
     ["SELECT 'it''s; fine'", "-- a comment; still one\nSELECT 2"]),
    ("/* one; */ SELECT 1;;  ; -- only a comment;\n", {}, ["/* one; */ SELECT 1"]),
    ("CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql; SELECT $1",
     {"dollar_quotes": True}, ["CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
                               "SELECT $1"]),
    ("SELECT E'it\\'s; one'; SELECT 2", {"dollar_quotes": True}, ["SELECT E'it\\'s; one'", "SELECT 2"]),
    ("CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1; UPDATE t SET b = 2; END; SELECT 1",
     {"trigger_blocks": True}, ["CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1; "
                                "UPDATE t SET b = 2; END", "SELECT 1"]),
])
def test_statements_split_only_where_they_end(sql, options, expected):
    assert split_statements(sql, **options) == expected


def test_empty_writes_a_template_of_the_data_steps_that_the_reader_ignores(project):
    project.write_models(APPLICATION % "")
    project.run("db", "makemigrations")
    result = project.run("db", "makemigrations", "--empty", "--name", "backfill_prices")
    assert result.code == 0 and "002_backfill_prices.json" in result.out, result
    document = json.loads((project.migrations / "002_backfill_prices.json").read_text())
    assert document["ops"] == []
    assert [step["op"] for step in document["doc"] if isinstance(step, dict)] == ["run_sql", "run_sql"]
    assert project.run("db", "migrate").code == 0
    assert project.run("db", "makemigrations", "--check").code == 0


DATAFIX = '''
async def fill_client_ids(conn):
    mark = "$1" if conn.dialect == "postgresql" else "?"
    other = "$2" if conn.dialect == "postgresql" else "?"
    for key, name, owner in await conn.fetch("SELECT id, name, owner FROM application ORDER BY id"):
        await conn.execute(f"UPDATE application SET client_id = {mark} WHERE id = {other}", f"{name}-{owner}", key)
    assert await conn.fetchval("SELECT count(*) FROM application WHERE client_id IS NULL") == 0


async def refuse(conn):
    raise ValueError("no client ids today")


def not_async(conn):
    pass
'''


def with_python_step(project, function, reverse=""):
    name = one_migration_with_a_filled_unique_column(project)
    step = {"op": "run_python", "function": function}
    if reverse is not None:
        step["reverse"] = reverse
    edit(project.migrations / name, lambda d: d["ops"].__setitem__(1, step))
    project.write("datafix.py", DATAFIX)
    return name


def test_run_python_fills_the_column_with_the_migrations_own_connection(project, database):
    env, query = database
    name = with_python_step(project, "datafix:fill_client_ids")
    assert project.run("db", "migrate", "--to", "001", env=env).code == 0
    query("INSERT INTO application (name, owner) VALUES ('web', 1)")
    query("INSERT INTO application (name, owner) VALUES ('web', 2)")
    shown = project.run("db", "migrate", "--dry-run", env=env)
    assert "-- run_python datafix:fill_client_ids" in shown.out, shown
    result = project.run("db", "migrate", env=env)
    assert result.out == f"Applied 1 migration(s):\n  {name}\n", result
    assert query("SELECT client_id FROM application ORDER BY id") == [("web-1",), ("web-2",)]
    assert project.run("db", "rollback", env=env).code == 0
    assert query("SELECT name FROM application ORDER BY id") == [("web",), ("web",)]


@pytest.mark.parametrize("function, message", [
    ("datafix_gone:fill", "cannot import datafix_gone (ModuleNotFoundError"),
    ("datafix:missing", "module datafix has no missing"),
    ("datafix:not_async", "not_async must be an `async def not_async(conn)`"),
])
def test_a_function_that_cannot_be_called_stops_the_run_before_anything(project, function, message):
    name = with_python_step(project, function)
    result = project.run("db", "migrate")
    assert result.code == 2, result
    assert result.err.startswith(f"error: {name}: run_python {function}: {message}"), result
    assert not (project.path / "dev.db").exists()


def test_a_function_that_raises_rolls_its_migration_back(project, database):
    env, query = database
    name = with_python_step(project, "datafix:refuse")
    assert project.run("db", "migrate", "--to", "001", env=env).code == 0
    query("INSERT INTO application (name, owner) VALUES ('web', 1)")
    result = project.run("db", "migrate", env=env)
    assert result.code == 3, result
    assert f"migration {name} failed" in result.err and "datafix:refuse raised ValueError: no client ids today" \
        in result.err, result
    assert len(ledger(query)) == 1 and "client_id" not in [r[0] for r in query(query.columns, "application")]


def test_a_python_step_without_reverse_cannot_be_rolled_back(project):
    name = with_python_step(project, "datafix:fill_client_ids", reverse=None)
    assert project.run("db", "migrate").code == 0
    refused = project.run("db", "rollback")
    assert refused.code == 2 and refused.err == (
        f"error: cannot undo {name}: its run_python step datafix:fill_client_ids has no reverse (give one, \"\" "
        "when there is nothing to undo). Nothing was undone.\n"), refused

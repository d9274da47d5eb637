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


def one_migration_with_a_filled_unique_column(project):
    """002 adds client_id, fills it from other columns (run_sql), then makes it NOT NULL
    UNIQUE: makemigrations writes the file with the step's template
    (--backfill Application.client_id=@sql), the user writes its SQL."""
    project.write_models(APPLICATION % "")
    assert project.run("db", "makemigrations").code == 0
    project.write_models(APPLICATION % "    client_id = CharField(120, unique=true)\n")
    made = project.run("db", "makemigrations", "--backfill", "Application.client_id=@sql")
    assert made.code == 0, made
    [second] = project.migrations.glob("002_*.json")
    edit(second, lambda d: d["ops"][1].update(sql=FILL))
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


def test_backfill_at_sql_writes_one_file_add_nullable_fill_then_constrain(project):
    project.write_models(APPLICATION % "")
    project.run("db", "makemigrations")
    project.write_models(APPLICATION % "    client_id = CharField(120, unique=true)\n")
    made = project.run("db", "makemigrations", "--backfill", "Application.client_id=@sql")
    assert made.code == 0, made
    [written] = project.migrations.glob("002_*.json")
    ops = json.loads(written.read_text())["ops"]
    assert [op["op"] for op in ops] == ["add_column", "run_sql", "alter_column"]
    added, step, altered = ops
    assert added["field_def"].get("null") is True and not added["field_def"].get("unique")
    assert "application.client_id" in step["sql"] and step["reverse_sql"] == ""
    assert "application.client_id" in step["doc"] and "NOT NULL and UNIQUE" in step["doc"]
    assert altered["old_def"] == added["field_def"]
    assert not altered["field_def"].get("null") and altered["field_def"]["unique"] is True
    schema = json.loads((project.migrations / "schema.json").read_text())
    assert schema["migration"] == written.name
    assert project.run("db", "makemigrations", "--check").code == 0  # schema.json is the models' own


def test_migrate_refuses_the_untouched_template_and_applies_nothing(project, database):
    env, query = database
    project.write_models(APPLICATION % "")
    project.run("db", "makemigrations")
    assert project.run("db", "migrate", env=env).code == 0
    query("INSERT INTO application (name, owner) VALUES ('web', 1)")
    project.write_models(APPLICATION % "    note = TextField(null=true)\n")
    project.run("db", "makemigrations")  # 002: a change that could run on its own
    project.write_models(APPLICATION % "    note = TextField(null=true)\n    client_id = CharField(120, unique=true)\n")
    assert project.run("db", "makemigrations", "--backfill", "Application.client_id=@sql").code == 0
    [template] = project.migrations.glob("003_*.json")
    before = (ledger(query), project.state())
    for args in (("migrate",), ("migrate", "--dry-run"), ("sql", "003")):
        refused = project.run("db", *args, env=env)
        assert refused.code == 2, refused
        assert refused.err == (f"error: {template.name}: ops[1] is the run_sql template makemigrations wrote to "
                               "fill application.client_id, not SQL yet: replace its \"sql\" with the statements "
                               "that fill every row (see its \"doc\"), then migrate again\n"), refused
    assert (ledger(query), project.state()) == before
    assert sorted(r[0] for r in query(query.columns, "application")) == ["id", "name", "owner"]
    assert project.run("db", "migrate", "--to", "002", env=env).code == 0  # the template is not read below it


def test_a_refused_statement_among_many_is_named_by_its_place_and_undoes_the_whole_migration(project, database):
    env, query = database
    project.write_models(APPLICATION % "")
    project.run("db", "makemigrations")
    assert project.run("db", "migrate", env=env).code == 0
    project.write_models(APPLICATION % "    note = TextField(null=true)\n")
    project.run("db", "makemigrations")
    [second] = project.migrations.glob("002_*.json")
    fills = ["INSERT INTO application (name, owner, note) VALUES ('a', 1, 'x')",
             "INSERT INTO application_missing (name) VALUES ('b')",
             "INSERT INTO application (name, owner, note) VALUES ('c', 3, 'y')"]
    edit(second, lambda d: d["ops"].append({"op": "run_sql", "sql": "; ".join(fills), "reverse_sql": ""}))
    # The migration's own statements: `mf db sql` also shows PostgreSQL's transaction frame.
    statements = [s for s in json.loads(project.run("db", "sql", "002", "--json", env=env).out)["sql"]
                  if s not in ("BEGIN", "COMMIT") and not s.startswith("SET LOCAL ")]
    failing = next(i for i, s in enumerate(statements, 1) if "application_missing" in s)
    assert failing < len(statements)  # the third INSERT comes after it
    before = (ledger(query), project.state())

    refused = project.run("db", "migrate", env=env)
    assert refused.code == 3, refused
    assert f"Statement {failing} of {len(statements)}: {fills[1]}" in refused.err, refused
    assert "Traceback" not in refused.err
    assert (ledger(query), project.state()) == before
    assert query("SELECT count(*) FROM application") == [(0,)]
    assert "note" not in [r[0] for r in query(query.columns, "application")]


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
def test_a_function_that_cannot_be_called_stops_the_run_before_anything(project, database, function, message):
    env, query = database
    name = with_python_step(project, function)
    before = project.state()
    result = project.run("db", "migrate", env=env)
    assert result.code == 2, result
    assert result.err.startswith(f"error: {name}: run_python {function}: {message}"), result
    assert not (project.path / "dev.db").exists()
    assert query(query.tables) == [] and project.state() == before  # not even the first migration ran


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


def test_a_python_step_without_reverse_cannot_be_rolled_back(project, database):
    env, query = database
    name = with_python_step(project, "datafix:fill_client_ids", reverse=None)
    assert project.run("db", "migrate", env=env).code == 0
    before = (ledger(query), query(query.columns, "application"), project.state())
    refused = project.run("db", "rollback", env=env)
    assert refused.code == 2 and refused.err == (
        f"error: cannot undo {name}: its run_python step datafix:fill_client_ids has no reverse (give one, \"\" "
        "when there is nothing to undo). Nothing was undone.\n"), refused
    assert (ledger(query), query(query.columns, "application"), project.state()) == before

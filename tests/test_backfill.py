"""Backfills: a NOT NULL change on a table with rows gets a one-off value for them
(--backfill Model.field=VALUE, or asked on a terminal), written into the operation
and run before the constraint, on both databases; refusals change nothing."""
from __future__ import annotations

import json

import pytest

from test_makemigrations import run_on_terminal
from test_rollback import database, ledger  # noqa: F401 - the fixture, on both databases

BASKET = """model Line extends Model {
    id = AutoField()
    qty = IntegerField()
%s}
"""


def started(project, env, query):
    project.write_models(BASKET % "    color = CharField(20, null=true)\n")
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", env=env).code == 0
    query("INSERT INTO line (qty, color) VALUES (1, 'red')")
    query("INSERT INTO line (qty) VALUES (2)")


def test_making_a_column_not_null_fills_the_rows_with_the_backfill(project, database):
    env, query = database
    started(project, env, query)
    project.write_models(BASKET % "    color = CharField(20)\n    size = IntegerField()\n")
    result = project.run("db", "makemigrations", "--backfill", "Line.color=blue", "--backfill", "Line.size=7")
    assert result.code == 0, result
    written = json.loads(next(project.migrations.glob("002_*.json")).read_text())
    assert sorted((op["op"], op["field_def"]["name"], op.get("backfill")) for op in written["ops"]) == [
        ("add_column", "size", None), ("alter_column", "color", "blue"), ("alter_column", "size", 7)]
    assert project.run("db", "migrate", env=env).code == 0
    assert query("SELECT qty, color, size FROM line ORDER BY qty") == [(1, "red", 7), (2, "blue", 7)]
    assert project.run("db", "makemigrations", "--check").code == 0
    assert project.run("db", "rollback", env=env).code == 0  # and back: the column nullable again
    assert query("SELECT qty, color FROM line ORDER BY qty") == [(1, "red"), (2, "blue")]


def test_off_a_terminal_the_change_is_refused_with_the_option_named(project, database):
    env, query = database
    started(project, env, query)
    project.write_models(BASKET % "    color = CharField(20)\n")
    refused = project.run("db", "makemigrations")
    assert refused.code == 2, refused
    assert "--backfill Line.color=VALUE" in refused.err, refused
    assert sorted(p.name for p in project.migrations.glob("0*.json")) == ["001_create_line.json"]


def test_a_backfill_that_does_not_fit_the_type_is_refused(project):
    project.write_models(BASKET % "    color = CharField(20, null=true)\n")
    project.run("db", "makemigrations")
    project.write_models(BASKET % "    color = IntegerField()\n")
    refused = project.run("db", "makemigrations", "--backfill", "Line.color=blue")
    assert refused.code == 2 and refused.err.startswith("error: --backfill Line.color=blue: default"), refused
    assert len(list(project.migrations.glob("0*.json"))) == 1


def test_a_unique_column_cannot_take_one_value_and_run_sql_is_named(project):
    project.write_models(BASKET % "    color = CharField(20, null=true)\n")
    project.run("db", "makemigrations")
    project.write_models(BASKET % "    color = CharField(20, unique=true)\n")
    refused = project.run("db", "makemigrations", "--backfill", "Line.color=blue")
    assert refused.code == 2, refused
    assert "is unique, and one value for every row would break that" in refused.err
    assert "run_sql" in refused.err and "--backfill Line.color=@sql" in refused.err, refused
    assert len(list(project.migrations.glob("0*.json"))) == 1
    before = project.state()
    unasked = project.run("db", "makemigrations")
    assert unasked.code == 2 and "--backfill Line.color=@sql" in unasked.err, unasked
    assert "--backfill Line.color=VALUE" not in unasked.err  # one value cannot be unique
    assert project.state() == before


def test_at_sql_on_a_column_made_not_null_fills_it_by_the_users_sql_first(project, database):
    env, query = database
    started(project, env, query)
    project.write_models(BASKET % "    color = CharField(20)\n")
    made = project.run("db", "makemigrations", "--backfill", "Line.color=@sql")
    assert made.code == 0, made
    [written] = project.migrations.glob("002_*.json")
    document = json.loads(written.read_text())
    assert [op["op"] for op in document["ops"]] == ["run_sql", "alter_column"]
    assert document["ops"][1].get("backfill") is None
    document["ops"][0]["sql"] = "UPDATE line SET color = 'qty-' || qty WHERE color IS NULL"
    written.write_text(json.dumps(document))
    assert project.run("db", "migrate", env=env).code == 0
    assert query("SELECT qty, color FROM line ORDER BY qty") == [(1, "red"), (2, "qty-2")]
    with pytest.raises(Exception):
        query("INSERT INTO line (qty) VALUES (3)")  # NOT NULL now


def test_on_a_terminal_at_sql_and_a_yes_for_a_unique_column_write_the_step(project):
    project.write_models(BASKET % "    color = CharField(20, null=true)\n")
    project.run("db", "makemigrations")
    project.write_models(BASKET % "    color = CharField(20)\n")
    code, output = run_on_terminal(project, "db", "makemigrations", "--name", "plain", answers=b"@sql\n")
    assert code == 0 and "@sql to fill them yourself" in output, output
    plain = json.loads((project.migrations / "002_plain.json").read_text())
    assert [op["op"] for op in plain["ops"]] == ["run_sql", "alter_column"]
    project.write_models(BASKET % "    color = CharField(20)\n    code = CharField(20, unique=true)\n")
    code, output = run_on_terminal(project, "db", "makemigrations", "--name", "unique", answers=b"y\n")
    assert code == 0 and "Line.code (CharField) becomes NOT NULL and unique" in output, output
    unique = json.loads((project.migrations / "003_unique.json").read_text())
    assert [op["op"] for op in unique["ops"]] == ["add_column", "run_sql", "alter_column"]
    assert "line.code" in unique["ops"][1]["sql"]
    project.write_models(BASKET % "    color = CharField(20)\n    code = CharField(20, unique=true)\n"
                         "    other = CharField(20, unique=true)\n")
    before = project.state()
    code, output = run_on_terminal(project, "db", "makemigrations", answers=b"n\n")
    assert code == 2 and "--backfill Line.other=@sql" in output, output
    assert project.state() == before


def test_on_a_terminal_the_value_is_asked_for(project):
    project.write_models(BASKET % "    color = CharField(20, null=true)\n")
    project.run("db", "makemigrations")
    project.write_models(BASKET % "    color = CharField(20)\n")
    code, output = run_on_terminal(project, "db", "makemigrations", answers=b"green\n")
    assert code == 0 and "Line.color (CharField) becomes NOT NULL" in output, output
    written = json.loads(next(project.migrations.glob("002_*.json")).read_text())
    assert [op.get("backfill") for op in written["ops"]] == ["green"]


def test_the_api_takes_backfills_as_a_map(project):
    import mfcore

    project.write_models(BASKET % "    color = CharField(20, null=true)\n")
    mfcore.makemigrations(str(project.path / "language_config.yaml"))
    project.write_models(BASKET % "    color = CharField(20)\n    size = IntegerField()\n")
    result = mfcore.makemigrations(str(project.path / "language_config.yaml"),
                                   backfill={"Line.color": "blue", "Line.size": 7})
    assert {op.new.name: op.backfill for op in result.operations if op.op == "alter_column"} == {
        "color": "blue", "size": 7}

"""Bad input at the edges: each refused in one line (or one models error), with the
right exit code, and nothing changed."""
from __future__ import annotations

import json

import pytest

from seed import SEED


@pytest.mark.parametrize("document,message", [
    ({}, "no 'enums' and no 'models' key"),
    ({"format": 1, "enums": {}}, "no 'models' key"),
    ({"models": {}}, "no 'enums' key"),
])
def test_a_schema_json_without_a_snapshots_keys_is_an_error(project, document, message):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    (project.migrations / "schema.json").write_text(json.dumps(document))
    before = project.state()
    for command in (("db", "makemigrations"), ("db", "reset", "--drop-db", "--yes")):
        result = project.run(*command)
        assert result.code == 2, result
        assert "schema.json: not a schema snapshot: " + message in result.err, result
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
        assert project.state() == before


@pytest.mark.parametrize("declaration,message", [
    ("IntegerField(default=99999999999999999999999)",
     "default 99999999999999999999999 is out of range for IntegerField (-2147483648 to 2147483647)"),
    ("SmallIntegerField(default=-40000)", "default -40000 is out of range for SmallIntegerField"),
    ("BigIntegerField(default=9223372036854775808)", "out of range for BigIntegerField"),
    ("FloatField(default=1" + "0" * 400 + ".5)", "default is too large for FloatField"),
    ("DecimalField(20, 2, default=1" + "0" * 400 + ")", "default is too large for DecimalField"),
])
def test_defaults_out_of_range_are_models_errors(project, declaration, message):
    project.write_models(f"model A extends Model {{\n    x = {declaration}\n}}\n")
    before = project.state()
    for env in ({}, {"MF_PURE_PYTHON": "1"}):
        result = project.run("db", "makemigrations", env=env)
        assert result.code == 2, result
        assert "models.mp:2:" in result.err and message in result.err, result
        assert "Traceback" not in result.err
        assert project.state() == before


def test_the_largest_defaults_that_fit_are_kept(project):
    project.write_models("model A extends Model {\n    x = BigIntegerField(default=9223372036854775807)\n"
                         "    y = SmallIntegerField(default=-32768)\n}\n")
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "makemigrations", "--check").code == 0  # no phantom change
    assert project.run("db", "migrate").code == 0

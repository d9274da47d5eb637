"""A DecimalField's default stays exact from models.mp to the database, on both
databases: no float in between (1234567890123456.78 is no double)."""
from __future__ import annotations

import json
from decimal import Decimal

import mfcore
from bothdb import database  # noqa: F401 - the fixture

EXACT = "1234567890123456.78"
MODELS = f'''model Price extends Model {{
    id = AutoField()
    label = CharField(20)
    amount = DecimalField(20, 2, default={EXACT})
    ratio = FloatField(default=0.1)
}}
'''


def catalog_default(database, column: str) -> str:
    if database.kind == "postgresql":
        return database.query("SELECT column_default FROM information_schema.columns WHERE table_schema = "
                              "current_schema() AND table_name = 'price' AND column_name = $1", column)[0][0]
    return database.query("SELECT dflt_value FROM pragma_table_info('price') WHERE name = $1", column)[0][0]


def test_the_exact_value_reaches_the_catalog_and_the_rows(project, database):
    project.write_models(MODELS)
    made = project.run("db", "makemigrations")
    assert made.code == 0, made
    [first] = project.migration_names()
    field_def = json.loads((project.migrations / first).read_text())["ops"][0]["table_def"]["model"]["fields"][2]
    assert field_def["default"] == EXACT  # exact decimal text, not a JSON number (a double)
    snapshot = json.loads((project.migrations / "schema.json").read_text())
    assert snapshot["models"]["Price"]["fields"][2]["default"] == EXACT
    assert snapshot["models"]["Price"]["fields"][3]["default"] == 0.1  # a FloatField's stays a number
    sql = project.run("db", "sql", "1", env=database.env)
    assert f"DEFAULT {EXACT}" in sql.out and "1234567890123456.8" not in sql.out, sql.out

    migrate = project.run("db", "migrate", env=database.env)
    assert migrate.code == 0, migrate
    assert catalog_default(database, "amount") == EXACT
    database.query("INSERT INTO price (label) VALUES ('default')")
    if database.kind == "postgresql":
        assert database.query("SELECT amount::text, amount = 1234567890123456.78 FROM price") == [(EXACT, True)]
    else:
        # SQLite keeps the default's text in its catalog, but a NUMERIC column stores a
        # number with a fractional part as a REAL (a double): the nearest double to it.
        assert database.query("SELECT typeof(amount), amount FROM price") == [("real", float(EXACT))]

    again = project.run("db", "makemigrations")
    assert again.code == 0 and "No changes detected." in again.out, again
    drift = project.run("db", "drift", env=database.env)
    assert drift.code == 0, drift


def test_inspect_writes_the_exact_default_back(project, database):
    project.write_models(MODELS)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", env=database.env).code == 0
    inspected = project.run("db", "inspect", env=database.env)
    assert inspected.code == 0, inspected
    assert f"default={EXACT}" in inspected.out, inspected.out


def test_files_written_with_a_float_default_make_no_phantom_change(project):
    """schema.json and migration files written before held the default as a JSON number."""
    project.write_models(MODELS.replace(EXACT, "12.5").replace("(20, 2,", "(10, 2,").replace(
        "ratio = FloatField(default=0.1)", "tax = DecimalField(5, 3, default=0.1)"))
    assert project.run("db", "makemigrations").code == 0
    for path in project.migrations.iterdir():
        text = path.read_text()
        assert '"default": "12.5"' in text and '"default": "0.1"' in text
        path.write_text(text.replace('"default": "12.5"', '"default": 12.5').replace('"default": "0.1"',
                                                                                    '"default": 0.1'))
    again = project.run("db", "makemigrations")
    assert again.code == 0 and "No changes detected." in again.out, again


def test_one_value_spelled_two_ways_gives_one_snapshot():
    first = mfcore.parse("model A extends Model {\n    d = DecimalField(10, 2, default=1.50)\n}\n")
    second = mfcore.parse("model A extends Model {\n    d = DecimalField(max_digits=10, decimal_places=2, "
                          "default=1.5)\n}\n")
    assert mfcore.dump_schema(first) == mfcore.dump_schema(second)
    assert first.models["A"].fields[1].default == Decimal("1.5")


def test_a_decimal_default_in_a_file_must_be_a_number(project):
    project.write_models(MODELS)
    assert project.run("db", "makemigrations").code == 0
    [first] = project.migration_names()
    path = project.migrations / first
    path.write_text(path.read_text().replace(f'"default": "{EXACT}"', '"default": "12,5; DROP TABLE x"'))
    before = project.state()
    result = project.run("db", "migrate")
    assert result.code == 2, result
    assert "default must be a number or its exact decimal text" in result.err
    assert project.state() == before

"""Names the databases would refuse or confuse are models errors at makemigrations;
names mf makes up are fitted to PostgreSQL's 63 bytes with a stable hash.

PostgreSQL keeps the first 63 bytes of a name (quoted, so case counts); SQLite
compares names without regard to ASCII case and keeps ``sqlite_*`` for itself. A
project may be deployed to either, so a clash on either is an error on both.
"""
from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mfcore

from bothdb import database  # noqa: F401 - the fixture

LONG = "a" * 63  # 63 bytes: the longest name PostgreSQL keeps whole


def refused(project, models: str, message: str, line: int, column: int) -> None:
    """makemigrations reports exactly one error, at line:column, and writes nothing."""
    project.write_models(models)
    before = project.state()
    result = project.run("db", "makemigrations")
    assert result.code == 2, result
    errors = [text for text in result.err.splitlines() if ": error: " in text]
    assert errors == [errors[0]] and errors[0].startswith(f"models.mp:{line}:{column}: error: "), result.err
    assert message in errors[0]
    assert "Traceback" not in result.err
    assert project.state() == before


CLASHES = [
    pytest.param('model A extends Model {\n  x = IntegerField(db_column="' + LONG + '1")\n'
                 '  y = IntegerField(db_column="' + LONG + '2")\n}\n',
                 "one name to PostgreSQL, which keeps only the first 63 bytes", 3, 3, id="columns-cut-at-63"),
    # 31 two-byte letters and 'a' are 63 bytes; what follows is cut off
    pytest.param('model A extends Model {\n  x = IntegerField(db_column="' + "é" * 31 + 'ab")\n'
                 '  y = IntegerField(db_column="' + "é" * 31 + 'ac")\n}\n',
                 "one name to PostgreSQL", 3, 3, id="columns-multibyte"),
    # a two-byte letter across the 63rd byte: PostgreSQL cuts before it
    pytest.param('model A extends Model {\n  x = IntegerField(db_column="' + "a" + "é" * 31 + 'x")\n'
                 '  y = IntegerField(db_column="' + "a" + "é" * 31 + 'y")\n}\n',
                 "one name to PostgreSQL", 3, 3, id="columns-cut-inside-a-letter"),
    pytest.param('model A extends Model {\n  Name = IntegerField()\n  name = IntegerField()\n}\n',
                 "columns 'Name' and 'name', one name to SQLite", 3, 3, id="columns-case"),
    pytest.param(f'model A extends Model {{\n  table = "{LONG}1"\n}}\nmodel B extends Model {{\n'
                 f'  table = "{LONG}2"\n}}\n', "one name to PostgreSQL", 5, 11, id="tables-cut-at-63"),
    pytest.param('model A extends Model {\n  table = "' + "ж" * 31 + 'xy"\n}\nmodel B extends Model {\n'
                 '  table = "' + "ж" * 31 + 'xz"\n}\n', "one name to PostgreSQL", 5, 11, id="tables-multibyte"),
    pytest.param('model Foo extends Model { x = IntegerField() }\nmodel B extends Model {\n'
                 '  table = "FOO"\n}\n', "table 'FOO' of model B and table 'foo' of model Foo are one name to SQLite",
                 3, 11, id="tables-case"),
    pytest.param('model Ledger extends Model {\n  table = "mf_migrations"\n}\n',
                 "is the table of mf's ledger", 2, 11, id="ledger-table"),
    pytest.param('model MfMigrations extends Model { x = IntegerField() }\n',
                 "is the table of mf's ledger", 1, 7, id="ledger-default-table"),
    pytest.param('model Ledger extends Model {\n  table = "MF_Migrations"\n}\n',
                 "is the table of mf's ledger ('mf_migrations') to SQLite", 2, 11, id="ledger-table-case"),
    pytest.param('model A extends Model {\n  x = IntegerField()\n'
                 '  indexes = [Index(x, name="mf_migrations")]\n}\n',
                 "has the name of mf's ledger table", 3, 14, id="ledger-index"),
    pytest.param('model Stat extends Model {\n  table = "sqlite_stat"\n}\n',
                 "SQLite keeps names beginning with 'sqlite_'", 2, 11, id="sqlite-table"),
    pytest.param('model SqliteSequence extends Model { x = IntegerField() }\n',
                 "SQLite keeps names beginning with 'sqlite_'", 1, 7, id="sqlite-default-table"),
    pytest.param('model A extends Model {\n  x = IntegerField()\n'
                 '  indexes = [Index(x, name="SQLite_x")]\n}\n',
                 "SQLite keeps names beginning with 'sqlite_'", 3, 14, id="sqlite-index"),
    pytest.param('model Customer extends Model { x = IntegerField() }\nmodel B extends Model {\n'
                 '  y = IntegerField()\n  indexes = [Index(y, name="Customer")]\n}\n',
                 "has the name of table 'customer' of model Customer ('customer') to SQLite", 4, 14,
                 id="index-named-like-a-table-case"),
    pytest.param('model A extends Model {\n  x = IntegerField()\n  y = IntegerField()\n'
                 '  indexes = [Index(x, name="by_x"), Index(y, name="BY_X")]\n}\n',
                 "index 'by_x' of model A and index 'BY_X' of model A are one name to SQLite", 4, 14,
                 id="indexes-case"),
    pytest.param('enum Status { A }\nenum STATUS { B }\n',
                 "enums Status and STATUS have types 'status' and 'status'", 2, 6, id="enum-types"),
    pytest.param('enum Long { ' + "X" * 64 + ' }\n', "at most 63 bytes", 1, 13, id="enum-label"),
    pytest.param('model A extends Model {\n  table = "a\0b"\n}\n', "a table name cannot contain NUL", 2, 11,
                 id="nul-table"),
    pytest.param('model A extends Model {\n  x = IntegerField(db_column="x\0")\n}\n',
                 "a column name cannot contain NUL", 2, 20, id="nul-column"),
    pytest.param('model A extends Model {\n  x = IntegerField()\n  indexes = [Index(x, name="i\0")]\n}\n',
                 "an index name cannot contain NUL", 3, 23, id="nul-index"),
]


@pytest.mark.parametrize("models, message, line, column", CLASHES)
def test_a_name_a_database_refuses_is_a_models_error(project, models, message, line, column):
    refused(project, models, message, line, column)


def test_a_clash_with_an_unchanged_model_is_found_on_the_incremental_path(project):
    """makemigrations reads only edited models when its cache allows; a table that
    clashes, to SQLite only, with one it did not read is still an error."""
    models = "".join(f"model M{i} extends Model {{ x = IntegerField() }}\n" for i in range(5))
    project.write_models(models)
    assert project.run("db", "makemigrations").code == 0
    refused(project, models + 'model Other extends Model {\n  table = "M3"\n}\n',
            "table 'M3' of model Other and table 'm3' of model M3 are one name to SQLite", 7, 11)


# Default names past 63 bytes: indexes on long columns (multi-byte too), a foreign key
# and a unique key of a long table.
LONG_DEFAULTS = """
model Parent extends Model {
    name = CharField(10)
}
model Child extends Model {
    table = "child_with_a_rather_long_table_name_for_its_foreign_keys_1234"
    parent_of_this_child_record = ForeignKey(Parent)
    key_one = CharField(20, db_column="очень_длинный_столбец_номер_один")
    key_two = CharField(20, db_column="очень_длинный_столбец_номер_два", unique=true)
    indexes = [Index(key_one, key_two), Index(key_two, key_one)]
}
"""


def made_names(project, env) -> set:
    """Every index and constraint name the migration file gives the database."""
    [name] = project.migration_names()
    text = (project.migrations / name).read_text(encoding="utf-8")
    sql = project.run("db", "sql", name[:3], env=env).out
    return set(re.findall(r'"((?:ix|uq)_[^"]+)"', text)) | set(re.findall(r'CONSTRAINT "([^"]+)"', sql))


def test_long_default_names_are_shortened_stably_and_the_database_has_them(database, project, tmp_path):
    project.write_models(LONG_DEFAULTS)
    result = project.run("db", "makemigrations", env=database.env)
    assert result.code == 0, result
    names = made_names(project, database.env)
    assert {len(n.encode("utf-8")) > 63 for n in names} == {False}
    shortened = [n for n in names if re.search(r"_[0-9a-f]{8}(_fkey|_key)?$", n)]
    assert len(shortened) >= 3, names  # two indexes and the foreign key were too long

    # The same models elsewhere give the same names.
    again = type(project)(tmp_path / "again")
    again.path.mkdir()
    again.write("language_config.yaml", (project.path / "language_config.yaml").read_text())
    again.write_models(LONG_DEFAULTS)
    assert again.run("db", "makemigrations").code == 0
    assert made_names(again, database.env) == names

    migrated = project.run("db", "migrate", env=database.env)
    assert migrated.code == 0, migrated
    if database.kind == "postgresql":
        indexes = {r[0] for r in database.query("SELECT indexname FROM pg_indexes WHERE tablename = $1",
                                                 "child_with_a_rather_long_table_name_for_its_foreign_keys_1234")}
        constraints = {r[0] for r in database.query("SELECT conname FROM pg_constraint")}
    else:
        indexes = {r[0] for r in database.query("SELECT name FROM sqlite_master WHERE type = 'index'")}
        constraints = set()
        for (sql,) in database.query("SELECT sql FROM sqlite_master WHERE type = 'table'"):
            constraints |= set(re.findall(r'CONSTRAINT "([^"]+)"', sql or ""))
    assert names <= indexes | constraints, (names, indexes, constraints)
    drift = project.run("db", "drift", env=database.env)
    assert drift.code == 0 and drift.out.startswith("No drift"), drift


def test_default_names_that_fit_are_unchanged(project):
    """Names of at most 63 bytes stay as they were (existing projects keep theirs)."""
    project.write_models('model Customer extends Model {\n  email = CharField(200, db_index=true)\n'
                         '  name = CharField(20)\n  unique_together = [(email, name)]\n}\n')
    assert project.run("db", "makemigrations").code == 0
    model = json.loads((project.migrations / "schema.json").read_text())["models"]["Customer"]
    assert json.dumps(model).count('"ix_customer_email"') == 1
    assert json.dumps(model).count('"uq_customer_email_name"') == 1


@pytest.mark.parametrize("table, column", [("ж" * 25, "идентификатор_записи"), ("a" * 40, "ж" * 20),
                                           ("tbl", "c" * 60)])
def test_identity_sequence_names_are_postgresql_s_own_in_bytes(pg_session, table, column):
    """The sequence of an identity column, which a table rename renames too, is named as
    PostgreSQL names it: lengths counted in bytes, cut at a character boundary."""
    from mfcore.dialects.postgresql import sequence_name

    schema = pg_session.fresh_schema()
    pg_session.execute(f'CREATE TABLE "{schema}"."{table}" ("{column}" integer GENERATED BY DEFAULT AS IDENTITY)')
    found = pg_session.fetch("SELECT pg_get_serial_sequence($1, $2)", f'"{schema}"."{table}"', column)[0][0]
    found_schema, found_name = found.split(".", 1)
    assert (found_schema, found_name.strip('"')) == (schema, sequence_name(table, column))


# Table, index and enum names drawn from few letters, so that clashes (case, the first
# 63 bytes, sqlite_, the ledger's name, non-ASCII letters) are common.
_NAME_PARTS = st.sampled_from(["a", "A", "sqlite_", "mf_migrations", "é", "É", LONG])


@settings(max_examples=int(os.environ.get("MF_NAMES_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(tables=st.lists(st.lists(_NAME_PARTS, min_size=1, max_size=3).map("".join), min_size=1, max_size=4),
       indexed=st.lists(st.booleans(), min_size=4, max_size=4),
       enums=st.lists(st.sampled_from(["a", "A", "Aa", "Mf_migrations"]), max_size=2, unique=True))
def test_the_bulk_name_check_finds_a_clash_exactly_when_the_full_check_does(tables, indexed, enums):
    """validate's bulk check of table, index and enum type names (a large project's
    common case) lets through only what the name-by-name checks find nothing wrong with."""
    from mfcore.errors import ModelsError
    from mfcore.language import validate

    text = "".join(f"enum {name} {{ X }}\n" for name in enums)
    for number, table in enumerate(tables):
        index = f'\n  indexes = [Index(v, name="{table}")]' if indexed[number] else ""
        text += f'model M{number} extends Model {{\n  v = IntegerField()\n  table = "{table}"{index}\n}}\n'

    def problems() -> list:
        try:
            mfcore.parse(text)
        except ModelsError as exc:
            return sorted(str(problem) for problem in exc.problems)
        return []

    found = problems()
    original = validate._plainly_distinct
    validate._plainly_distinct = lambda models, enums: False
    try:
        assert problems() == found
    finally:
        validate._plainly_distinct = original

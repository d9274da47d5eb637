"""An SQLite table rebuild keeps what the user made on the table by hand: triggers,
indexes, views over it (sqlite.org's procedure makes them again), and refuses,
rolled back, when one of them cannot survive the change."""
from __future__ import annotations

import sqlite3

import pytest

from mfcore.dialects.sqlite import ROWS_PER_SCHEMA_ENTRY, SCHEMA_ENTRIES_FOR_REBUILD

MODELS = """model Customer extends Model {
    name = CharField(80)
    code = CharField(20, unique=true)
    score = IntegerField(default=0)
    table = "customer"
}
"""

HAND_MADE = """
CREATE TABLE audit_log (what TEXT);
CREATE TRIGGER customer_audit AFTER INSERT ON customer BEGIN INSERT INTO audit_log VALUES (new.name); END;
CREATE INDEX hand_made_ix ON customer (code, score);
CREATE VIEW v AS SELECT name, code FROM customer;
"""


def sql(project, statement: str, *args) -> list:
    connection = sqlite3.connect(project.path / "dev.db", isolation_level=None)
    try:
        return connection.execute(statement, args).fetchall()
    finally:
        connection.close()


def objects(project) -> dict:
    return dict(sql(project, "SELECT name, sql FROM sqlite_master WHERE name IN"
                             " ('customer_audit', 'hand_made_ix', 'v')"))


def migrated(project):
    """A project migrated by mf, two rows (the second deleted: the id counter is at 2),
    then the user's own trigger, index and view made with sqlite3."""
    project.write_models(MODELS)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate").code == 0
    connection = sqlite3.connect(project.path / "dev.db")
    connection.executescript("INSERT INTO customer (name, code) VALUES ('a', 'A'), ('b', 'B');"
                             "DELETE FROM customer WHERE code = 'B';" + HAND_MADE)
    connection.close()
    return objects(project)


def test_a_rebuild_keeps_the_users_trigger_index_and_view_and_they_work(project):
    before = migrated(project)
    assert len(before) == 3
    project.write_models(MODELS.replace("IntegerField(default=0)", "IntegerField(default=0, null=true)")
                         .replace("CharField(80)", "CharField(120)"))
    assert project.run("db", "makemigrations").code == 0
    statements = project.run("db", "sql", "002").out
    assert statements.count('DROP TABLE "customer"') == 1  # both changes in one rebuild

    result = project.run("db", "migrate")
    assert result.code == 0, result
    assert "NOT NULL" not in sql(project, "SELECT sql FROM sqlite_master WHERE name = 'customer'")[0][0] \
        .split('"score"')[1]
    assert objects(project) == before
    sql(project, "INSERT INTO customer (name, code) VALUES ('c', 'C')")
    assert sql(project, "SELECT what FROM audit_log") == [("c",)]        # the trigger fires
    assert sql(project, "SELECT id, name FROM customer ORDER BY id") == [(1, "a"), (3, "c")]  # id 2 not reused
    assert sql(project, "SELECT name, code FROM v ORDER BY code") == [("a", "A"), ("c", "C")]
    plan = sql(project, "EXPLAIN QUERY PLAN SELECT * FROM customer WHERE code = 'A' AND score = 0")
    assert any("hand_made_ix" in row[-1] or "customer_1" in row[-1] for row in plan)

    result = project.run("db", "rollback")
    assert result.code == 0, result
    assert '"score" INTEGER NOT NULL' in sql(project, "SELECT sql FROM sqlite_master WHERE name = 'customer'")[0][0]
    assert objects(project) == before
    sql(project, "INSERT INTO customer (name, code) VALUES ('d', 'D')")
    assert sql(project, "SELECT what FROM audit_log") == [("c",), ("d",)]
    assert sql(project, "SELECT count(*) FROM v") == [(3,)]


@pytest.mark.parametrize("hand_made, name", [
    ("CREATE INDEX hand_made_ix ON customer (code, score)", "index hand_made_ix"),
    ("CREATE VIEW code_view AS SELECT code FROM customer", "view code_view"),
    ("CREATE TRIGGER code_audit AFTER INSERT ON customer BEGIN INSERT INTO audit_log VALUES (new.code); END",
     "trigger code_audit"),
])
def test_an_object_of_the_users_that_uses_a_dropped_column_stops_the_rebuild(project, hand_made, name):
    migrated(project)
    sql(project, "DROP INDEX hand_made_ix")
    sql(project, "DROP VIEW v")  # it uses code too
    connection = sqlite3.connect(project.path / "dev.db")
    connection.execute(hand_made)
    connection.commit()
    connection.close()
    kept = objects(project) | dict(sql(project, "SELECT name, sql FROM sqlite_master WHERE type <> 'table'"))
    # code has a UNIQUE: SQLite cannot drop it in place, the table is rebuilt without it.
    project.write_models(MODELS.replace("    code = CharField(20, unique=true)\n", ""))
    assert project.run("db", "makemigrations").code == 0
    files = project.state()

    result = project.run("db", "migrate")
    assert result.code == 3, result
    assert name in result.err and "which mf does not manage" in result.err and "rolled back" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert project.state() == files
    assert sql(project, "SELECT name FROM mf_migrations") == [("001_create_customer.json",)]
    assert "code" in [row[1] for row in sql(project, "PRAGMA table_info(customer)")]
    assert dict(sql(project, "SELECT name, sql FROM sqlite_master WHERE type <> 'table'")) == kept
    assert sql(project, "SELECT name, code FROM customer") == [("a", "A")]


# ---------------------------------------------------------------- an added column
# ALTER TABLE ADD COLUMN makes SQLite parse the whole schema again: on a large schema a
# small table is rebuilt instead, chosen when the migration runs. The two are told apart
# by the table's text in sqlite_schema: ADD COLUMN splices ', "phone" ...' in before the
# closing parenthesis, the rebuild writes mf's CREATE TABLE, a column a line.
ADDED = MODELS.replace('    table = "customer"', '    phone = CharField(20, null=true)\n    table = "customer"')


def large_schema(project) -> None:
    """Tables of the user's, enough for sqlite_schema to hold SCHEMA_ENTRIES_FOR_REBUILD entries."""
    connection = sqlite3.connect(project.path / "dev.db")
    connection.executescript("".join(f"CREATE TABLE filler_{n} (x INTEGER);"
                                     for n in range(SCHEMA_ENTRIES_FOR_REBUILD)))
    connection.close()


def column_names(project) -> list:
    return [row[1] for row in sql(project, "PRAGMA table_info(customer)")]


def phone_added_by(project) -> str:
    definition = sql(project, "SELECT sql FROM sqlite_master WHERE name = 'customer'")[0][0]
    if definition.endswith(', "phone" VARCHAR(20))'):
        return "ALTER TABLE"
    assert definition.endswith('\n    "phone" VARCHAR(20)\n)'), definition
    return "rebuild"


def test_on_a_large_schema_a_column_is_added_by_a_rebuild_that_keeps_everything(project):
    before = migrated(project)
    large_schema(project)
    project.write_models(ADDED)
    assert project.run("db", "makemigrations").code == 0
    shown = project.run("db", "sql", "002").out
    assert ('-- add column phone to customer: ALTER TABLE "customer" ADD COLUMN "phone" VARCHAR(20), or, when'
            " the schema has at least") in shown
    assert '--   DROP TABLE "customer"' in shown
    assert shown.rstrip().endswith('ALTER TABLE "customer" ADD COLUMN "phone" VARCHAR(20);')

    result = project.run("db", "migrate")
    assert result.code == 0, result
    assert phone_added_by(project) == "rebuild"
    assert column_names(project) == ["id", "name", "code", "score", "phone"]
    assert objects(project) == before
    sql(project, "INSERT INTO customer (name, code, phone) VALUES ('c', 'C', '555')")
    assert sql(project, "SELECT what FROM audit_log") == [("c",)]        # the trigger fires
    assert sql(project, "SELECT id, name, phone FROM customer ORDER BY id") == [(1, "a", None), (3, "c", "555")]
    assert sql(project, "SELECT name, code FROM v ORDER BY code") == [("a", "A"), ("c", "C")]
    plan = sql(project, "EXPLAIN QUERY PLAN SELECT * FROM customer WHERE code = 'A' AND score = 0")
    assert any("hand_made_ix" in row[-1] or "customer_1" in row[-1] for row in plan)
    assert sql(project, "PRAGMA foreign_key_check") == []

    result = project.run("db", "rollback")  # the column is dropped the same way
    assert result.code == 0, result
    assert column_names(project) == ["id", "name", "code", "score"]
    assert objects(project) == before
    sql(project, "INSERT INTO customer (name, code) VALUES ('d', 'D')")
    assert sql(project, "SELECT id, name FROM customer ORDER BY id") == [(1, "a"), (3, "c"), (4, "d")]
    assert sql(project, "SELECT what FROM audit_log") == [("c",), ("d",)]
    assert sql(project, "SELECT count(*) FROM v") == [(3,)]


def test_on_a_small_schema_a_column_is_added_natively(project):
    before = migrated(project)
    project.write_models(ADDED)
    assert project.run("db", "makemigrations").code == 0
    result = project.run("db", "migrate")
    assert result.code == 0, result
    assert phone_added_by(project) == "ALTER TABLE"
    assert column_names(project) == ["id", "name", "code", "score", "phone"]
    assert objects(project) == before
    assert sql(project, "SELECT id, name, phone FROM customer") == [(1, "a", None)]
    assert project.run("db", "rollback").code == 0
    assert column_names(project) == ["id", "name", "code", "score"]
    assert objects(project) == before


def test_on_a_large_schema_a_large_table_gets_its_column_natively(project):
    before = migrated(project)
    large_schema(project)
    entries = sql(project, "SELECT count(*) FROM sqlite_master")[0][0]
    many = entries * ROWS_PER_SCHEMA_ENTRY  # with the row customer has, one more than a rebuild is chosen for
    connection = sqlite3.connect(project.path / "dev.db")
    connection.executemany("INSERT INTO customer (name, code) VALUES (?, ?)",
                           [(f"n{n}", f"C{n}") for n in range(many)])
    connection.commit()
    connection.close()
    project.write_models(ADDED)
    assert project.run("db", "makemigrations").code == 0
    result = project.run("db", "migrate")
    assert result.code == 0, result
    assert phone_added_by(project) == "ALTER TABLE"
    assert column_names(project) == ["id", "name", "code", "score", "phone"]
    assert objects(project) == before
    assert sql(project, "SELECT count(*), count(phone) FROM customer") == [(many + 1, 0)]

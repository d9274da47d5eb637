"""Type changes that round values (FloatField -> IntegerField, fewer decimal places,
DateTimeField -> DateField) on both databases: migrate stops at the first row the
change would alter, naming it, and changes nothing; rows that fit go through; with the
rounding accepted (`makemigrations --accept-rounding`, "accept_rounding": true in the
file) both databases round the same way."""
from __future__ import annotations

import json

import pytest

from bothdb import database  # noqa: F401 - the fixture

BEFORE = '''model Reading extends Model {
    id = AutoField()
    value = FloatField()
    price = DecimalField(10, 4)
    taken_at = DateTimeField()
}
'''
CHANGES = {  # field -> (its new declaration, a value that fits it, one it rounds, that one rounded)
    "value": ("IntegerField()", "2.0", "2.7", "3"),
    "price": ("DecimalField(10, 2)", "1.23", "1.2345", "1.23"),
    "taken_at": ("DateField()", "2024-01-01 00:00:00", "2024-01-02 10:30:00", "2024-01-02"),
}
DECLARED = {"value": "FloatField()", "price": "DecimalField(10, 4)", "taken_at": "DateTimeField()"}


def changed(field: str) -> str:
    return BEFORE.replace(f"{field} = {DECLARED[field]}", f"{field} = {CHANGES[field][0]}")


def migrated(project, database, rows) -> None:
    """The first migration applied, and ``rows`` of (id, value, price, taken_at) in it."""
    project.write_models(BEFORE)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", env=database.env).code == 0
    for row in rows:
        database.query("INSERT INTO reading (id, value, price, taken_at) VALUES ($1, "
                       + ("$2::text::float8, $3::text::numeric, $4::text::timestamp)" if database.kind == "postgresql"
                          else "CAST($2 AS REAL), CAST($3 AS NUMERIC), $4)"), *row)


def values(database, column: str) -> list:
    return [(key, str(value)) for key, value in database.query(f'SELECT id, "{column}" FROM reading ORDER BY id')]


def fitting_row(key=1) -> tuple:
    return (key, CHANGES["value"][1], CHANGES["price"][1], CHANGES["taken_at"][1])


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_a_row_the_change_would_round_stops_migrate_and_is_named(project, database, field):
    declaration, _fits, rounds, rounded = CHANGES[field]
    rounding_row = list(fitting_row(7))
    rounding_row[["value", "price", "taken_at"].index(field) + 1] = rounds
    migrated(project, database, [fitting_row(1), tuple(rounding_row), fitting_row(9)])
    # Two rows that would change: the first in key order is named.
    database.query(f'UPDATE reading SET "{field}" = (SELECT "{field}" FROM reading WHERE id = 7) WHERE id = 9')
    project.write_models(changed(field))
    made = project.run("db", "makemigrations")
    assert made.code == 0, made
    assert "migrate stops at a row it would change unless the rounding is accepted" in made.out
    before, files = database.snapshot(), project.state()
    kept = values(database, field)

    result = project.run("db", "migrate", env=database.env)
    assert result.code == 3, result
    assert result.err.startswith("error: ") and len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err and "SELECT" not in result.err
    old_type = "DecimalField(10, 4)" if field == "price" else DECLARED[field][:-2]
    new_type = "DecimalField(10, 2)" if field == "price" else declaration[:-2]
    shown = kept[1][1]  # the value as this database holds it
    assert (f"cannot change Reading.{field} (column {field} of table reading) from {old_type} to {new_type}: "
            f"the change ") in result.err
    assert f"would turn {shown} into {rounded} in the row with id 7;" in result.err, result.err
    assert "--accept-rounding" in result.err and "It was rolled back" in result.err
    assert database.snapshot() == before and values(database, field) == kept and project.state() == files

    as_json = project.run("db", "migrate", "--json", env=database.env)
    assert as_json.code == 3 and "in the row with id 7" in json.loads(as_json.out)["error"]["message"]


def test_rows_that_fit_go_through_unchanged(project, database):
    migrated(project, database, [fitting_row(1), (2, "-4", "0.5", "2023-12-31 00:00:00")])
    text = BEFORE
    for field, (declaration, *_rest) in CHANGES.items():
        text = text.replace(f"{field} = {DECLARED[field]}", f"{field} = {declaration}")
    project.write_models(text)
    assert project.run("db", "makemigrations").code == 0
    result = project.run("db", "migrate", env=database.env)
    assert result.code == 0, result
    assert values(database, "value") == [(1, "2"), (2, "-4")]
    assert [(k, float(v)) for k, v in values(database, "price")] == [(1, 1.23), (2, 0.5)]
    assert values(database, "taken_at") == [(1, "2024-01-01"), (2, "2023-12-31")]


def test_accepted_rounding_rounds_the_same_on_both_databases(project, database):
    migrated(project, database, [(1, "2.7", "1.2345", "2024-01-02 10:30:00"), (2, "2.5", "1.235", "2024-01-03 23:59:59"),
                                 (3, "-2.5", "-1.2350", "2024-01-04 00:00:00")])
    text = BEFORE
    for field, (declaration, *_rest) in CHANGES.items():
        text = text.replace(f"{field} = {DECLARED[field]}", f"{field} = {declaration}")
    project.write_models(text)
    made = project.run("db", "makemigrations", "--accept-rounding")
    assert made.code == 0, made
    assert made.out.count(", accepted)") == 3, made.out
    [name] = [n for n in project.migration_names() if n.startswith("002")]
    operations = json.loads((project.migrations / name).read_text())["ops"]
    assert [op.get("accept_rounding") for op in operations] == [True, True, True]

    result = project.run("db", "migrate", env=database.env)
    assert result.code == 0, result
    # Halves away from zero on both (PostgreSQL's cast of a double would round 2.5 to 2).
    assert values(database, "value") == [(1, "3"), (2, "3"), (3, "-3")]
    assert [(k, float(v)) for k, v in values(database, "price")] == [(1, 1.23), (2, 1.24), (3, -1.24)]
    assert values(database, "taken_at") == [(1, "2024-01-02"), (2, "2024-01-03"), (3, "2024-01-04")]
    assert project.run("db", "makemigrations", "--check").code == 0


def test_accept_rounding_in_a_file_must_be_true_or_false(project, database):
    migrated(project, database, [(1, "2.7", "1.2345", "2024-01-02 10:30:00")])
    project.write_models(changed("value"))
    assert project.run("db", "makemigrations").code == 0
    [name] = [n for n in project.migration_names() if n.startswith("002")]
    path = project.migrations / name
    document = json.loads(path.read_text())
    document["ops"][0]["accept_rounding"] = "yes"
    path.write_text(json.dumps(document))
    before, files = database.snapshot(), project.state()
    result = project.run("db", "migrate", env=database.env)
    assert result.code == 2, result
    assert name in result.err and "'accept_rounding' must be true or false" in result.err
    assert database.snapshot() == before and project.state() == files

    document["ops"][0]["accept_rounding"] = True  # written by hand: as good as the flag
    path.write_text(json.dumps(document))
    result = project.run("db", "migrate", env=database.env)
    assert result.code == 0, result
    assert values(database, "value") == [(1, "3")]


def test_accept_rounding_without_a_change_that_rounds_is_refused(project):
    project.write_models(BEFORE)
    assert project.run("db", "makemigrations").code == 0
    project.write_models(BEFORE.replace("price = DecimalField(10, 4)", "price = DecimalField(12, 4)"))
    before = project.state()
    result = project.run("db", "makemigrations", "--accept-rounding")
    assert result.code == 2, result
    assert "--accept-rounding: no change in this migration rounds values" in result.err
    assert project.state() == before


def test_a_shorter_varchar_is_refused_by_postgresql_itself(project, pg_url):
    """Not rounding: PostgreSQL's assignment cast rejects a string that does not fit."""
    import dbutil

    session = dbutil.PostgresSession(pg_url)
    try:
        schema = session.fresh_schema()
        env = {"MF_DATABASE_URL": pg_url + f"?options=-csearch_path%3D{schema}"}
        project.write_models("model Tag extends Model {\n    name = CharField(20)\n}\n")
        assert project.run("db", "makemigrations").code == 0
        assert project.run("db", "migrate", env=env).code == 0
        session.execute(f"INSERT INTO {schema}.tag (name) VALUES ('a long tag name')")
        project.write_models("model Tag extends Model {\n    name = CharField(5)\n}\n")
        assert project.run("db", "makemigrations").code == 0
        result = project.run("db", "migrate", env=env)
        assert result.code == 3 and "value too long for type character varying(5)" in result.err, result
        assert session.fetch(f"SELECT name FROM {schema}.tag")[0][0] == "a long tag name"
    finally:
        session.close()

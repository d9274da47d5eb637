"""JSON object defaults, IP address fields and deferrable foreign keys, from models.mp
to both databases and back: the rows behave, drift sees nothing, inspect writes the
same fields again, and a change to one of them changes only it."""
from __future__ import annotations

import json
import sqlite3
import uuid

import pytest

import dbutil
from mfcore.language.parser import parse
from test_drift import Database, _project_for, by_table, pg_module_url  # noqa: F401 (a fixture)

MODELS = """
model Host extends Model {
    name = CharField(40)
    addr = IPAddressField(default="2001:DB8::0001")
    backup = IPAddressField(null=true, unique=true)
    settings = JSONField(default={"retries": 3, "hosts": ["a", "b"], "tls": {"verify": true, "ca": null}})
    tags = JSONField(default={})
}
"""


def migrated_project(driver: str, root, request, models: str) -> Database:
    """A project on ``driver`` with ``models`` made and migrated, as a user does it."""
    database = _project_for(driver, root, request)
    database.project.write_models(models)
    made = database.project.run("db", "makemigrations")
    assert made.code == 0, made
    migrated = database.project.run("db", "migrate")
    assert migrated.code == 0, migrated
    return database


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> Database:
    return migrated_project(request.param, tmp_path / "app", request, MODELS)


def rows(database: Database, query: str) -> list:
    if database.driver == "postgresql":
        return database.session.fetch(query)
    connection = sqlite3.connect(database.project.path / "dev.db")
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def test_rows_take_the_defaults(database):
    database.by_hand("INSERT INTO host (name, backup) VALUES ('web', '10.0.0.2')")
    ((addr, backup, settings, tags),) = rows(database, "SELECT addr::text, backup::text, settings::text, tags::text"
                                                       " FROM host" if database.driver == "postgresql" else
                                             "SELECT addr, backup, settings, tags FROM host")
    assert addr.split("/")[0] == "2001:db8::1"
    assert backup.split("/")[0] == "10.0.0.2"
    assert json.loads(settings) == {"retries": 3, "hosts": ["a", "b"], "tls": {"verify": True, "ca": None}}
    assert json.loads(tags) == {}


def test_postgresql_refuses_what_is_not_an_address(tmp_path, request):
    """(SQLite stores an IPAddressField's text as given.)"""
    import asyncpg

    database = migrated_project("postgresql", tmp_path / "app", request, MODELS)

    with pytest.raises(asyncpg.InvalidTextRepresentationError):
        database.by_hand("INSERT INTO host (name, addr) VALUES ('web', 'not an address')")


def test_no_drift_and_inspect_writes_the_same_fields(database):
    drift = database.project.run("db", "drift")
    assert drift.code == 0, drift
    inspected = database.project.run("db", "inspect")
    assert inspected.code == 0, inspected
    if database.driver == "postgresql":
        assert by_table(parse(inspected.out)) == by_table(parse(MODELS))
    else:  # SQLite keeps addresses and JSON as TEXT: the columns' types are read back as TextField
        fields = {f.name: f for f in parse(inspected.out).models["Host"].fields}
        assert fields["settings"].default == json.dumps(
            {"hosts": ["a", "b"], "retries": 3, "tls": {"ca": None, "verify": True}})
        assert fields["addr"].default == "2001:db8::1"


def test_changing_a_json_default_changes_only_it(database):
    database.project.write_models(MODELS.replace('tags = JSONField(default={})', 'tags = JSONField(default={"new": 1})'))
    made = database.project.run("db", "makemigrations")
    assert made.code == 0, made
    assert "Alter field tags on Host (default: {} -> {\"new\": 1})" in made.out
    assert database.project.run("db", "migrate").code == 0
    database.by_hand("INSERT INTO host (name) VALUES ('db')")
    ((tags,),) = rows(database, "SELECT tags::text FROM host" if database.driver == "postgresql" else
                      "SELECT tags FROM host")
    assert json.loads(tags) == {"new": 1}
    # The order of keys is no change.
    database.project.write_models(MODELS.replace(
        '{"retries": 3, "hosts": ["a", "b"], "tls": {"verify": true, "ca": null}}',
        '{"tls": {"ca": null, "verify": true}, "hosts": ["a", "b"], "retries": 3}').replace(
        'tags = JSONField(default={})', 'tags = JSONField(default={"new": 1})'))
    again = database.project.run("db", "makemigrations")
    assert again.code == 0 and again.out == "No changes detected.\n", again


# ---------------------------------------------------------------- deferrable foreign keys

PEOPLE = """
model Person extends Model {
    name = CharField(40)
    mentor = ForeignKey(Person, null=true, on_delete=SET_NULL, deferrable=true)
    team = ForeignKey(Team, deferrable=true)
}
model Team extends Model {
    name = CharField(40)
    lead = ForeignKey(Person, null=true, on_delete=SET_NULL)
}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def people(request, tmp_path) -> Database:
    return migrated_project(request.param, tmp_path / "people", request, PEOPLE)


def insert_in_one_transaction(database: Database, *statements: str) -> None:
    """Run the statements in one transaction, the referring row first."""
    if database.driver == "postgresql":
        try:
            database.session.execute("BEGIN; " + "; ".join(statements) + "; COMMIT")
        except Exception:
            database.session.execute("ROLLBACK")
            raise
        return
    connection = sqlite3.connect(database.project.path / "dev.db", isolation_level=None)
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.executescript("BEGIN; " + "; ".join(statements) + "; COMMIT;")
    finally:
        connection.close()


def test_a_deferrable_key_accepts_rows_in_either_order_in_one_transaction(people):
    insert_in_one_transaction(people, "INSERT INTO person (id, name, team) VALUES (1, 'ada', 10)",
                              "INSERT INTO team (id, name) VALUES (10, 'core')")
    assert rows(people, "SELECT id, team FROM person") == [(1, 10)]
    # Still checked at COMMIT: a row that points nowhere is refused then, and nothing stays.
    with pytest.raises(Exception, match="(?i)foreign key"):
        insert_in_one_transaction(people, "INSERT INTO person (id, name, team) VALUES (2, 'bob', 99)")
    assert rows(people, "SELECT id FROM person") == [(1,)]


def test_a_key_that_is_not_deferrable_is_checked_at_once(people):
    with pytest.raises(Exception, match="(?i)foreign key"):
        insert_in_one_transaction(people, "INSERT INTO team (id, name, lead) VALUES (11, 'ops', 7)",
                                  "INSERT INTO person (id, name, team) VALUES (7, 'cy', 11)")
    assert rows(people, "SELECT id FROM team") == []


def test_deferrable_keys_show_no_drift_and_inspect_says_them(people):
    drift = people.project.run("db", "drift")
    assert drift.code == 0, drift
    inspected = people.project.run("db", "inspect")
    assert inspected.code == 0, inspected
    assert by_table(parse(inspected.out)) == by_table(parse(PEOPLE))


def test_making_a_key_deferrable_changes_only_that_key(people):
    people.by_hand("INSERT INTO team (id, name) VALUES (10, 'core')",
                   "INSERT INTO person (id, name, team) VALUES (1, 'ada', 10)",
                   "UPDATE team SET lead = 1")
    people.project.write_models(PEOPLE.replace("lead = ForeignKey(Person, null=true, on_delete=SET_NULL)",
                                               "lead = ForeignKey(Person, null=true, on_delete=SET_NULL, deferrable=true)"))
    made = people.project.run("db", "makemigrations")
    assert made.code == 0, made
    assert [line.strip() for line in made.out.splitlines() if line.strip()[:1] in "+-~⚠"] == [
        "+ Alter field lead on Team (deferrable: false -> true)"]
    assert people.project.run("db", "migrate").code == 0
    assert people.project.run("db", "drift").code == 0
    assert rows(people, "SELECT id, lead FROM team") == [(10, 1)]
    insert_in_one_transaction(people, "INSERT INTO team (id, name, lead) VALUES (11, 'ops', 7)",
                              "INSERT INTO person (id, name, team) VALUES (7, 'cy', 11)")
    rolled_back = people.project.run("db", "rollback")
    assert rolled_back.code == 0, rolled_back
    assert people.project.run("db", "drift").code == 0


# ---------------------------------------------------------------- keys that are foreign keys

CHAIN = """
model Place extends Model { code = CharField(10, primary_key=true) }
model Restaurant extends Model { place = OneToOneField(Place, primary_key=true) }
model Bistro extends Model { restaurant = OneToOneField(Restaurant, primary_key=true) }
model Review extends Model { bistro = ForeignKey(Bistro); stars = IntegerField() }
model Counter extends Model { id = BigAutoField() }
model Tally extends Model { counter = OneToOneField(Counter, primary_key=true) }
model Tick extends Model { tally = ForeignKey(Tally) }
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def chain(request, tmp_path) -> Database:
    return migrated_project(request.param, tmp_path / "chain", request, CHAIN)


def column_types(database: Database, table: str) -> dict:
    catalog = (database.session.read_catalog() if database.driver == "postgresql"
               else dbutil.read_sqlite_catalog(sqlite3.connect(database.project.path / "dev.db")))
    return {name: column.type for name, column in catalog.tables[table].columns.items()}


def test_a_foreign_key_takes_the_type_at_the_end_of_a_chain_of_keys(chain):
    varchar, bigint = ("character varying(10)", "bigint") if chain.driver == "postgresql" else ("VARCHAR(10)", "INTEGER")
    assert column_types(chain, "review")["bistro"] == varchar
    assert column_types(chain, "bistro")["restaurant"] == varchar
    assert column_types(chain, "tick")["tally"] == bigint
    chain.by_hand("INSERT INTO place VALUES ('p1')", "INSERT INTO restaurant VALUES ('p1')",
                  "INSERT INTO bistro VALUES ('p1')", "INSERT INTO review (bistro, stars) VALUES ('p1', 5)")
    assert rows(chain, "SELECT bistro, stars FROM review") == [("p1", 5)]


def test_a_key_changing_type_carries_the_chain_and_its_rows_both_ways(chain):
    chain.by_hand("INSERT INTO place VALUES ('p1')", "INSERT INTO restaurant VALUES ('p1')",
                  "INSERT INTO bistro VALUES ('p1')", "INSERT INTO review (bistro, stars) VALUES ('p1', 5)")
    chain.project.write_models(CHAIN.replace("CharField(10", "CharField(30"))
    assert chain.project.run("db", "makemigrations").code == 0
    migrated = chain.project.run("db", "migrate")
    assert migrated.code == 0, migrated
    varchar = "character varying(30)" if chain.driver == "postgresql" else "VARCHAR(30)"
    assert [column_types(chain, t)[c] for t, c in [("place", "code"), ("restaurant", "place"),
                                                   ("bistro", "restaurant"), ("review", "bistro")]] == [varchar] * 4
    assert chain.project.run("db", "drift").code == 0
    chain.by_hand("INSERT INTO place VALUES ('a-name-longer-than-ten')",
                  "INSERT INTO restaurant VALUES ('a-name-longer-than-ten')")
    chain.by_hand("DELETE FROM restaurant WHERE place = 'a-name-longer-than-ten'",
                  "DELETE FROM place WHERE code = 'a-name-longer-than-ten'")
    rolled_back = chain.project.run("db", "rollback")
    assert rolled_back.code == 0, rolled_back
    assert chain.project.run("db", "drift").code == 0
    assert column_types(chain, "review")["bistro"] == ("character varying(10)" if chain.driver == "postgresql" else "VARCHAR(10)")
    assert rows(chain, "SELECT bistro, stars FROM review") == [("p1", 5)]


# ---------------------------------------------------------------- partial indexes, operator classes

EMAILS = """
model Email extends Model {
    address = CharField(100)
    verified = BooleanField(default=false)
    indexes = [Index(address, unique=true, where="verified", name="unique_verified_email"),
               Index(address, opclass="varchar_pattern_ops", name="email_like")]
}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def emails(request, tmp_path) -> Database:
    return migrated_project(request.param, tmp_path / "emails", request, EMAILS)


def test_a_partial_unique_index_holds_only_where_its_condition_does(emails):
    true = "true" if emails.driver == "postgresql" else "1"
    false = "false" if emails.driver == "postgresql" else "0"
    emails.by_hand(f"INSERT INTO email (address, verified) VALUES ('a@x', {false})",
                   f"INSERT INTO email (address, verified) VALUES ('a@x', {false})",
                   f"INSERT INTO email (address, verified) VALUES ('a@x', {true})")
    with pytest.raises(Exception, match="(?i)unique"):
        emails.by_hand(f"INSERT INTO email (address, verified) VALUES ('a@x', {true})")
    assert rows(emails, "SELECT count(*) FROM email") == [(3,)]


def test_partial_indexes_and_operator_classes_show_no_drift_and_inspect_writes_them(emails):
    assert emails.project.run("db", "drift").code == 0
    inspected = emails.project.run("db", "inspect")
    assert inspected.code == 0, inspected
    indexes = parse(inspected.out).models["Email"].indexes
    opclass = "varchar_pattern_ops" if emails.driver == "postgresql" else None  # SQLite has none
    assert [(i.name, i.unique, i.where, i.opclass) for i in indexes] == [
        ("email_like", False, None, opclass), ("unique_verified_email", True, "verified", None)]


def test_an_operator_class_changed_by_hand_is_drift_on_postgresql(tmp_path, request):
    database = migrated_project("postgresql", tmp_path / "emails", request, EMAILS)
    database.by_hand("DROP INDEX email_like", "CREATE INDEX email_like ON email (address)")
    drift = database.project.run("db", "drift")
    assert drift.code == 1
    assert "[~] index email_like: INDEX (address) in the database, INDEX (address varchar_pattern_ops) expected" \
        in drift.out


def test_changing_a_condition_replaces_only_that_index(emails):
    emails.project.write_models(EMAILS.replace('where="verified"', 'where="verified AND address <> \'\'"'))
    made = emails.project.run("db", "makemigrations")
    assert made.code == 0, made
    assert [line.strip() for line in made.out.splitlines() if line.strip()[:1] == "+"] == [
        "+ Drop index unique_verified_email on Email",
        "+ Add unique index unique_verified_email on Email (address) where verified AND address <> ''"]
    assert emails.project.run("db", "migrate").code == 0
    assert emails.project.run("db", "drift").code == 0
    assert emails.project.run("db", "rollback").code == 0
    assert emails.project.run("db", "drift").code == 0


def test_a_condition_that_is_not_one_expression_in_a_migration_file_is_refused(emails):
    path = emails.project.path / "migrations" / "001_create_email.json"
    before = path.read_bytes()
    emails.project.write_models(EMAILS.replace('where="verified"', 'where="verified AND true"'))
    assert emails.project.run("db", "makemigrations").code == 0
    second = next(p for p in (emails.project.path / "migrations").glob("002_*.json"))
    second.write_text(second.read_text().replace("verified AND true", "true); DROP TABLE email; --"))
    applied = emails.project.run("db", "migrate")
    assert applied.code == 2, applied
    assert applied.err.count("\n") == 1 and ".index.where has a ')' that closes nothing" in applied.err
    assert "Traceback" not in applied.err
    assert path.read_bytes() == before
    assert rows(emails, "SELECT count(*) FROM email") == [(0,)]  # the table is still there


def test_a_rebuilt_table_keeps_its_partial_index(emails):
    """SQLite rebuilds the table for a column change; the index comes back with its WHERE."""
    emails.project.write_models(EMAILS.replace("CharField(100)", "CharField(200)"))
    assert emails.project.run("db", "makemigrations").code == 0
    assert emails.project.run("db", "migrate").code == 0
    assert emails.project.run("db", "drift").code == 0
    test_a_partial_unique_index_holds_only_where_its_condition_does(emails)


# ---------------------------------------------------------------- defaults the database computes

TOKENS = """
model Token extends Model {
    name = CharField(10)
    key = UUIDField(default=uuid4(), unique=true)
    made = DateTimeField(default=now())
}
"""


def test_each_row_gets_its_own_random_uuid_old_rows_included(tmp_path, request):
    for driver in ("sqlite", "postgresql"):
        database = migrated_project(driver, tmp_path / driver, request, TOKENS)
        database.by_hand("INSERT INTO token (name) VALUES ('a')", "INSERT INTO token (name) VALUES ('b')")
        database.project.write_models(TOKENS.replace("    name = CharField(10)\n",
                                                     "    name = CharField(10)\n    salt = UUIDField(default=uuid4())\n"))
        made = database.project.run("db", "makemigrations")
        assert made.code == 0, made
        assert "+ Add field salt to Token (UUIDField, default uuid4())" in made.out
        assert database.project.run("db", "migrate").code == 0
        database.by_hand("INSERT INTO token (name) VALUES ('c')")
        found = rows(database, "SELECT key::text, salt::text FROM token" if driver == "postgresql"
                     else "SELECT key, salt FROM token")
        values = [value for row in found for value in row]
        assert len(values) == 6 and len(set(values)) == 6, found
        assert all(uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value for value in values)
        assert database.project.run("db", "drift").code == 0
        inspected = database.project.run("db", "inspect")
        assert "salt = UUIDField(default=uuid4())" in inspected.out
        assert "made = DateTimeField(auto_now_add=true)" in inspected.out

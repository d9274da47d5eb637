"""mf db drift on both databases: a change made by hand is reported precisely, --sql
repairs it, and right after mf's own migrations nothing is ever reported.

Each test is a project whose database is an SQLite file or a schema of its own in
this module's PostgreSQL database (the DSN's search_path), driven through the CLI
or the API as a user drives it.
"""
from __future__ import annotations

import json
import os
import sqlite3
import uuid
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dbutil
from conftest import Project
from mfcore import api, store
from mfcore.differ import diff
from mfcore.language.parser import parse
from mfcore.schema import Schema
from strategies import schema_texts
from test_dialect_sql import schema_pairs

MODELS = """
enum Role { ADMIN, USER }
model Team extends Model { name = CharField(50) }
model Squad extends Model { name = CharField(50) }
model Member extends Model {
    email = CharField(100)
    nick = CharField(30, null=true)
    bio = TextField(null=true)
    role = EnumField(Role, default=Role.USER)
    team = ForeignKey(Team, on_delete=CASCADE)
    indexes = [Index(email, nick, name="ix_member_email_nick")]
}
"""

# How many histories the property tests draw per database: bounded in CI, more with
# MF_DRIFT_EXAMPLES=<n>.
EXAMPLES = int(os.environ.get("MF_DRIFT_EXAMPLES", "40"))


class Database:
    """A project's database and a way to change it by hand."""

    def __init__(self, driver: str, project: Project, session=None, schema=None):
        self.driver, self.project, self.session, self.schema = driver, project, session, schema

    def by_hand(self, *statements: str) -> None:
        if self.driver == "postgresql":
            for statement in statements:
                self.session.execute(statement)
            return
        connection = sqlite3.connect(self.project.path / "dev.db", isolation_level=None)
        try:
            for statement in statements:
                connection.execute(statement)
        finally:
            connection.close()

    def edit_sqlite_definition(self, table: str, old: str, new: str) -> None:
        """Change a table's stored CREATE TABLE text, as a hand-made rebuild would leave it."""
        connection = sqlite3.connect(self.project.path / "dev.db", isolation_level=None)
        try:
            (sql,) = connection.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
            assert old in sql, sql
            version = connection.execute("PRAGMA schema_version").fetchone()[0]
            connection.execute("PRAGMA writable_schema=ON")
            connection.execute("UPDATE sqlite_master SET sql = ? WHERE name = ?", (sql.replace(old, new), table))
            connection.execute(f"PRAGMA schema_version={version + 1}")
            connection.execute("PRAGMA writable_schema=OFF")
        finally:
            connection.close()

    def run_script(self, script: str) -> None:
        if self.driver == "postgresql":
            self.session.execute(script)
            return
        connection = sqlite3.connect(self.project.path / "dev.db", isolation_level=None)
        try:
            connection.executescript(script)
        finally:
            connection.close()


@pytest.fixture(scope="module")
def pg_module_url():
    with dbutil.temporary_postgres_database("mf_drift") as url:
        yield url


def _project_for(driver: str, root, request, *, close_at_end: bool = True) -> Database:
    root.mkdir(parents=True, exist_ok=True)
    project = Project(root)
    if driver == "sqlite":
        project.write("language_config.yaml", 'database:\n  driver: "sqlite"\n  dsn: "./dev.db"\n')
        return Database(driver, project)
    url = request.getfixturevalue("pg_module_url")
    session = dbutil.PostgresSession(url)
    schema = session.fresh_schema()
    if close_at_end:
        request.addfinalizer(session.close)
    project.write("language_config.yaml",
                  f'database:\n  driver: "postgresql"\n  dsn: "{url}?search_path={schema}"\n')
    return Database(driver, project, session, schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> Database:
    database = _project_for(request.param, tmp_path / "app", request)
    database.project.write_models(MODELS)
    assert database.project.run("db", "makemigrations").code == 0
    migrated = database.project.run("db", "migrate")
    assert migrated.code == 0, migrated
    return database


def drift_lines(database: Database) -> list:
    result = database.project.run("db", "drift")
    assert result.code == 1, result
    # Only the differences: the header and the table each is under aside.
    return [line.strip() for line in result.out.splitlines() if line.strip().startswith("[")]


def assert_repaired(database: Database) -> None:
    repair = database.project.run("db", "drift", "--sql")
    assert repair.code == 1, repair
    database.run_script(repair.out)
    after = database.project.run("db", "drift")
    assert after.code == 0, after
    assert after.out == "No drift: the database matches its 1 applied migration(s).\n"


# ---------------------------------------------------------------- each change made by hand

def test_no_drift_after_migrate(database):
    result = database.project.run("db", "drift")
    assert (result.code, result.out) == (0, "No drift: the database matches its 1 applied migration(s).\n")
    status = database.project.run("db", "status", "--drift")
    assert status.out.splitlines()[-2:] == ["Up to date.", "No drift: the database matches its 1 applied migration(s)."]


def test_a_dropped_column(database):
    database.by_hand('ALTER TABLE member DROP COLUMN bio')
    kind = {"sqlite": "TEXT", "postgresql": "text"}[database.driver]
    assert drift_lines(database) == [f"[-] column member.bio {kind} NULL (missing from the database)"]
    assert_repaired(database)


def test_an_added_column(database):
    database.by_hand("ALTER TABLE member ADD COLUMN extra integer")
    kind = {"sqlite": "INTEGER", "postgresql": "integer"}[database.driver]
    assert drift_lines(database) == [f"[+] column member.extra {kind} NULL (in the database only)"]
    assert_repaired(database)


def test_a_retyped_column(database):
    if database.driver == "postgresql":
        database.by_hand("ALTER TABLE member ALTER COLUMN email TYPE varchar(200)")
        line = "[~] member.email: varchar(200) in the database, varchar(100) expected"
    else:
        database.edit_sqlite_definition("member", '"email" VARCHAR(100)', '"email" VARCHAR(200)')
        line = "[~] member.email: VARCHAR(200) in the database, VARCHAR(100) expected"
    assert drift_lines(database) == [line]
    assert_repaired(database)


def test_a_column_made_nullable(database):
    if database.driver == "postgresql":
        database.by_hand("ALTER TABLE member ALTER COLUMN email DROP NOT NULL")
    else:
        database.edit_sqlite_definition("member", '"email" VARCHAR(100) NOT NULL', '"email" VARCHAR(100)')
    assert drift_lines(database) == ["[~] member.email: nullable in the database, NOT NULL expected"]
    assert_repaired(database)


def test_a_dropped_index(database):
    database.by_hand('DROP INDEX "ix_member_email_nick"')
    assert drift_lines(database) == ["[-] index ix_member_email_nick INDEX (email, nick) (missing from the database)"]
    assert_repaired(database)


def test_an_enum_label_added_by_hand(database):
    if database.driver == "postgresql":
        database.by_hand("ALTER TYPE role ADD VALUE 'GUEST'")
        line = "[~] enum role: 'ADMIN', 'USER', 'GUEST' in the database, 'ADMIN', 'USER' expected"
    else:
        database.edit_sqlite_definition("member", "IN ('ADMIN', 'USER')", "IN ('ADMIN', 'USER', 'GUEST')")
        line = "[~] check member.role: IN ('ADMIN', 'USER', 'GUEST') in the database, IN ('ADMIN', 'USER') expected"
    assert drift_lines(database) == [line]
    assert_repaired(database)


def test_a_retargeted_foreign_key(database):
    if database.driver == "postgresql":
        database.by_hand("ALTER TABLE member DROP CONSTRAINT member_team_fkey",
                         "ALTER TABLE member ADD CONSTRAINT member_team_fkey FOREIGN KEY (team)"
                         " REFERENCES squad (id) ON DELETE CASCADE")
        line = ("[~] foreign key member.team: -> squad(id) ON DELETE CASCADE named member_team_fkey in the database, "
                "-> team(id) ON DELETE CASCADE named member_team_fkey expected")
    else:
        database.edit_sqlite_definition("member", 'REFERENCES "team"', 'REFERENCES "squad"')
        line = "[~] foreign key member.team: -> squad(id) ON DELETE CASCADE in the database, -> team(id) ON DELETE CASCADE expected"
    assert drift_lines(database) == [line]
    assert_repaired(database)


def test_unmanaged_tables_are_listed_apart_unless_strict(database):
    database.by_hand("CREATE TABLE legacy_audit (id integer PRIMARY KEY)")
    result = database.project.run("db", "drift")
    assert result.code == 0, result
    assert result.out.splitlines() == [
        "Unmanaged (in no migration; drift with --strict): table legacy_audit",
        "No drift: the database matches its 1 applied migration(s) (1 unmanaged).",
    ]
    assert database.project.run("db", "drift", "--strict").code == 1
    document = database.project.run("db", "drift", "--json", "--strict")
    assert document.code == 1
    import json

    parsed = json.loads(document.out)
    assert parsed["drift"] is True and parsed["unmanaged"] == ["table legacy_audit"]


def test_a_table_dropped_by_a_migration_but_still_there_is_drift(database):
    database.by_hand("CREATE TABLE gone (id integer PRIMARY KEY)")
    project = database.project
    project.write_models(MODELS + "model Gone extends Model { x = IntegerField(null=true) }\n")
    # The table exists already: mark its creation applied, then drop it in the models.
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", "--fake").code == 0
    project.write_models(MODELS)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", "--fake").code == 0
    result = project.run("db", "drift", "--json")
    import json

    parsed = json.loads(result.out)
    assert result.code == 1
    assert [(d["change"], d["kind"], d["name"]) for d in parsed["differences"]] == [("+", "table", "gone")]
    assert parsed["unmanaged"] == []


# ---------------------------------------------------------------- no false positive, ever

def _history_has_no_drift(driver: str, request, texts: list, max_tables: int = 500) -> None:
    """Migrate the history of ``texts`` (each a models.mp) through mf, then ask for drift,
    the expected catalog built ``max_tables`` tables at a time."""
    root = request.getfixturevalue("tmp_path_factory").mktemp("history")
    database = _project_for(driver, root / f"p{uuid.uuid4().hex[:8]}", request, close_at_end=False)
    config_file = database.project.path / "language_config.yaml"
    config_file.write_text(config_file.read_text() + f"max_tables_per_migration: {max_tables}\n")
    directory = str(database.project.migrations)
    before = Schema()
    for number, text in enumerate(texts, 1):
        after = parse(text)
        operations = diff(before, after)
        os.makedirs(directory, exist_ok=True)
        store.write_migration(directory, number, f"step{number}", operations)
        before = after
    config = str(database.project.path / "language_config.yaml")
    cwd = os.getcwd()
    os.chdir(database.project.path)
    try:
        anyio.run(lambda: api.migrate(config))
        report = anyio.run(lambda: api.drift(config, strict=True))
    finally:
        os.chdir(cwd)
        if database.session is not None:
            database.session.drop_schema()
            database.session.close()
    assert report.differences == [], [d.describe() for d in report.differences]
    assert report.unmanaged == []
    assert report.applied == len(texts)


@pytest.mark.parametrize("driver", ["sqlite", "postgresql"])
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_drift_right_after_any_history(driver, request, data):
    created = data.draw(schema_texts(), label="first")
    before, after = data.draw(schema_pairs(vary_keys=True), label="pair")
    max_tables = data.draw(st.sampled_from([1, 2, 500]), label="max_tables_per_migration")
    _history_has_no_drift(driver, request, [created], max_tables)
    _history_has_no_drift(driver, request, [before, after], max_tables)


def _expected_catalog(database: Database, schema: Schema, max_tables: int):
    from mfcore.config import load_config
    from mfcore.dialects import dialect_for
    from mfcore.drift_check import expected_catalog

    config = load_config(str(database.project.path / "language_config.yaml"))
    config = replace(config, max_tables_per_migration=max_tables)
    return anyio.run(expected_catalog, config, dialect_for(config.driver), schema)


@pytest.mark.parametrize("driver", ["sqlite", "postgresql"])
@settings(max_examples=max(10, EXAMPLES // 2), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=schema_texts(max_models=6), max_tables=st.integers(1, 3))
def test_the_expected_catalog_built_in_parts_is_the_one_built_whole(driver, request, text, max_tables):
    # Parts keep each transaction within the server's lock table on a large schema;
    # a foreign key into another part points at a table that has only its key.
    database = _project_for(driver, request.getfixturevalue("tmp_path_factory").mktemp("parts") / "app", request)
    schema = parse(text)
    in_parts = _expected_catalog(database, schema, max_tables)
    whole = _expected_catalog(database, schema, 10_000)
    assert in_parts == whole
    assert set(whole.tables) == {model.table for model in schema.models.values()}


def test_schema_parts_hold_each_model_once_and_the_keys_its_foreign_keys_need():
    from mfcore.drift_check import schema_parts

    schema = parse("""
enum Role { ADMIN, USER }
model Team extends Model { name = CharField(50) }
model Member extends Model {
    team = ForeignKey(Team, on_delete=CASCADE)
    role = EnumField(Role, default=Role.USER)
}
model Badge extends Model {
    member = ForeignKey(Member, on_delete=CASCADE)
    parent = ForeignKey(Badge, on_delete=CASCADE, null=true)
}
""")
    parts = list(schema_parts(schema, 2))
    assert [sorted(whole) for _part, whole in parts] == [["member", "team"], ["badge"]]
    first, second = parts[0][0], parts[1][0]
    assert first.models == {"Team": schema.models["Team"], "Member": schema.models["Member"]}
    assert second.models["Badge"] == schema.models["Badge"]
    assert [f.name for f in second.models["Member"].fields] == ["id"]  # the key alone
    assert first.enums == second.enums == schema.enums


# ---------------------------------------------------------------- mf db inspect

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop" / "models.mp"


def by_table(schema: Schema):
    """A schema keyed by what a database keeps: tables, columns, enum values. Model and
    enum names, enum keys, PROTECT (RESTRICT in the database) and auto_now (a default
    of the clock, like auto_now_add) are the application's, not the database's."""
    tables = {model.name: model.table for model in schema.models.values()}
    values = {name: enum.values for name, enum in schema.enums.items()}
    models = {}
    for model in schema.models.values():
        fields = sorted(f._replace(target=tables.get(f.target), enum=values.get(f.enum),
                                   on_delete={"PROTECT": "RESTRICT"}.get(f.on_delete, f.on_delete),
                                   auto_now=False, auto_now_add=f.auto_now_add or f.auto_now)
                        for f in model.fields)
        models[model.table] = (fields, sorted(model.indexes))
    return models, sorted(values.values())


def inspected(database: Database, *args) -> str:
    result = database.project.run("db", "inspect", *args)
    assert result.code == 0, result
    return result.out


def test_inspect_round_trips_the_shop_on_postgresql(tmp_path, request):
    database = _project_for("postgresql", tmp_path / "shop", request)
    database.project.write_models(SHOP.read_text())
    assert database.project.run("db", "makemigrations").code == 0
    assert database.project.run("db", "migrate").code == 0
    written = database.project.run("db", "inspect", "-o", "inspected.mp")
    assert written.code == 0, written
    assert written.out == "Wrote 31 model(s) to inspected.mp\n"
    text = (database.project.path / "inspected.mp").read_text()
    assert "//" not in text.split("\n", 1)[1]  # nothing the language cannot say
    # A new project indexes its foreign keys: the inspected text says so the same way.
    assert by_table(parse(text, index_foreign_keys=True)) == by_table(parse(SHOP.read_text(), index_foreign_keys=True))


def test_inspect_round_trips_the_shop_on_sqlite(tmp_path, request):
    """SQLite keeps one storage type for several fields (TEXT: times, UUIDs, JSON): the
    inspected models make the same database again, catalog for catalog."""
    database = _project_for("sqlite", tmp_path / "shop", request)
    database.project.write_models(SHOP.read_text())
    assert database.project.run("db", "makemigrations").code == 0
    assert database.project.run("db", "migrate").code == 0
    text = inspected(database)
    again = _project_for("sqlite", tmp_path / "again", request)
    again.project.write_models(text)
    assert again.project.run("db", "makemigrations").code == 0
    assert again.project.run("db", "migrate").code == 0
    assert dbutil.read_sqlite_catalog(sqlite3.connect(again.project.path / "dev.db")) == \
        dbutil.read_sqlite_catalog(sqlite3.connect(database.project.path / "dev.db"))
    assert inspected(again).split("\n", 1)[1] == text.split("\n", 1)[1]


@settings(max_examples=max(10, EXAMPLES // 3), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=schema_texts())
def test_inspect_round_trips_any_schema_on_postgresql(pg_module_url, request, text):
    session = dbutil.PostgresSession(pg_module_url)
    try:
        session.fresh_schema()
        session.migrate(diff(Schema(), parse(text)))
        from mfcore.dialects import dialect_for
        from mfcore.introspect import schema_of_catalog
        from mfcore.language.emit import models_text

        catalog = session.read_catalog()
        catalog.tables.pop("mf_migrations", None)
        schema, notes = schema_of_catalog(catalog, dialect_for("postgresql"))
        assert notes == []
        assert by_table(parse(models_text(schema))) == by_table(parse(text))
    finally:
        session.close()


# ---------------------------------------------------------------- a migration left half-way

def test_a_non_atomic_migration_stopped_midway_is_partly_applied_not_drift(tmp_path, request):
    """PostgreSQL runs a migration marked "atomic": false statement by statement: one
    that stopped after its index was made is reported as partly applied, its index with
    it, and only what no migration explains is drift."""
    database = _project_for("postgresql", tmp_path / "app", request)
    project = database.project
    project.write_models(MODELS)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate").code == 0
    project.write_models(MODELS.replace('name="ix_member_email_nick")]', 'name="ix_member_email_nick"), '
                                        'Index(bio, name="ix_member_bio")]'))
    assert project.run("db", "makemigrations", "--name", "bio_index").code == 0
    path = project.migrations / "002_bio_index.json"
    document = json.loads(path.read_text())
    document["atomic"] = False
    document["ops"].append({"op": "run_sql", "sql": "SELECT 1 / 0", "reverse_sql": ""})
    path.write_text(json.dumps(document))
    stopped = project.run("db", "migrate")
    assert stopped.code == 3, stopped
    database.by_hand("ALTER TABLE member DROP COLUMN nick")

    result = project.run("db", "drift")
    assert result.code == 1, result
    assert result.out.splitlines() == [
        "Drift from the 1 applied migration(s):",
        "  member",
        "    [-] column member.nick varchar(30) NULL (missing from the database)",
        "    [-] index ix_member_email_nick INDEX (email, nick) (missing from the database)",
        "Partly applied: 002_bio_index.json runs outside a transaction and stopped midway (recorded as started); "
        "settle it with `mf db resolve 002 --applied` or `--rolled-back`.",
        "  In the database from it:",
        "    [+] index ix_member_bio INDEX (bio) (in the database only)",
    ]
    document = json.loads(project.run("db", "drift", "--json").out)
    assert document["drift"] is True
    assert [(p["migration"], [d["name"] for d in p["in_database"]]) for p in document["partly_applied"]] == [
        ("002_bio_index.json", ["ix_member_bio"])]
    assert [d["name"] for d in document["differences"]] == ["member.nick", "ix_member_email_nick"]
    assert project.run("db", "drift", "--sql").out == \
        "-- migration 002_bio_index.json is partly applied: settle it with `mf db resolve` first\n"
    status = project.run("db", "status", "--drift")
    assert status.out.splitlines()[-1] == ("Drift: 2 difference(s) from the 1 applied migration(s); migration "
                                           "002_bio_index.json is partly applied (run `mf db drift`).")

    # Settled as applied, the index is the migration's: only the hand-made change is drift.
    assert project.run("db", "resolve", "002", "--applied").code == 0
    lines = [line.strip() for line in project.run("db", "drift").out.splitlines()]
    assert lines == ["Drift from the 2 applied migration(s):", "member",
                     "[-] column member.nick varchar(30) NULL (missing from the database)",
                     "[-] index ix_member_email_nick INDEX (email, nick) (missing from the database)"]

"""Foreign key indexes (README, "Foreign key indexes"): a new project indexes each
ForeignKey whose db_index is not given; a project older than the setting keeps its
schema until language_config.yaml opts in."""
from __future__ import annotations

import json

import pytest

import mfcore
from bothdb import database  # noqa: F401 - the fixture
from conftest import SQLITE_CONFIG

MODELS = """
model Customer extends Model { name = CharField(50) }
model Order extends Model {
    customer = ForeignKey(Customer)
    seller = ForeignKey(Customer, db_index=false, related_name="sold")
    account = OneToOneField(Customer, related_name="account")
}
"""


def index_names(database, table: str) -> list:
    """The indexes of a table as the database's catalog lists them."""
    if database.kind == "sqlite":
        rows = database.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 ORDER BY 1",
                              table)
    else:
        rows = database.query("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                              "AND tablename = $1 ORDER BY 1", table)
    return [name for (name,) in rows]


def test_a_new_project_indexes_a_foreign_key_unless_db_index_false_says_no(project, database):
    project.write_models(MODELS)
    made = project.run("db", "makemigrations")
    assert made.code == 0, made
    assert "index_foreign_keys" not in (project.path / "language_config.yaml").read_text()
    assert json.loads((project.migrations / "schema.json").read_text())["index_foreign_keys"] is True
    assert project.run("db", "migrate", env=database.env).code == 0
    indexes = index_names(database, "order")
    assert "ix_order_customer" in indexes
    assert not any("seller" in name for name in indexes)  # db_index=false: none
    assert "ix_order_account" not in indexes  # unique already
    again = project.run("db", "makemigrations")
    assert (again.code, again.out) == (0, "No changes detected.\n"), again
    assert project.run("db", "drift", env=database.env).out.startswith("No drift")
    # Read back from the database, the models say the same under the project's setting.
    inspected = project.run("db", "inspect", "-o", "inspected.mp", env=database.env)
    assert inspected.code == 0, inspected
    text = (project.path / "inspected.mp").read_text()
    assert "    seller = ForeignKey(Customer, on_delete=CASCADE, db_index=false)" in text
    assert "Index(customer)" not in text  # the setting makes it
    assert mfcore.parse(text, index_foreign_keys=True).models["Order"].indexes == \
        mfcore.parse(MODELS, index_foreign_keys=True).models["Order"].indexes


def test_opting_in_and_out_builds_and_drops_the_indexes(project, database):
    """On PostgreSQL the tables exist, so the index is built and dropped CONCURRENTLY."""
    config = project.path / "language_config.yaml"
    config.write_text(SQLITE_CONFIG + "index_foreign_keys: false\n")  # as a project older than the setting
    project.write_models(MODELS)
    assert project.run("db", "makemigrations").code == 0
    assert "index_foreign_keys" not in (project.migrations / "schema.json").read_text()
    assert project.run("db", "migrate", env=database.env).code == 0
    assert not any("customer" in name for name in index_names(database, "order"))

    config.write_text(SQLITE_CONFIG + "index_foreign_keys: true\n")
    opted_in = project.run("db", "makemigrations")
    assert opted_in.code == 0 and "002_index_ix_order_customer.json" in opted_in.out, opted_in
    sql = project.run("db", "sql", "2", env=database.env)
    if database.kind == "postgresql":
        assert 'CREATE INDEX CONCURRENTLY "ix_order_customer" ON "order" ("customer")' in sql.out, sql
    else:
        assert 'CREATE INDEX "ix_order_customer" ON "order" ("customer")' in sql.out, sql
    assert project.run("db", "migrate", env=database.env).code == 0
    assert "ix_order_customer" in index_names(database, "order")
    # schema.json records the choice: the config key may go, nothing changes.
    config.write_text(SQLITE_CONFIG)
    assert project.run("db", "makemigrations").out == "No changes detected.\n"

    config.write_text(SQLITE_CONFIG + "index_foreign_keys: false\n")
    opted_out = project.run("db", "makemigrations")
    assert opted_out.code == 0 and "003_" in opted_out.out and "Drop index ix_order_customer" in opted_out.out, \
        opted_out
    dropping = project.run("db", "sql", "3", env=database.env).out
    assert ('DROP INDEX CONCURRENTLY "ix_order_customer"' if database.kind == "postgresql"
            else 'DROP INDEX "ix_order_customer"') in dropping, dropping
    migrated = project.run("db", "migrate", env=database.env)
    assert migrated.code == 0, migrated
    assert not any("customer" in name for name in index_names(database, "order"))
    config.write_text(SQLITE_CONFIG)
    assert project.run("db", "makemigrations").out == "No changes detected.\n"


def test_an_old_project_changes_nothing_until_it_opts_in(compat):
    demo = compat("onr_demo")
    on_sqlite = {"MF_DATABASE_URL": f"sqlite:///{demo.path / 'dev.db'}"}
    assert demo.run("db", "migrate", env=on_sqlite).code == 0
    before = demo.state()
    assert demo.run("db", "makemigrations").out == "No changes detected.\n"
    status = demo.run("db", "status", env=on_sqlite)
    assert status.code == 0 and "no migration holds" not in status.out + status.err, status
    assert demo.state() == before  # schema.json byte for byte

    config = demo.path / "language_config.yaml"
    config.write_text(config.read_text() + "\nindex_foreign_keys: true\n")
    # status sees that models.mp now means more, though its bytes did not change
    status = demo.run("db", "status", env=on_sqlite)
    assert "Add index ix_lt_invoices_customer" in status.out + status.err, status
    opted_in = demo.run("db", "makemigrations")
    assert opted_in.code == 0 and "Add index ix_lt_invoices_customer" in opted_in.out, opted_in
    newest = demo.migration_names()[-1]
    assert newest.startswith("004_")
    operations = json.loads((demo.migrations / newest).read_text())["ops"]
    assert [(op["op"], op["index"]["name"]) for op in operations] == [("add_index", "ix_lt_invoices_customer")]
    assert json.loads((demo.migrations / "schema.json").read_text())["index_foreign_keys"] is True
    assert demo.run("db", "makemigrations").out == "No changes detected.\n"


@pytest.mark.parametrize("value", ['"yes"', "1", "[true]", "null"])
def test_a_bad_value_of_the_key_is_exit_2_and_changes_nothing(project, value):
    project.write_models(MODELS)
    assert project.run("db", "makemigrations").code == 0
    project.write_models(MODELS.replace("db_index=false, ", ""))
    (project.path / "language_config.yaml").write_text(SQLITE_CONFIG + f"index_foreign_keys: {value}\n")
    before = project.state()
    result = project.run("db", "makemigrations")
    assert result.code == 2, result
    assert result.err.count("\n") == 1 and "index_foreign_keys must be true or false" in result.err
    assert "Traceback" not in result.err
    assert project.state() == before


def test_a_lost_schema_json_is_rebuilt_with_the_setting_the_migrations_show(project):
    project.write_models(MODELS)
    assert project.run("db", "makemigrations").code == 0
    written = (project.migrations / "schema.json").read_bytes()
    (project.migrations / "schema.json").unlink()
    result = project.run("db", "makemigrations")
    assert "No changes detected." in result.out, result
    assert json.loads((project.migrations / "schema.json").read_bytes())["index_foreign_keys"] is True
    assert json.loads(written)["models"] == json.loads((project.migrations / "schema.json").read_bytes())["models"]


INHERITED = """
model Customer extends Model { name = CharField(50) }
model Owned extends Model {
    owner = ForeignKey(Customer, related_name="+")
    abstract = true
}
model Order extends Owned {
    customer = ForeignKey(Customer)
    seller = ForeignKey(Customer, related_name="sold")
    buyer = ForeignKey(Customer, related_name="bought")
    shop = ForeignKey(Customer, related_name="shops", unique=true)
    picked = ForeignKey(Customer, related_name="picked", db_index=true)
    indexes = [Index(seller, customer, name="by_seller"), Index(buyer, where="buyer IS NOT NULL")]
}
model Note extends Owned {
    owner = ForeignKey(Customer, db_index=false, related_name="notes")
}
"""


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_which_foreign_keys_get_an_index(compiled):
    from mfcore.language import parser

    if compiled and parser.implementation() != "compiled":
        pytest.skip("the compiled core is not built here")
    indexed = mfcore.parse(INHERITED, compiled=compiled, index_foreign_keys=True)
    # customer: its own index; owner: inherited; seller: by_seller begins with it; buyer:
    # its partial index begins with it; shop: unique; picked: db_index=true says so.
    assert [(i.name, i.fields, i.where) for i in indexed.models["Order"].indexes] == [
        ("by_seller", ("seller", "customer"), None), ("ix_order_buyer", ("buyer",), "buyer IS NOT NULL"),
        ("ix_order_customer", ("customer",), None), ("ix_order_owner", ("owner",), None),
        ("ix_order_picked", ("picked",), None)]
    assert indexed.models["Note"].indexes == ()  # the override says no
    plain = mfcore.parse(INHERITED, compiled=compiled)
    assert [i.name for i in plain.models["Order"].indexes] == ["by_seller", "ix_order_buyer", "ix_order_picked"]
    assert plain.models["Order"].fields == indexed.models["Order"].fields
    if parser.implementation() == "compiled":  # both paths give the same schemas
        assert mfcore.parse(INHERITED, compiled=not compiled, index_foreign_keys=True) == indexed
        assert mfcore.parse(INHERITED, compiled=not compiled) == plain


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_the_setting_changes_no_error_and_no_field(compiled):
    """A models file reads (or fails) alike either way; only indexes differ."""
    from mfcore.errors import ModelsError
    from mfcore.language import parser

    if compiled and parser.implementation() != "compiled":
        pytest.skip("the compiled core is not built here")
    bad = INHERITED.replace("db_index=true", "db_index=1")
    messages = []
    for setting in (False, True):
        with pytest.raises(ModelsError) as caught:
            mfcore.parse(bad, compiled=compiled, index_foreign_keys=setting)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "'db_index' takes true or false, not 1" in messages[0]


def test_a_cached_run_indexes_as_a_full_run_does_and_a_changed_setting_reads_everything(project):
    many = "".join(f"model Shop{n} extends Model {{ name = CharField(50) }}\n" for n in range(6))
    project.write_models(many + MODELS)
    assert project.run("db", "makemigrations").code == 0
    project.write_models(many + MODELS.replace("model Order extends Model {\n",
                                               "model Order extends Model {\n    shop = ForeignKey(Shop3, null=true)\n"))
    warm = project.run("db", "makemigrations", "-v")
    assert "Read 1 of 8 models" in warm.out and "Add index ix_order_shop" in warm.out, warm
    assert project.run("db", "makemigrations").out == "No changes detected.\n"
    # The cache was made under the setting: turning it off reads every model again.
    (project.path / "language_config.yaml").write_text(SQLITE_CONFIG + "index_foreign_keys: false\n")
    off = project.run("db", "makemigrations", "-v")
    assert "Read " not in off.out, off
    assert "Drop index ix_order_customer" in off.out and "Drop index ix_order_shop" in off.out, off
    assert "index_foreign_keys" not in (project.migrations / "schema.json").read_text()
    settled = project.run("db", "makemigrations", "-v").out
    assert "Read 0 of 8 models" in settled and settled.endswith("No changes detected.\n"), settled


def test_baseline_of_a_database_with_an_unindexed_key_round_trips(project):
    import sqlite3

    connection = sqlite3.connect(project.path / "dev.db")
    connection.executescript(
        'CREATE TABLE "team" ("id" integer NOT NULL PRIMARY KEY);'
        'CREATE TABLE "member" ("id" integer NOT NULL PRIMARY KEY, "team" integer NOT NULL REFERENCES "team" ("id"),'
        ' "squad" integer NULL REFERENCES "team" ("id"));'
        'CREATE INDEX "ix_member_team" ON "member" ("team");')
    connection.close()
    taken = project.run("db", "baseline")
    assert taken.code == 0, taken
    models = (project.path / "models.mp").read_text()
    assert "    squad = ForeignKey(Team, on_delete=NO_ACTION, null=true, db_index=false)" in models, models
    assert "    team = ForeignKey(Team, on_delete=NO_ACTION)\n" in models, models  # its index: the setting's
    assert "indexes" not in models
    assert json.loads((project.migrations / "schema.json").read_text())["index_foreign_keys"] is True
    assert project.run("db", "makemigrations").out == "No changes detected.\n"
    assert project.run("db", "drift").out.startswith("No drift")

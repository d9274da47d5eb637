"""CHECK constraints (``checks = [Check(...)]``) and positive integer fields, from
models.mp to both databases and back: rows are refused, drift sees nothing, inspect
writes them again, a change to one changes only it, rollback undoes it; and a small
application's models, written as a user would, behave on both databases."""
from __future__ import annotations

import json
import sqlite3

import pytest

from mfcore.errors import ModelsError
from mfcore.language.parser import parse
from test_drift import Database, by_table, pg_module_url  # noqa: F401 (a fixture)
from test_field_types import insert_in_one_transaction, migrated_project, rows

SHOP = """
model Product extends Model {
    name = CharField(40)
    price = IntegerField()
    stock = PositiveIntegerField(default=0)
    checks = [Check("\\"price\\" >= 0", name="price_not_negative"), Check("length(name) > 0")]
}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def shop(request, tmp_path) -> Database:
    return migrated_project(request.param, tmp_path / "shop", request, SHOP)


def refused(database: Database, *statements: str) -> str:
    """The database's error for the last of the statements, which it must refuse."""
    with pytest.raises(Exception) as caught:
        database.by_hand(*statements)
    return str(caught.value)


def changes(made) -> list:
    return [line.strip() for line in made.out.splitlines() if line.strip()[:1] in "+-~⚠"]


def check_names(database: Database, table: str) -> dict:
    """{name: expression} of the table's CHECK constraints, read from the catalog as
    the database keeps it."""
    if database.driver == "postgresql":
        return {r[0]: r[1] for r in database.session.fetch(
            "SELECT conname, pg_get_expr(conbin, conrelid) FROM pg_constraint"
            f" WHERE contype = 'c' AND conrelid = '{table}'::regclass")}
    from mfcore.dialects.sqlite import check_constraints
    ((definition,),) = rows(database, f"SELECT sql FROM sqlite_master WHERE name = '{table}'")
    return {c.name: c.expression for c in check_constraints(definition)}


def test_checks_refuse_rows_and_keep_the_ones_that_pass(shop):
    shop.by_hand("INSERT INTO product (name, price, stock) VALUES ('pen', 0, 3)")
    assert "price_not_negative" in refused(shop, "INSERT INTO product (name, price) VALUES ('pen', -1)")
    assert "product_stock_check" in refused(shop, "INSERT INTO product (name, price, stock) VALUES ('pen', 1, -1)")
    assert "check" in refused(shop, "INSERT INTO product (name, price) VALUES ('', 1)").lower()
    assert rows(shop, "SELECT name, price, stock FROM product") == [("pen", 0, 3)]
    assert set(check_names(shop, "product")) == {"price_not_negative", "product_stock_check", "ck_product_8a03a2fe"}


def test_checks_show_no_drift_and_inspect_writes_them(shop):
    drift = shop.project.run("db", "drift")
    assert drift.code == 0, drift
    inspected = shop.project.run("db", "inspect")
    assert inspected.code == 0, inspected
    model = parse(inspected.out).models["Product"]
    assert {f.name: f.type for f in model.fields}["stock"] == "PositiveIntegerField"
    names = [c.name for c in model.checks]
    assert names == ["ck_product_8a03a2fe", "price_not_negative"]
    if shop.driver == "sqlite":  # SQLite keeps the text as written: the models come back as they were
        assert by_table(parse(inspected.out)) == by_table(parse(SHOP))
        assert model.checks == parse(SHOP).models["Product"].checks


def test_a_check_dropped_by_hand_is_drift(shop):
    if shop.driver == "postgresql":
        shop.by_hand("ALTER TABLE product DROP CONSTRAINT price_not_negative")
    else:
        shop.by_hand("PRAGMA writable_schema = 1",
                     "UPDATE sqlite_master SET sql = replace(sql, ',\n    CONSTRAINT \"price_not_negative\""
                     " CHECK (\"price\" >= 0)', '') WHERE name = 'product'")
    drift = shop.project.run("db", "drift")
    assert drift.code == 1, drift
    assert "[-] check product.price_not_negative" in drift.out
    repair = shop.project.run("db", "drift", "--sql")
    assert repair.code == 1, repair
    added = 'ADD CONSTRAINT "price_not_negative" CHECK ("price" >= 0)' if shop.driver == "postgresql" \
        else 'CONSTRAINT "price_not_negative" CHECK ("price" >= 0)'
    assert added in repair.out, repair.out
    rebuilt = repair.out.replace('DROP TABLE "product"', "").replace('DROP TABLE temp."_mf_old_product"', "")
    assert "DROP" not in rebuilt  # only the check comes back (SQLite: in a rebuild of the table)


def test_changing_a_check_changes_only_it_and_rollback_undoes_it(shop):
    shop.by_hand("INSERT INTO product (name, price, stock) VALUES ('pen', 5, 3)")
    shop.project.write_models(SHOP.replace('"\\"price\\" >= 0"', '"\\"price\\" >= 1"'))
    made = shop.project.run("db", "makemigrations")
    assert made.code == 0, made
    assert changes(made) == ["+ Drop check price_not_negative on Product",
                             '+ Add check price_not_negative on Product: "price" >= 1']
    assert shop.project.run("db", "migrate").code == 0
    assert shop.project.run("db", "drift").code == 0
    assert "price_not_negative" in refused(shop, "INSERT INTO product (name, price) VALUES ('cap', 0)")
    assert rows(shop, "SELECT name, price, stock FROM product") == [("pen", 5, 3)]
    rolled_back = shop.project.run("db", "rollback")
    assert rolled_back.code == 0, rolled_back
    assert shop.project.run("db", "drift").code == 0
    shop.by_hand("INSERT INTO product (name, price) VALUES ('cap', 0)")
    assert rows(shop, "SELECT count(*) FROM product") == [(2,)]


def test_adding_and_removing_checks(shop):
    shop.project.write_models(SHOP.replace(', Check("length(name) > 0")]', ', Check("price < 1000", name="cheap")]'))
    made = shop.project.run("db", "makemigrations")
    assert made.code == 0, made
    assert changes(made) == ["+ Drop check ck_product_8a03a2fe on Product",
                             "+ Add check cheap on Product: price < 1000"]
    assert shop.project.run("db", "migrate").code == 0
    assert set(check_names(shop, "product")) == {"price_not_negative", "product_stock_check", "cheap"}
    assert shop.project.run("db", "drift").code == 0
    assert shop.project.run("db", "rollback").code == 0
    assert set(check_names(shop, "product")) == {"price_not_negative", "product_stock_check", "ck_product_8a03a2fe"}
    assert shop.project.run("db", "drift").code == 0


def test_adding_a_check_the_rows_break_fails_and_changes_nothing(shop):
    shop.by_hand("INSERT INTO product (name, price) VALUES ('pen', 5000)")
    shop.project.write_models(SHOP.replace('Check("length(name) > 0")', 'Check("price < 1000", name="cheap")'))
    assert shop.project.run("db", "makemigrations").code == 0
    migrated = shop.project.run("db", "migrate")
    assert migrated.code == 3, migrated
    assert migrated.err.count("\n") == 1 and "cheap" in migrated.err and "Traceback" not in migrated.err
    assert rows(shop, "SELECT name, price FROM product") == [("pen", 5000)]
    if shop.driver == "sqlite":
        assert set(check_names(shop, "product")) == {"price_not_negative", "product_stock_check",
                                                     "ck_product_8a03a2fe"}
        return
    # PostgreSQL adds the check NOT VALID (a moment's lock) and validates it in a step of
    # its own, which found the row: the migration stops there, partly applied, its check
    # already refusing new rows that break it.
    assert "stopped at step 2 of 2" in migrated.err
    assert set(check_names(shop, "product")) == {"price_not_negative", "product_stock_check", "cheap"}
    assert shop.session.fetch("SELECT convalidated FROM pg_constraint WHERE conname = 'cheap'") == [(False,)]
    status = shop.project.run("db", "status")
    assert "partly applied: step 1 of 2 done" in status.out, status
    # The rows fixed, migrate finishes it.
    shop.by_hand("UPDATE product SET price = 500 WHERE name = 'pen'")
    assert shop.project.run("db", "migrate").code == 0
    assert shop.session.fetch("SELECT convalidated FROM pg_constraint WHERE conname = 'cheap'") == [(True,)]


def test_a_positive_field_keeps_its_check_through_renames_and_type_changes(shop):
    shop.by_hand("INSERT INTO product (name, price, stock) VALUES ('pen', 1, 3)")
    shop.project.write_models(SHOP.replace("stock = PositiveIntegerField(default=0)",
                                           "stock = PositiveIntegerField(default=0, db_column=\"on_hand\")"))
    made = shop.project.run("db", "makemigrations")
    assert made.code == 0, made
    assert shop.project.run("db", "migrate").code == 0
    assert check_names(shop, "product").keys() >= {"product_on_hand_check"}
    assert "product_stock_check" not in check_names(shop, "product")
    assert shop.project.run("db", "drift").code == 0
    assert "product_on_hand_check" in refused(shop, "INSERT INTO product (name, price, on_hand) VALUES ('x', 1, -1)")
    # A plain integer: the check goes, and only it.
    shop.project.write_models(SHOP.replace("stock = PositiveIntegerField(default=0)",
                                           "stock = IntegerField(default=0, db_column=\"on_hand\")"))
    made = shop.project.run("db", "makemigrations")
    assert made.code == 0, made
    assert changes(made) == ["+ Alter field stock on Product (type: 'PositiveIntegerField' -> 'IntegerField')"]
    assert shop.project.run("db", "migrate").code == 0
    assert "product_on_hand_check" not in check_names(shop, "product")
    shop.by_hand("INSERT INTO product (name, price, on_hand) VALUES ('x', 1, -1)")
    assert shop.project.run("db", "drift").code == 0
    shop.by_hand("DELETE FROM product WHERE on_hand < 0")
    for _ in range(2):
        rolled_back = shop.project.run("db", "rollback")
        assert rolled_back.code == 0, rolled_back
        assert shop.project.run("db", "drift").code == 0
    assert "product_stock_check" in check_names(shop, "product")
    assert rows(shop, "SELECT name, stock FROM product") == [("pen", 3)]


def test_a_renamed_table_keeps_its_checks(shop):
    shop.project.write_models(SHOP.replace("model Product extends Model {",
                                           "model Product extends Model {\n    table = \"goods\""))
    made = shop.project.run("db", "makemigrations")
    assert made.code == 0, made
    assert shop.project.run("db", "migrate").code == 0
    assert shop.project.run("db", "drift").code == 0
    assert set(check_names(shop, "goods")) == {"price_not_negative", "goods_stock_check", "ck_goods_8a03a2fe"}
    assert shop.project.run("db", "rollback").code == 0
    assert shop.project.run("db", "drift").code == 0


# ---------------------------------------------------------------- models errors

@pytest.mark.parametrize("body, message, where", [
    ('checks = [Check("\\"cost\\" >= 0")]', "names \"cost\", which is not a column of its table", (5, 21)),
    ('checks = [Check("price >= 0; DROP TABLE product")]', "Check must be one SQL condition, without ';'", (5, 21)),
    ('checks = [Check("(price >= 0")]', "Check has a '(' that is not closed", (5, 21)),
    ('checks = [Check("")]', "Check takes a SQL expression", (5, 21)),
    ('checks = [Check("price > 0", name="product_stock_check")]', "PositiveIntegerField 'stock' implies", (5, 15)),
    ('checks = [Check("price > 0", name="a"), Check("price > 1", name="a")]', "two different checks", (5, 45)),
    ('checks = [Check(name="a")]', "Check needs its SQL expression", (5, 15)),
    ('checks = [Check("price > 0", nme="a")]', "Check has no argument 'nme'", (5, 34)),
    ('checks = [Index(price)]', "each entry of checks is Check", (5, 15)),
])
def test_a_bad_check_is_a_models_error_with_its_place(body, message, where):
    text = f"model Product extends Model {{\n    name = CharField(40)\n    price = IntegerField()\n" \
           f"    stock = PositiveIntegerField()\n    {body}\n}}\n"
    with pytest.raises(ModelsError) as caught:
        parse(text)
    problems = caught.value.problems
    assert any(message in p.message and (p.line, p.column) == where for p in problems), problems


def test_one_check_name_in_two_models_is_an_error():
    text = ('model A extends Model {\n    n = IntegerField()\n    checks = [Check("n > 0", name="positive")]\n}\n'
            'model B extends Model {\n    n = IntegerField()\n    checks = [Check("n > 0", name="positive")]\n}\n')
    with pytest.raises(ModelsError) as caught:
        parse(text)
    assert any("check name 'positive' is used by models A and B" in p.message and p.line == 7
               for p in caught.value.problems), caught.value.problems


def test_a_check_name_taken_by_an_unchanged_model_is_refused(tmp_path, request):
    """makemigrations reads only the models that changed; a name another model holds is
    still found."""
    project = migrated_project("sqlite", tmp_path / "two", request, SHOP + """
model Order extends Model {
    total = IntegerField()
    checks = [Check("total > 0", name="order_total")]
}
""").project
    project.write_models(SHOP + """
model Order extends Model {
    total = IntegerField()
    checks = [Check("total > 0", name="price_not_negative")]
}
""")
    before = sorted(p.name for p in (project.path / "migrations").iterdir())
    made = project.run("db", "makemigrations")
    assert made.code == 2, made
    assert "check name 'price_not_negative' is used by models Product and Order" in made.err
    assert made.err.startswith("models.mp:11:15: error: ")
    assert "Traceback" not in made.err
    assert sorted(p.name for p in (project.path / "migrations").iterdir()) == before


def test_a_negative_default_does_not_fit_a_positive_field():
    with pytest.raises(ModelsError, match="out of range for PositiveIntegerField"):
        parse("model A extends Model {\n    n = PositiveIntegerField(default=-1)\n}\n")


def test_checks_are_kept_verbatim_and_spelling_is_a_change():
    one = parse('model A extends Model {\n    n = IntegerField()\n    checks = [Check("n  >  0", name="c")]\n}\n')
    two = parse('model A extends Model {\n    n = IntegerField()\n    checks = [Check("n > 0", name="c")]\n}\n')
    assert one.models["A"].checks[0].expression == "n  >  0"
    from mfcore.differ import diff
    assert [op.op for op in diff(one, two)] == ["drop_check", "add_check"]
    # An abstract base's checks are inherited, named after the child's table.
    child = parse('model Base extends Model {\n    abstract = true\n    n = IntegerField()\n'
                  '    checks = [Check("n > 0")]\n}\nmodel Child extends Base {\n}\n')
    assert [c.name for c in child.models["Child"].checks] == [f"ck_child_{__import__('hashlib').sha1(b'n > 0').hexdigest()[:8]}"]


def test_a_check_in_a_migration_file_that_is_not_one_expression_is_refused(shop):
    first = shop.project.path / "migrations" / "001_create_product.json"
    before = first.read_bytes()
    shop.project.write_models(SHOP.replace('Check("length(name) > 0")', 'Check("price < 1000", name="cheap")'))
    assert shop.project.run("db", "makemigrations").code == 0
    second = next((shop.project.path / "migrations").glob("002_*.json"))
    doc = json.loads(second.read_text())
    for op in doc["ops"]:
        if op["op"] == "add_check":
            op["check"]["expression"] = "true); DROP TABLE product; --"
    second.write_text(json.dumps(doc))
    applied = shop.project.run("db", "migrate")
    assert applied.code == 2, applied
    assert applied.err.count("\n") == 1 and ".check.expression has a ')' that closes nothing" in applied.err
    assert "Traceback" not in applied.err
    assert first.read_bytes() == before
    assert rows(shop, "SELECT count(*) FROM product") == [(0,)]


# ---------------------------------------------------------------- an application's models

APP = """
// A small application, as its author writes it.
model User extends Model {
    name = CharField(80)
    logins = PositiveIntegerField(default=0)
}

model EmailAddress extends Model {
    user = ForeignKey(User, on_delete=CASCADE, deferrable=true)
    email = CharField(254)
    verified = BooleanField(default=false)
    indexes = [Index(email, unique=true, where="verified")]
}

model Token extends Model {
    user = ForeignKey(User, on_delete=CASCADE)
    scopes = JSONField(default={})
    created = DateTimeField(default=now())
    uses = PositiveIntegerField(default=0)
    checks = [Check("\\"uses\\" <= 1000", name="token_uses_bounded")]
}

model Place extends Model {
    name = CharField(80)
}

model Restaurant extends Model {
    place = OneToOneField(Place, primary_key=true)
    serves_pizza = BooleanField(default=false)
}

model Review extends Model {
    restaurant = ForeignKey(Restaurant, on_delete=CASCADE)
    stars = PositiveSmallIntegerField()
    checks = [Check("stars BETWEEN 1 AND 5")]
}
"""


@pytest.mark.parametrize("driver", ["sqlite", "postgresql"])
def test_an_application_migrates_and_its_rows_behave_on_both_databases(driver, tmp_path, request):
    app = migrated_project(driver, tmp_path / "app", request, APP)
    true, false = ("true", "false") if driver == "postgresql" else ("1", "0")
    assert app.project.run("db", "drift").code == 0

    # The positive counter refuses a negative; the token's check its bound.
    app.by_hand("INSERT INTO \"user\" (id, name) VALUES (1, 'ada')")
    assert "user_logins_check" in refused(app, "UPDATE \"user\" SET logins = -1")
    app.by_hand("INSERT INTO token (\"user\", uses) VALUES (1, 3)")
    assert "token_uses_bounded" in refused(app, "UPDATE token SET uses = 1001")
    ((scopes, created),) = rows(app, "SELECT scopes::text, created IS NOT NULL FROM token" if driver == "postgresql"
                                else "SELECT scopes, created IS NOT NULL FROM token")
    assert json.loads(scopes) == {} and created

    # The partial unique index: two unverified duplicates, one verified.
    user_column = '"user"'
    for verified in (false, false, true):
        app.by_hand(f"INSERT INTO email_address ({user_column}, email, verified) VALUES (1, 'a@x', {verified})")
    assert "unique" in refused(app, f"INSERT INTO email_address ({user_column}, email, verified)"
                                    f" VALUES (1, 'a@x', {true})").lower()

    # The deferred key: the address before its user, in one transaction.
    insert_in_one_transaction(app, f"INSERT INTO email_address ({user_column}, email) VALUES (2, 'b@x')",
                              "INSERT INTO \"user\" (id, name) VALUES (2, 'bob')")
    assert rows(app, f"SELECT {user_column} FROM email_address WHERE email = 'b@x'") == [(2,)]

    # The child of multi-table inheritance, and a model that refers to it.
    app.by_hand("INSERT INTO place (id, name) VALUES (7, 'corner')", "INSERT INTO restaurant (place) VALUES (7)",
                "INSERT INTO review (restaurant, stars) VALUES (7, 5)")
    assert "check" in refused(app, "INSERT INTO review (restaurant, stars) VALUES (7, 6)").lower()
    keys_on = ("PRAGMA foreign_keys = ON",) if driver == "sqlite" else ()
    assert "foreign key" in refused(app, *keys_on, "INSERT INTO review (restaurant, stars) VALUES (8, 3)").lower()

    # Rolled back to nothing, and made again.
    rolled_back = app.project.run("db", "rollback", "--to", "000", "--allow-data-loss")
    assert rolled_back.code == 0, rolled_back
    assert user_tables(app) == []
    assert app.project.run("db", "migrate").code == 0
    assert app.project.run("db", "drift").code == 0
    assert user_tables(app) == ["email_address", "place", "restaurant", "review", "token", "user"]


def user_tables(database: Database) -> list:
    if database.driver == "postgresql":
        found = database.session.fetch(f"SELECT tablename FROM pg_tables WHERE schemaname = '{database.schema}'")
    else:
        found = rows(database, "SELECT name FROM sqlite_master WHERE type = 'table'")
    return sorted(r[0] for r in found if r[0] not in ("mf_migrations", "sqlite_sequence"))


KEYED = """
model Shelf extends Model { number = IntegerField(primary_key=true) }
model Book extends Model { shelf = ForeignKey(Shelf) }
"""


@pytest.mark.parametrize("driver", ["sqlite", "postgresql"])
def test_a_key_made_positive_keeps_the_foreign_keys_that_point_at_it(driver, tmp_path, request):
    database = migrated_project(driver, tmp_path / "keyed", request, KEYED)
    database.by_hand("INSERT INTO shelf VALUES (1)", "INSERT INTO book (shelf) VALUES (1)")
    database.project.write_models(KEYED.replace("IntegerField(primary_key=true)",
                                                "PositiveIntegerField(primary_key=true)"))
    made = database.project.run("db", "makemigrations")
    assert made.code == 0, made
    assert changes(made) == ["⚠ Alter field number on Shelf (type: 'IntegerField' -> 'PositiveIntegerField')"]
    assert database.project.run("db", "migrate").code == 0
    assert database.project.run("db", "drift").code == 0
    assert "shelf_number_check" in refused(database, "INSERT INTO shelf VALUES (-1)")
    keys_on = ("PRAGMA foreign_keys = ON",) if driver == "sqlite" else ()
    assert "foreign key" in refused(database, *keys_on, "INSERT INTO book (shelf) VALUES (2)").lower()
    assert database.project.run("db", "rollback").code == 0
    assert database.project.run("db", "drift").code == 0
    database.by_hand("INSERT INTO shelf VALUES (-1)")

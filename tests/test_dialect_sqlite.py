"""The SQLite dialect against a real database: every operation kind, its catalog, its rows.

Each test builds a "before" schema from models.mp text, creates it, fills it, applies
a change through the applier's own runner (tests/dbutil.migrate_sqlite: keys off when
the dialect asks, BEGIN IMMEDIATE, foreign_key_check, COMMIT) and reads the result back
from SQLite's own catalog (PRAGMA table_xinfo / foreign_key_list / index_list).
"""
from __future__ import annotations

import json
import re
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dbutil
from mfcore.dialects.catalog import Column, ForeignKey, Index
from mfcore.differ import diff
from mfcore.dialects import dialect_for
from mfcore.language.parser import parse
from mfcore.operations import (AddColumn, AddForeignKey, AlterEnum, DropForeignKey, RenameColumn,
                               attach_tables)
from mfcore.questioner import AnswerQuestioner
from mfcore.schema import Field, Schema
from test_dialect_sql import BASE, CUSTOMERS, created, rebuilt, schema_pairs

SQLITE = dialect_for("sqlite")

INVOICES = [(1, 1, 10.5, "first"), (2, 2, 20, None), (3, 2, 7.25, "third")]


# ---------------------------------------------------------------- helpers

def migrate(connection, operations):
    dbutil.migrate_sqlite(connection, operations)


def natively(statements, heading: str) -> list:
    """The statements of steps that add or drop a column natively or by a rebuild,
    chosen when they run (SQLite's ALTER TABLE reads the whole schema again): the
    native one ends the step's text, after the rebuild as comments."""
    assert all(s.startswith(heading) and "mf rebuilds" in s for s in statements), statements
    return [s.splitlines()[-1] for s in statements]


def change(connection, before: str, after: str, questioner=None) -> list:
    operations = diff(parse(before), parse(after), questioner)
    migrate(connection, operations)
    return operations


def columns(connection, table) -> dict:
    """name -> (declared type, not null, default, pk) from PRAGMA table_xinfo."""
    return {row[1]: (row[2], row[3], row[4], row[5])
            for row in connection.execute(f"PRAGMA table_xinfo({SQLITE.quote(table)})")}


def foreign_keys(connection, table) -> set:
    return {(row[3], row[2], row[4], row[6])
            for row in connection.execute(f"PRAGMA foreign_key_list({SQLITE.quote(table)})")}


def indexes(connection, table) -> dict:
    """name (or 'unique <cols>' for a UNIQUE constraint's automatic index) -> (unique, columns)."""
    found = {}
    for _seq, name, unique, origin, _partial in connection.execute(f"PRAGMA index_list({SQLITE.quote(table)})"):
        cols = tuple(row[2] for row in connection.execute(f"PRAGMA index_info({SQLITE.quote(name)})"))
        key = name if origin == "c" else f"{origin} {','.join(cols)}"
        found[key] = (bool(unique), cols)
    return found


def table_sql(connection, table) -> str:
    return connection.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                              (table,)).fetchone()[0]


def rows(connection, table, columns="*") -> list:
    return connection.execute(f"SELECT {columns} FROM {SQLITE.quote(table)} ORDER BY 1").fetchall()


def tables(connection) -> set:
    return {row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name <> 'mf_migrations'")}


def everything(connection) -> dict:
    """Every table's definition and rows: equal before and after means nothing changed."""
    return {t: (table_sql(connection, t), indexes(connection, t), rows(connection, t))
            for t in sorted(tables(connection))}


@pytest.fixture
def db():
    connection = dbutil.sqlite_connect()
    migrate(connection, diff(Schema(), parse(BASE)))
    connection.executemany("INSERT INTO customer (id, email, name, nickname, age, role) VALUES (?, ?, ?, ?, ?, ?)",
                           CUSTOMERS)
    connection.executemany("INSERT INTO invoice (id, customer, total, note) VALUES (?, ?, ?, ?)", INVOICES)
    yield connection
    connection.close()


# ---------------------------------------------------------------- the catalog reader

def test_catalog_reader_sees_tables_columns_keys_and_indexes(db):
    db.execute('CREATE TABLE "odd ""name""" (a INTEGER, b TEXT, PRIMARY KEY (a, b))')
    db.execute('CREATE UNIQUE INDEX "ux_odd" ON "odd ""name""" (b)')
    catalog = dbutil.read_sqlite_catalog(db)
    assert set(catalog.tables) == {"customer", "invoice", "mf_migrations", 'odd "name"'}
    assert catalog.enums == {}
    customer, invoice = catalog.tables["customer"], catalog.tables["invoice"]
    assert list(customer.columns) == ["id", "email", "name", "nickname", "age", "role"]
    assert customer.columns["email"] == Column("email", "VARCHAR(255)", False, None)
    assert customer.columns["nickname"] == Column("nickname", "VARCHAR(40)", True, None)
    assert customer.columns["age"].default == "0"
    assert customer.columns["role"].default == "'ADMIN'"
    assert customer.primary_key == ("id",)
    assert [(u.name, u.columns) for u in customer.uniques] == [("customer_email_key", ("email",))]
    assert invoice.foreign_keys == [ForeignKey(("customer",), "customer", ("id",), "CASCADE", "invoice_customer_fkey")]
    assert [(c.name, c.column, c.values) for c in customer.checks] == [
        ("customer_role_check", "role", ("ADMIN", "CUSTOMER", "STAFF"))]
    assert invoice.indexes == [Index("ix_invoice_customer_total", ("customer", "total"), False)]
    assert invoice.columns["total"] == Column("total", "NUMERIC(12,2)", False, None)
    odd = catalog.tables['odd "name"']
    assert odd.primary_key == ("a", "b") and odd.indexes == [Index("ux_odd", ("b",), True)]
    assert set(dbutil.read_sqlite_catalog(db, {"invoice", "missing"}).tables) == {"invoice"}


# ---------------------------------------------------------------- create_enum, create_model

def test_create_model_types_defaults_and_constraints():
    connection = dbutil.sqlite_connect()
    change(connection, "", """
        enum Currency { USD = "usd", EUR = "eur" }
        model Shop extends Model {
            code = CharField(8, primary_key=true)
        }
        model Item extends Model {
            id = BigAutoField()
            title = CharField(max_length=80)
            body = TextField(null=true)
            qty = SmallIntegerField(default=-1)
            big = BigIntegerField(null=true)
            price = DecimalField(10, 3, default=1.5)
            ratio = FloatField(default=0.25)
            active = BooleanField(default=true)
            hidden = BooleanField(default=false)
            added = DateTimeField(auto_now_add=true)
            changed = DateTimeField(auto_now=true)
            day = DateField(null=true)
            at = TimeField(null=true)
            ref = UUIDField(null=true)
            data = JSONField(default=[1, "two"])
            raw = BinaryField(default="hi")
            currency = EnumField(Currency, default=Currency.EUR)
            shop = ForeignKey(Shop, on_delete=SET_NULL, null=true)
            twin = OneToOneField(Item, on_delete=RESTRICT, null=true)
        }
        """)
    cols = columns(connection, "item")
    assert cols == {
        "id": ("INTEGER", 0, None, 1),
        "title": ("VARCHAR(80)", 1, None, 0),
        "body": ("TEXT", 0, None, 0),
        "qty": ("INTEGER", 1, "-1", 0),
        "big": ("INTEGER", 0, None, 0),
        "price": ("NUMERIC(10,3)", 1, "1.5", 0),
        "ratio": ("REAL", 1, "0.25", 0),
        "active": ("BOOLEAN", 1, "1", 0),
        "hidden": ("BOOLEAN", 1, "0", 0),
        "added": ("TEXT", 1, "CURRENT_TIMESTAMP", 0),
        "changed": ("TEXT", 1, "CURRENT_TIMESTAMP", 0),
        "day": ("TEXT", 0, None, 0),
        "at": ("TEXT", 0, None, 0),
        "ref": ("TEXT", 0, None, 0),
        "data": ("TEXT", 1, "'[1, \"two\"]'", 0),
        "raw": ("BLOB", 1, "X'6869'", 0),
        "currency": ("TEXT", 1, "'eur'", 0),
        "shop": ("VARCHAR(8)", 0, None, 0),  # the type of Shop's key
        "twin": ("INTEGER", 0, None, 0),
    }
    assert "AUTOINCREMENT" in table_sql(connection, "item")
    assert columns(connection, "shop") == {"code": ("VARCHAR(8)", 1, None, 1)}
    assert foreign_keys(connection, "item") == {("shop", "shop", "code", "SET NULL"),
                                                ("twin", "item", "id", "RESTRICT")}
    assert indexes(connection, "item") == {"u twin": (True, ("twin",))}  # OneToOne = FK + UNIQUE

    connection.execute("INSERT INTO shop (code) VALUES ('s1')")
    connection.execute("INSERT INTO item (title, shop) VALUES ('t', 's1')")
    row = connection.execute("SELECT qty, price, ratio, active, hidden, added, data, raw, currency FROM item").fetchone()
    assert row[:5] == (-1, 1.5, 0.25, 1, 0)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", row[5])
    assert row[6:] == ('[1, "two"]', b"hi", "eur")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        connection.execute("INSERT INTO item (title, currency) VALUES ('t', 'USD')")  # the key, not the value
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        connection.execute("INSERT INTO item (title, shop) VALUES ('t', 'nope')")


def test_create_models_in_a_cycle_adds_the_deferred_key_by_rebuild():
    connection = dbutil.sqlite_connect()
    operations = change(connection, "", """
        model Author extends Model { best = ForeignKey(Book, null=true, on_delete=SET_NULL) }
        model Book extends Model { author = ForeignKey(Author) }
        """)
    assert [op.op for op in operations] == ["create_model", "create_model", "add_fk"]
    assert SQLITE.needs_foreign_keys_off(operations)
    assert foreign_keys(connection, "author") == {("best", "book", "id", "SET NULL")}
    assert foreign_keys(connection, "book") == {("author", "author", "id", "CASCADE")}
    assert columns(connection, "author")["best"] == ("INTEGER", 0, None, 0)


def test_create_enum_and_drop_enum_need_no_sql_on_sqlite():
    operations = diff(parse(""), parse("enum E { A, B }"))
    assert [op.op for op in operations] == ["create_enum"]
    assert SQLITE.migration_sql(operations) == []
    assert SQLITE.migration_sql(diff(parse("enum E { A, B }"), parse(""))) == []


# ---------------------------------------------------------------- drop_model, rename_model

def test_drop_model_keeps_other_tables(db):
    operations = change(db, BASE, BASE.split("model Invoice")[0])
    assert [op.op for op in operations] == ["drop_model"]
    assert tables(db) == {"customer"}
    assert rows(db, "customer") == CUSTOMERS


def test_dropping_a_table_still_referenced_fails_and_cascades_nothing(db):
    # Hand-made: drop the referenced table alone. With keys off there is no implicit
    # DELETE (no cascade into invoice); the foreign key check then refuses the result.
    before = everything(db)
    schema = parse(BASE)
    operations = [op for op in diff(schema, Schema(enums=schema.enums, models={
        "Invoice": schema.models["Invoice"]})) if op.op == "drop_model"]
    assert SQLITE.needs_foreign_keys_off(operations)
    with dbutil.refused(match="would break a foreign key"):
        migrate(db, operations)
    assert everything(db) == before


def test_rename_model_moves_the_table_and_the_keys_that_point_at_it(db):
    after = BASE.replace("model Customer", "model Client").replace('table = "customer"', 'table = "client"') \
        .replace("ForeignKey(Customer", "ForeignKey(Client")
    operations = change(db, BASE, after, AnswerQuestioner(model_renames={"Customer": "Client"}))
    assert [op.op for op in operations] == ["rename_model"]
    statements = SQLITE.migration_sql(operations)
    # Its UNIQUE and CHECK are named after the table: a rebuild renames them, as SQLite cannot.
    assert statements[0] == 'ALTER TABLE "customer" RENAME TO "client"'
    assert rebuilt(statements) == ["client"] and '"client_email_key"' in created(statements, "client")
    assert SQLITE.needs_foreign_keys_off(operations)
    assert "customer_" not in db.execute("SELECT sql FROM sqlite_master WHERE name = 'client'").fetchone()[0]
    assert tables(db) == {"client", "invoice"}
    assert rows(db, "client") == CUSTOMERS
    assert foreign_keys(db, "invoice") == {("customer", "client", "id", "CASCADE")}
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []


# ---------------------------------------------------------------- add_column

def test_add_nullable_and_defaulted_columns_natively(db):
    after = BASE.replace('    table = "customer"', '''    phone = CharField(20, null=true)
    score = FloatField(default=1.5)
    vip = BooleanField(default=false)
    role2 = EnumField(Role, default=Role.STAFF)
    quote = TextField(default="it's")
    table = "customer"''')
    operations = change(db, BASE, after)
    statements = natively(SQLITE.migration_sql(operations), "-- add column")
    assert len(statements) == 5 and all(s.startswith('ALTER TABLE "customer" ADD COLUMN') for s in statements)
    assert SQLITE.needs_foreign_keys_off(operations)  # on a large schema, a rebuild is chosen when it runs
    cols = columns(db, "customer")
    assert cols["phone"] == ("VARCHAR(20)", 0, None, 0)
    assert cols["vip"] == ("BOOLEAN", 1, "0", 0)
    assert rows(db, "customer", "id, phone, score, vip, role2, quote") == [
        (1, None, 1.5, 0, "STAFF", "it's"), (2, None, 1.5, 0, "STAFF", "it's")]
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        db.execute("UPDATE customer SET role2 = 'nope'")


@pytest.mark.parametrize("field, expect", [
    ("code = CharField(10, unique=true, null=true)", {1: None, 2: None}),
    ("seen = DateTimeField(auto_now_add=true)", "timestamp"),
    ("owner = ForeignKey(Customer, default=1, on_delete=SET_DEFAULT)", {1: 1, 2: 1}),
])
def test_add_column_sqlite_cannot_add_rebuilds(db, field, expect):
    after = BASE.replace("    note = TextField(null=true)", f"    note = TextField(null=true)\n    {field}")
    operations = change(db, BASE, after)
    column = field.split(" =")[0]
    assert SQLITE.needs_foreign_keys_off(operations)
    assert rebuilt(SQLITE.migration_sql(operations)) == ["invoice"]
    assert rows(db, "invoice", "id, customer, total, note") == INVOICES
    values = dict(rows(db, "invoice", f"id, {column}"))
    if expect == "timestamp":
        assert all(re.match(r"\d{4}-", v) for v in values.values())
    else:
        assert values == {**expect, 3: expect[2]}
    assert indexes(db, "invoice")["ix_invoice_customer_total"] == (False, ("customer", "total"))


def test_a_column_added_to_a_table_the_migration_rebuilds_anyway_is_part_of_that_rebuild(db):
    after = BASE.replace("    name = CharField(120)", "    name = CharField(200)").replace(
        '    table = "customer"', '    phone = CharField(20, null=true)\n    table = "customer"')
    operations = change(db, BASE, after)
    statements = SQLITE.migration_sql(operations)
    assert sorted(op.op for op in operations) == ["add_column", "alter_column"]
    assert rebuilt(statements) == ["customer"]
    assert not any(s.startswith("-- add column") for s in statements)
    assert '"phone" VARCHAR(20)' in created(statements, "customer")
    assert columns(db, "customer")["name"][0] == "VARCHAR(200)"
    assert rows(db, "customer", "id, name, phone") == [(r[0], r[2], None) for r in CUSTOMERS]


def test_add_not_null_column_without_default_works_on_an_empty_table_and_fails_cleanly_otherwise(db):
    after = BASE.replace("    note = TextField(null=true)", "    note = TextField(null=true)\n    due = DateField()")
    before = everything(db)
    with dbutil.refused(sqlite3.IntegrityError, match="NOT NULL"):
        change(db, BASE, after)
    assert everything(db) == before
    db.execute("DELETE FROM invoice")
    change(db, BASE, after)
    assert columns(db, "invoice")["due"] == ("TEXT", 1, None, 0)


def test_add_column_built_by_hand(db):
    schema = parse(BASE)
    operations, _ = attach_tables([AddColumn("Invoice", "invoice",
                                             Field("paid", "BooleanField", "paid", has_default=True, default=True))],
                                  schema)
    assert natively(SQLITE.migration_sql(operations), "-- add column paid to invoice") == [
        'ALTER TABLE "invoice" ADD COLUMN "paid" BOOLEAN NOT NULL DEFAULT 1']
    migrate(db, operations)
    assert rows(db, "invoice", "id, paid") == [(1, 1), (2, 1), (3, 1)]


# ---------------------------------------------------------------- drop_column

def test_drop_plain_and_enum_columns_natively(db):
    after = BASE.replace("    nickname = CharField(40, null=true)\n", "").replace(
        "    role = EnumField(Role, default=Role.ADMIN)\n", "")
    operations = change(db, BASE, after)
    assert natively(SQLITE.migration_sql(operations), "-- drop column") == [
        'ALTER TABLE "customer" DROP COLUMN "nickname"', 'ALTER TABLE "customer" DROP COLUMN "role"']
    assert rows(db, "customer") == [r[:3] + r[4:5] for r in CUSTOMERS]


@pytest.mark.parametrize("line, table, kept", [
    ("    email = CharField(max_length=255, unique=true)\n", "customer", "id, name, nickname, age, role"),
    ("    customer = ForeignKey(Customer, on_delete=CASCADE)\n", "invoice", "id, total, note"),
])
def test_drop_constrained_column_rebuilds(db, line, table, kept):
    before_rows = rows(db, table, kept)
    after = BASE.replace(line, "").replace("indexes = [Index(customer, total)]", "")
    operations = change(db, BASE, after)
    assert SQLITE.needs_foreign_keys_off(operations)
    assert rows(db, table) == before_rows
    assert foreign_keys(db, "invoice") == (set() if table == "invoice" else {("customer", "customer", "id", "CASCADE")})
    assert indexes(db, "customer") == ({"u email": (True, ("email",))} if table == "invoice" else {})


# ---------------------------------------------------------------- alter_column

def test_alter_column_type_and_length_keeps_values(db):
    after = BASE.replace("age = IntegerField(default=0)", "age = TextField(default=\"0\")") \
        .replace("name = CharField(120)", "name = CharField(200)")
    change(db, BASE, after)
    cols = columns(db, "customer")
    assert cols["age"] == ("TEXT", 1, "'0'", 0)
    assert cols["name"] == ("VARCHAR(200)", 1, None, 0)
    assert rows(db, "customer", "id, name, age") == [(1, "Ann", "30"), (2, "Bob", "40")]
    assert indexes(db, "customer") == {"u email": (True, ("email",))}
    assert foreign_keys(db, "invoice") == {("customer", "customer", "id", "CASCADE")}
    assert rows(db, "invoice") == INVOICES  # the referring table is untouched


def test_alter_column_to_not_null_fills_nulls_with_the_default(db):
    after = BASE.replace("nickname = CharField(40, null=true)", 'nickname = CharField(40, default="none")')
    operations = change(db, BASE, after)
    assert 'COALESCE("nickname", \'none\')' in " ".join(SQLITE.migration_sql(operations))
    assert columns(db, "customer")["nickname"] == ("VARCHAR(40)", 1, "'none'", 0)
    assert rows(db, "customer", "id, nickname") == [(1, "none"), (2, "bobby")]


def test_alter_column_default_only(db):
    change(db, BASE, BASE.replace("IntegerField(default=0)", "IntegerField(default=7)"))
    assert columns(db, "customer")["age"] == ("INTEGER", 1, "7", 0)
    assert rows(db, "customer") == CUSTOMERS
    db.execute("INSERT INTO customer (email, name) VALUES ('c@x', 'C')")
    assert db.execute("SELECT age FROM customer WHERE email = 'c@x'").fetchone() == (7,)


def test_failing_rebuild_leaves_the_table_as_it_was(db):
    db.execute("UPDATE customer SET nickname = 'same'")
    before = everything(db)
    after = BASE.replace("nickname = CharField(40, null=true)", "nickname = CharField(40, null=true, unique=true)")
    with dbutil.refused(sqlite3.IntegrityError, match="UNIQUE"):
        change(db, BASE, after)
    assert everything(db) == before
    assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_alter_column_on_delete_and_unique(db):
    after = BASE.replace("ForeignKey(Customer, on_delete=CASCADE)", "ForeignKey(Customer, on_delete=RESTRICT)") \
        .replace("email = CharField(max_length=255, unique=true)", "email = CharField(max_length=255)")
    change(db, BASE, after)
    assert foreign_keys(db, "invoice") == {("customer", "customer", "id", "RESTRICT")}
    assert indexes(db, "customer") == {}
    assert rows(db, "customer") == CUSTOMERS and rows(db, "invoice") == INVOICES
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("DELETE FROM customer WHERE id = 1")


def test_auto_field_to_big_auto_field_and_its_keys(db):
    # Both are INTEGER on SQLite: the referencing column follows, and there is nothing to run.
    after = BASE.replace('    table = "customer"', '    id = BigAutoField()\n    table = "customer"')
    operations = diff(parse(BASE), parse(after))
    assert [(op.op, op.model_name) for op in operations] == [
        ("drop_fk", "Invoice"), ("alter_column", "Customer"), ("alter_column", "Invoice")]
    assert SQLITE.migration_sql(operations) == [] and not SQLITE.needs_foreign_keys_off(operations)
    migrate(db, operations)
    assert columns(db, "invoice")["customer"] == ("INTEGER", 1, None, 0)
    assert foreign_keys(db, "invoice") == {("customer", "customer", "id", "CASCADE")}
    assert rows(db, "customer") == CUSTOMERS and rows(db, "invoice") == INVOICES
    db.execute("INSERT INTO customer (id, email, name, role) VALUES (3000000000, 'big@x', 'Big', 'ADMIN')")
    db.execute("INSERT INTO invoice (id, customer, total) VALUES (4, 3000000000, 1)")


KEYED = """
model Code extends Model {
    code = CharField(10, primary_key=true)
    parent = ForeignKey(Code, null=true, on_delete=SET_NULL)
}
model Item extends Model {
    code = ForeignKey(Code, on_delete=RESTRICT)
    label = TextField()
    indexes = [Index(code, label)]
}
"""


def test_key_type_change_rebuilds_every_referencing_table_with_its_rows():
    # The self-reference, a renamed referencing field and a new table pointing at Code
    # all become VARCHAR(20); the constraint drops cost no rebuild of their own.
    connection = dbutil.sqlite_connect()
    change(connection, "", KEYED)
    connection.execute("INSERT INTO code (code, parent) VALUES ('a', NULL), ('b', 'a')")
    connection.execute("INSERT INTO item (id, code, label) VALUES (1, 'a', 'one'), (2, 'b', 'two')")
    after = KEYED.replace("code = CharField(10, primary_key=true)", "code = CharField(20, primary_key=true)") \
        .replace("code = ForeignKey(Code, on_delete=RESTRICT)", "kind = ForeignKey(Code, on_delete=RESTRICT)") \
        .replace("Index(code, label)", "Index(kind, label)") \
        + "model Tag extends Model { code = ForeignKey(Code, null=true) }\n"
    operations = diff(parse(KEYED), parse(after), AnswerQuestioner({("Item", "code"): "kind"}))
    statements = SQLITE.migration_sql(operations)
    # code once (both its columns in one rebuild), item twice (its index changes between)
    assert rebuilt(statements) == ["code", "item", "item"]
    migrate(connection, operations)
    assert columns(connection, "code")["parent"][0] == columns(connection, "item")["kind"][0] == "VARCHAR(20)"
    assert columns(connection, "tag")["code"][0] == "VARCHAR(20)"
    assert foreign_keys(connection, "item") == {("kind", "code", "code", "RESTRICT")}
    assert rows(connection, "code") == [("a", None), ("b", "a")]
    assert rows(connection, "item") == [(1, "a", "one"), (2, "b", "two")]
    direct = dbutil.sqlite_connect()
    migrate(direct, diff(Schema(), parse(after)))
    assert sqlite_catalog(connection) == sqlite_catalog(direct)


RETARGETED = """
model Beta extends Model {
    id = BigAutoField()
    label = TextField()
}
model Gamma extends Model {
    code = CharField(10, primary_key=true)
}
model Alpha extends Model {
    f1 = ForeignKey(Beta, on_delete=RESTRICT)
    f2 = ForeignKey(Beta, null=true)
}
"""


@pytest.mark.parametrize("f1, f2, rows_after", [
    ("f1 = IntegerField()", "f2 = ForeignKey(Beta, null=true)", [(1, 1, 1), (2, 2, None)]),
    ("f1 = ForeignKey(Gamma, on_delete=RESTRICT)", "f2 = ForeignKey(Gamma, null=true)",
     [(1, "1", "1"), (2, "2", None)]),
])
def test_foreign_key_that_changes_target_or_stops_being_one_takes_its_new_type(f1, f2, rows_after):
    connection = dbutil.sqlite_connect()
    change(connection, "", RETARGETED)
    connection.execute("INSERT INTO beta (id, label) VALUES (1, 'one'), (2, 'two')")
    connection.execute("INSERT INTO gamma (code) VALUES ('1'), ('2')")
    connection.execute("INSERT INTO alpha (id, f1, f2) VALUES (1, 1, 1), (2, 2, NULL)")
    after = RETARGETED.replace("f1 = ForeignKey(Beta, on_delete=RESTRICT)", f1) \
        .replace("f2 = ForeignKey(Beta, null=true)", f2)
    operations = change(connection, RETARGETED, after)
    assert all(op.old_key.type == "BigAutoField" for op in operations if op.op == "alter_column")
    assert rows(connection, "alpha") == rows_after
    direct = dbutil.sqlite_connect()
    migrate(direct, diff(Schema(), parse(after)))
    assert sqlite_catalog(connection) == sqlite_catalog(direct)


def test_rebuild_keeps_the_autoincrement_counter(db):
    db.execute("INSERT INTO customer (id, email, name) VALUES (50, 'z@x', 'Z')")
    db.execute("DELETE FROM customer WHERE id = 50")
    change(db, BASE, BASE.replace("IntegerField(default=0)", "IntegerField(default=1)"))
    db.execute("INSERT INTO customer (email, name) VALUES ('n@x', 'N')")
    assert db.execute("SELECT id FROM customer WHERE email = 'n@x'").fetchone() == (51,)


def test_alter_column_that_changes_nothing_in_the_database_is_no_sql():
    before = "model A extends Model { b = ForeignKey(A, null=true, on_delete=SET_NULL) }"
    operations = diff(parse(before), parse(before.replace("null=true", "null=true, related_name=\"x\"")))
    assert SQLITE.migration_sql(operations) == []


# ---------------------------------------------------------------- rename_column

def test_rename_plain_column_natively_keeps_its_index(db):
    after = BASE.replace("total = DecimalField(12, 2)", "amount = DecimalField(12, 2)") \
        .replace("Index(customer, total)", "Index(customer, amount)")
    operations = change(db, BASE, after, AnswerQuestioner({("Invoice", "total"): "amount"}))
    statements = SQLITE.migration_sql(operations)
    assert 'ALTER TABLE "invoice" RENAME COLUMN "total" TO "amount"' in statements
    assert rows(db, "invoice", "id, customer, amount, note") == INVOICES
    assert indexes(db, "invoice") == {"ix_invoice_customer_amount": (False, ("customer", "amount"))}


def test_rename_constrained_columns_rebuilds_with_fresh_constraint_names(db):
    after = BASE.replace("email = CharField", "mail = CharField").replace("role = EnumField", "kind = EnumField")
    operations = change(db, BASE, after, AnswerQuestioner({("Customer", "email"): "mail", ("Customer", "role"): "kind"}))
    assert [op.op for op in operations] == ["rename_column", "rename_column"]
    assert SQLITE.needs_foreign_keys_off(operations)
    assert rows(db, "customer", "id, mail, name, nickname, age, kind") == CUSTOMERS
    sql = table_sql(db, "customer")
    assert '"customer_mail_key" UNIQUE' in sql and "CHECK (\"kind\" IN ('ADMIN', 'CUSTOMER', 'STAFF'))" in sql
    assert "email" not in sql and "role" not in sql


def test_rename_primary_key_natively_so_referring_keys_follow(db):
    schema = parse(BASE)
    customer = schema.models["Customer"]
    old = customer.field("id")
    operations, _ = attach_tables([RenameColumn("Customer", "customer", old, old._replace(name="pk", column="pk"))],
                                  schema)
    assert SQLITE.migration_sql(operations) == ['ALTER TABLE "customer" RENAME COLUMN "id" TO "pk"']
    migrate(db, operations)
    assert foreign_keys(db, "invoice") == {("customer", "customer", "pk", "CASCADE")}
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []


# ---------------------------------------------------------------- add_fk, drop_fk

def test_drop_fk_and_add_fk_by_hand(db):
    schema = parse(BASE)
    drop, _ = attach_tables([DropForeignKey("Invoice", "invoice", "customer", "Customer", "CASCADE")], schema)
    migrate(db, drop)
    assert foreign_keys(db, "invoice") == set()
    assert columns(db, "invoice")["customer"] == ("INTEGER", 1, None, 0)
    assert rows(db, "invoice") == INVOICES
    assert indexes(db, "invoice") == {"ix_invoice_customer_total": (False, ("customer", "total"))}

    db.execute("INSERT INTO invoice (customer, total) VALUES (99, 1)")  # no constraint now
    add, _ = attach_tables([AddForeignKey("Invoice", "invoice", "customer", "Customer", "SET_NULL")], schema)
    before = everything(db)
    with dbutil.refused(match="would break a foreign key"):  # row 4 points nowhere: refused, rolled back
        migrate(db, add)
    assert everything(db) == before
    db.execute("DELETE FROM invoice WHERE customer = 99")
    migrate(db, add)
    assert foreign_keys(db, "invoice") == {("customer", "customer", "id", "SET NULL")}
    assert rows(db, "invoice") == INVOICES


def test_dropping_models_in_a_cycle_drops_a_key_first():
    connection = dbutil.sqlite_connect()
    cycle = """
        model Author extends Model { best = ForeignKey(Book, null=true, on_delete=SET_NULL) }
        model Book extends Model { author = ForeignKey(Author) }
    """
    change(connection, "", cycle)
    connection.execute("INSERT INTO author (id) VALUES (1)")
    connection.execute("INSERT INTO book (id, author) VALUES (1, 1)")
    connection.execute("UPDATE author SET best = 1")
    operations = change(connection, cycle, "")
    assert [op.op for op in operations] == ["drop_fk", "drop_model", "drop_model"]
    assert tables(connection) == set()


# ---------------------------------------------------------------- add_index, drop_index

def test_add_and_drop_indexes(db):
    after = BASE.replace("indexes = [Index(customer, total)]",
                         'indexes = [Index(note, name="ix note"), Index(customer, note, unique=true)]')
    operations = change(db, BASE, after)
    assert [op.op for op in operations] == ["drop_index", "add_index", "add_index"]
    assert SQLITE.migration_sql(operations) == [
        'DROP INDEX "ix_invoice_customer_total"',
        'CREATE INDEX "ix note" ON "invoice" ("note")',
        'CREATE UNIQUE INDEX "uq_invoice_customer_note" ON "invoice" ("customer", "note")',
    ]
    assert indexes(db, "invoice") == {"ix note": (False, ("note",)),
                                      "uq_invoice_customer_note": (True, ("customer", "note"))}
    assert rows(db, "invoice") == INVOICES


def test_unique_index_on_duplicates_fails_cleanly(db):
    before = everything(db)
    with dbutil.refused(sqlite3.IntegrityError):
        change(db, BASE, BASE.replace("Index(customer, total)", "Index(customer, unique=true)"))
    assert everything(db) == before


# ---------------------------------------------------------------- alter_enum

def test_alter_enum_adds_renames_and_removes_values(db):
    after = BASE.replace("enum Role { ADMIN, CUSTOMER, STAFF }",
                         'enum Role { ADMIN, OWNER, CUSTOMER, STAFF = "staff" }')
    operations = change(db, BASE, after)
    assert [op.op for op in operations] == ["alter_enum"]
    assert rows(db, "customer", "id, role") == [(1, "ADMIN"), (2, "staff")]
    assert "CHECK (\"role\" IN ('ADMIN', 'OWNER', 'CUSTOMER', 'staff'))" in table_sql(db, "customer")
    db.execute("UPDATE customer SET role = 'OWNER' WHERE id = 1")
    assert rows(db, "invoice") == INVOICES

    # CUSTOMER is unused: removing it works.
    change(db, after, after.replace("CUSTOMER, ", ""))
    assert rows(db, "customer", "id, role") == [(1, "OWNER"), (2, "staff")]


def test_removing_an_enum_value_still_used_fails_and_changes_nothing(db):
    before = everything(db)
    with dbutil.refused(sqlite3.IntegrityError, match="CHECK constraint failed"):
        change(db, BASE, BASE.replace("CUSTOMER, STAFF", "CUSTOMER"))
    assert everything(db) == before


def test_alter_enum_reorder_only_needs_no_rebuild(db):
    operations = [AlterEnum("Role", (("ADMIN", "ADMIN"), ("CUSTOMER", "CUSTOMER"), ("STAFF", "STAFF")),
                            (("STAFF", "STAFF"), ("ADMIN", "ADMIN"), ("CUSTOMER", "CUSTOMER")))]
    operations, _ = attach_tables(operations, parse(BASE))
    assert len(operations[0].tables) == 1
    assert SQLITE.migration_sql(operations) == []
    assert not SQLITE.needs_foreign_keys_off(operations)


# ---------------------------------------------------------------- names and values are inert

HOSTILE = 'x"); DROP TABLE victim; --'
HOSTILE_MODELS = r"""
enum Mood { HAPPY = "it's", SAD = "x\"); DROP TABLE victim; --" }
model Victim extends Model { x = IntegerField(null=true) }
model Weird extends Model {
    select = CharField(50, default="'); DROP TABLE victim; --", db_column="from")
    mood = EnumField(Mood, default=Mood.SAD, db_column="x\"); DROP TABLE victim; --")
    spaced = TextField(null=true, db_column="a b \\ c")
    table = "order by"
    indexes = [Index(select, mood, name="ix \"quoted\" name")]
}
"""


def test_hostile_names_and_defaults_are_quoted():
    text = HOSTILE_MODELS
    hostile = HOSTILE
    connection = dbutil.sqlite_connect()
    change(connection, "", text)
    assert tables(connection) == {"victim", "order by"}
    cols = columns(connection, "order by")
    assert set(cols) == {"id", "from", hostile, "a b \\ c"}
    connection.execute('INSERT INTO "order by" DEFAULT VALUES')
    assert connection.execute(f'SELECT "from", {SQLITE.quote(hostile)} FROM "order by"').fetchone() == (
        "'); DROP TABLE victim; --", hostile)
    assert indexes(connection, "order by") == {'ix "quoted" name': (False, ("from", hostile))}
    # and they survive a rebuild
    change(connection, text, text.replace('null=true, db_column="a b', 'default="d", db_column="a b'))
    assert tables(connection) == {"victim", "order by"}
    assert connection.execute('SELECT "a b \\ c" FROM "order by"').fetchone() == ("d",)


# ---------------------------------------------------------------- diff then apply == create

def sqlite_catalog(connection) -> dict:
    """The database's structure in a comparable form: column order and the names SQLite
    gives UNIQUE constraints' indexes do not matter; CHECK lists compare as sets."""
    found = {}
    for table in sorted(tables(connection)):
        sql = table_sql(connection, table)
        checks = sorted((column, tuple(sorted(re.findall(r"'((?:[^']|'')*)'", values))))
                        for column, values in re.findall(r'CHECK \("((?:[^"]|"")*)" IN \(([^)]*)\)\)', sql))
        found[table] = {
            "columns": sorted(columns(connection, table).items()),
            "autoincrement": "AUTOINCREMENT" in sql,
            "foreign_keys": sorted(foreign_keys(connection, table)),
            "indexes": sorted(indexes(connection, table).items()),
            "checks": checks,
        }
    return found


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=schema_pairs(vary_keys=True))
def test_diff_applied_to_a_database_matches_creating_the_target(pair):
    before, after = pair
    direct = dbutil.sqlite_connect()
    migrate(direct, diff(Schema(), parse(after)))
    stepped = dbutil.sqlite_connect()
    migrate(stepped, diff(Schema(), parse(before)))
    migrate(stepped, diff(parse(before), parse(after)))
    assert sqlite_catalog(stepped) == sqlite_catalog(direct)


# ---------------------------------------------------------------- a run's page cache

def _models(count: int) -> str:
    return "".join(f"model Ledger{n:04d} extends Model {{\n"
                   + "".join(f"    entry_{f:02d} = CharField(120, null=true)\n" for f in range(20)) + "}\n"
                   for n in range(count))


def _cache_seen_by_a_migration_after(project, models: str) -> tuple:
    """Make the migrations of ``models`` and one after them whose run_sql keeps the
    connection's cache_size in a table; apply them all in one run. (cache_size the
    migration saw, KiB of SQL text in the schema table afterwards)."""
    project.write_models(models)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "makemigrations", "--empty", "--name", "seen").code == 0
    [seen] = project.migrations.glob("*_seen.json")
    document = json.loads(seen.read_text())
    document["ops"] = [{"op": "run_sql", "sql": "CREATE TABLE seen AS SELECT cache_size FROM pragma_cache_size()",
                        "reverse_sql": "DROP TABLE seen"}]
    seen.write_text(json.dumps(document))
    assert project.run("db", "migrate").code == 0
    with sqlite3.connect(project.path / "dev.db") as connection:
        [(cache_size,)] = connection.execute("SELECT cache_size FROM seen")
        [(schema_bytes,)] = connection.execute("SELECT sum(length(sql)) FROM sqlite_master")
    return cache_size, schema_bytes / 1024


def test_a_run_on_a_large_schema_gets_a_page_cache_that_holds_the_schema_table(project):
    # SQLite scans its whole schema table after each DDL statement: the run's
    # connection keeps it in memory instead of reading it from the file each time.
    cache_size, schema_kib = _cache_seen_by_a_migration_after(project, _models(1000))
    default = sqlite3.connect(":memory:").execute("PRAGMA cache_size").fetchone()[0]  # -2000: KiB
    assert cache_size < default, (cache_size, default)
    assert -cache_size >= 2 * schema_kib, (cache_size, schema_kib)


def test_a_run_on_a_small_schema_keeps_sqlites_own_page_cache(project):
    cache_size, schema_kib = _cache_seen_by_a_migration_after(project, _models(3))
    assert schema_kib < 100
    assert cache_size == sqlite3.connect(":memory:").execute("PRAGMA cache_size").fetchone()[0]


# ---------------------------------------------------------------- reading CREATE TABLE text

_WORDS = st.sampled_from(["id", '"email"', "INTEGER", "NOT NULL", "DEFAULT", "CHECK", "REFERENCES", "`x`", "[y]"])
_LITERALS = st.text(st.sampled_from(list("a,() \"`")), max_size=6).map(lambda text: "'" + text + "'") \
    | st.just("'it''s, (so)'")
_GROUPS = st.lists(_WORDS | _LITERALS, min_size=1, max_size=3).map(lambda parts: "(" + ", ".join(parts) + ")")
_ITEM_TEXTS = st.lists(_WORDS | _LITERALS | _GROUPS, min_size=1, max_size=4).map(" ".join)


@given(items=st.lists(_ITEM_TEXTS, min_size=1, max_size=6))
def test_a_create_table_text_splits_into_its_items_at_top_level_commas_only(items):
    from mfcore.dialects.sqlite import _items

    definition = 'CREATE TABLE "t" (\n    ' + ",\n    ".join(items) + "\n) STRICT, WITHOUT ROWID"
    assert _items(definition) == items

"""The PostgreSQL dialect against a real server: every operation kind, its catalog, its rows.

The module makes one database (tests/dbutil.py; skipped when no server is reachable,
a failure under CI=true) and gives each test a schema of its own. Each test builds a
"before" schema from models.mp text, creates it, fills it, applies a change through the
applier's own runner (dbutil), and reads the result back from pg_catalog.
"""
from __future__ import annotations

import dataclasses

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings

import dbutil
from mfcore.dialects.catalog import Column, ForeignKey, Index, Unique
from mfcore.differ import diff
from mfcore.dialects import dialect_for
from mfcore.dialects.base import cut_into_steps, StepBoundary
from mfcore.dialects.postgresql import NOT_NULL_CHECK_SUFFIX
from mfcore.language.parser import parse
from mfcore.operations import AddForeignKey, DropForeignKey, RenameColumn, attach_tables
from mfcore.questioner import AnswerQuestioner
from mfcore.schema import Schema, constraint_name
from test_dialect_sql import BASE, CUSTOMERS, schema_pairs

POSTGRES = dialect_for("postgresql")

INVOICES = [(1, 1, "10.50", "first"), (2, 2, "20.00", None), (3, 2, "7.25", "third")]


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="module")
def session():
    with dbutil.temporary_postgres_database("mf_dialect_pg") as url:
        connection = dbutil.PostgresSession(url)
        try:
            yield connection
        finally:
            connection.close()


@pytest.fixture
def pg(session):
    session.fresh_schema()
    yield session
    session.drop_schema()


@pytest.fixture
def db(pg):
    migrate(pg, diff(Schema(), parse(BASE)))
    for row in CUSTOMERS:
        pg.execute("INSERT INTO customer (id, email, name, nickname, age, role) VALUES ($1, $2, $3, $4, $5, $6)", *row)
    for row in INVOICES:
        pg.execute("INSERT INTO invoice (id, customer, total, note) VALUES ($1, $2, $3::numeric, $4)", *row)
    return pg


def migrate(pg, operations, *, atomic=True):
    pg.migrate(operations, atomic=atomic)


def change(pg, before: str, after: str, questioner=None, *, atomic=True) -> list:
    operations = diff(parse(before), parse(after), questioner)
    migrate(pg, operations, atomic=atomic)
    return operations


def columns(pg, table) -> dict:
    """name -> (type, not null, default expression, identity) from pg_attribute."""
    found = pg.fetch("""
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity::text
        FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped""", POSTGRES.quote(table))
    return {name: (kind, notnull, default, identity) for name, kind, notnull, default, identity in found}


def constraints(pg, table) -> dict:
    return dict(pg.fetch("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                         " WHERE conrelid = to_regclass($1)", POSTGRES.quote(table)))


def indexes(pg, table) -> dict:
    """index name -> definition (unqualified), constraint-backed ones included."""
    return {name: definition.replace(f"{pg.schema}.", "") for name, definition in pg.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
        table)}


def enum_values(pg, type_name) -> list:
    return [row[0] for row in pg.fetch(
        "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
        " WHERE t.typname = $1 AND t.typnamespace = current_schema()::regnamespace ORDER BY e.enumsortorder",
        type_name)]


def tables(pg) -> set:
    """The tables of the test's schema, the applier's ledger aside."""
    return {row[0] for row in pg.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                                       " AND tablename <> 'mf_migrations'")}


def rows(pg, table, cols="*") -> list:
    return pg.fetch(f"SELECT {cols} FROM {POSTGRES.quote(table)} ORDER BY 1")


def text_rows(pg, table, cols) -> list:
    """Rows with every value as text, for comparing numbers and enums simply."""
    return pg.fetch(f"SELECT {', '.join(c + '::text' for c in cols.split(', '))} FROM {POSTGRES.quote(table)}"
                    " ORDER BY 1")


def catalog(pg) -> dict:
    """The schema's structure in a comparable form (column order and sequence names aside)."""
    types = pg.fetch("SELECT t.typname FROM pg_type t WHERE t.typtype = 'e'"
                     " AND t.typnamespace = current_schema()::regnamespace")
    return {
        "tables": {t: (sorted(columns(pg, t).items()), sorted(constraints(pg, t).items()),
                       sorted(indexes(pg, t).items())) for t in sorted(tables(pg))},
        "enums": {name: enum_values(pg, name) for (name,) in sorted(types)},
    }


def everything(pg) -> dict:
    return {"catalog": catalog(pg), "rows": {t: rows(pg, t) for t in sorted(tables(pg))}}


# ---------------------------------------------------------------- the catalog reader

def test_catalog_reader_sees_tables_columns_keys_indexes_and_enums(db):
    db.execute('CREATE TABLE "odd ""name""" (a integer, b text, PRIMARY KEY (a, b))')
    db.execute('CREATE UNIQUE INDEX "ux_odd" ON "odd ""name""" (lower(b))')
    db.execute("ALTER TYPE role ADD VALUE 'GUEST' BEFORE 'ADMIN'")
    catalog = db.read_catalog()
    assert set(catalog.tables) == {"customer", "invoice", "mf_migrations", 'odd "name"'}
    assert catalog.enums == {"role": ("GUEST", "ADMIN", "CUSTOMER", "STAFF")}
    customer, invoice = catalog.tables["customer"], catalog.tables["invoice"]
    assert list(customer.columns) == ["id", "email", "name", "nickname", "age", "role"]
    assert customer.columns["email"] == Column("email", "character varying(255)", False, None)
    assert customer.columns["nickname"] == Column("nickname", "character varying(40)", True, None)
    assert customer.columns["age"].default == "0"
    assert customer.columns["role"] == Column("role", "role", False, "'ADMIN'::role")
    assert customer.primary_key == ("id",)
    assert customer.uniques == [Unique("customer_email_key", ("email",))]
    assert invoice.foreign_keys == [ForeignKey(("customer",), "customer", ("id",), "CASCADE",
                                               "invoice_customer_fkey")]
    assert invoice.indexes == [Index("ix_invoice_customer_total", ("customer", "total"), False)]
    assert invoice.columns["total"] == Column("total", "numeric(12,2)", False, None)
    odd = catalog.tables['odd "name"']
    assert odd.primary_key == ("a", "b") and odd.indexes == [Index("ux_odd", None, True)]
    assert set(db.read_catalog({"invoice", "missing"}).tables) == {"invoice"}


def test_catalog_reader_reads_only_the_schemas_on_the_search_path(pg):
    pg.execute("CREATE TABLE visible (id integer)")
    pg.execute('CREATE SCHEMA "other_catalog"')
    try:
        pg.execute('CREATE TABLE "other_catalog".hidden (id integer)')
        pg.execute("CREATE TYPE \"other_catalog\".mood AS ENUM ('a')")
        catalog = pg.read_catalog()
        assert set(catalog.tables) == {"visible"} and catalog.enums == {}
    finally:
        pg.execute('DROP SCHEMA "other_catalog" CASCADE')  # test cleanup only


# ---------------------------------------------------------------- create_enum, create_model

def test_create_model_types_defaults_and_constraints(pg):
    change(pg, "", """
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
            added = DateTimeField(auto_now_add=true)
            day = DateField(auto_now=true)
            at = TimeField(null=true)
            ref = UUIDField(null=true, unique=true)
            data = JSONField(default=[1, "two"])
            raw = BinaryField(default="hi")
            currency = EnumField(Currency, default=Currency.EUR)
            shop = ForeignKey(Shop, on_delete=SET_NULL, null=true)
            twin = OneToOneField(Item, on_delete=RESTRICT, null=true)
        }
        """)
    assert enum_values(pg, "currency") == ["usd", "eur"]
    assert columns(pg, "item") == {
        "id": ("bigint", True, None, "d"),
        "title": ("character varying(80)", True, None, ""),
        "body": ("text", False, None, ""),
        "qty": ("smallint", True, "'-1'::integer", ""),
        "big": ("bigint", False, None, ""),
        "price": ("numeric(10,3)", True, "1.5", ""),
        "ratio": ("double precision", True, "0.25", ""),
        "active": ("boolean", True, "true", ""),
        "added": ("timestamp with time zone", True, "CURRENT_TIMESTAMP", ""),
        "day": ("date", True, "CURRENT_DATE", ""),
        "at": ("time without time zone", False, None, ""),
        "ref": ("uuid", False, None, ""),
        "data": ("jsonb", True, "'[1, \"two\"]'::jsonb", ""),
        "raw": ("bytea", True, "'\\x6869'::bytea", ""),
        "currency": ("currency", True, "'eur'::currency", ""),
        "shop": ("character varying(8)", False, None, ""),  # the type of Shop's key
        "twin": ("bigint", False, None, ""),
    }
    assert constraints(pg, "item") == {
        "item_pkey": "PRIMARY KEY (id)",
        "item_ref_key": "UNIQUE (ref)",
        "item_twin_key": "UNIQUE (twin)",
        "item_shop_fkey": "FOREIGN KEY (shop) REFERENCES shop(code) ON DELETE SET NULL",
        "item_twin_fkey": "FOREIGN KEY (twin) REFERENCES item(id) ON DELETE RESTRICT",
    }
    assert constraints(pg, "shop") == {"shop_pkey": "PRIMARY KEY (code)"}
    pg.execute("INSERT INTO shop (code) VALUES ('s1')")
    pg.execute("INSERT INTO item (title, shop) VALUES ('t', 's1')")
    assert pg.fetch("SELECT id, qty, price::text, active, data::text, raw, currency::text FROM item") == [
        (1, -1, "1.500", True, '[1, "two"]', b"hi", "eur")]
    with pytest.raises(asyncpg.InvalidTextRepresentationError):
        pg.execute("INSERT INTO item (title, currency) VALUES ('t', 'USD')")  # the key, not the value


def test_create_models_in_a_cycle_adds_the_deferred_key_afterwards(pg):
    operations = change(pg, "", """
        model Author extends Model { best = ForeignKey(Book, null=true, on_delete=SET_NULL) }
        model Book extends Model { id = BigAutoField()\n author = ForeignKey(Author) }
        """)
    assert [op.op for op in operations] == ["create_model", "create_model", "add_fk"]
    assert columns(pg, "author")["best"] == ("bigint", False, None, "")
    assert constraints(pg, "author")["author_best_fkey"] == "FOREIGN KEY (best) REFERENCES book(id) ON DELETE SET NULL"


def test_drop_enum_still_used_fails_without_cascade(db):
    before = everything(db)
    with dbutil.refused(asyncpg.DependentObjectsStillExistError):
        migrate(db, [op for op in diff(parse(BASE), parse("")) if op.op == "drop_enum"])
    assert everything(db) == before
    change(db, BASE, BASE + "enum Gone { A }")
    assert enum_values(db, "gone") == ["A"]
    change(db, BASE + "enum Gone { A }", BASE)
    assert enum_values(db, "gone") == []


# ---------------------------------------------------------------- drop_model, rename_model

def test_drop_model(db):
    change(db, BASE, BASE.split("model Invoice")[0])
    assert tables(db) == {"customer"}
    assert rows(db, "customer") == CUSTOMERS


def test_dropping_a_table_still_referenced_fails_without_cascade(db):
    before = everything(db)
    with dbutil.refused(asyncpg.DependentObjectsStillExistError):
        migrate(db, [op for op in diff(parse(BASE), parse("")) if op.op == "drop_model" and op.table == "customer"])
    assert everything(db) == before


def test_rename_model_renames_its_constraints(db):
    after = BASE.replace("model Customer", "model Client").replace('table = "customer"', 'table = "client"') \
        .replace("ForeignKey(Customer", "ForeignKey(Client")
    change(db, BASE, after, AnswerQuestioner(model_renames={"Customer": "Client"}))
    assert tables(db) == {"client", "invoice"}
    assert set(constraints(db, "client")) == {"client_pkey", "client_email_key"}
    assert constraints(db, "invoice")["invoice_customer_fkey"].endswith("REFERENCES client(id) ON DELETE CASCADE")
    assert rows(db, "client") == CUSTOMERS
    # Later operations find the constraints under the new names.
    change(db, after, after.replace("email = CharField(max_length=255, unique=true)",
                                    "email = CharField(max_length=255)"))
    assert set(constraints(db, "client")) == {"client_pkey"}


# ---------------------------------------------------------------- add_column

def test_add_columns(db):
    after = BASE.replace('    table = "customer"', '''    phone = CharField(20, null=true)
    score = FloatField(default=1.5)
    vip = BooleanField(default=false)
    role2 = EnumField(Role, default=Role.STAFF)
    code = CharField(10, null=true, unique=true)
    seen = DateTimeField(auto_now_add=true)
    table = "customer"''')
    change(db, BASE, after)
    cols = columns(db, "customer")
    assert cols["phone"] == ("character varying(20)", False, None, "")
    assert cols["role2"] == ("role", True, "'STAFF'::role", "")
    assert constraints(db, "customer")["customer_code_key"] == "UNIQUE (code)"
    assert text_rows(db, "customer", "id, phone, score, vip, role2, code") == [
        ("1", None, "1.5", "false", "STAFF", None), ("2", None, "1.5", "false", "STAFF", None)]
    assert db.fetchval("SELECT count(*) FROM customer WHERE seen IS NOT NULL") == 2


def test_add_foreign_key_column_with_a_default(db):
    after = BASE.replace("    note = TextField(null=true)",
                         "    note = TextField(null=true)\n    owner = ForeignKey(Customer, default=1, on_delete=SET_DEFAULT)")
    change(db, BASE, after)
    assert constraints(db, "invoice")["invoice_owner_fkey"] == (
        "FOREIGN KEY (owner) REFERENCES customer(id) ON DELETE SET DEFAULT")
    assert rows(db, "invoice", "id, owner") == [(1, 1), (2, 1), (3, 1)]


def test_add_not_null_column_without_default_fails_cleanly_on_rows(db):
    after = BASE.replace("    note = TextField(null=true)", "    note = TextField(null=true)\n    due = DateField()")
    before = everything(db)
    with dbutil.refused(asyncpg.NotNullViolationError):
        change(db, BASE, after)
    assert everything(db) == before
    db.execute("DELETE FROM invoice")
    change(db, BASE, after)
    assert columns(db, "invoice")["due"] == ("date", True, None, "")


# ---------------------------------------------------------------- drop_column

def test_drop_columns_with_their_constraints(db):
    after = BASE.replace("    nickname = CharField(40, null=true)\n", "") \
        .replace("    email = CharField(max_length=255, unique=true)\n", "") \
        .replace("    customer = ForeignKey(Customer, on_delete=CASCADE)\n", "") \
        .replace("indexes = [Index(customer, total)]", "")
    change(db, BASE, after)
    assert set(columns(db, "customer")) == {"id", "name", "age", "role"}
    assert set(constraints(db, "customer")) == {"customer_pkey"}
    assert set(constraints(db, "invoice")) == {"invoice_pkey"}
    assert text_rows(db, "invoice", "id, total, note") == [("1", "10.50", "first"), ("2", "20.00", None),
                                                          ("3", "7.25", "third")]


# ---------------------------------------------------------------- alter_column

def test_alter_column_types_keep_values(db):
    after = BASE.replace("age = IntegerField(default=0)", "age = DecimalField(8, 2, default=0)") \
        .replace("name = CharField(120)", "name = TextField()") \
        .replace("total = DecimalField(12, 2)", "total = TextField()")
    change(db, BASE, after)
    cols = columns(db, "customer")
    assert cols["age"] == ("numeric(8,2)", True, "0.0", "")
    assert cols["name"] == ("text", True, None, "")
    assert text_rows(db, "customer", "id, name, age") == [("1", "Ann", "30.00"), ("2", "Bob", "40.00")]
    assert rows(db, "invoice", "id, total") == [(1, "10.50"), (2, "20.00"), (3, "7.25")]
    # and back: text that holds numbers converts
    change(db, after, after.replace("total = TextField()", "total = DecimalField(12, 2)"))
    assert text_rows(db, "invoice", "id, total") == [("1", "10.50"), ("2", "20.00"), ("3", "7.25")]


@pytest.mark.parametrize("old, new, error", [
    ("name = CharField(120)", "name = IntegerField()", asyncpg.InvalidTextRepresentationError),
    ("name = CharField(120)", "name = CharField(2)", asyncpg.StringDataRightTruncationError),
    ("age = IntegerField(default=0)", "age = SmallIntegerField(default=0)", None),
    ("nickname = CharField(40, null=true)", "nickname = CharField(40)", asyncpg.NotNullViolationError),
])
def test_type_and_null_changes_that_data_does_not_fit_fail_cleanly(db, old, new, error):
    before = everything(db)
    if error is None:  # smallint holds 30 and 40: fine
        change(db, BASE, BASE.replace(old, new))
        assert columns(db, "customer")["age"][0] == "smallint"
        return
    with dbutil.refused(error):
        change(db, BASE, BASE.replace(old, new))
    assert everything(db) == before


def test_alter_column_to_not_null_fills_nulls_with_the_default(db):
    change(db, BASE, BASE.replace("nickname = CharField(40, null=true)", 'nickname = CharField(40, default="none")'))
    assert columns(db, "customer")["nickname"] == ("character varying(40)", True, "'none'::character varying", "")
    assert rows(db, "customer", "id, nickname") == [(1, "none"), (2, "bobby")]


def test_alter_column_unique_and_on_delete(db):
    after = BASE.replace("ForeignKey(Customer, on_delete=CASCADE)", "ForeignKey(Customer, on_delete=RESTRICT)") \
        .replace("email = CharField(max_length=255, unique=true)", "email = CharField(max_length=255)") \
        .replace("name = CharField(120)", "name = CharField(120, unique=true)")
    change(db, BASE, after)
    assert constraints(db, "customer") == {"customer_pkey": "PRIMARY KEY (id)", "customer_name_key": "UNIQUE (name)"}
    assert constraints(db, "invoice")["invoice_customer_fkey"].endswith("ON DELETE RESTRICT")
    assert rows(db, "customer") == CUSTOMERS and len(rows(db, "invoice")) == 3


def test_adding_unique_over_duplicates_fails_cleanly(db):
    db.execute("UPDATE customer SET nickname = 'same'")
    before = everything(db)
    with dbutil.refused(asyncpg.UniqueViolationError):
        change(db, BASE, BASE.replace("CharField(40, null=true)", "CharField(40, null=true, unique=true)"))
    assert everything(db) == before


def test_alter_column_enum_to_text_and_back(db):
    as_text = BASE.replace("role = EnumField(Role, default=Role.ADMIN)", 'role = CharField(20, default="ADMIN")')
    change(db, BASE, as_text)
    assert columns(db, "customer")["role"] == ("character varying(20)", True, "'ADMIN'::character varying", "")
    change(db, as_text, BASE)
    assert columns(db, "customer")["role"] == ("role", True, "'ADMIN'::role", "")
    assert rows(db, "customer") == CUSTOMERS


def test_auto_field_to_big_auto_field_and_its_keys(db):
    after = BASE.replace('    table = "customer"', '    id = BigAutoField()\n    table = "customer"')
    operations = change(db, BASE, after)
    assert [(op.op, op.model_name) for op in operations] == [
        ("drop_fk", "Invoice"), ("alter_column", "Customer"), ("alter_column", "Invoice")]
    assert columns(db, "customer")["id"] == ("bigint", True, None, "d")
    assert columns(db, "invoice")["customer"] == ("bigint", True, None, "")
    assert constraints(db, "invoice")["invoice_customer_fkey"] == (
        "FOREIGN KEY (customer) REFERENCES customer(id) ON DELETE CASCADE")
    assert rows(db, "customer") == CUSTOMERS
    assert text_rows(db, "invoice", "id, customer, total, note") == [
        ("1", "1", "10.50", "first"), ("2", "2", "20.00", None), ("3", "2", "7.25", "third")]
    db.execute("INSERT INTO customer (id, email, name) VALUES (3000000000, 'big@x', 'Big')")
    db.execute("INSERT INTO invoice (id, customer, total) VALUES (4, 3000000000, 1)")
    migrated = catalog(db)
    db.fresh_schema()
    migrate(db, diff(Schema(), parse(after)))
    assert migrated == catalog(db)


KEYED = """
model Code extends Model {
    code = IntegerField(primary_key=true)
    parent = ForeignKey(Code, null=true, on_delete=SET_NULL)
}
model Item extends Model {
    code = ForeignKey(Code, on_delete=RESTRICT)
    label = TextField()
}
"""


def test_key_changed_to_another_type_takes_every_referencing_column_along(pg):
    # integer -> varchar: no constraint between the two types can exist, so every key
    # into Code comes off first; the self-reference, a renamed referencing field and a
    # new table pointing at Code all end up varchar(20), with their rows.
    change(pg, "", KEYED)
    pg.execute("INSERT INTO code (code, parent) VALUES (1, NULL), (2, 1)")
    pg.execute("INSERT INTO item (id, code, label) VALUES (1, 1, 'one'), (2, 2, 'two')")
    after = KEYED.replace("code = IntegerField(primary_key=true)", "code = CharField(20, primary_key=true)") \
        .replace("code = ForeignKey(Code, on_delete=RESTRICT)", "kind = ForeignKey(Code, on_delete=RESTRICT)") \
        + "model Tag extends Model { code = ForeignKey(Code, null=true) }\n"
    operations = change(pg, KEYED, after, AnswerQuestioner({("Item", "code"): "kind"}))
    assert [op.op for op in operations][:5] == ["drop_fk", "drop_fk", "alter_column", "alter_column", "alter_column"]
    assert columns(pg, "code")["code"][0] == columns(pg, "code")["parent"][0] == "character varying(20)"
    assert columns(pg, "item")["kind"][0] == columns(pg, "tag")["code"][0] == "character varying(20)"
    assert constraints(pg, "item")["item_kind_fkey"] == "FOREIGN KEY (kind) REFERENCES code(code) ON DELETE RESTRICT"
    assert constraints(pg, "code")["code_parent_fkey"].startswith("FOREIGN KEY (parent) REFERENCES code(code)")
    assert rows(pg, "code") == [("1", None), ("2", "1")]
    assert rows(pg, "item") == [(1, "1", "one"), (2, "2", "two")]
    migrated = catalog(pg)
    pg.fresh_schema()
    migrate(pg, diff(Schema(), parse(after)))
    assert migrated == catalog(pg)


def test_integer_key_becomes_auto_field(pg):
    before = "model T extends Model {\n code = IntegerField(primary_key=true)\n label = TextField() }"
    change(pg, "", before)
    pg.execute("INSERT INTO t (code, label) VALUES (5, 'five')")
    change(pg, before, before.replace("IntegerField(primary_key=true)", "AutoField()"))
    assert columns(pg, "t")["code"] == ("integer", True, None, "d")
    pg.execute("INSERT INTO t (label) VALUES ('next')")
    assert rows(pg, "t") == [(5, "five"), (6, "next")]


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
    # Stops being a foreign key: bigint -> integer, the values kept.
    ("f1 = IntegerField()", "f2 = ForeignKey(Beta, null=true)", [(1, 1, 1), (2, 2, None)]),
    # Points at a model keyed by a CharField: bigint -> varchar(10), the values as text.
    ("f1 = ForeignKey(Gamma, on_delete=RESTRICT)", "f2 = ForeignKey(Gamma, null=true)",
     [(1, "1", "1"), (2, "2", None)]),
])
def test_foreign_key_that_changes_target_or_stops_being_one_takes_its_new_type(pg, f1, f2, rows_after):
    # The old column type comes from the key it pointed to (old_key), so the change from
    # bigint is seen and made; the result is the target schema as created directly.
    change(pg, "", RETARGETED)
    pg.execute("INSERT INTO beta (id, label) VALUES (1, 'one'), (2, 'two')")
    pg.execute("INSERT INTO gamma (code) VALUES ('1'), ('2')")
    pg.execute("INSERT INTO alpha (id, f1, f2) VALUES (1, 1, 1), (2, 2, NULL)")
    after = RETARGETED.replace("f1 = ForeignKey(Beta, on_delete=RESTRICT)", f1) \
        .replace("f2 = ForeignKey(Beta, null=true)", f2)
    operations = change(pg, RETARGETED, after)
    assert all(op.old_key.name == "id" and op.old_key.type == "BigAutoField"
               for op in operations if op.op == "alter_column")
    assert rows(pg, "alpha") == rows_after
    migrated = catalog(pg)
    pg.fresh_schema()
    migrate(pg, diff(Schema(), parse(after)))
    assert migrated == catalog(pg)


# ---------------------------------------------------------------- rename_column

def test_rename_columns_and_their_constraints(db):
    after = BASE.replace("email = CharField", "mail = CharField").replace("customer = ForeignKey", "client = ForeignKey") \
        .replace("Index(customer, total)", "Index(client, total)")
    operations = change(db, BASE, after, AnswerQuestioner({("Customer", "email"): "mail",
                                                           ("Invoice", "customer"): "client"}))
    assert "rename_column" in [op.op for op in operations]
    assert set(constraints(db, "customer")) == {"customer_pkey", "customer_mail_key"}
    assert constraints(db, "invoice")["invoice_client_fkey"] == (
        "FOREIGN KEY (client) REFERENCES customer(id) ON DELETE CASCADE")
    assert rows(db, "customer", "id, mail") == [(1, "ann@example.com"), (2, "bob@example.com")]
    assert text_rows(db, "invoice", "id, client, total") == [("1", "1", "10.50"), ("2", "2", "20.00"),
                                                            ("3", "2", "7.25")]


def test_rename_primary_key_by_hand(db):
    schema = parse(BASE)
    old = schema.models["Customer"].field("id")
    operations, _ = attach_tables([RenameColumn("Customer", "customer", old, old._replace(name="pk", column="pk"))],
                                  schema)
    migrate(db, operations)
    assert constraints(db, "customer")["customer_pkey"] == "PRIMARY KEY (pk)"
    assert constraints(db, "invoice")["invoice_customer_fkey"].endswith("REFERENCES customer(pk) ON DELETE CASCADE")


# ---------------------------------------------------------------- add_fk, drop_fk

def test_drop_fk_and_add_fk_by_hand(db):
    schema = parse(BASE)
    drop, _ = attach_tables([DropForeignKey("Invoice", "invoice", "customer", "Customer", "CASCADE")], schema)
    migrate(db, drop)
    assert set(constraints(db, "invoice")) == {"invoice_pkey"}
    db.execute("INSERT INTO invoice (id, customer, total) VALUES (4, 99, 1)")
    add, _ = attach_tables([AddForeignKey("Invoice", "invoice", "customer", "Customer", "SET_NULL")], schema)
    before = everything(db)
    with dbutil.refused(asyncpg.ForeignKeyViolationError):
        migrate(db, add)
    assert everything(db) == before
    db.execute("DELETE FROM invoice WHERE id = 4")
    migrate(db, add)
    assert constraints(db, "invoice")["invoice_customer_fkey"].endswith("ON DELETE SET NULL")


def test_dropping_models_in_a_cycle(pg):
    cycle = """
        model Author extends Model { best = ForeignKey(Book, null=true, on_delete=SET_NULL) }
        model Book extends Model { author = ForeignKey(Author) }
    """
    change(pg, "", cycle)
    pg.execute("INSERT INTO author (id) VALUES (1)")
    pg.execute("INSERT INTO book (id, author) VALUES (1, 1)")
    pg.execute("UPDATE author SET best = 1")
    operations = change(pg, cycle, "")
    assert [op.op for op in operations] == ["drop_fk", "drop_model", "drop_model"]
    assert tables(pg) == set()


# ---------------------------------------------------------------- add_index, drop_index

def test_add_and_drop_indexes(db):
    after = BASE.replace("indexes = [Index(customer, total)]",
                         'indexes = [Index(note, name="ix note"), Index(customer, note, unique=true)]')
    change(db, BASE, after)
    assert indexes(db, "invoice") == {
        "invoice_pkey": "CREATE UNIQUE INDEX invoice_pkey ON invoice USING btree (id)",
        "ix note": 'CREATE INDEX "ix note" ON invoice USING btree (note)',
        "uq_invoice_customer_note": "CREATE UNIQUE INDEX uq_invoice_customer_note ON invoice USING btree (customer, note)",
    }


def test_non_atomic_migration_creates_indexes_concurrently(db):
    after = BASE.replace("Index(customer, total)", "Index(customer, total), Index(note)")
    operations = diff(parse(BASE), parse(after))
    statements = POSTGRES.migration_sql(operations, atomic=False)
    assert statements == ['CREATE INDEX CONCURRENTLY "ix_invoice_note" ON "invoice" ("note")']
    in_transaction = dataclasses.replace(dbutil.step("postgresql", operations, atomic=False), atomic=True)
    with dbutil.refused(asyncpg.ActiveSQLTransactionError):  # why it must run outside a transaction
        db.run_step(in_transaction)
    migrate(db, operations, atomic=False)
    assert "ix_invoice_note" in indexes(db, "invoice")


# ---------------------------------------------------------------- alter_enum

def test_alter_enum_adds_values_in_place_in_their_declared_positions(db):
    after = BASE.replace("enum Role { ADMIN, CUSTOMER, STAFF }", 'enum Role { OWNER, ADMIN, GUEST, CUSTOMER, STAFF = "staff" }')
    operations = change(db, BASE, after)
    assert [s.split(" VALUE")[0] for s in POSTGRES.migration_sql(operations)] == [
        'ALTER TYPE "role" RENAME', 'ALTER TYPE "role" ADD', 'ALTER TYPE "role" ADD']
    assert enum_values(db, "role") == ["OWNER", "ADMIN", "GUEST", "CUSTOMER", "staff"]
    assert text_rows(db, "customer", "id, role") == [("1", "ADMIN"), ("2", "staff")]


def test_new_enum_value_used_as_a_default_in_the_same_migration(db):
    after = BASE.replace("ADMIN, CUSTOMER, STAFF", "ADMIN, CUSTOMER, STAFF, GUEST") \
        .replace("default=Role.ADMIN", "default=Role.GUEST")
    change(db, BASE, after)  # recreated inside the transaction: no "unsafe use of new value"
    assert enum_values(db, "role") == ["ADMIN", "CUSTOMER", "STAFF", "GUEST"]
    assert columns(db, "customer")["role"] == ("role", True, "'GUEST'::role", "")
    assert rows(db, "customer") == CUSTOMERS


def test_non_atomic_migration_adds_enum_values_in_place_and_uses_them(db):
    after = BASE.replace("ADMIN, CUSTOMER, STAFF", "ADMIN, CUSTOMER, STAFF, GUEST") \
        .replace("default=Role.ADMIN", "default=Role.GUEST")
    operations = diff(parse(BASE), parse(after))
    assert POSTGRES.migration_sql(operations, atomic=False)[0] == 'ALTER TYPE "role" ADD VALUE \'GUEST\' AFTER \'STAFF\''
    migrate(db, operations, atomic=False)
    assert columns(db, "customer")["role"] == ("role", True, "'GUEST'::role", "")


def test_removing_unused_and_reordering_enum_values(db):
    after = BASE.replace("ADMIN, CUSTOMER, STAFF", 'STAFF, ADMIN = "admin"')
    change(db, BASE, after)
    assert enum_values(db, "role") == ["STAFF", "admin"]
    assert text_rows(db, "customer", "id, role") == [("1", "admin"), ("2", "STAFF")]
    assert columns(db, "customer")["role"] == ("role", True, "'admin'::role", "")


def test_removing_an_enum_value_still_used_fails_clearly_and_changes_nothing(db):
    before = everything(db)
    with dbutil.refused(asyncpg.CheckViolationError, match="cannot remove 'STAFF' from enum Role: rows of table"
                                                          " customer still use it in column role"):
        change(db, BASE, BASE.replace("CUSTOMER, STAFF", "CUSTOMER"))
    assert everything(db) == before
    assert enum_values(db, "role") == ["ADMIN", "CUSTOMER", "STAFF"]


# ---------------------------------------------------------------- names and values are inert

HOSTILE_MODELS = r"""
enum Mood { HAPPY = "it's", SAD = "x\"); DROP TABLE victim; --", BACK = "a\\'b" }
model Victim extends Model { x = IntegerField(null=true) }
model Weird extends Model {
    select = CharField(50, default="'); DROP TABLE victim; --", db_column="from")
    mood = EnumField(Mood, default=Mood.SAD, db_column="x\"); DROP TABLE victim; --")
    spaced = TextField(default="\\'; DROP TABLE victim; --", db_column="a b \\ c")
    table = "order by"
    indexes = [Index(select, mood, name="ix \"quoted\" name")]
}
"""


def test_hostile_names_and_defaults_are_quoted(pg):
    hostile = 'x"); DROP TABLE victim; --'
    change(pg, "", HOSTILE_MODELS)
    assert tables(pg) == {"victim", "order by"}
    assert enum_values(pg, "mood") == ["it's", hostile, "a\\'b"]
    pg.execute('INSERT INTO "order by" DEFAULT VALUES')
    assert pg.fetch(f'SELECT "from", {POSTGRES.quote(hostile)}::text, "a b \\ c" FROM "order by"') == [
        ("'); DROP TABLE victim; --", hostile, "\\'; DROP TABLE victim; --")]
    # removing a value renders the guard's message and the recreate with the same names
    change(pg, HOSTILE_MODELS, HOSTILE_MODELS.replace('HAPPY = "it\'s", ', ""))
    assert enum_values(pg, "mood") == [hostile, "a\\'b"]
    assert tables(pg) == {"victim", "order by"}


# ---------------------------------------------------------------- diff then apply == create

@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(pair=schema_pairs(vary_keys=True))
def test_diff_applied_to_a_database_matches_creating_the_target(session, pair):
    before, after = pair
    assert_change_reaches_the_target(session, before, after,
                                     lambda: migrate(session, diff(parse(before), parse(after))))


def assert_change_reaches_the_target(session, before: str, after: str, change) -> None:
    """The catalog after creating ``before`` and running ``change()`` equals the catalog
    of ``after`` created directly."""
    session.fresh_schema()
    migrate(session, diff(Schema(), parse(after)))
    direct = catalog(session)
    session.fresh_schema()
    migrate(session, diff(Schema(), parse(before)))
    change()
    assert catalog(session) == direct
    session.drop_schema()


# ---------------------------------------------------------------- online forms (Plan.online)
# What migrate plans for PostgreSQL: changes of tables that exist before the migration
# take forms that hold a blocking lock only for a moment, cut into steps by StepBoundary
# markers. An undo (online=False) and a table created in the same migration keep the
# plain forms.

def online_sql(before: str, after: str) -> list:
    """The online statements of the migration from ``before`` to ``after``, with each
    StepBoundary shown as "--step--"; the plain (offline) form is checked unchanged."""
    operations = diff(parse(before), parse(after))
    online = POSTGRES.migration_sql(operations, online=True)
    offline = POSTGRES.migration_sql(operations)
    assert not any(isinstance(s, StepBoundary) for s in offline)
    assert POSTGRES.migration_sql(operations, online=False) == offline
    return ["--step--" if isinstance(s, StepBoundary) else str(s) for s in online]


def with_invoice_fields(text: str) -> str:
    return BASE.replace("    note = TextField(null=true)\n", "    note = TextField(null=true)\n" + text)


def test_online_foreign_key_column_is_added_not_valid_and_validated_in_the_next_step():
    after = with_invoice_fields("    owner = ForeignKey(Customer, default=1, on_delete=SET_DEFAULT)\n")
    assert online_sql(BASE, after) == [
        'ALTER TABLE "invoice" ADD COLUMN "owner" integer NOT NULL DEFAULT 1',
        'ALTER TABLE "invoice" ADD CONSTRAINT "invoice_owner_fkey" FOREIGN KEY ("owner") REFERENCES "customer" ("id")'
        ' ON DELETE SET DEFAULT NOT VALID',
        "--step--",
        "SET LOCAL statement_timeout TO DEFAULT",
        'ALTER TABLE "invoice" VALIDATE CONSTRAINT "invoice_owner_fkey"']


def test_online_positive_integer_column_gets_its_check_not_valid_then_validated():
    after = with_invoice_fields("    qty = PositiveIntegerField(default=1)\n")
    assert online_sql(BASE, after) == [
        'ALTER TABLE "invoice" ADD COLUMN "qty" integer NOT NULL DEFAULT 1',
        'ALTER TABLE "invoice" ADD CONSTRAINT "invoice_qty_check" CHECK ("qty" >= 0) NOT VALID',
        "--step--",
        "SET LOCAL statement_timeout TO DEFAULT",
        'ALTER TABLE "invoice" VALIDATE CONSTRAINT "invoice_qty_check"']


def test_online_column_without_constraints_is_added_as_before():
    after = with_invoice_fields("    memo = TextField(null=true)\n")
    assert online_sql(BASE, after) == ['ALTER TABLE "invoice" ADD COLUMN "memo" text']


def test_online_on_delete_change_swaps_the_key_in_one_step_and_validates_in_the_next():
    after = BASE.replace("ForeignKey(Customer, on_delete=CASCADE)", "ForeignKey(Customer, on_delete=RESTRICT)")
    assert online_sql(BASE, after) == [
        'ALTER TABLE "invoice" DROP CONSTRAINT "invoice_customer_fkey"',
        'ALTER TABLE "invoice" ADD CONSTRAINT "invoice_customer_fkey" FOREIGN KEY ("customer") REFERENCES "customer"'
        ' ("id") ON DELETE RESTRICT NOT VALID',
        "--step--",
        "SET LOCAL statement_timeout TO DEFAULT",
        'ALTER TABLE "invoice" VALIDATE CONSTRAINT "invoice_customer_fkey"']


def test_online_deferrable_foreign_key_keeps_its_deferrable_clause():
    after = BASE.replace("ForeignKey(Customer, on_delete=CASCADE)",
                         "ForeignKey(Customer, on_delete=CASCADE, deferrable=true)")
    statements = online_sql(BASE, after)
    assert statements[1].endswith('ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED NOT VALID')
    assert statements[2:] == ["--step--", "SET LOCAL statement_timeout TO DEFAULT",
                              'ALTER TABLE "invoice" VALIDATE CONSTRAINT "invoice_customer_fkey"']


def test_online_column_that_becomes_a_key_gets_it_not_valid():
    before = with_invoice_fields("    buyer = IntegerField(null=true)\n")
    after = with_invoice_fields("    buyer = ForeignKey(Customer, null=true, on_delete=SET_NULL)\n")
    assert online_sql(before, after) == [
        'ALTER TABLE "invoice" ADD CONSTRAINT "invoice_buyer_fkey" FOREIGN KEY ("buyer") REFERENCES "customer" ("id")'
        ' ON DELETE SET NULL NOT VALID',
        "--step--",
        "SET LOCAL statement_timeout TO DEFAULT",
        'ALTER TABLE "invoice" VALIDATE CONSTRAINT "invoice_buyer_fkey"']


def test_online_field_made_positive_gets_its_check_not_valid():
    after = BASE.replace("age = IntegerField(default=0)", "age = PositiveIntegerField(default=0)")
    assert online_sql(BASE, after) == [
        'ALTER TABLE "customer" ADD CONSTRAINT "customer_age_check" CHECK ("age" >= 0) NOT VALID',
        "--step--",
        "SET LOCAL statement_timeout TO DEFAULT",
        'ALTER TABLE "customer" VALIDATE CONSTRAINT "customer_age_check"']


def test_online_table_check_is_added_not_valid_and_validated():
    after = BASE.replace("    indexes = [Index(customer, total)]\n",
                         '    indexes = [Index(customer, total)]\n    checks = [Check("total >= 0", name="positive_total")]\n')
    assert online_sql(BASE, after) == [
        'ALTER TABLE "invoice" ADD CONSTRAINT "positive_total" CHECK (total >= 0) NOT VALID',
        "--step--",
        "SET LOCAL statement_timeout TO DEFAULT",
        'ALTER TABLE "invoice" VALIDATE CONSTRAINT "positive_total"']


def test_online_not_null_goes_through_a_validated_check():
    after = BASE.replace("nickname = CharField(40, null=true)", "nickname = CharField(40)")
    assert online_sql(BASE, after) == [
        'ALTER TABLE "customer" ADD CONSTRAINT "customer_nickname_mf_not_null" CHECK ("nickname" IS NOT NULL)'
        ' NOT VALID',
        "--step--",
        "SET LOCAL statement_timeout TO DEFAULT",
        'ALTER TABLE "customer" VALIDATE CONSTRAINT "customer_nickname_mf_not_null"',
        'ALTER TABLE "customer" ALTER COLUMN "nickname" SET NOT NULL',
        'ALTER TABLE "customer" DROP CONSTRAINT "customer_nickname_mf_not_null"']


def test_online_not_null_with_a_default_fills_in_a_step_of_its_own_and_again_before_validating():
    after = BASE.replace("nickname = CharField(40, null=true)", 'nickname = CharField(40, default="none")')
    fill = """UPDATE "customer" SET "nickname" = 'none' WHERE "nickname" IS NULL"""
    assert online_sql(BASE, after) == [
        """ALTER TABLE "customer" ALTER COLUMN "nickname" SET DEFAULT 'none'""",
        "--step--",
        "SET LOCAL statement_timeout TO DEFAULT",
        fill,
        'ALTER TABLE "customer" ADD CONSTRAINT "customer_nickname_mf_not_null" CHECK ("nickname" IS NOT NULL)'
        ' NOT VALID',
        "--step--",
        "SET LOCAL statement_timeout TO DEFAULT",
        fill,
        'ALTER TABLE "customer" VALIDATE CONSTRAINT "customer_nickname_mf_not_null"',
        'ALTER TABLE "customer" ALTER COLUMN "nickname" SET NOT NULL',
        'ALTER TABLE "customer" DROP CONSTRAINT "customer_nickname_mf_not_null"']


def test_online_not_null_check_name_fits_an_identifier():
    long_table = "t" * 60
    before = f'model Wide extends Model {{\n    v = IntegerField(null=true)\n    table = "{long_table}"\n}}\n'
    statements = online_sql(before, before.replace("IntegerField(null=true)", "IntegerField()"))
    name = constraint_name(long_table, "v", NOT_NULL_CHECK_SUFFIX)
    assert len(name.encode()) <= 63 and name.endswith("_mf_not_null")
    assert statements[0].startswith(f'ALTER TABLE "{long_table}" ADD CONSTRAINT "{name}" CHECK')
    assert statements[-1] == f'ALTER TABLE "{long_table}" DROP CONSTRAINT "{name}"'


def test_online_enum_value_used_as_a_default_is_added_a_step_before_its_use_without_recreating_the_type():
    after = BASE.replace("ADMIN, CUSTOMER, STAFF", "ADMIN, CUSTOMER, STAFF, GUEST") \
        .replace("default=Role.ADMIN", "default=Role.GUEST")
    assert online_sql(BASE, after) == [
        """ALTER TYPE "role" ADD VALUE 'GUEST' AFTER 'STAFF'""",
        "--step--",
        'ALTER TABLE "customer" ALTER COLUMN "role" DROP DEFAULT',
        """ALTER TABLE "customer" ALTER COLUMN "role" SET DEFAULT 'GUEST'"""]
    # The plain form (an undo, one transaction) still recreates the type.
    offline = POSTGRES.migration_sql(diff(parse(BASE), parse(after)))
    assert any(s.startswith('CREATE TYPE "_mf_new_role"') for s in offline)


def test_online_enum_value_nothing_uses_yet_needs_no_step():
    after = BASE.replace("ADMIN, CUSTOMER, STAFF", "ADMIN, CUSTOMER, STAFF, GUEST")
    assert online_sql(BASE, after) == ["""ALTER TYPE "role" ADD VALUE 'GUEST' AFTER 'STAFF'"""]


def test_online_removed_enum_value_still_recreates_the_type_in_one_step():
    after = BASE.replace("ADMIN, CUSTOMER, STAFF", "ADMIN, CUSTOMER")
    statements = online_sql(BASE, after)
    assert "--step--" not in statements
    assert statements == POSTGRES.migration_sql(diff(parse(BASE), parse(after)))


def test_online_dropped_table_loses_its_keys_in_a_step_before_the_drop():
    assert online_sql(BASE, BASE[:BASE.index("model Invoice")]) == [
        'ALTER TABLE "invoice" DROP CONSTRAINT "invoice_customer_fkey"',
        "--step--",
        'DROP TABLE "invoice"']


def test_online_drops_of_a_cycle_drop_no_key_twice():
    cycle = """
        model Author extends Model {
            best = ForeignKey(Book, null=true, on_delete=SET_NULL)
            editor = ForeignKey(Other, null=true, on_delete=SET_NULL)
        }
        model Book extends Model { author = ForeignKey(Author) }
        model Other extends Model {}
    """
    assert online_sql(cycle, "model Other extends Model {}\n") == [
        'ALTER TABLE "book" DROP CONSTRAINT "book_author_fkey"',  # the differ's drop_fk, breaking the cycle
        "--step--",
        'ALTER TABLE "author" DROP CONSTRAINT "author_best_fkey"',
        'ALTER TABLE "author" DROP CONSTRAINT "author_editor_fkey"',
        "--step--",
        'DROP TABLE "author"',
        'DROP TABLE "book"']


def test_online_leaves_tables_created_in_the_same_migration_plain():
    cycle = """
        model Author extends Model { best = ForeignKey(Book, null=true, on_delete=SET_NULL) }
        model Book extends Model {
            author = ForeignKey(Author)
            checks = [Check("id > 0", name="book_id")]
        }
    """
    statements = online_sql("", cycle)
    assert "--step--" not in statements
    assert not any("NOT VALID" in s or "VALIDATE" in s for s in statements)
    assert any(s.startswith('ALTER TABLE "author" ADD CONSTRAINT "author_best_fkey"') for s in statements)


def test_online_steps_never_start_or_end_a_migration_nor_follow_each_other():
    after = with_invoice_fields("    owner = ForeignKey(Customer, default=1, on_delete=SET_DEFAULT)\n") \
        .replace("nickname = CharField(40, null=true)", 'nickname = CharField(40, default="none")') \
        .replace("ADMIN, CUSTOMER, STAFF", "ADMIN, CUSTOMER, STAFF, GUEST").replace("default=Role.ADMIN",
                                                                                    "default=Role.GUEST")
    statements = online_sql(BASE, after)
    assert statements[0] != "--step--" and statements[-1] != "--step--"
    assert all(not (a == b == "--step--") for a, b in zip(statements, statements[1:]))
    boundaries = [s for s in POSTGRES.migration_sql(diff(parse(BASE), parse(after)), online=True)
                  if isinstance(s, StepBoundary)]
    assert all(s.startswith("-- ") for s in boundaries)  # each reads as an SQL comment


def test_sqlite_ignores_online():
    after = with_invoice_fields("    owner = ForeignKey(Customer, default=1, on_delete=SET_DEFAULT)\n")
    operations = diff(parse(BASE), parse(after))
    sqlite = dialect_for("sqlite")
    assert sqlite.migration_sql(operations, online=True) == sqlite.migration_sql(operations)


# The online statements against the server, the markers left out so that the applier
# runs them as one transaction: every statement is accepted, and the catalog ends as
# the plain form leaves it (steps in transactions of their own: tests/test_online_forms.py).

def migrate_online(pg, before: str, after: str) -> None:
    operations = diff(parse(before), parse(after))
    prepared = dbutil.step("postgresql", operations)
    statements = tuple(s for s in POSTGRES.migration_sql(operations, online=True) if not isinstance(s, StepBoundary))
    pg.run_step(dataclasses.replace(prepared, statements=statements))


def migrate_in_steps(pg, before: str, after: str) -> int:
    """The online statements with each step run by the applier in a transaction of its
    own, as a migration of its own: what a later step needs has committed. The number
    of steps."""
    operations = diff(parse(before), parse(after))
    steps = cut_into_steps(POSTGRES.migration_sql(operations, online=True))
    for outside, statements in steps:
        # A step outside a transaction (CREATE INDEX CONCURRENTLY) as a non-atomic migration.
        step = dbutil.step("postgresql", operations, atomic=not outside)
        pg.run_step(dataclasses.replace(step, statements=tuple(statements)))
    return len(steps)


def valid_constraints(pg, table) -> dict:
    return dict(pg.fetch("SELECT conname, convalidated FROM pg_constraint WHERE conrelid = to_regclass($1)",
                         POSTGRES.quote(table)))


def test_online_forms_run_on_the_server_and_leave_valid_constraints(db):
    after = with_invoice_fields("    owner = ForeignKey(Customer, default=1, on_delete=SET_DEFAULT)\n"
                                "    qty = PositiveIntegerField(default=1)\n") \
        .replace("ForeignKey(Customer, on_delete=CASCADE)", "ForeignKey(Customer, on_delete=RESTRICT, deferrable=true)") \
        .replace("nickname = CharField(40, null=true)", 'nickname = CharField(40, default="none")') \
        .replace("age = IntegerField(default=0)", "age = PositiveIntegerField(default=0)")
    migrate_online(db, BASE, after)
    assert valid_constraints(db, "invoice") == {"invoice_pkey": True, "invoice_customer_fkey": True,
                                                "invoice_owner_fkey": True, "invoice_qty_check": True}
    assert valid_constraints(db, "customer") == {"customer_pkey": True, "customer_email_key": True,
                                                 "customer_age_check": True}
    assert columns(db, "customer")["nickname"][1] is True
    assert constraints(db, "invoice")["invoice_customer_fkey"].endswith("ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED")
    assert rows(db, "customer", "id, nickname") == [(1, "none"), (2, "bobby")]


def test_online_not_valid_check_refuses_rows_that_break_it(db):
    db.execute("UPDATE customer SET age = -1 WHERE id = 1")
    before = everything(db)
    with dbutil.refused(asyncpg.CheckViolationError):
        migrate_online(db, BASE, BASE.replace("age = IntegerField(default=0)", "age = PositiveIntegerField(default=0)"))
    assert everything(db) == before


def test_online_dropped_table_goes_with_its_keys(db):
    migrate_online(db, BASE, BASE[:BASE.index("model Invoice")])
    assert tables(db) == {"customer"}


def test_online_enum_value_is_usable_in_the_step_after_the_one_that_adds_it(db):
    oid = db.fetchval("SELECT to_regtype('role')::oid")
    after = BASE.replace("ADMIN, CUSTOMER, STAFF", "ADMIN, CUSTOMER, STAFF, GUEST") \
        .replace("default=Role.ADMIN", "default=Role.GUEST")
    assert migrate_in_steps(db, BASE, after) == 2
    assert db.fetchval("SELECT to_regtype('role')::oid") == oid  # the same type: no table rewritten
    assert enum_values(db, "role") == ["ADMIN", "CUSTOMER", "STAFF", "GUEST"]
    assert columns(db, "customer")["role"] == ("role", True, "'GUEST'::role", "")


def test_online_forms_in_steps_of_their_own(db):
    after = with_invoice_fields("    owner = ForeignKey(Customer, default=1, on_delete=SET_DEFAULT)\n") \
        .replace("nickname = CharField(40, null=true)", 'nickname = CharField(40, default="none")')
    assert migrate_in_steps(db, BASE, after) == 4
    assert valid_constraints(db, "invoice")["invoice_owner_fkey"] is True
    assert "customer_nickname_mf_not_null" not in valid_constraints(db, "customer")
    assert columns(db, "customer")["nickname"][1] is True
    assert rows(db, "customer", "id, nickname") == [(1, "none"), (2, "bobby")]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(pair=schema_pairs(vary_keys=True))
def test_online_diff_applied_in_steps_matches_creating_the_target(session, pair):
    before, after = pair
    assert_change_reaches_the_target(session, before, after, lambda: migrate_in_steps(session, before, after))

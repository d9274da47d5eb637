"""`mf db migrate` on PostgreSQL takes the online forms for tables that hold rows: keys
and checks added NOT VALID and validated in a later step, NOT NULL through a validated
check, an enum value added a step before its use, a dropped table's keys dropped first.

Each test makes a project, migrates it, fills the tables, changes models.mp, and then
looks at what `mf db sql` shows and at the catalog after `mf db migrate`: every
constraint valid, the column NOT NULL, no temporary check left, the rows kept.
"""
from __future__ import annotations

import pytest

import dbutil

MODELS = """
enum Role { ADMIN, CUSTOMER, STAFF }
model Customer extends Model {
    name = CharField(120)
    nickname = CharField(40, null=true)
    age = IntegerField(default=0)
    role = EnumField(Role, default=Role.ADMIN)
    table = "customer"
}
model Invoice extends Model {
    customer = ForeignKey(Customer, on_delete=CASCADE)
    total = IntegerField(default=0)
    table = "invoice"
}
"""


@pytest.fixture
def shop(project, pg_url):
    """A PostgreSQL project migrated to MODELS, with rows: (project, environment, session)."""
    session = dbutil.PostgresSession(pg_url)
    schema = session.fresh_schema()
    env = {"MF_DATABASE_URL": pg_url + ("&" if "?" in pg_url else "?") + f"options=-csearch_path%3D{schema}"}
    project.write_models(MODELS)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", env=env).code == 0
    session.execute("INSERT INTO customer (id, name, nickname, age, role) VALUES"
                    " (1, 'Ann', NULL, 30, 'ADMIN'), (2, 'Bob', 'bobby', 40, 'STAFF')")
    session.execute("INSERT INTO invoice (id, customer, total) VALUES (1, 1, 10), (2, 2, 20), (3, 2, 7)")
    yield project, env, session
    session.drop_schema()
    session.close()


def change(shop, models: str) -> str:
    """makemigrations for ``models``; the SQL `mf db sql` shows for the new migration."""
    project, env, _session = shop
    project.write_models(models)
    made = project.run("db", "makemigrations")
    assert made.code == 0, made
    number = project.migration_names()[-1][:3]
    shown = project.run("db", "sql", number, env=env)
    assert shown.code == 0, shown
    return shown.out


def migrate(shop) -> None:
    project, env, _session = shop
    result = project.run("db", "migrate", env=env)
    assert result.code == 0, result


def constraints(session, table: str) -> dict:
    """name -> (kind, validated) of the table's constraints."""
    return {name: (kind, valid) for name, kind, valid in session.fetch(
        "SELECT conname, contype::text, convalidated FROM pg_constraint WHERE conrelid = to_regclass($1)",
        f'"{table}"')}


def not_null(session, table: str, column: str) -> bool:
    return session.fetchval("SELECT attnotnull FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2",
                            f'"{table}"', column)


def test_foreign_key_column_added_to_a_table_with_rows(shop):
    sql = change(shop, MODELS.replace('    table = "invoice"',
                                      '    owner = ForeignKey(Customer, default=1, on_delete=SET_DEFAULT)\n'
                                      '    table = "invoice"'))
    assert 'ADD CONSTRAINT "invoice_owner_fkey" FOREIGN KEY ("owner")' in sql and "NOT VALID" in sql
    assert 'VALIDATE CONSTRAINT "invoice_owner_fkey"' in sql
    migrate(shop)
    session = shop[2]
    assert constraints(session, "invoice")["invoice_owner_fkey"] == ("f", True)
    assert session.fetch("SELECT id, owner FROM invoice ORDER BY id") == [(1, 1), (2, 1), (3, 1)]


def test_on_delete_change_and_a_positive_field(shop):
    sql = change(shop, MODELS.replace("on_delete=CASCADE", "on_delete=RESTRICT")
                 .replace("total = IntegerField(default=0)", "total = PositiveIntegerField(default=0)"))
    assert sql.count("NOT VALID") == 2 and sql.count("VALIDATE CONSTRAINT") == 2
    migrate(shop)
    found = constraints(shop[2], "invoice")
    assert found["invoice_customer_fkey"] == ("f", True) and found["invoice_total_check"] == ("c", True)
    assert "NOT VALID" not in shop[2].fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'invoice_customer_fkey'")


def test_table_check_added_to_a_table_with_rows(shop):
    sql = change(shop, MODELS.replace('    table = "invoice"',
                                      '    checks = [Check("total >= 0", name="invoice_total_positive")]\n'
                                      '    table = "invoice"'))
    assert 'ADD CONSTRAINT "invoice_total_positive" CHECK (total >= 0) NOT VALID' in sql
    migrate(shop)
    assert constraints(shop[2], "invoice")["invoice_total_positive"] == ("c", True)


def test_column_made_not_null_keeps_no_temporary_check(shop):
    sql = change(shop, MODELS.replace("nickname = CharField(40, null=true)", 'nickname = CharField(40, default="none")'))
    assert 'CHECK ("nickname" IS NOT NULL) NOT VALID' in sql
    assert sql.index('VALIDATE CONSTRAINT "customer_nickname_mf_not_null"') < sql.index("SET NOT NULL")
    migrate(shop)
    session = shop[2]
    assert not_null(session, "customer", "nickname") is True
    assert "customer_nickname_mf_not_null" not in constraints(session, "customer")
    assert session.fetch("SELECT id, nickname FROM customer ORDER BY id") == [(1, "none"), (2, "bobby")]


def test_enum_value_used_as_the_default_keeps_the_type(shop):
    session = shop[2]
    type_before = session.fetchval("SELECT to_regtype('role')::oid")
    sql = change(shop, MODELS.replace("ADMIN, CUSTOMER, STAFF", "ADMIN, CUSTOMER, STAFF, GUEST")
                 .replace("default=Role.ADMIN", "default=Role.GUEST"))
    assert "ADD VALUE 'GUEST'" in sql and "_mf_new_role" not in sql
    migrate(shop)
    assert session.fetchval("SELECT to_regtype('role')::oid") == type_before  # not recreated
    assert session.fetchval("SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef"
                            " WHERE adrelid = to_regclass('customer') AND adnum = 5") == "'GUEST'::role"


def test_dropped_table_that_references_another(shop):
    sql = change(shop, MODELS[:MODELS.index("model Invoice")])
    assert sql.index('DROP CONSTRAINT "invoice_customer_fkey"') < sql.index('DROP TABLE "invoice"')
    migrate(shop)
    session = shop[2]
    assert session.fetchval("SELECT to_regclass('invoice')") is None
    assert session.fetchval("SELECT count(*) FROM customer") == 2


def test_undo_of_an_online_migration_is_one_plain_transaction(shop):
    change(shop, MODELS.replace("nickname = CharField(40, null=true)", 'nickname = CharField(40, default="none")')
           .replace("on_delete=CASCADE", "on_delete=RESTRICT"))
    migrate(shop)
    project, env, session = shop
    undo = project.run("db", "sql", project.migration_names()[-1][:3], "--reverse", env=env)
    assert undo.code == 0 and "NOT VALID" not in undo.out and "VALIDATE" not in undo.out
    assert project.run("db", "rollback", env=env).code == 0
    assert not_null(session, "customer", "nickname") is False
    assert constraints(session, "invoice")["invoice_customer_fkey"] == ("f", True)

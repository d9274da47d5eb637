"""diff(old, new): every change the language can express, in the order SPEC §4 gives."""
from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings

import mfcore
from mfcore.differ import diff
from mfcore.operations import fold, operation_from_json
from mfcore.questioner import AnswerQuestioner
from mfcore.schema import Schema

from strategies import schema_texts

BASE = '''
enum Role { ADMIN, STAFF }
model Customer extends Model {
    email = CharField(255, unique=true)
    phone = CharField(20, null=true)
    role = EnumField(Role, default=Role.ADMIN)
}
model Invoice extends Model {
    customer = ForeignKey(Customer)
    total = DecimalField(10, 2)
}
'''


def ops_between(old_text, new_text, questioner=None):
    old = mfcore.parse(old_text) if old_text else Schema()
    new = mfcore.parse(new_text)
    operations = diff(old, new, questioner)
    assert fold(operations, old) == new  # every diff folds back to its target
    return operations


def kinds(operations):
    return [op.op for op in operations]


def test_no_change_gives_no_operations():
    assert ops_between(BASE, BASE) == []


def test_first_run_creates_enums_then_tables_in_dependency_order():
    operations = ops_between("", BASE)
    assert kinds(operations) == ["create_enum", "create_model", "create_model"]
    assert [op.model_name for op in operations[1:]] == ["Customer", "Invoice"]
    invoice = operations[2].table_def
    assert invoice.references["customer"].table == "customer"  # the referenced table's name


def test_referenced_table_is_created_first_whatever_the_names():
    operations = ops_between("", "model A extends Model { z = ForeignKey(Z) }\nmodel Z extends Model { n = IntegerField() }")
    assert [op.model for op in operations] == ["Z", "A"]


def test_a_cycle_is_broken_by_adding_the_key_afterwards():
    text = ("model A extends Model { b = ForeignKey(B, null=true) }\n"
            "model B extends Model { a = ForeignKey(A, null=true) }")
    operations = ops_between("", text)
    assert kinds(operations) == ["create_model", "create_model", "add_fk"]
    assert operations[0].deferred_keys == ("b",)
    assert "b" not in operations[0].table_def.references
    assert operations[2].field_name == "b"


def test_self_reference_needs_no_deferral():
    operations = ops_between("", "model Node extends Model { parent = ForeignKey(Node, null=true) }")
    assert kinds(operations) == ["create_model"] and operations[0].deferred_keys == ()


def test_field_added_removed_and_altered():
    new = BASE.replace("phone = CharField(20, null=true)", "phone = CharField(40, null=true)\n    age = IntegerField(default=0)")
    new = new.replace("total = DecimalField(10, 2)", "")
    operations = ops_between(BASE, new)
    assert kinds(operations) == ["add_column", "alter_column", "drop_column"]
    alter = operations[1]
    assert (alter.old.max_length, alter.new.max_length) == (20, 40)
    assert operations[2].field.name == "total" and operations[2].destructive
    assert not operations[0].destructive


def test_every_field_attribute_change_is_an_alter():
    changes = [
        ("phone = CharField(20, null=true)", "phone = CharField(20)", "null"),
        ("phone = CharField(20, null=true)", "phone = TextField(null=true)", "type"),
        ("phone = CharField(20, null=true)", "phone = CharField(20, null=true, unique=true)", "unique"),
        ("phone = CharField(20, null=true)", 'phone = CharField(20, null=true, default="-")', "default"),
        ("phone = CharField(20, null=true)", 'phone = CharField(20, null=true, db_column="tel")', "column"),
        ("total = DecimalField(10, 2)", "total = DecimalField(12, 4)", "max_digits"),
        ("customer = ForeignKey(Customer)", "customer = ForeignKey(Customer, on_delete=PROTECT)", "on_delete"),
    ]
    for before, after, attribute in changes:
        operations = ops_between(BASE, BASE.replace(before, after))
        assert kinds(operations) == ["alter_column"], attribute
        old, new = operations[0].old, operations[0].new
        assert getattr(old, attribute) != getattr(new, attribute), attribute


def test_narrowing_changes_are_destructive():
    narrowing = ops_between(BASE, BASE.replace("CharField(20, null=true)", "CharField(10, null=true)"))
    widening = ops_between(BASE, BASE.replace("CharField(20, null=true)", "CharField(30, null=true)"))
    assert narrowing[0].destructive and not widening[0].destructive


def test_rename_is_asked_and_never_guessed():
    renamed = BASE.replace("phone = CharField(20, null=true)", "mobile = CharField(20, null=true)")
    guessed = ops_between(BASE, renamed)
    assert kinds(guessed) == ["add_column", "drop_column"]
    asked = ops_between(BASE, renamed, AnswerQuestioner({("Customer", "phone"): "mobile"}))
    assert kinds(asked) == ["rename_column"]
    assert (asked[0].old.name, asked[0].new.name) == ("phone", "mobile")


def test_model_rename_and_table_rename():
    renamed = BASE.replace("model Customer", "model Client").replace("ForeignKey(Customer)", "ForeignKey(Client)")
    asked = ops_between(BASE, renamed, AnswerQuestioner(model_renames={"Customer": "Client"}))
    assert kinds(asked) == ["rename_model"]
    assert (asked[0].old_table, asked[0].new_table) == ("customer", "client")
    moved = ops_between(BASE, BASE.replace("role = EnumField(Role, default=Role.ADMIN)",
                                           'role = EnumField(Role, default=Role.ADMIN)\n    table = "clients"'))
    assert kinds(moved) == ["rename_model"] and moved[0].new_table == "clients"


def test_enum_members_added_removed_revalued_and_reordered():
    for new_enum, destructive in [("enum Role { ADMIN, STAFF, GUEST }", False),
                                  ("enum Role { ADMIN }", True),
                                  ('enum Role { ADMIN = "admin", STAFF }', False),
                                  ("enum Role { STAFF, ADMIN }", False)]:
        operations = ops_between(BASE, BASE.replace("enum Role { ADMIN, STAFF }", new_enum))
        assert kinds(operations)[0] == "alter_enum", new_enum
        assert operations[0].destructive is destructive, new_enum


def test_enum_value_change_alters_the_stored_default():
    operations = ops_between(BASE, BASE.replace("enum Role { ADMIN, STAFF }", 'enum Role { ADMIN = "adm", STAFF }'))
    assert kinds(operations) == ["alter_enum", "alter_column"]
    assert operations[1].new.default == "adm"


def test_indexes_and_unique_together():
    added = BASE.replace("total = DecimalField(10, 2)",
                         "total = DecimalField(10, 2)\n    indexes = [Index(total)]\n    unique_together = [(customer, total)]")
    operations = ops_between(BASE, added)
    assert kinds(operations) == ["add_index", "add_index"]
    assert {op.index.name for op in operations} == {"ix_invoice_total", "uq_invoice_customer_total"}
    assert ops_between(added, BASE)[0].op == "drop_index"


def test_drops_come_last_referrers_first_then_enums():
    operations = ops_between(BASE, "model Other extends Model { n = IntegerField() }")
    assert kinds(operations) == ["create_model", "drop_model", "drop_model", "drop_enum"]
    assert [op.model_name for op in operations[1:3]] == ["Invoice", "Customer"]


def test_dropping_a_cycle_drops_a_key_first():
    text = ("model A extends Model { b = ForeignKey(B, null=true) }\n"
            "model B extends Model { a = ForeignKey(A, null=true) }")
    operations = ops_between(text, "model C extends Model { n = IntegerField() }")
    assert kinds(operations) == ["create_model", "drop_fk", "drop_model", "drop_model"]


def test_diff_is_deterministic_and_survives_its_json_form():
    new = BASE.replace("model Invoice", "model Item extends Model { name = TextField() }\nmodel Invoice")
    new = new.replace("phone = CharField(20, null=true)", "phone = CharField(30)")
    first = diff(mfcore.parse(BASE), mfcore.parse(new))
    second = diff(mfcore.parse(BASE), mfcore.parse(new))
    assert first == second
    documents = [orjson.loads(orjson.dumps(op.to_json())) for op in first]
    state = mfcore.parse(BASE)
    for document, original in zip(documents, first):
        again = operation_from_json(document, "test")
        assert again == original
        state = again.apply(state)
    assert state == mfcore.parse(new)


def test_operations_reverse_back_to_the_start():
    new = BASE.replace("phone = CharField(20, null=true)", "phone = CharField(30)\n    age = IntegerField(default=1)")
    old_schema, new_schema = mfcore.parse(BASE), mfcore.parse(new)
    operations = diff(old_schema, new_schema)
    state = new_schema
    for operation in reversed(operations):
        state = operation.reverse().apply(state)
    assert state == old_schema


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_texts(), schema_texts())
def test_diff_folded_over_a_gives_b(a_text, b_text):
    a, b = mfcore.parse(a_text), mfcore.parse(b_text)
    assert fold(diff(a, b), a) == b


# ---------------------------------------------------------------- primary keys that change type

BIG_KEY = BASE.replace("phone = CharField(20, null=true)", "id = BigAutoField()\n    phone = CharField(20, null=true)")


def test_a_key_type_change_takes_the_foreign_keys_that_point_at_it_along():
    operations = ops_between(BASE, BIG_KEY)
    assert [(op.op, op.model_name) for op in operations] == [
        ("drop_fk", "Invoice"), ("alter_column", "Customer"), ("alter_column", "Invoice")]
    follow = operations[2]
    assert follow.old == follow.new and follow.old_key.type == "AutoField"
    assert follow.new_key.type == "BigAutoField"  # the TableDef has the key as it is now
    assert follow.describe() == ("Alter field customer on Invoice"
                                 " (follows the primary key Customer.id: AutoField -> BigAutoField)")
    assert not follow.destructive
    narrowed = ops_between(BASE.replace("email = CharField(255", "email = CharField(255, primary_key=true"),
                           BASE.replace("email = CharField(255", "email = CharField(100, primary_key=true"))
    assert [op.op for op in narrowed] == ["drop_fk", "alter_column", "alter_column"]
    assert narrowed[1].destructive and narrowed[2].destructive


def test_keys_that_keep_their_column_type_change_nothing_else():
    for before, after in [("AutoField()", "IntegerField(primary_key=true)"),
                          ("BigAutoField()", "BigIntegerField(primary_key=true)")]:
        old = BASE.replace("phone = CharField(20, null=true)", f"id = {before}")
        operations = ops_between(old, old.replace(before, after))
        assert kinds(operations) == ["alter_column"]


def test_new_tables_take_the_new_key_type_and_renamed_referrers_follow_first():
    after = BIG_KEY.replace("customer = ForeignKey(Customer)", "client = ForeignKey(Customer)") \
        + "model Payment extends Model { customer = ForeignKey(Customer) }\n"
    operations = ops_between(BASE, after, AnswerQuestioner({("Invoice", "customer"): "client"}))
    assert kinds(operations) == ["drop_fk", "alter_column", "alter_column", "create_model", "rename_column"]
    assert operations[3].table_def.references["customer"].key.type == "BigAutoField"


def test_self_references_and_several_keys_follow_in_a_stable_order():
    text = ("model A extends Model { id = CharField(10, primary_key=true)\n b = ForeignKey(B, null=true)\n"
            " up = ForeignKey(A, null=true) }\n"
            "model B extends Model { id = CharField(10, primary_key=true)\n a = ForeignKey(A, null=true) }\n")
    after = text.replace("CharField(10", "CharField(30")
    operations = ops_between(text, after)
    assert [(op.op, op.model_name, getattr(op, "field_name", None) or op.new.name) for op in operations] == [
        ("drop_fk", "A", "up"), ("drop_fk", "B", "a"), ("alter_column", "A", "id"),
        ("alter_column", "A", "up"), ("alter_column", "B", "a"),
        ("drop_fk", "A", "b"), ("alter_column", "B", "id"), ("alter_column", "A", "b")]
    assert diff(mfcore.parse(text), mfcore.parse(after)) == operations


def test_a_following_column_survives_its_json_form_and_reverses():
    old_schema, new_schema = mfcore.parse(BASE), mfcore.parse(BIG_KEY)
    operations = diff(old_schema, new_schema)
    document = orjson.loads(orjson.dumps(operations[2].to_json()))
    assert document["old_key"]["type"] == "AutoField"
    assert document["table_def"]["references"]["customer"]["key"]["type"] == "BigAutoField"
    state = operations[1].apply(operations[0].apply(old_schema))
    assert operation_from_json(document, "test") == operations[2]
    # A file written before old_key existed still reads: a plain alter_column.
    del document["old_key"]
    assert operation_from_json(document, "test").old_key is None
    back = operations[2].reverse()
    assert (back.old_key.type, back.old, back.new) == ("BigAutoField", operations[2].new, operations[2].old)
    state = new_schema
    for operation in reversed(operations):
        state = operation.reverse().apply(state)
    assert state == old_schema


# ---------------------------------------------------------------- foreign keys that change target

RETARGET = '''
model Beta extends Model { id = BigAutoField() }
model Gamma extends Model { code = CharField(10, primary_key=true) }
model Alpha extends Model { f1 = ForeignKey(Beta) }
'''


def test_a_foreign_key_that_changes_target_or_stops_being_one_records_the_key_it_had():
    old_schema = mfcore.parse(RETARGET)
    for after in ("f1 = IntegerField()", "f1 = ForeignKey(Gamma)"):
        new_schema = mfcore.parse(RETARGET.replace("f1 = ForeignKey(Beta)", after))
        [operation] = ops_between(RETARGET, RETARGET.replace("f1 = ForeignKey(Beta)", after))
        assert operation.op == "alter_column" and operation.destructive
        assert (operation.old_key.name, operation.old_key.type) == ("id", "BigAutoField")
        assert "follows the primary key" not in operation.describe()
        document = orjson.loads(orjson.dumps(operation.to_json()))
        assert document["old_key"]["type"] == "BigAutoField"
        assert operation_from_json(document, "test") == operation
        back = operation.reverse()
        assert back.old == operation.new and back.new == operation.old
        assert back.old_key == (new_schema.models["Gamma"].primary_key if "Gamma" in after else None)
        assert back.apply(new_schema) == old_schema
    # The reverse, attached, records the key it points to then; retargeting to a key of
    # the same column type is not destructive.
    [attached] = diff(mfcore.parse(RETARGET.replace("f1 = ForeignKey(Beta)", "f1 = ForeignKey(Gamma)")), old_schema)
    assert attached.old_key.type == "CharField" and attached.new_key.type == "BigAutoField"
    same_type = RETARGET.replace("model Alpha", "model Delta extends Model { id = BigAutoField() }\nmodel Alpha")
    [retarget] = ops_between(same_type, same_type.replace("ForeignKey(Beta)", "ForeignKey(Delta)"))
    assert not retarget.destructive


def test_any_alter_of_a_foreign_key_records_its_key_without_describing_it_as_followed():
    [operation] = ops_between(BASE, BASE.replace("ForeignKey(Customer)", "ForeignKey(Customer, null=true)"))
    assert operation.old_key.type == "AutoField" and operation.new_key.type == "AutoField"
    assert operation.describe() == "Alter field customer on Invoice (null: false -> true)"
    assert not operation.destructive


# ---------------------------------------------------------------- what an alter_column changes

def test_an_alter_column_says_what_changed_and_its_file_gives_the_same():
    new = BASE.replace("phone = CharField(20, null=true)", "phone = CharField(30, default=\"none\")")
    new = new.replace("customer = ForeignKey(Customer)", "customer = ForeignKey(Customer, on_delete=PROTECT)")
    operations = [op for op in ops_between(BASE, new) if op.op == "alter_column"]
    assert [(op.new.name, op.changes) for op in operations] == [
        ("phone", {"type", "null", "default"}), ("customer", {"fk"})]
    for operation in operations:  # the file does not hold it: the reader works it out the same
        document = orjson.loads(orjson.dumps(operation.to_json()))
        assert "changes" not in document
        assert operation_from_json(document, "test").changes == operation.changes
        assert operation.reverse().changes == operation.changes


def test_a_column_that_follows_its_keys_new_type_changes_only_by_its_key():
    key, follower = [op for op in ops_between(BASE, BIG_KEY) if op.op == "alter_column"]
    assert key.changes == {"type"}
    assert follower.old == follower.new and follower.changes == {"key"}
    document = orjson.loads(orjson.dumps(follower.to_json()))
    assert operation_from_json(document, "test").changes == {"key"}


# ---------------------------------------------------------------- renames, and names freed before they are taken

def test_a_model_rename_is_asked_whatever_the_order_of_its_fields():
    asked = []

    class Recording(AnswerQuestioner):
        def ask_rename_model(self, old, new):
            asked.append((old.name, new.name))
            return True

    operations = ops_between("model Delta extends Model {\n    a = IntegerField()\n    b = TextField()\n}\n",
                             "model Beta extends Model {\n    b = TextField()\n    a = IntegerField()\n}\n",
                             Recording())
    assert asked == [("Delta", "Beta")]
    assert [(op.op, op.old_name, op.new_name) for op in operations] == [("rename_model", "Delta", "Beta")]


def test_a_model_renamed_on_the_same_table_is_not_asked_about():
    operations = ops_between('model Customer extends Model {\n    a = IntegerField()\n    table = "customers"\n}\n',
                             'model Client extends Model {\n    a = TextField()\n    table = "customers"\n}\n')
    assert [(op.op, getattr(op, "old_table", None)) for op in operations] == \
        [("rename_model", "customers"), ("alter_column", None)]


def test_swapped_tables_go_through_a_temporary_name():
    operations = ops_between('model A extends Model {\n    x = IntegerField()\n    table = "ta"\n}\n'
                             'model B extends Model {\n    x = IntegerField()\n    table = "tb"\n}\n',
                             'model A extends Model {\n    x = IntegerField()\n    table = "tb"\n}\n'
                             'model B extends Model {\n    x = IntegerField()\n    table = "ta"\n}\n')
    assert [(op.old_table, op.new_table) for op in operations] == \
        [("tb", "_mf_tmp_tb"), ("ta", "tb"), ("_mf_tmp_tb", "ta")]


def test_swapped_columns_go_through_a_temporary_name():
    operations = ops_between('model P extends Model {\n    x = IntegerField(db_column="c1")\n'
                             '    y = IntegerField(db_column="c2")\n}\n',
                             'model P extends Model {\n    x = IntegerField(db_column="c2")\n'
                             '    y = IntegerField(db_column="c1")\n}\n')
    assert [(op.op, op.old.column, op.new.column) for op in operations] == [
        ("rename_column", "c2", "_mf_tmp_c2"), ("alter_column", "c1", "c2"), ("alter_column", "_mf_tmp_c2", "c1")]


def test_an_index_name_is_dropped_before_another_model_takes_it():
    operations = ops_between('model Alpha extends Model {\n    x = IntegerField()\n}\n'
                             'model Zed extends Model {\n    x = IntegerField()\n    indexes = [Index(x, name="shared")]\n}\n',
                             'model Alpha extends Model {\n    x = IntegerField()\n    indexes = [Index(x, name="shared")]\n}\n'
                             'model Zed extends Model {\n    x = IntegerField()\n}\n')
    assert [(op.op, op.model) for op in operations] == [("drop_index", "Zed"), ("add_index", "Alpha")]


def test_without_a_clash_the_order_stays_that_of_the_spec():
    operations = ops_between(BASE, BASE.replace("    total = DecimalField(10, 2)",
                                                "    total = DecimalField(10, 2)\n    note = TextField(null=true)")
                             .replace("    phone = CharField(20, null=true)\n", ""))
    assert [(op.op, op.model) for op in operations] == [("drop_column", "Customer"), ("add_column", "Invoice")]

"""The models.mp language (SPEC §2): what parses, what it means, and every error kind."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

import mfcore
from mfcore import ModelsError
from mfcore.schema import Index
from mfcore.snapshot import dump_schema

from conftest import COMPAT

SPEC_EXAMPLE = '''
// line comment            # line comment too
enum InvoiceStatus { DRAFT, PENDING, PAID, CANCELED }
enum UserRole {
    ADMIN
    CUSTOMER
    STAFF
}
enum Currency {
    USD = "usd",            // KEY = "stored value"; a bare KEY stores "KEY"
    EUR = "eur"
}

model Customer extends Model {
    id = AutoField()
    email = CharField(max_length=255, unique=true)
    name = CharField(120)                     // positional max_length
    phone = CharField(max_length=20, null=true)
    signup_at = DateTimeField(auto_now_add=true)
    is_active = BooleanField(default=true)
    role = EnumField(UserRole, default=UserRole.ADMIN)

    table = "lt_customers"
}

model Invoice extends Model {
    id = AutoField()
    customer = ForeignKey(Customer, on_delete=CASCADE)
    total = DecimalField(12, 2)
    discount_cents = IntegerField(default=0)
    status = EnumField(InvoiceStatus, default=InvoiceStatus.DRAFT)

    table = "lt_invoices"
    indexes = [Index(customer, status), Index(total, name="ix_invoice_total")]
    unique_together = [(customer, total)]
}
'''


def test_the_spec_example_parses_into_its_meaning():
    schema = mfcore.parse(SPEC_EXAMPLE)
    assert sorted(schema.enums) == ["Currency", "InvoiceStatus", "UserRole"]
    assert schema.enums["Currency"].members == (("USD", "usd"), ("EUR", "eur"))
    assert schema.enums["UserRole"].values == ("ADMIN", "CUSTOMER", "STAFF")

    customer = schema.models["Customer"]
    assert customer.table == "lt_customers"
    assert [f.name for f in customer.fields] == [
        "id", "email", "name", "phone", "signup_at", "is_active", "role"]
    assert customer.field("name").max_length == 120
    assert customer.field("email").unique and not customer.field("email").null
    assert customer.field("phone").null
    assert customer.field("signup_at").auto_now_add
    assert customer.field("role").default == "ADMIN"  # the member's value, not "UserRole.ADMIN"
    assert customer.primary_key.name == "id"

    invoice = schema.models["Invoice"]
    fk = invoice.field("customer")
    assert (fk.target, fk.on_delete, fk.column) == ("Customer", "CASCADE", "customer")
    assert (invoice.field("total").max_digits, invoice.field("total").decimal_places) == (12, 2)
    indexes = {i.name: i for i in invoice.indexes}
    assert indexes["ix_invoice_total"].fields == ("total",)
    assert indexes["ix_lt_invoices_customer_status"].fields == ("customer", "status")
    assert indexes["uq_lt_invoices_customer_total"].unique


@pytest.mark.parametrize("project", ["onr_demo", "orm_demo", "customer_app"])
def test_every_compat_models_file_parses(project):
    text = (COMPAT / project / "models.mp").read_text()
    assert mfcore.parse(text).models


def test_the_bundled_example_parses():
    from conftest import REPO

    schema = mfcore.parse((REPO / "examples" / "shop" / "models.mp").read_text())
    assert len(schema.models) >= 30


def test_spellings_of_the_same_models_give_the_same_schema_and_bytes():
    one = '''
enum Kind { A, B }
model Item extends Model {
    name = CharField(120)
    price = DecimalField(10, 2, default=0)
    kind = EnumField(Kind, default=Kind.B)
}
model Tag extends Model { item = ForeignKey(Item, on_delete=CASCADE, null=true) }
'''
    other = '''
model Tag extends BaseModel {
    item = ForeignKey(Item, null=true)
}
model Item extends Model {
    name = CharField(max_length=120);  price = DecimalField(decimal_places=2, max_digits=10, default=0.0)
    kind = EnumField(Kind,
        default=Kind.B,
    )
}
enum Kind {
    A,
    B
}
'''
    assert mfcore.parse(one) == mfcore.parse(other)
    assert dump_schema(mfcore.parse(one)) == dump_schema(mfcore.parse(other))


def test_table_names_default_to_snake_case():
    schema = mfcore.parse("model OrderLine extends Model { n = IntegerField() }\n"
                          "model HTTPLog extends Model { n = IntegerField() }")
    assert schema.models["OrderLine"].table == "order_line"
    assert schema.models["HTTPLog"].table == "http_log"


def test_a_model_without_a_primary_key_gets_an_auto_id():
    model = mfcore.parse("model A extends Model { n = IntegerField() }").models["A"]
    assert model.fields[0].name == "id" and model.fields[0].type == "AutoField"
    assert model.primary_key.name == "id"
    custom = mfcore.parse('model B extends Model { code = CharField(8, primary_key=true) }').models["B"]
    assert [f.name for f in custom.fields] == ["code"]


def test_abstract_models_are_flattened_into_their_children():
    schema = mfcore.parse('''
model Stamped extends Model {
    created_at = DateTimeField(auto_now_add=true)
    abstract = true
    indexes = [Index(created_at)]
}
model Post extends Stamped { title = CharField(100) }
model Note extends Stamped { body = TextField() }
''')
    assert "Stamped" not in schema.models
    assert [f.name for f in schema.models["Post"].fields] == ["id", "created_at", "title"]
    assert [i.name for i in schema.models["Post"].indexes] == ["ix_post_created_at"]
    assert [i.name for i in schema.models["Note"].indexes] == ["ix_note_created_at"]


def test_literals_strings_numbers_and_separators():
    schema = mfcore.parse(r'''
model A extends Model {
    a = CharField(20, default="say \"hi\" \\ there"); b = FloatField(default=-1.5)
    c = IntegerField(default=-3)   # comment after a field
    d = JSONField(default=[1, "two", null, true])
    e = TextField(null=true, default=null)
}
''')
    fields = {f.name: f for f in schema.models["A"].fields}
    assert fields["a"].default == 'say "hi" \\ there'
    assert fields["b"].default == -1.5
    assert fields["c"].default == -3
    assert fields["d"].default == [1, "two", None, True]
    assert fields["e"].has_default and fields["e"].default is None


def test_json_defaults_are_objects_and_arrays_written_as_literals():
    schema = mfcore.parse('''
model Token extends Model {
    scopes = JSONField(default={})
    claims = JSONField(default={"iss": "mf", "aud": ["a", "b"], "ttl": 3600,
                                "extra": {"nested": null, "ok": true},})
    tags = JSONField(default=[])
    label = JSONField(default="plain text")
}
''')
    fields = {f.name: f for f in schema.models["Token"].fields}
    assert fields["scopes"].default == {}
    assert fields["claims"].default == {"iss": "mf", "aud": ["a", "b"], "ttl": 3600,
                                        "extra": {"nested": None, "ok": True}}
    assert fields["tags"].default == []
    assert fields["label"].default == "plain text"  # a JSON string


@pytest.mark.parametrize("call, message", [
    ('JSONField(default="{}")', 'default "{}" is a string, which a JSONField stores as the JSON string "{}";'
                                ' write the value itself, as in default={}'),
    ('JSONField(default=" [1, 2]")', 'default " [1, 2]" is a string, which a JSONField stores as the JSON string'
                                     ' " [1, 2]"; write the value itself, as in default=[1, 2]'),
    ('JSONField(default={"a": 1, "a": 2})', 'key "a" appears twice in the JSON default'),
    ('JSONField(default={"a": Colour})', "a JSON default must be a literal, not the name Colour"),
    ('TextField(default={})', "default an object does not fit TextField"),
    ('CharField(10, default={"a": 1})', "default an object does not fit CharField"),
])
def test_json_literals_where_they_do_not_belong(call, message):
    problems = problems_of("model A extends Model {\n    f = " + call + "\n}\n")
    assert [p.message for p in problems] == [message]
    assert problems[0].line == 2


def test_a_default_is_the_one_written_whatever_other_models_declare():
    """Equal numbers written apart are different defaults: -0.0 is a float of its own
    sign, beside a 0.0 of another model (validation reuses what it built for a call
    written alike)."""
    schema = mfcore.parse("model A extends Model {\n  x = FloatField(default=0.0)\n}\n"
                          "model B extends Model {\n  x = FloatField(default=-0.0)\n}\n")
    assert math.copysign(1, schema.models["A"].field("x").default) == 1
    assert math.copysign(1, schema.models["B"].field("x").default) == -1
    assert b"-0.0" in dump_schema(schema)


def test_a_text_default_holding_nul_is_refused_where_it_is_written():
    """No database stores NUL in a text column; JSON and bytes write it escaped."""
    problems = problems_of('model A extends Model {\n    f = TextField(default="a\0b")\n}\n')
    assert [(p.message, p.line) for p in problems] == [("a default cannot contain NUL", 2)]
    for call in ('JSONField(default="a\0b")', 'BinaryField(default="a\0b")'):
        assert mfcore.parse("model A extends Model {\n    f = " + call + "\n}\n").models["A"].fields[1].default


def test_a_duplicate_json_key_is_reported_at_the_key():
    problems = problems_of('model A extends Model {\n    f = JSONField(default={"a": 1,\n        "a": 2})\n}\n')
    assert [(p.line, p.column) for p in problems] == [(3, 9)]


@pytest.mark.parametrize("written, kept", [
    ("10.0.0.1", "10.0.0.1"), ("2001:DB8::0001", "2001:db8::1"), ("::FFFF:10.0.0.1", "::ffff:10.0.0.1"),
])
def test_ip_address_defaults_are_kept_as_postgresql_prints_them(written, kept):
    schema = mfcore.parse(f'model Host extends Model {{ addr = IPAddressField(default="{written}") }}')
    assert schema.models["Host"].field("addr").default == kept


@pytest.mark.parametrize("default, message", [
    ('"10.0.0.256"', 'default "10.0.0.256" is not an IP address (IPv4 or IPv6)'),
    ('"10.0.0.0/8"', 'default "10.0.0.0/8" is not an IP address (IPv4 or IPv6)'),
    ("1", "default 1 does not fit IPAddressField"),
])
def test_ip_address_defaults_that_are_not_addresses(default, message):
    problems = problems_of(f"model Host extends Model {{\n    addr = IPAddressField(default={default})\n}}\n")
    assert [(p.message, p.line) for p in problems] == [(message, 2)]


def test_partial_indexes_and_operator_classes():
    model = mfcore.parse('''
model Email extends Model {
    address = CharField(100)
    verified = BooleanField(default=false)
    indexes = [Index(address, unique=true, where=" verified ", name="unique_verified_email"),
               Index(address, opclass="varchar_pattern_ops", name="email_like")]
}
''').models["Email"]
    assert model.indexes == (Index("email_like", ("address",), False, None, "varchar_pattern_ops"),
                             Index("unique_verified_email", ("address",), True, "verified", None))


@pytest.mark.parametrize("argument, message", [
    ('where=""', 'Index where takes a SQL condition as a string, as in where="verified"'),
    ("where=true", 'Index where takes a SQL condition as a string, as in where="verified"'),
    ('where="verified; DROP TABLE email"', "Index where must be one SQL condition, without ';'"),
    ('where="verified -- and more"', "Index where must be one SQL condition, without comments"),
    ('where="verified /* x */"', "Index where must be one SQL condition, without comments"),
    ("where=\"address = 'x\"", "Index where has an unclosed '"),
    ('where="(verified"', "Index where has a '(' that is not closed"),
    ('where="verified)"', "Index where has a ')' that closes nothing"),
    ('opclass="varchar pattern"', 'Index opclass takes the name of an operator class, as in'
                                  ' opclass="varchar_pattern_ops"'),
    ("wher=true", "Index has no argument 'wher' — did you mean 'where'?"),
])
def test_index_conditions_and_operator_classes_that_are_refused(argument, message):
    problems = problems_of("model A extends Model {\n    address = CharField(10)\n    verified = BooleanField()\n"
                           f"    indexes = [Index(address, {argument})]\n}}\n")
    assert [(p.message, p.line) for p in problems] == [(message, 4)]


def test_the_database_clock_as_a_default_is_auto_now_add():
    clock = mfcore.parse("model A extends Model { at = DateTimeField(default=now()); day = DateField(default=today())"
                         "\n t = TimeField(null=true, default=now()) }")
    flags = mfcore.parse("model A extends Model { at = DateTimeField(auto_now_add=true)"
                         "\n day = DateField(auto_now_add=true); t = TimeField(null=true, auto_now_add=true) }")
    assert clock == flags
    assert clock.models["A"].field("day").auto_now_add and not clock.models["A"].field("day").has_default


def test_a_random_uuid_as_a_default():
    key = mfcore.parse("model A extends Model { key = UUIDField(default=uuid4(), unique=true) }").models["A"].field("key")
    assert key.db_default == "uuid4" and not key.has_default


@pytest.mark.parametrize("call, message", [
    ("DateField(default=now())", "default now() is not a default DateField takes; write default=today()"),
    ("DateTimeField(default=now(1))", "default now(...) is not a default DateTimeField takes; write default=now()"),
    ("IntegerField(default=now())", "default now() does not fit IntegerField: only DateTimeField and TimeField"
                                    " take now(), DateField today(), UUIDField uuid4()"),
    ("UUIDField(default=now())", "default now() is not a default UUIDField takes; write default=uuid4()"),
    ("TextField(default=uuid4())", "default uuid4() does not fit TextField: only DateTimeField and TimeField"
                                   " take now(), DateField today(), UUIDField uuid4()"),
])
def test_call_defaults_where_they_do_not_fit(call, message):
    problems = problems_of("model A extends Model {\n    f = " + call + "\n}\n")
    assert [(p.message, p.line) for p in problems] == [(message, 2)]


def test_keywords_can_name_fields_inside_a_model():
    model = mfcore.parse("model Car extends Model { model = CharField(50); enum = IntegerField()\n"
                         "extends = TextField() }").models["Car"]
    assert [f.name for f in model.fields] == ["id", "model", "enum", "extends"]


def test_db_index_is_an_index_like_any_other():
    a = mfcore.parse("model A extends Model { n = IntegerField(db_index=true) }")
    b = mfcore.parse("model A extends Model { n = IntegerField()\n indexes = [Index(n)] }")
    assert a == b and a.models["A"].indexes[0].name == "ix_a_n"


def paths_in_a_new_process(**environment) -> str:
    """implementation() and whether validation's compiled loops are in use, as seen by a
    new process with MF_PURE_PYTHON unset and then ``environment`` set."""
    env = {key: value for key, value in os.environ.items() if key != "MF_PURE_PYTHON"}
    env.update(environment)
    code = ("from mfcore.language import parser\n"
            "print(parser.implementation(), 'compiled-loops' if parser._compiled_loops else 'python-loops')")
    completed = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return completed.stdout.strip()


def test_mf_pure_python_turns_the_compiled_core_off():
    assert paths_in_a_new_process(MF_PURE_PYTHON="1") == "python python-loops"


def test_the_compiled_core_is_used_by_default_where_it_is_built():
    try:
        from mfcore import _parser  # noqa: F401
        from mfcore.language import _hotloops  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the compiled core is not built in this checkout ({exc}); only the pure-Python path exists")
    assert paths_in_a_new_process() == "compiled compiled-loops"
    assert paths_in_a_new_process(MF_PURE_PYTHON="0") == "compiled compiled-loops"


# ---------------------------------------------------------------- errors

def problems_of(text):
    with pytest.raises(ModelsError) as caught:
        mfcore.parse(text, path="models.mp")
    return caught.value.problems


ERRORS = [
    # (models text, words the message must hold, line, column)
    ("model A extends Model {\n  n = IntegerField() m = IntegerField()\n}",
     "unexpected 'm'; expected ';', '}' or a newline", 2, 22),
    ("model A extends Model {\n  name = Charfield(120)\n}", "unknown field type 'Charfield' — did you mean 'CharField'?", 2, 10),
    ("model A extends Model {\n  n = IntegerField(nul=true)\n}", "IntegerField has no argument 'nul' — did you mean 'null'?", 2, 20),
    ("model A extends Model {\n  n = IntegerField(null=true, null=false)\n}", "argument 'null' is given twice", 2, 31),
    ("model A extends Model {\n  s = CharField(unique=true)\n}", "CharField 'A.s' needs max_length", 2, 7),
    ("model A extends Model { n = IntegerField() }\nmodel A extends Model { m = IntegerField() }",
     "duplicate name 'A'", 2, 7),
    ("enum E { X }\nenum E { Y }", "duplicate name 'E'", 2, 6),
    ("model A extends Model {\n  n = IntegerField()\n  n = TextField()\n}", "duplicate field 'n' in model A", 3, 3),
    ("enum E { X, Y, X }", "duplicate key 'X' in enum E", 1, 16),
    ("model A extends Model {\n  b = ForeignKey(Bee)\n}\nmodel Be extends Model { n = IntegerField() }",
     "ForeignKey 'A.b' points to unknown model 'Bee' — did you mean 'Be'?", 2, 3),
    ("enum Role { X }\nmodel A extends Model {\n  r = EnumField(Rol)\n}", "names unknown enum 'Rol' — did you mean 'Role'?", 3, 17),
    ('model A extends Model {\n  n = IntegerField(default="x")\n}', 'default "x" does not fit IntegerField', 2, 20),
    ("enum Role { ADMIN }\nmodel A extends Model {\n  r = EnumField(Role, default=Role.ADMN)\n}",
     "default ADMN is not a member of Role — did you mean 'ADMIN'?", 3, 23),
    ('model A extends Model { n = IntegerField() }\nmodel B extends Model {\n  m = IntegerField()\n  table = "a"\n}',
     "models A and B both use table 'a'", 4, 11),
    ("model A extends Model { n = IntegerField() }\nmodel B extends Model {\n  a = ForeignKey(A, on_delete=SET_NULL)\n}",
     "on_delete=SET_NULL on 'B.a' needs null=true", 3, 21),
    ("model A extends Model {\n  a = IntegerField(primary_key=true)\n  b = IntegerField(primary_key=true)\n}",
     "model A has more than one primary key ('a' and 'b')", 3, 3),
    ("model A extends B {\n  abstract = true\n}\nmodel B extends A {\n  abstract = true\n}", "circular extends: B extends A", 4, 17),
    ("model A extends Model {\n  tabel = \"x\"\n}", "unknown model option 'tabel' — did you mean 'table'?", 2, 3),
    ('model A extends Model {\n  s = CharField(3, default="long")\n}', "longer than max_length=3", 2, 20),
    ("model A extends Model {\n  n = IntegerField(\n", "unexpected end of file", 3, 1),
    ('model A extends Model {\n  s = CharField(10, default="open)\n}', "unterminated string", 2, 29),
    ("enumColour { RED }", "unexpected 'enumColour'; expected", 1, 1),
    ("model A extends_Base { }", "unexpected 'extends_Base'; expected 'extends'", 1, 9),
    ("model A extends Model {\n  n = IntegerField(default=" + "9" * 5000 + ")\n}", "has too many digits", 2, 28),
]


@pytest.mark.parametrize("text,message,line,column", ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_each_error_kind_names_its_place_and_what_was_expected(text, message, line, column):
    first = problems_of(text)[0]
    assert message in first.message
    assert (first.line, first.column) == (line, column)
    rendered = first.render().splitlines()
    assert rendered[0].startswith(f"models.mp:{line}:{column}: error: ")
    source_line = text.split("\n")[line - 1]
    assert rendered[1] == "    " + source_line
    assert rendered[2] == "    " + " " * (column - 1) + "^"


def test_all_errors_are_reported_in_one_run():
    problems = problems_of('''
model A extends Model {
    a = Charfield(10)
    b = IntegerField(default="x")
    c = ForeignKey(Nowhere)
}
''')
    messages = [p.message for p in problems]
    assert len(messages) == 3
    assert "unknown field type 'Charfield'" in messages[0]
    assert "does not fit IntegerField" in messages[1]
    assert "unknown model 'Nowhere'" in messages[2]
    assert [p.line for p in problems] == [3, 4, 5]


def test_deep_nesting_is_an_error_not_a_crash():
    text = "model A extends Model {\n  j = JSONField(default=" + "[" * 3000 + "]" * 3000 + ")\n}"
    problems = problems_of(text)
    assert "nested too deeply" in problems[0].message


def test_deep_json_objects_are_an_error_not_a_crash():
    text = "model A extends Model {\n  j = JSONField(default=" + '{"k": ' * 3000 + "1" + "}" * 3000 + ")\n}"
    problems = problems_of(text)
    assert "nested too deeply" in problems[0].message


def test_a_byte_order_mark_is_not_an_error(tmp_path):
    from mfcore.language.parser import parse_file

    path = tmp_path / "models.mp"
    path.write_bytes("\ufeffmodel A extends Model { n = IntegerField() }\n".encode("utf-8"))
    assert "A" in parse_file(str(path)).models

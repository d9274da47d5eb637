"""Hypothesis strategies for random, valid models.mp texts.

``schema_texts()`` draws small schemas (a few enums and models, fields of every
type, foreign keys between the models, indexes, checks); pairs of draws are the raw
material for differ and dialect property tests.
"""
from __future__ import annotations

from hypothesis import strategies as st

MODEL_NAMES = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon"]
ENUM_NAMES = ["Colour", "Size", "Mood"]
FIELD_NAMES = ["a", "b", "c", "d", "e", "f", "g"]
ENUM_KEYS = ["RED", "GREEN", "BLUE", "BLACK"]

# A model's primary key: the implicit id, or one of these (their types differ for the
# columns that point at them).
KEY_CALLS = [None, "AutoField()", "BigAutoField()", "IntegerField(primary_key=true)",
             "CharField(20, primary_key=true)", "CharField(40, primary_key=true)"]

SIMPLE_TYPES = ["IntegerField", "BigIntegerField", "SmallIntegerField", "FloatField", "TextField",
                "BooleanField", "DateTimeField", "DateField", "TimeField", "UUIDField", "JSONField",
                "BinaryField", "CharField", "DecimalField", "IPAddressField", "PositiveIntegerField",
                "PositiveSmallIntegerField", "PositiveBigIntegerField"]

# A model's CHECK constraints: expressions that every row passes (the tables of the
# property tests hold rows), naming a column in double quotes and not.
CHECK_TEMPLATES = ['"{c}" IS NULL OR "{c}" IS NOT NULL', '("{c}" IS NOT NULL) OR ("{c}" IS NULL)', "1 = 1"]


@st.composite
def field_calls(draw, enums, models):
    kinds = SIMPLE_TYPES + (["EnumField"] if enums else []) + (["ForeignKey"] if models else [])
    kind = draw(st.sampled_from(kinds))
    null = draw(st.booleans())
    args = []
    if kind == "CharField":
        length = draw(st.sampled_from([10, 20, 255]))
        args.append(str(length))
        if draw(st.booleans()):
            args.append('default="x"')
    elif kind == "UUIDField":
        if draw(st.integers(0, 2)) == 0:
            args.append("default=uuid4()")
    elif kind == "IPAddressField":
        if draw(st.booleans()):
            args.append("default=" + draw(st.sampled_from(['"10.0.0.1"', '"::1"', '"2001:DB8::0001"'])))
    elif kind == "JSONField":
        if draw(st.integers(0, 2)) == 0:
            args.append("default=" + draw(st.sampled_from(
                ['{}', '[]', '{"a": 1, "b": [true, null]}', '{"k": "v", "n": {"x": 2.5}}', '[1, "two"]', '"text"'])))
    elif kind == "DecimalField":
        digits, places = draw(st.sampled_from([(10, 2), (12, 4), (20, 2)]))
        args.append(f"{digits}, {places}")
        if draw(st.booleans()):
            # 0, or as many digits as the column holds: no double keeps 18 of them exactly
            whole = draw(st.integers(0, 10 ** (digits - places) - 1))
            fraction = draw(st.integers(0, 10 ** places - 1))
            sign = draw(st.sampled_from(["", "-"]))
            args.append(draw(st.sampled_from(["default=0", f"default={sign}{whole}.{fraction:0{places}d}"])))
    elif kind == "EnumField":
        enum_name, keys = draw(st.sampled_from(sorted(enums.items())))
        args.append(enum_name)
        if draw(st.booleans()):
            args.append(f"default={enum_name}.{draw(st.sampled_from(keys))}")
    elif kind == "ForeignKey":
        args.append(draw(st.sampled_from(models)))
        if draw(st.integers(0, 3)) == 0:
            args.append("deferrable=true")
        if null and draw(st.booleans()):
            args.append("on_delete=SET_NULL")
    elif kind in ("IntegerField", "BigIntegerField", "SmallIntegerField"):
        if draw(st.booleans()):
            args.append(f"default={draw(st.integers(-5, 5))}")
    elif kind.startswith("Positive"):
        if draw(st.booleans()):
            args.append(f"default={draw(st.integers(0, 5))}")
    elif kind == "BooleanField":
        if draw(st.booleans()):
            args.append(f"default={draw(st.sampled_from(['true', 'false']))}")
    elif kind == "DateTimeField":
        if draw(st.booleans()):
            args.append("auto_now_add=true")
    if null:
        args.append("null=true")
    if kind not in ("TextField", "JSONField", "BinaryField", "ForeignKey") and draw(st.integers(0, 5)) == 0:
        args.append("unique=true")
    return f"{kind}({', '.join(args)})"


@st.composite
def check_calls(draw, model, field_names):
    """One or two Check(...) calls of a model; a name given or the default one."""
    calls = []
    for number in range(draw(st.integers(1, 2))):
        template = draw(st.sampled_from(CHECK_TEMPLATES))
        expression = template.format(c=draw(st.sampled_from(field_names))).replace('"', '\\"')
        named = draw(st.booleans())
        if template == "1 = 1" and not named and any('1 = 1' in call for call in calls):
            continue  # the same expression twice is one check
        calls.append(f'Check("{expression}"' + (f', name="ck_{model.lower()}_{number}")' if named else ")"))
    return calls


@st.composite
def schema_texts(draw, max_models=4, max_fields=5):
    enum_count = draw(st.integers(0, 2))
    enums = {}
    for name in ENUM_NAMES[:enum_count]:
        keys = draw(st.lists(st.sampled_from(ENUM_KEYS), min_size=1, max_size=4, unique=True))
        enums[name] = keys
    model_count = draw(st.integers(1, max_models))
    models = MODEL_NAMES[:model_count]
    lines = []
    for name, keys in enums.items():
        lines.append(f"enum {name} {{ {', '.join(keys)} }}")
    for name in models:
        field_names = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=max_fields, unique=True))
        body = [f"    {field} = {draw(field_calls(enums, models))}" for field in field_names]
        key = draw(st.sampled_from(KEY_CALLS))
        earlier = models[:models.index(name)]
        if earlier and draw(st.integers(0, 5)) == 0:  # a key that is a foreign key (inheritance)
            key = f"OneToOneField({draw(st.sampled_from(earlier))}, primary_key=true)"
        if key is not None:
            body.insert(0, f"    id = {key}")
        if len(field_names) >= 2 and draw(st.integers(0, 3)) == 0:
            body.append(f"    indexes = [Index({field_names[0]}, {field_names[1]})]")
        if draw(st.integers(0, 3)) == 0:
            body.append("    checks = [" + ", ".join(draw(check_calls(name, field_names))) + "]")
        if draw(st.integers(0, 4)) == 0:
            body.append(f"    table = \"tbl_{name.lower()}\"")
        lines.append(f"model {name} extends Model {{\n" + "\n".join(body) + "\n}")
    return "\n".join(lines) + "\n"

"""The field types of models.mp and how a field call becomes a Field.

One builder serves models.mp and the earlier tool's JSON field definitions
(``params``/``kwargs``), so both spellings normalise to the same Field.
"""
from __future__ import annotations

import math
from decimal import Decimal

from .raw import Call, ListValue, Name, ObjectValue, TupleValue
from ..schema import POSITIVE_TYPES, Field, exact_decimal

INTEGER_TYPES = frozenset({"IntegerField", "BigIntegerField", "SmallIntegerField", *POSITIVE_TYPES})
# What each integer column holds (PostgreSQL's smallint, integer and bigint; the
# positive types add CHECK (column >= 0)).
INTEGER_RANGES = {"SmallIntegerField": (-2 ** 15, 2 ** 15 - 1), "IntegerField": (-2 ** 31, 2 ** 31 - 1),
                  "BigIntegerField": (-2 ** 63, 2 ** 63 - 1), "AutoField": (-2 ** 31, 2 ** 31 - 1),
                  **{positive: (0, 2 ** bits - 1) for positive, bits in
                     (("PositiveSmallIntegerField", 15), ("PositiveIntegerField", 31),
                      ("PositiveBigIntegerField", 63))}}
AUTO_TYPES = frozenset({"AutoField", "BigAutoField"})
RELATION_TYPES = frozenset({"ForeignKey", "OneToOneField"})
TEMPORAL_TYPES = frozenset({"DateTimeField", "DateField", "TimeField"})
ON_DELETE_ACTIONS = ("CASCADE", "SET_NULL", "RESTRICT", "PROTECT", "NO_ACTION", "SET_DEFAULT")

# The call each type takes as a default the database computes: the clock (the same as
# auto_now_add) or a random UUID (db_default).
CALL_DEFAULTS = {"DateTimeField": "now", "TimeField": "now", "DateField": "today", "UUIDField": "uuid4"}

_COMMON = ("null", "unique", "default", "primary_key", "db_index", "db_column")

# type -> (positional parameter names, every keyword it accepts, required keywords)
FIELD_TYPES: dict[str, tuple[tuple[str, ...], frozenset, tuple[str, ...]]] = {}


def _declare(type_name, positional=(), extra=(), required=()):
    FIELD_TYPES[type_name] = (tuple(positional), frozenset(_COMMON + tuple(positional) + tuple(extra)),
                              tuple(required))


for _t in ("AutoField", "BigAutoField", "IntegerField", "BigIntegerField", "SmallIntegerField",
           "FloatField", "TextField", "BooleanField", "UUIDField", "JSONField", "BinaryField", "IPAddressField",
           *POSITIVE_TYPES):
    _declare(_t)
_declare("DecimalField", ("max_digits", "decimal_places"), required=("max_digits", "decimal_places"))
_declare("CharField", ("max_length",), required=("max_length",))
for _t in TEMPORAL_TYPES:
    _declare(_t, extra=("auto_now", "auto_now_add"))
_declare("EnumField", ("enum",), required=("enum",))
for _t in RELATION_TYPES:
    _declare(_t, ("to",), extra=("on_delete", "related_name", "deferrable"), required=("to",))


class FieldProblem(Exception):
    """One thing wrong with a field call; pos is where it is, when known."""

    def __init__(self, message, pos=None):
        super().__init__(message)
        self.message = message
        self.pos = pos


def closest(name: str, candidates) -> str | None:
    """The candidate a misspelt name most likely meant, or None."""
    import difflib

    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return match[0] if match else None


def did_you_mean(name: str, candidates) -> str:
    guess = closest(name, candidates)
    return f" — did you mean '{guess}'?" if guess else ""


def build_field(model: str, name: str, type_name: str, args, type_pos, enums):
    """Turn ``name = Type(args)`` into ``(Field, db_index, problems)``.

    ``args`` is a sequence of (keyword | None, value, pos); ``enums`` maps enum names
    to Enum. ``db_index`` is returned beside the field because an index is a model's
    (the caller adds it to the model's indexes): True or False as given, and None for
    a ForeignKey that says nothing and is neither unique nor the primary key, which
    the caller indexes when the project indexes foreign keys (index_foreign_keys). ``problems`` lists FieldProblem
    instances; the field is only meaningful when there are none. Reference targets
    are checked by the caller, who knows every model.
    """
    problems: list[FieldProblem] = []
    spec = FIELD_TYPES.get(type_name)
    if spec is None:
        raise FieldProblem(f"unknown field type '{type_name}'{did_you_mean(type_name, FIELD_TYPES)}",
                           type_pos)
    positional_names, allowed, required = spec
    values: dict[str, tuple] = {}
    position = 0
    for keyword, value, pos in args:
        if keyword is None:
            if position >= len(positional_names):
                problems.append(FieldProblem(
                    f"{type_name} takes {_count(len(positional_names))} positional argument"
                    f"{'' if len(positional_names) == 1 else 's'}; pass the others by keyword", pos))
                continue
            keyword = positional_names[position]
            position += 1
        elif keyword not in allowed:
            problems.append(FieldProblem(
                f"{type_name} has no argument '{keyword}'{did_you_mean(keyword, allowed)}", pos))
            continue
        if keyword in values:
            problems.append(FieldProblem(f"argument '{keyword}' is given twice", pos))
            continue
        values[keyword] = (value, pos)
    for keyword in required:
        if keyword not in values:
            problems.append(FieldProblem(
                f"{type_name} '{model}.{name}' needs {keyword}"
                + (" (for example CharField(max_length=255))" if keyword == "max_length" else ""),
                type_pos))
    if problems:
        return None, False, problems

    def flag(key):
        if key not in values:
            return False
        value, pos = values[key]
        if value is True or value is False:
            return value
        problems.append(FieldProblem(f"'{key}' takes true or false, not {_show(value)}", pos))
        return False

    def positive_int(key, minimum=1):
        if key not in values:
            return None
        value, pos = values[key]
        if type(value) is int and value >= minimum:
            return value
        problems.append(FieldProblem(
            f"'{key}' takes a whole number of at least {minimum}, not {_show(value)}", pos))
        return None

    null = flag("null")
    unique = flag("unique")
    primary_key = flag("primary_key")
    db_index = flag("db_index")
    auto_now = flag("auto_now")
    auto_now_add = flag("auto_now_add")
    deferrable = flag("deferrable")
    max_length = positive_int("max_length")
    max_digits = positive_int("max_digits")
    decimal_places = positive_int("decimal_places", 0)
    if max_digits is not None and decimal_places is not None and decimal_places > max_digits:
        problems.append(FieldProblem(
            f"decimal_places ({decimal_places}) cannot exceed max_digits ({max_digits})",
            values["decimal_places"][1]))

    column = name
    if "db_column" in values:
        value, pos = values["db_column"]
        if type(value) is str and "\0" in value:
            problems.append(FieldProblem("a column name cannot contain NUL", pos))
        elif type(value) is str and value:
            column = value
        else:
            problems.append(FieldProblem(f"'db_column' takes a non-empty string, not {_show(value)}", pos))

    if type_name in AUTO_TYPES:
        primary_key = True
    if type_name == "OneToOneField":
        unique = True
    if type_name in RELATION_TYPES and "db_index" not in values and not unique and not primary_key:
        db_index = None  # already indexed otherwise: a unique column or the primary key

    enum_name = None
    if type_name == "EnumField":
        value, pos = values["enum"]
        if type(value) is Name and "." not in value.text:
            enum_name = value.text
            if enum_name not in enums:
                problems.append(FieldProblem(
                    f"EnumField '{model}.{name}' names unknown enum '{enum_name}'"
                    f"{did_you_mean(enum_name, enums)}", pos))
        else:
            problems.append(FieldProblem(f"EnumField takes an enum name, not {_show(value)}", pos))

    target = on_delete = None
    if type_name in RELATION_TYPES:
        value, pos = values["to"]
        if type(value) is Name and "." not in value.text:
            target = value.text
        elif type(value) is str and value:
            target = value
        else:
            problems.append(FieldProblem(f"{type_name} takes a model name, not {_show(value)}", pos))
        on_delete = "CASCADE"
        if "on_delete" in values:
            value, pos = values["on_delete"]
            text = value.text if type(value) is Name else value if type(value) is str else None
            if text in ON_DELETE_ACTIONS:
                on_delete = text
            else:
                problems.append(FieldProblem(
                    f"on_delete takes one of {', '.join(ON_DELETE_ACTIONS)}, not {_show(value)}"
                    + (did_you_mean(text, ON_DELETE_ACTIONS) if isinstance(text, str) else ""), pos))
        if on_delete == "SET_NULL" and not null:
            problems.append(FieldProblem(
                f"on_delete=SET_NULL on '{model}.{name}' needs null=true (the column must accept NULL)",
                values["on_delete"][1]))

    has_default = "default" in values
    default = db_default = None
    if has_default and type(values["default"][0]) is Call:
        value, pos = values["default"]
        wanted = CALL_DEFAULTS.get(type_name)
        if wanted is not None and value.name == wanted and not value.args:
            if wanted == "uuid4":
                db_default = wanted
            else:
                auto_now_add = True  # the database's clock: the same column as auto_now_add
        elif wanted is None:
            problems.append(FieldProblem(f"default {value.name}() does not fit {type_name}: only"
                                         " DateTimeField and TimeField take now(), DateField today(),"
                                         " UUIDField uuid4()", pos))
        else:
            problems.append(FieldProblem(f"default {value.name}({'...' if value.args else ''}) is not a default"
                                         f" {type_name} takes; write default={wanted}()", pos))
        has_default = False
    if has_default:
        value, pos = values["default"]
        try:
            default = _fit_default(type_name, value, null, max_length, enums.get(enum_name))
            if type(default) is str and "\0" in default and type_name not in ("JSONField", "BinaryField"):
                # Written as a text literal (JSON and bytes are written escaped), which
                # no database stores with a NUL in it.
                raise FieldProblem("a default cannot contain NUL")
            if type(default) is Decimal and type(max_digits) is int and type(decimal_places) is int:
                _fit_digits(default, max_digits, decimal_places)
        except FieldProblem as problem:
            if problem.pos is None:
                problem.pos = pos
            problems.append(problem)

    field = Field(name, type_name, column, null, unique, primary_key, has_default, default,
                  max_length, max_digits, decimal_places, auto_now, auto_now_add, enum_name, target,
                  on_delete, None, None, "deferred" if deferrable else None, db_default)
    return field, db_index, problems


def _count(n):
    return ("no", "one", "two")[n] if n < 3 else str(n)


def _show(value) -> str:
    if type(value) is Name:
        return value.text
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if type(value) is str:
        return '"' + value + '"'
    if type(value) in (ListValue, TupleValue):
        return "a list" if type(value) is ListValue else "a tuple"
    if type(value) is ObjectValue:
        return "an object"
    return repr(value)


def _plain(value):
    """A literal as plain JSON data (JSONField defaults)."""
    if type(value) in (ListValue, TupleValue):
        return [_plain(item) for item, _pos in value.items]
    if type(value) is ObjectValue:
        plain = {}
        for key, item, pos in value.items:
            if key in plain:
                raise FieldProblem(f"key \"{key}\" appears twice in the JSON default", pos)
            plain[key] = _plain(item)
        return plain
    if type(value) is Name:
        raise FieldProblem(f"a JSON default must be a literal, not the name {value.text}")
    if type(value) is list:
        return [_plain(item) for item in value]
    if type(value) is Decimal:
        return float(value)  # JSON numbers are doubles
    return value


def _ip_address(text: str) -> str:
    """An IP address default in the one spelling PostgreSQL's inet prints it, so that the
    default read back from the catalog is the default written."""
    import ipaddress

    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise FieldProblem(f"default \"{text}\" is not an IP address (IPv4 or IPv6)") from None
    if address.version == 6 and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _looks_like_json_container(text: str) -> bool:
    """Is a string the text of a JSON object or array?"""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return False
    import json
    try:
        json.loads(stripped)
    except ValueError:
        return False
    return True


def _fit_digits(number: Decimal, max_digits: int, decimal_places: int) -> None:
    """A DecimalField's default must fit its digits before the decimal point: the
    database refuses more (numeric field overflow) at the first insert."""
    before_point = max(number.adjusted() + 1, 0)
    if before_point > max_digits - decimal_places:
        raise FieldProblem(f"default is too large for DecimalField({max_digits}, {decimal_places}) (at most "
                           f"{max_digits - decimal_places} digits before the decimal point)")


def _fit_default(type_name, value, null, max_length, enum):
    """The stored form of a default, or FieldProblem when it does not fit the type."""
    if value is None:
        if not null:
            raise FieldProblem("default=null needs null=true (the column does not accept NULL)")
        return None
    kind = type(value)
    if type_name in INTEGER_TYPES or type_name in AUTO_TYPES or type_name in RELATION_TYPES:
        if kind is int:
            low, high = INTEGER_RANGES.get(type_name, INTEGER_RANGES["BigIntegerField"])
            if not low <= value <= high:
                raise FieldProblem(f"default {value} is out of range for {type_name} ({low} to {high})")
            return value
        if type_name in RELATION_TYPES and kind is str:
            return value
    elif type_name == "FloatField":
        if kind is int or kind is float or kind is Decimal:
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise FieldProblem(f"default is too large for {type_name} (beyond the range of a double)")
            return number
    elif type_name == "DecimalField":
        if kind is int or kind is float or kind is Decimal:
            # Exact, as written: DEFAULT 1234567890123456.78, not a double's ...456.8.
            number = exact_decimal(value)
            if type(number) is not Decimal:
                raise FieldProblem(f"default {_show(value)} is not a finite number")
            return number
    elif type_name in ("CharField", "TextField"):
        if kind is str:
            if max_length is not None and len(value) > max_length:
                raise FieldProblem(f"default is {len(value)} characters, longer than max_length={max_length}")
            return value
    elif type_name == "BooleanField":
        if kind is bool:
            return value
    elif type_name == "IPAddressField":
        if kind is str:
            return _ip_address(value)
    elif type_name in TEMPORAL_TYPES or type_name in ("UUIDField", "BinaryField"):
        if kind is str:
            return value
    elif type_name == "JSONField":
        if kind is str and _looks_like_json_container(value):
            # Stored as written this is a JSON string, which is almost never what
            # `default="{}"` means; the literal says what is meant.
            raise FieldProblem(f"default \"{value}\" is a string, which a JSONField stores as the JSON string"
                               f" \"{value}\"; write the value itself, as in default={value.strip()}")
        return _plain(value)
    elif type_name == "EnumField":
        if enum is None:
            return None  # the unknown enum is reported already
        key = value.text if kind is Name else None
        if key is not None and "." in key:
            enum_part, _, member = key.rpartition(".")
            if enum_part != enum.name:
                raise FieldProblem(f"default {key} is not a member of {enum.name}")
            key = member
        values = enum.values_by_key()
        if key is not None and key in values:
            return values[key]
        if kind is str and value in values.values():
            return value
        shown = key if key is not None else _show(value)
        raise FieldProblem(f"default {shown} is not a member of {enum.name}"
                           f"{did_you_mean(shown, values)} (members: {', '.join(values)})")
    raise FieldProblem(f"default {_show(value)} does not fit {type_name}")

"""The schema IR: what models.mp means, independent of how it was spelt.

Two spellings of the same models give equal Schemas: positional and keyword
arguments, argument order and declaration order are gone by the time a Schema
exists; defaults are resolved (an enum member is stored as its value), implicit
primary keys added, table names derived and abstract models flattened.

Field is a NamedTuple rather than a dataclass: a large project has a hundred
thousand of them, and they are built, compared and hashed in the hot loops of
parsing and diffing, where a tuple is several times cheaper.
"""
from __future__ import annotations

import decimal
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional


class Field(NamedTuple):
    name: str
    type: str
    column: str
    null: bool = False
    unique: bool = False
    primary_key: bool = False
    has_default: bool = False
    default: Any = None
    max_length: Optional[int] = None
    max_digits: Optional[int] = None
    decimal_places: Optional[int] = None
    auto_now: bool = False
    auto_now_add: bool = False
    enum: Optional[str] = None
    target: Optional[str] = None
    on_delete: Optional[str] = None
    # What models.mp cannot say about a database that mf took over (mf db baseline),
    # kept so that later changes address the objects that exist: the name of the
    # foreign key's constraint, of the PRIMARY KEY or UNIQUE constraint, where it is
    # not the name mf gives (None: mf's name).
    fk_name: Optional[str] = None
    key_name: Optional[str] = None
    # A DEFERRABLE foreign key: "deferred" (checked at COMMIT: deferrable=true in
    # models.mp) or "immediate" (DEFERRABLE INITIALLY IMMEDIATE, kept from a database
    # taken over; models.mp cannot say it).
    deferrable: Optional[str] = None
    # A default the database computes for each row, from a closed set: "uuid4".
    db_default: Optional[str] = None


# A DecimalField's default as files hold it: exact decimal text, never a float's.
DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_EXACT = decimal.Context(prec=2100)  # beyond any max_digits a file may hold (1000)


def exact_decimal(value):
    """A DecimalField's default in the one form the IR keeps: a decimal.Decimal, exact
    and canonical (1.50 and 1.5 are one value; no exponent), from a Decimal or int of
    models.mp, the decimal text schema.json and migration files hold, or a float of a
    file written before (its shortest repr: the literal as written, wherever a double
    could hold it). Anything else comes back as it is, for the file checks to name."""
    if type(value) is bool:
        return value
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, (int, decimal.Decimal)):
        text = value
    elif isinstance(value, str) and DECIMAL_TEXT.fullmatch(value):
        text = value
    else:
        return value
    number = decimal.Decimal(text)
    if not number.is_finite():
        return value
    if number.is_zero():
        return decimal.Decimal(0)
    number = number.normalize(_EXACT)
    return number.quantize(decimal.Decimal(1), context=_EXACT) if number.as_tuple().exponent > 0 else number


def decimal_text(number: decimal.Decimal) -> str:
    """The exact text of a Decimal default, without an exponent, and with a decimal
    point, as defaults were written when they went through a double (0.0, 100.0, 1.5),
    so that catalogs made then compare equal: 1234567890123456.78."""
    text = format(number, "f")
    return text if "." in text else text + ".0"


# The database-computed defaults a Field's db_default may name.
DB_DEFAULTS = ("uuid4",)



# An operator class: a plain name, written into CREATE INDEX quoted.
OPCLASS = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def index_condition_problem(text) -> Optional[str]:
    """What is wrong with a partial index's condition, or None. It is SQL (the schema
    author's own, like a run_sql step's), kept verbatim; what is checked is that it is one
    expression: no statement end, no comment that could hide the rest, quotes closed,
    parentheses balanced."""
    if type(text) is not str or not text.strip():
        return "takes a SQL condition as a string, as in where=\"verified\""
    depth = 0
    quote = None
    position = 0
    while position < len(text):
        char = text[position]
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return "has a ')' that closes nothing"
        elif char == ";" or text.startswith("--", position) or text.startswith("/*", position) or char == "\0":
            return f"must be one SQL condition, without {char if char != chr(0) else 'NUL'!r}" \
                   if char in ";\0" else "must be one SQL condition, without comments"
        position += 1
    if quote is not None:
        return f"has an unclosed {quote}"
    if depth:
        return "has a '(' that is not closed"
    return None


def check_expression_problem(text) -> Optional[str]:
    """What is wrong with a CHECK constraint's expression, or None: the same rules as a
    partial index's condition (one expression, the author's own SQL, kept verbatim)."""
    if type(text) is not str or not text.strip():
        return "takes a SQL expression as a string, as in Check(\"price >= 0\")"
    return index_condition_problem(text)


def quoted_names(text: str) -> list:
    """The double-quoted identifiers of a SQL expression (``"price"``), outside string
    literals: the names a check can be shown to use."""
    names = []
    position = 0
    while position < len(text):
        char = text[position]
        if char == "'":
            end = text.find("'", position + 1)
            position = len(text) if end < 0 else end + 1
            continue
        if char == '"':
            end = position + 1
            name = []
            while end < len(text):
                if text[end] == '"':
                    if text[end + 1:end + 2] == '"':
                        name.append('"')
                        end += 2
                        continue
                    break
                name.append(text[end])
                end += 1
            names.append("".join(name))
            position = end + 1
            continue
        position += 1
    return names


class Check(NamedTuple):
    """A CHECK constraint of a table: its name and the SQL expression the schema author
    wrote, kept verbatim (compared as written; the database's own spelling of it is
    drift's business)."""

    name: str
    expression: str


# The field types whose column holds no negative number: the integer of that size with
# an implied CHECK ("column" >= 0), named as PostgreSQL names a column's check.
POSITIVE_TYPES = {"PositiveIntegerField": "IntegerField", "PositiveBigIntegerField": "BigIntegerField",
                  "PositiveSmallIntegerField": "SmallIntegerField"}


class Index(NamedTuple):
    name: str
    fields: tuple
    unique: bool = False
    # A partial index's condition: SQL the schema author wrote, kept verbatim.
    where: Optional[str] = None
    # A PostgreSQL operator class for every column (varchar_pattern_ops); SQLite has none.
    opclass: Optional[str] = None
    # A UNIQUE constraint of the table rather than an index of its own (a database
    # taken over: Django's unique_together, for one); models.mp cannot say which.
    constraint: bool = False


@dataclass(frozen=True)
class Enum:
    name: str
    members: tuple  # ((key, stored value), ...) in declared order

    def values_by_key(self) -> dict:
        return dict(self.members)

    @property
    def values(self) -> tuple:
        return tuple(value for _key, value in self.members)

    @property
    def type_name(self) -> str:
        """The database type name (PostgreSQL) of this enum."""
        return self.name.lower()


@dataclass(frozen=True, eq=False)
class Model:
    """A table. Field order is the column order of a new table, but not part of the
    model's identity: moving a field in models.mp is not a change to migrate."""

    name: str
    table: str
    fields: tuple  # Field, in column order
    indexes: tuple = ()  # Index, sorted by name
    checks: tuple = ()   # Check, sorted by name

    def __eq__(self, other):
        if not isinstance(other, Model):
            return NotImplemented
        if self.name != other.name or self.table != other.table or self.indexes != other.indexes \
                or self.checks != other.checks:
            return False
        # The tuple comparison settles the common case; order is ignored only when it differs.
        return self.fields == other.fields or (
            len(self.fields) == len(other.fields) and sorted(self.fields) == sorted(other.fields))

    def __hash__(self):
        return hash((self.name, self.table, len(self.fields)))

    def field(self, name: str) -> Optional[Field]:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def primary_key(self) -> Optional[Field]:
        for f in self.fields:
            if f.primary_key:
                return f
        return None

    def column_of(self, field_name: str) -> str:
        found = self.field(field_name)
        return found.column if found is not None else field_name

    def replace(self, **changes) -> "Model":
        values = {"name": self.name, "table": self.table, "fields": self.fields, "indexes": self.indexes,
                  "checks": self.checks}
        values.update(changes)
        return Model(**values)


@dataclass(frozen=True)
class Schema:
    enums: dict = field(default_factory=dict)   # name -> Enum
    models: dict = field(default_factory=dict)  # name -> Model

    def __eq__(self, other):
        if not isinstance(other, Schema):
            return NotImplemented
        return self.enums == other.enums and self.models == other.models



_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def table_name_for(model_name: str) -> str:
    """The default table of a model: its name in snake_case (OrderLine -> order_line)."""
    return _CAMEL_BOUNDARY.sub("_", model_name).lower()


MAX_IDENTIFIER = 63  # PostgreSQL's limit in UTF-8 bytes; the stricter of the two databases

# The table of mf's ledger (the dialects write it): no model may take its name.
LEDGER_TABLE = "mf_migrations"


def clip_to_bytes(name: str, limit: int = MAX_IDENTIFIER) -> str:
    """``name`` cut to ``limit`` UTF-8 bytes, never inside a character: what
    PostgreSQL keeps of a longer identifier."""
    return name.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def fit_identifier(name: str, keep: str = "") -> str:
    """A name mf makes up (an index, a constraint), fitted to an identifier: ``name``
    itself when it has at most 63 UTF-8 bytes, else its start cut on a character
    boundary, ``_`` and 8 hex digits of the SHA-1 of the whole name, then ``keep``
    (the end of ``name`` that says what the object is, as ``_fkey``). Names that fit
    never change, so the names of existing projects stay as they are; a longer one
    gets the same short name on every run and every machine."""
    encoded = name.encode("utf-8")
    if len(encoded) <= MAX_IDENTIFIER:
        return name
    import hashlib

    digest = hashlib.sha1(encoded).hexdigest()[:8]
    return f"{clip_to_bytes(name, MAX_IDENTIFIER - 9 - len(keep.encode('utf-8')))}_{digest}{keep}"


def index_name(prefix: str, table: str, columns) -> str:
    """A default index name that fits every database: ``ix_<table>_<cols>``, shortened
    with a stable hash suffix when too long."""
    return fit_identifier(f"{prefix}_{table}_{'_'.join(columns)}")


def constraint_name(table: str, column: str, suffix: str) -> str:
    """The name of a one-column constraint: PostgreSQL's own convention
    (``<table>_<column>_fkey``, ``_key``, ``_check``) so databases made by the earlier
    tool match, shortened with a stable hash when longer than an identifier may be."""
    return fit_identifier(f"{table}_{column}_{suffix}", keep=f"_{suffix}")


def check_default_name(table: str, expression: str) -> str:
    """A check's name when models.mp gives none: ``ck_<table>_<8 hex digits of the
    expression's SHA-1>``, the table cut to fit. Stable: the same expression keeps its
    name whatever else the model holds; another expression is another constraint."""
    import hashlib

    digest = hashlib.sha1(expression.encode("utf-8")).hexdigest()[:8]
    return f"ck_{clip_to_bytes(table, MAX_IDENTIFIER - 12)}_{digest}"


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def same_name_keys(name: str) -> tuple:
    """What each database compares when it looks a name up: PostgreSQL its first 63
    bytes (identifiers are quoted, so case counts), SQLite the name with ASCII letters
    in one case (its comparison of names folds ASCII case only). Two names that
    share either key are one name to one of the databases."""
    # (The short and ASCII cases are the common ones, and cheaper.)
    kept = name if len(name) <= MAX_IDENTIFIER // 4 else clip_to_bytes(name)
    return (("postgresql", kept), ("sqlite", name.lower() if name.isascii() else name.translate(_ASCII_LOWER)))

"""The live catalog read back into the Schema IR (Prisma's db pull, Django's inspectdb).

Table -> model (named after the table, or after the expected model that has it),
column -> field (the dialect reads the type, length, precision, nullability and
default), single-column foreign keys, UNIQUEs and primary keys -> the field's flags,
indexes -> Index, PostgreSQL enum types and SQLite's CHECK (... IN (...)) lists ->
enums. What the IR cannot hold (an expression index, a composite foreign key, a type
mf has no field for, a default it cannot write) is returned as notes, one per object.

Given the schema expected (drift's repair), names come from it and a column that
matches its expected column keeps the expected field as it is: only what differs is
read from the catalog, so the differ sees only the drift.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .dialects.base import LEDGER_TABLE, check_name, foreign_key_name, primary_key_name, unique_name
from .dialects.catalog import Catalog, Table
from .schema import (POSITIVE_TYPES, Check, Enum, Field, Index, Model, Schema, check_default_name,
                     check_expression_problem, index_condition_problem, index_name)


@dataclass(frozen=True)
class InspectResult:
    text: str      # models.mp for the live database
    notes: list    # [(table or None, sentence)]: what models.mp cannot say (also // comments in text)
    tables: int


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def index_text(index) -> str:
    columns = ", ".join(c + (" DESC" if c in index.descending else "") for c in index.columns or ("<expression>",))
    if any(index.opclasses):
        columns = ", ".join(c + (f" {o}" if o else "") for c, o in zip(columns.split(", "), index.opclasses))
    text = f"{'UNIQUE ' if index.unique else ''}INDEX ({columns})"
    return text + (f" WHERE {index.condition}" if index.condition else "")



_POSITIVE_CHECK = re.compile(r'^[\s(]*("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_]*)\s*>=\s*0[\s)]*$')
_POSITIVE_OF = {base: positive for positive, base in POSITIVE_TYPES.items()}


def positive_column(table: str, check) -> Optional[str]:
    """The column a catalog CHECK makes a positive integer (``"n" >= 0``, as PostgreSQL
    shows it ``(n >= 0)``), named as a column's check is named; else None."""
    found = _POSITIVE_CHECK.match(check.expression)
    if found is None:
        return None
    column = found.group(1)
    if column.startswith('"'):
        column = column[1:-1].replace('""', '"')
    return column if check.name == check_name(table, column) else None


def model_name_for(table: str) -> str:
    """A model name for a table no model names: order_line -> OrderLine."""
    name = "".join(part[:1].upper() + part[1:] for part in table.replace("-", "_").split("_") if part)
    if not name or not (name[0].isalpha()):
        name = "T" + name
    return "".join(c if c.isalnum() else "_" for c in name)


def field_name_for(column: str) -> str:
    """A field name for a column: the column itself when it is an identifier."""
    if _IDENTIFIER.match(column):
        return column
    name = re.sub(r"[^A-Za-z0-9_]", "_", column)
    return name if _IDENTIFIER.match(name) else "f_" + name


def enum_name_for(type_name: str) -> str:
    return model_name_for(type_name)


def schema_of_catalog(catalog: Catalog, dialect, expected: Optional[Schema] = None,
                      expected_catalog: Optional[Catalog] = None, *, unique_indexes: bool = False) -> tuple:
    """(Schema, notes) of a catalog; notes are (table or None, sentence) for what the
    Schema cannot hold. With ``expected`` (and its catalog), names come from it
    (models, fields, enums), and a column that matches its expected one keeps the
    expected field exactly: only what differs is read from the catalog.
    ``unique_indexes``: a one-column UNIQUE index stays an index under its own name
    (else it reads as the field's unique=true)."""
    notes: list = []
    expected = expected or Schema()
    models_by_table = {m.table: m for m in expected.models.values()}
    model_names = {t: (models_by_table[t].name if t in models_by_table else model_name_for(t))
                   for t in catalog.tables if t != LEDGER_TABLE}
    enums = _enums_of(catalog, dialect, expected, models_by_table)
    enum_by_type = {e.type_name: name for name, e in enums.items()}
    models = {}
    for table_name, model_name in sorted(model_names.items()):
        table = catalog.tables[table_name]
        model = models_by_table.get(table_name)
        wanted = expected_catalog.tables.get(table_name) if expected_catalog else None
        models[model_name] = _model_of(table, model_name, model, wanted, dialect, model_names,
                                       enum_by_type, enums, notes, unique_indexes)
    return Schema(enums=enums, models=models), notes


def _enums_of(catalog: Catalog, dialect, expected: Schema, models_by_table: dict) -> dict:
    """The enums: PostgreSQL's types; on SQLite the IN lists of the CHECKs, named after
    the expected enum of their column (else after the column)."""
    found: dict = {}
    if dialect.has_enum_types:
        by_type = {e.type_name: e for e in expected.enums.values()}
        for type_name, labels in sorted(catalog.enums.items()):
            known = by_type.get(type_name)
            name = known.name if known is not None else enum_name_for(type_name)
            found[name] = Enum(name, _members(labels, known))
        return found
    for table_name, table in sorted(catalog.tables.items()):
        model = models_by_table.get(table_name)
        for check in table.checks:
            f = _field_by_column(model, check.column)
            known = expected.enums.get(f.enum) if f is not None and f.enum else None
            if known is None and any(e.values == check.values for e in found.values()):
                continue  # the same values on another column: one enum
            name = known.name if known is not None else enum_name_for(f"{table_name}_{check.column}")
            if name not in found:
                found[name] = Enum(name, _members(check.values, known))
    for name, enum in expected.enums.items():
        found.setdefault(name, enum)  # used by no column: nothing in SQLite says otherwise
    return found


def _members(labels, known: Optional[Enum]) -> tuple:
    keys = {value: key for key, value in known.members} if known is not None else {}
    members, used = [], set()
    for label in labels:
        key = keys.get(label)
        if key is None:
            key = "".join(c if c.isalnum() else "_" for c in str(label).upper()) or "EMPTY"
            if not key[0].isalpha():
                key = "V_" + key
            while key in used or key in keys.values():
                key += "_"
        used.add(key)
        members.append((key, label))
    return tuple(members)


def _field_by_column(model: Optional[Model], column: str) -> Optional[Field]:
    if model is None:
        return None
    for f in model.fields:
        if f.column == column:
            return f
    return None


def _model_of(table: Table, model_name: str, model: Optional[Model], wanted: Optional[Table], dialect,
              model_names: dict, enum_by_type: dict, enums: dict, notes: list, unique_indexes: bool) -> Model:
    keys = {key.columns[0]: key for key in table.foreign_keys if len(key.columns) == 1}
    for key in table.foreign_keys:
        if len(key.columns) > 1:
            notes.append((table.name, f"foreign key ({', '.join(key.columns)}) -> {key.target} has several columns"))
    if len(table.primary_key) > 1:
        notes.append((table.name, f"primary key ({', '.join(table.primary_key)}) has several columns"))
    for check in table.checks:
        if check.column not in table.columns:
            notes.append((table.name, f"check {check.name or check.column} is not on a column"))
    unique_columns = {u.columns[0] for u in table.uniques if len(u.columns) == 1}
    unique_names = {u.columns[0]: u.name for u in table.uniques if len(u.columns) == 1}
    unique_columns |= {i.columns[0] for i in table.indexes if i.unique and i.columns and len(i.columns) == 1
                       and i.condition is None and model is None and not unique_indexes}
    checks = {c.column: c for c in table.checks}
    positive = {positive_column(table.name, c) for c in table.check_constraints} - {None}
    fields = []
    for column in table.columns.values():
        known = _field_by_column(model, column.name)
        if known is not None and wanted is not None and _same_column(table, wanted, column.name):
            fields.append(known)
            continue
        enum = None
        if dialect.has_enum_types:
            enum = enum_by_type.get(column.type.strip('"'))
        elif column.name in checks:
            enum = next((name for name, e in enums.items() if e.values == checks[column.name].values), None)
        f, column_notes = dialect.field_of_column(column, known.name if known else field_name_for(column.name), enum)
        notes.extend((table.name, note) for note in column_notes)
        if f.type == "EnumField" and f.has_default and f.default not in enums[f.enum].values:
            f = f._replace(has_default=False, default=None)
        if column.name in positive and f.type in _POSITIVE_OF:
            f = f._replace(type=_POSITIVE_OF[f.type])
        key = keys.get(column.name)
        if key is not None:
            target = model_names.get(key.target, model_name_for(key.target))
            f = f._replace(type="ForeignKey", target=target, on_delete=_ON_DELETE.get(key.on_delete, "NO_ACTION"),
                           max_length=None, max_digits=None, decimal_places=None, enum=None,
                           fk_name=_own_name(key.name, foreign_key_name(table.name, column.name)),
                           deferrable=(("deferred" if key.initially_deferred else "immediate")
                                       if key.deferrable else None))
            if key.deferrable and not key.initially_deferred:  # the language says only INITIALLY DEFERRED
                notes.append((table.name, f"the foreign key of {column.name} is DEFERRABLE INITIALLY IMMEDIATE"))
        if table.primary_key == (column.name,):
            f = f._replace(primary_key=True, null=False,
                           key_name=_own_name(table.primary_key_name, primary_key_name(table.name)))
            if f.type == "ForeignKey":  # a key that is a foreign key: one row each, as in inheritance
                f = f._replace(type="OneToOneField", unique=True)
        elif column.name in unique_columns:
            one_to_one = f.type == "ForeignKey" and (known is None or known.type == "OneToOneField")
            named = unique_names.get(column.name)
            f = f._replace(unique=True, type="OneToOneField" if one_to_one else f.type,
                           key_name=_own_name(named, unique_name(table.name, column.name)))
        fields.append(f)
    indexes = []
    known_indexes = {i.name: i for i in model.indexes} if model is not None else {}
    by_column = {f.column: f.name for f in fields}
    for unique in table.uniques:
        if len(unique.columns) > 1 and all(c in by_column for c in unique.columns):
            name = _own_name(unique.name, "") or index_name("uq", table.name, unique.columns)
            indexes.append(Index(name, tuple(by_column[c] for c in unique.columns), True, constraint=True))
    for index in table.indexes:
        if index.name in known_indexes and wanted is not None and \
                index_text(index) in [index_text(i) for i in wanted.indexes if i.name == index.name]:
            indexes.append(known_indexes[index.name])
        elif index.columns and not index.descending and all(c in by_column for c in index.columns) \
                and (index.condition is None or index_condition_problem(index.condition) is None) \
                and len(set(index.opclasses)) <= 1 and (not index.opclasses or index.opclasses[0]):
            if index.unique and len(index.columns) == 1 and model is None and not unique_indexes \
                    and index.condition is None:
                continue  # read as the field's unique=true
            indexes.append(Index(index.name, tuple(by_column[c] for c in index.columns), index.unique,
                                 index.condition, index.opclasses[0] if index.opclasses else None))
        else:
            notes.append((table.name, f"index {index.name} ({index_text(index)}) cannot be written in models.mp"))
    checks = _checks_of(table, model, wanted, {f.column for f in fields if f.type in POSITIVE_TYPES}, notes)
    return Model(model_name, table.name, tuple(fields), tuple(sorted(indexes)), checks)


def _checks_of(table: Table, model: Optional[Model], wanted: Optional[Table], positive: set, notes: list) -> tuple:
    """The table's CHECK constraints as the model's checks (those a positive field implies
    are its own). A check the expected model has, as the database showed it when mf made
    it, keeps the expected expression as written."""
    known = {c.name: c for c in model.checks} if model is not None else {}
    shown = {c.name: c.expression for c in wanted.check_constraints} if wanted is not None else {}
    checks = {}
    for constraint in table.check_constraints:
        if positive_column(table.name, constraint) in positive:
            continue
        name = constraint.name or check_default_name(table.name, constraint.expression)
        if name in known and shown.get(name) == constraint.expression:
            checks[name] = known[name]
        elif check_expression_problem(constraint.expression) is None and "\n" not in constraint.expression \
                and "\r" not in constraint.expression:  # a string of models.mp is one line
            checks[name] = Check(name, constraint.expression)
        else:
            notes.append((table.name, f"check {name} ({constraint.expression}) cannot be written in models.mp"))
    return tuple(checks[name] for name in sorted(checks))


def _own_name(name: Optional[str], conventional: str) -> Optional[str]:
    """A constraint's name where it is not the one mf gives (None: mf's, or none at all;
    SQLite's automatic index of an unnamed UNIQUE is no name a statement can use)."""
    if not name or name == conventional or name.startswith("sqlite_autoindex_"):
        return None
    return name


_ON_DELETE = {"CASCADE": "CASCADE", "SET NULL": "SET_NULL", "RESTRICT": "RESTRICT", "NO ACTION": "NO_ACTION",
              "SET DEFAULT": "SET_DEFAULT"}


def _same_column(actual: Table, expected: Table, column: str) -> bool:
    """Does the column, and every constraint on it alone, match the expected table?"""
    if actual.columns.get(column) != expected.columns.get(column):
        return False
    if (actual.primary_key == (column,)) != (expected.primary_key == (column,)):
        return False

    def on(table: Table) -> tuple:
        keys = sorted(repr(k) for k in table.foreign_keys if k.columns == (column,))
        uniques = sum(1 for u in table.uniques if u.columns == (column,))
        checks = sorted(c.values for c in table.checks if c.column == column)
        positive = sorted(c.expression for c in table.check_constraints if positive_column(table.name, c) == column)
        return keys, uniques, checks, positive

    return on(actual) == on(expected)


async def inspect(config):
    """The API's inspect: read the whole live catalog, write it as models.mp."""
    from . import drivers
    from .dialects import dialect_for
    from .errors import DatabaseError
    from .language.emit import models_text

    dialect = dialect_for(config.driver)
    if not drivers.database_exists(config):
        raise DatabaseError(f"the database {config.display_dsn} does not exist")
    async with await drivers.connect(config) as connection:
        catalog = await dialect.read_catalog(connection)
    catalog.tables.pop(LEDGER_TABLE, None)
    schema, notes = schema_of_catalog(catalog, dialect)
    header = f"Read from the {dialect.title} database {config.display_dsn} by `mf db inspect`."
    from . import store

    directory = config.migrations_dir
    index_foreign_keys = store.index_foreign_keys(config.index_foreign_keys, store.read_snapshot_data(directory),
                                                  bool(store.list_migration_files(directory)))
    return InspectResult(models_text(schema, notes, header, index_foreign_keys), notes, len(schema.models))

"""Operations as records: the steps between two schemas, as plain data.

Each operation says how it changes a Schema (``apply``, the fold that keeps
schema.json honest), its inverse (``reverse``) and whether it can lose data
(``destructive``). It knows no SQL and no file: its JSON form is codec.py's, its
text text.py's.

Operations that touch a table carry a TableDef (tables.py): the table as it stands
right after the operation, so that a dialect needs no other file to write its SQL.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from typing import ClassVar, Optional

from ..errors import MigrationFileError
from ..schema import Enum, Field, Index, Model, Schema
from . import text
from .tables import FoldingSchema, TableDef, attach_tables, fold_start, folded, folding, table_def


@dataclass(frozen=True)
class Operation:
    op: ClassVar[str] = ""
    destructive: ClassVar[bool] = False
    is_data_step: ClassVar[bool] = False  # hand-written SQL or Python: changes rows, not the schema

    @property
    def model_name(self) -> Optional[str]:
        return getattr(self, "model", None)

    def apply(self, schema: Schema) -> Schema:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def with_table(self, schema_after: Schema) -> "Operation":
        """This operation with its TableDef taken from the schema right after it."""
        return self

    def with_table_before(self, schema_before: Schema) -> "Operation":
        """This operation with what it needs of the schema right before it (a drop keeps
        the table it drops, to be reversed)."""
        return self

    def describe(self) -> str:
        """How the operation reads in the tree makemigrations prints."""
        return text.describe(self)

    def name_part(self) -> str:
        """Its part of a migration file's name."""
        return text.name_part(self)

    def to_json(self) -> dict:
        """Its form in a migration file."""
        from .codec import operation_to_json

        return operation_to_json(self)


def _with_models(schema: Schema, **changed) -> Schema:
    if type(schema) is FoldingSchema:
        schema.models.update(changed)
        return schema
    models = dict(schema.models)
    models.update(changed)
    return Schema(enums=schema.enums, models=models)


def _replace_field(model: Model, name: str, new: Field) -> Model:
    return model.replace(fields=tuple(new if f.name == name else f for f in model.fields))


def _model(schema, name, op):
    try:
        return schema.models[name]
    except KeyError:
        raise MigrationFileError(f"{op}: model '{name}' does not exist at this point of the history") from None


def _field_of(model, name, op):
    found = model.field(name)
    if found is None:
        raise MigrationFileError(f"{op}: field '{model.name}.{name}' does not exist at this point of the history")
    return found


@dataclass(frozen=True)
class CreateEnum(Operation):
    op: ClassVar[str] = "create_enum"
    name: str
    members: tuple

    def apply(self, schema):
        enums = dict(schema.enums)
        enums[self.name] = Enum(self.name, self.members)
        return Schema(enums=enums, models=schema.models)

    def reverse(self):
        return DropEnum(self.name, self.members)


@dataclass(frozen=True)
class DropEnum(Operation):
    op: ClassVar[str] = "drop_enum"
    destructive: ClassVar[bool] = True
    name: str
    members: tuple

    def apply(self, schema):
        enums = dict(schema.enums)
        enums.pop(self.name, None)
        return Schema(enums=enums, models=schema.models)

    def reverse(self):
        return CreateEnum(self.name, self.members)


@dataclass(frozen=True)
class AlterEnum(Operation):
    op: ClassVar[str] = "alter_enum"
    name: str
    old_members: tuple
    new_members: tuple
    tables: tuple = ()  # TableDef of every table with a column of this enum, after the change

    @property
    def destructive(self):
        return bool(self.removed_values)

    @property
    def removed_values(self) -> tuple:
        kept = {key for key, _v in self.new_members}
        return tuple(v for k, v in self.old_members if k not in kept)

    def apply(self, schema):
        enums = dict(schema.enums)
        enums[self.name] = Enum(self.name, self.new_members)
        return Schema(enums=enums, models=schema.models)

    def with_table(self, schema_after):
        users = [name for name, m in sorted(schema_after.models.items())
                 if any(f.enum == self.name for f in m.fields)]
        return replace(self, tables=tuple(table_def(schema_after, name) for name in users))

    def reverse(self):
        return AlterEnum(self.name, self.new_members, self.old_members)


@dataclass(frozen=True)
class CreateModel(Operation):
    op: ClassVar[str] = "create_model"
    model: str
    table: str
    table_def: Optional[TableDef] = None
    deferred_keys: tuple = ()  # foreign keys whose constraint a later add_fk creates (cycles)

    @property
    def definition(self) -> Model:
        return self.table_def.model

    def apply(self, schema):
        return _with_models(schema, **{self.model: self.definition})

    def with_table(self, schema_after):
        found = table_def(schema_after, self.model, self.deferred_keys)
        if self.table_def is not None:
            # A deferred key's target is often created later in the migration; the
            # definition the differ gave (from the final schema) knows where it points.
            known = {k: r for k, r in self.table_def.deferred.items() if k not in found.deferred}
            if known:
                found = replace(found, deferred={**found.deferred, **known})
        return replace(self, table_def=found)

    def reverse(self):
        return DropModel(self.model, self.table, self.table_def)


@dataclass(frozen=True)
class DropModel(Operation):
    op: ClassVar[str] = "drop_model"
    destructive: ClassVar[bool] = True
    model: str
    table: str
    table_def: Optional[TableDef] = None  # the table as it was, to recreate it when reversed

    def apply(self, schema):
        models = dict(schema.models)
        models.pop(self.model, None)
        return Schema(enums=schema.enums, models=models)

    def with_table_before(self, schema_before):
        if self.table_def is not None or self.model not in schema_before.models:
            return self
        return replace(self, table_def=table_def(schema_before, self.model))

    def reverse(self):
        return CreateModel(self.model, self.table, self.table_def)


@dataclass(frozen=True)
class RenameModel(Operation):
    op: ClassVar[str] = "rename_model"
    old_name: str
    new_name: str
    old_table: str
    new_table: str
    table_def: Optional[TableDef] = None  # the table after the rename: its constraints are renamed too

    @property
    def model(self):
        return self.new_name

    def with_table(self, schema_after):
        return replace(self, table_def=table_def(schema_after, self.new_name))

    def apply(self, schema):
        models = {}
        for name, m in schema.models.items():
            if name == self.old_name:
                m = m.replace(name=self.new_name, table=self.new_table)
                name = self.new_name
            if any(f.target == self.old_name for f in m.fields):
                m = m.replace(fields=tuple(f._replace(target=self.new_name) if f.target == self.old_name
                                           else f for f in m.fields))
            models[name] = m
        return Schema(enums=schema.enums, models=models)

    def reverse(self):
        return RenameModel(self.new_name, self.old_name, self.new_table, self.old_table)


@dataclass(frozen=True)
class _TableOperation(Operation):
    """An operation on one existing table; table_def is that table right after it."""

    model: str
    table: str

    def with_table(self, schema_after):
        return replace(self, table_def=table_def(schema_after, self.model))


@dataclass(frozen=True)
class AddColumn(_TableOperation):
    op: ClassVar[str] = "add_column"
    field: Field = None
    table_def: Optional[TableDef] = None

    def apply(self, schema):
        model = _model(schema, self.model, self.op)
        return _with_models(schema, **{self.model: model.replace(fields=model.fields + (self.field,))})

    def reverse(self):
        return DropColumn(self.model, self.table, self.field)


@dataclass(frozen=True)
class DropColumn(_TableOperation):
    op: ClassVar[str] = "drop_column"
    destructive: ClassVar[bool] = True
    field: Field = None  # the dropped field, to add it back when reversed
    table_def: Optional[TableDef] = None

    def apply(self, schema):
        model = _model(schema, self.model, self.op)
        return _with_models(schema, **{self.model: model.replace(
            fields=tuple(f for f in model.fields if f.name != self.field.name))})

    def reverse(self):
        return AddColumn(self.model, self.table, self.field)


@dataclass(frozen=True)
class AlterColumn(_TableOperation):
    """A column changed. When the old side is a foreign key, ``old_key`` is the primary key
    it pointed to, as it was: the old column had that key's type (SPEC §2), which the
    TableDef, made after the change, cannot tell once the field points elsewhere or
    nowhere. With the same target, it tells whether the key's type changed under the
    column (the TableDef's reference is the key as it is now): files written before it
    was recorded for every foreign key have it only in that case."""

    op: ClassVar[str] = "alter_column"
    old: Field = None
    new: Field = None
    table_def: Optional[TableDef] = None
    old_key: Optional[Field] = None
    # What changed (see column_changes). The differ says; otherwise (a migration file,
    # which does not hold it) it is worked out here from both definitions, once.
    changes: Optional[frozenset] = None
    # A one-off value for the rows that hold NULL when the column becomes NOT NULL
    # (backfills.py), in the stored form of a default; written before the constraint.
    backfill: object = None

    def __post_init__(self):
        if self.changes is None:
            object.__setattr__(self, "changes", column_changes(self.old, self.new, self.old_key, self.new_key))

    @property
    def destructive(self):
        new_key = self.new_key
        return is_narrowing(self.old, self.new) or (
            self.old_key is not None and new_key is not None
            and referencing_type(self.old_key) != referencing_type(new_key)
            and is_narrowing(_as_key(self.old_key), _as_key(new_key)))

    @property
    def new_key(self) -> Optional[Field]:
        """The referenced primary key as it is after this operation (from the TableDef)."""
        if self.table_def is None:
            return None
        reference = self.table_def.references.get(self.new.name) or self.table_def.deferred.get(self.new.name)
        return reference.key if reference is not None else None

    def apply(self, schema):
        model = _model(schema, self.model, self.op)
        return _with_models(schema, **{self.model: _replace_field(model, self.old.name, self.new)})

    def reverse(self):
        # The old side of the reverse is this new side: the key it points to now.
        return AlterColumn(self.model, self.table, self.new, self.old,
                           old_key=self.new_key if self.new.target is not None else None)

    def follows_key(self) -> bool:
        """Does the column change because the key it keeps pointing to changed type?"""
        if self.old_key is None or self.old.target != self.new.target:
            return False
        new_key = self.new_key
        if new_key is None:  # not attached yet: only a key change alters nothing else
            return self.old == self.new
        return referencing_type(self.old_key) != referencing_type(new_key)


@dataclass(frozen=True)
class RenameColumn(_TableOperation):
    op: ClassVar[str] = "rename_column"
    old: Field = None
    new: Field = None  # the same definition under its new name (and column)
    table_def: Optional[TableDef] = None

    def apply(self, schema):
        model = _model(schema, self.model, self.op)
        renamed = _replace_field(model, self.old.name, self.new)
        indexes = tuple(i._replace(fields=tuple(self.new.name if n == self.old.name else n for n in i.fields))
                        for i in renamed.indexes)
        return _with_models(schema, **{self.model: renamed.replace(indexes=indexes)})

    def reverse(self):
        return RenameColumn(self.model, self.table, self.new, self.old)


@dataclass(frozen=True)
class AddForeignKey(_TableOperation):
    op: ClassVar[str] = "add_fk"
    field_name: str = ""
    target: str = ""
    on_delete: str = "CASCADE"
    table_def: Optional[TableDef] = None

    def apply(self, schema):
        model = _model(schema, self.model, self.op)
        current = _field_of(model, self.field_name, self.op)
        updated = current._replace(target=self.target, on_delete=self.on_delete)
        return _with_models(schema, **{self.model: _replace_field(model, self.field_name, updated)})

    def reverse(self):
        return DropForeignKey(self.model, self.table, self.field_name, self.target, self.on_delete)


@dataclass(frozen=True)
class DropForeignKey(_TableOperation):
    """Removes a foreign key's constraint (the column stays); used before dropping a cycle."""

    op: ClassVar[str] = "drop_fk"
    field_name: str = ""
    target: str = ""
    on_delete: str = "CASCADE"
    table_def: Optional[TableDef] = None

    def apply(self, schema):
        return schema  # the field keeps its target; only the constraint goes

    def with_table(self, schema_after):
        return replace(self, table_def=table_def(schema_after, self.model, (self.field_name,)))

    def reverse(self):
        return AddForeignKey(self.model, self.table, self.field_name, self.target, self.on_delete)


@dataclass(frozen=True)
class AddIndex(_TableOperation):
    op: ClassVar[str] = "add_index"
    index: Index = None
    columns: tuple = ()
    table_def: Optional[TableDef] = None

    def apply(self, schema):
        model = _model(schema, self.model, self.op)
        indexes = tuple(sorted(model.indexes + (self.index,), key=lambda i: i.name))
        return _with_models(schema, **{self.model: model.replace(indexes=indexes)})

    def with_table(self, schema_after):
        model = schema_after.models[self.model]
        # A UNIQUE constraint is part of the table: SQLite rebuilds the table to add one.
        table = table_def(schema_after, self.model) if self.index.constraint else None
        return replace(self, columns=tuple(model.column_of(n) for n in self.index.fields), table_def=table)

    def reverse(self):
        return DropIndex(self.model, self.table, self.index, self.columns)


@dataclass(frozen=True)
class DropIndex(_TableOperation):
    op: ClassVar[str] = "drop_index"
    index: Index = None
    columns: tuple = ()
    table_def: Optional[TableDef] = None

    def apply(self, schema):
        model = _model(schema, self.model, self.op)
        indexes = tuple(i for i in model.indexes if i.name != self.index.name)
        return _with_models(schema, **{self.model: model.replace(indexes=indexes)})

    def with_table(self, schema_after):
        if not self.index.constraint:
            return self
        return replace(self, table_def=table_def(schema_after, self.model))

    def reverse(self):
        return AddIndex(self.model, self.table, self.index, self.columns)


def fill_placeholder(table: str, column: str) -> str:
    """The SQL a run_sql template holds until the user writes the statements that fill
    ``table.column``: a comment, which migrate refuses to run (see RunSQL.unfilled)."""
    return f"-- mf: replace this line with the SQL that fills {table}.{column} in every row"


_FILL_PLACEHOLDER = re.compile(r"-- mf: replace this line with the SQL that fills (.+?) in every row")


@dataclass(frozen=True)
class RunSQL(Operation):
    """Hand-written SQL, run in the migration's transaction. ``sql`` is one text for
    every database, or ((database, text), ...) with one per database. ``reverse_sql``
    undoes it, in the same forms: "" when there is nothing to undo, None when it cannot
    be undone. It changes no schema: schema.json does not see it."""

    op: ClassVar[str] = "run_sql"
    is_data_step: ClassVar[bool] = True
    sql: object = ""
    reverse_sql: object = None
    doc: Optional[str] = dataclass_field(default=None, compare=False)  # the file's "doc" note, never run

    def apply(self, schema):
        return schema

    def reverse(self):
        return RunSQL(self.reverse_sql, self.sql)

    @property
    def unfilled(self) -> Optional[str]:
        """The column a makemigrations template asks to fill ("table.column"), while its
        SQL is still that template's placeholder line; else None."""
        if not isinstance(self.sql, str):
            return None
        found = _FILL_PLACEHOLDER.fullmatch(self.sql.strip())
        return found.group(1) if found else None

    def sql_for(self, database: str) -> Optional[str]:
        """The text for ``database``; None when a per-database form has none for it."""
        if isinstance(self.sql, str):
            return self.sql
        return dict(self.sql).get(database)


@dataclass(frozen=True)
class RunPython(Operation):
    """A function of the project's, ``package.module:name`` (an ``async def name(conn)``),
    run in the migration's transaction (datasteps.py). ``reverse_function`` undoes it:
    another such function, "" when there is nothing to undo, None when it cannot be
    undone. It changes no schema."""

    op: ClassVar[str] = "run_python"
    is_data_step: ClassVar[bool] = True
    function: str = ""
    reverse_function: Optional[str] = None

    def apply(self, schema):
        return schema

    def reverse(self):
        return RunPython(self.reverse_function, self.function)


# ---------------------------------------------------------------- helpers

def is_narrowing(old: Field, new: Field) -> bool:
    """Could this change lose or reject existing data?"""
    if old.type != new.type:
        widening = {("SmallIntegerField", "IntegerField"), ("SmallIntegerField", "BigIntegerField"),
                    ("IntegerField", "BigIntegerField"), ("CharField", "TextField"),
                    ("IntegerField", "FloatField"), ("SmallIntegerField", "FloatField"),
                    ("AutoField", "BigAutoField")}
        return (old.type, new.type) not in widening
    if new.max_length is not None and old.max_length is not None and new.max_length < old.max_length:
        return True
    if new.max_digits is not None and old.max_digits is not None and (
            new.max_digits < old.max_digits or (new.decimal_places or 0) < (old.decimal_places or 0)):
        return True
    if old.null and not new.null:
        return True
    if new.unique and not old.unique:
        return True
    return False


def referencing_type(key: Field) -> tuple:
    """What a foreign key column takes from the primary key it points to: the key's type
    (an auto key as the integer it is) and size. A key that is itself a reference gives
    an integer column, as the dialects write it. Two keys with the same answer give
    referencing columns of the same type."""
    if key.target is not None:
        return ("IntegerField",)
    kind = {"AutoField": "IntegerField", "BigAutoField": "BigIntegerField"}.get(key.type, key.type)
    return (kind, key.max_length, key.max_digits, key.decimal_places, key.enum)


# What an alter_column can change, by Field attribute: a dialect asks op.changes
# instead of comparing the two definitions again. "key" is not an attribute: the
# primary key a foreign key keeps pointing to changed type under it.
_ASPECT_OF = {
    "name": "name", "column": "column",
    "type": "type", "max_length": "type", "max_digits": "type", "decimal_places": "type", "enum": "type",
    "null": "null", "unique": "unique", "primary_key": "primary_key",
    "auto_now": "auto_now", "auto_now_add": "auto_now",
    "target": "fk", "on_delete": "fk", "fk_name": "fk", "deferrable": "fk", "db_default": "default",
    "key_name": "unique",
}
COLUMN_ASPECTS = frozenset(_ASPECT_OF.values()) | {"default", "key"}


def column_changes(old: Field, new: Field, old_key: Optional[Field] = None,
                   new_key: Optional[Field] = None) -> frozenset:
    """What differs between two definitions of a column (names from COLUMN_ASPECTS).
    ``old_key`` is the primary key the old side pointed to, ``new_key`` the one the new
    side points to; without ``new_key`` (not known yet), a change that keeps the field
    as it was and records an old key is the key's."""
    changed = {aspect for attribute, aspect in _ASPECT_OF.items()
               if getattr(old, attribute) != getattr(new, attribute)}
    if old.has_default != new.has_default or (old.has_default and old.default != new.default):
        changed.add("default")
    if old_key is not None and old.target == new.target and (
            referencing_type(old_key) != referencing_type(new_key) if new_key is not None else old == new):
        changed.add("key")
    return frozenset(changed)


def _as_key(key: Field) -> Field:
    """A primary key as a referencing column sees it: its type only."""
    return key._replace(null=False, unique=False, primary_key=False, has_default=False, default=None)


def undo(operations, schema_after: Schema) -> tuple[list, Schema]:
    """The operations that undo a migration's ``operations``: each one's reverse, the
    last first, each with the TableDef of the schema right after it (``schema_after``
    is the schema the migration left). Returns them and the schema they lead back to.

    Enum values come back before the tables, as the differ adds them before the
    tables: the old definitions the undone table operations bring back use the old
    values (a dropped column's default among them). Enum values the migration added
    go after the tables, once the undone table operations dropped the columns that
    use them (an added column whose default is a new value). Types are created first
    and dropped last, which is always safe."""
    reverses = [part for operation in reversed(tuple(operations)) for part in _enum_undo_parts(operation.reverse())]
    reverses.sort(key=_undo_rank)
    return attach_tables(_keys_follow_after(reverses), schema_after)


def _enum_undo_parts(operation) -> list:
    """An alter_enum that both brings values back and takes values away, as two: the
    values coming back (and renamed) first, those going away in a second alter_enum."""
    if operation.op != "alter_enum" or not operation.removed_values:
        return [operation]
    target = dict(operation.new_members)
    current = {key for key, _value in operation.old_members}
    between = tuple((key, target.get(key, value)) for key, value in operation.old_members) \
        + tuple((key, value) for key, value in operation.new_members if key not in current)
    parts = [AlterEnum(operation.name, operation.old_members, between),
             AlterEnum(operation.name, between, operation.new_members)]
    return [part for part in parts if part.old_members != part.new_members]


def _undo_rank(operation) -> float:
    if operation.op == "alter_enum" and operation.removed_values:
        return 2.5  # after the table operations, before types are dropped
    return _UNDO_RANK.get(operation.op, 2)


def _keys_follow_after(reverses: list) -> list:
    """A primary key changing type is, forward: drop the keys pointing at it, change it,
    then change each referencing column to follow (which adds its key back). Reversed
    one by one, each column would follow before the key changed back and its key be
    added twice; the undo takes the same shape as the change instead."""
    reverses = list(reverses)
    for position, operation in enumerate(reverses):
        if operation.op != "add_fk":
            continue
        follower = next((p for p, o in enumerate(reverses[:position])
                         if o.op == "alter_column" and o.model == operation.model
                         and o.new.name == operation.field_name and "key" in o.changes), None)
        if follower is not None:
            reverses[position] = reverses[follower]
            reverses[follower] = operation.reverse()
    # In a chain of keys (a foreign key to a model whose key is a foreign key), a column
    # follows after the key it points to has changed back, as forward.
    for _round in range(len(reverses)):
        moved = False
        for position, operation in enumerate(reverses):
            if not _follows_a_key(operation):
                continue
            pointed = next((p for p in range(position + 1, len(reverses))
                            if _follows_a_key(reverses[p]) and reverses[p].model == operation.new.target
                            and reverses[p].new.primary_key), None)
            if pointed is not None:
                reverses.insert(pointed, reverses.pop(position))
                moved = True
                break
        if not moved:
            break
    return reverses


def _follows_a_key(operation) -> bool:
    return operation.op == "alter_column" and "key" in operation.changes


_UNDO_RANK = {"create_enum": 0, "alter_enum": 1, "drop_enum": 3}


def fold(operations, schema: Schema) -> Schema:
    schema = fold_start(schema)
    for operation in operations:
        schema = folding(operation.apply(schema))
    return folded(schema)



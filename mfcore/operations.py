"""Operations: the steps between two schemas, as plain data.

Each operation knows its JSON form (the new one, and the earlier tool's), how it
reads in the tree makemigrations prints, its part of a file name, whether it loses
data, how it changes a Schema (``apply``, the fold that keeps schema.json honest)
and its inverse. It knows no SQL.

Operations that touch a table carry a TableDef: the table as it stands right after
the operation, with the primary keys its foreign keys point to and the values of
its enums. A dialect can then turn the operation into SQL without reading any
other file, including SQLite's rebuild of the whole table.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Optional

from .errors import MigrationFileError
from .schema import Enum, Field, Index, Model, Schema
from .snapshot import (enum_members_from_json, field_from_json, field_to_json, index_from_json,
                       index_to_json, model_from_json, model_to_json)


# ---------------------------------------------------------------- table definitions

@dataclass(frozen=True)
class Reference:
    """Where a foreign key points: the target's table and primary key."""

    model: str
    table: str
    column: str
    key: Field  # the target's primary key field: its type decides the referencing column's type


@dataclass(frozen=True)
class TableDef:
    """A table with everything needed to write its CREATE TABLE.

    ``references`` has an entry for each foreign key whose constraint exists; a key
    left out (a cycle's key, added later by add_fk) is a plain column for now, and
    ``deferred`` says where it will point: its column still takes the type of the
    target's primary key.
    """

    model: Model
    references: dict = field(default_factory=dict)  # field name -> Reference
    enums: dict = field(default_factory=dict)       # enum name -> tuple of stored values
    deferred: dict = field(default_factory=dict)    # field name -> Reference, no constraint yet

    def to_json(self) -> dict:
        doc = {
            "model": model_to_json(self.model),
            "references": _references_json(self.references),
            "enums": {name: list(values) for name, values in self.enums.items()},
        }
        if self.deferred:
            doc["deferred"] = _references_json(self.deferred)
        return doc

    @classmethod
    def from_json(cls, doc, where) -> "TableDef":
        try:
            model = model_from_json(doc["model"].get("name", "?"), doc["model"], {}, where)
            references = _references_from_json(doc.get("references", {}), where)
            enums = {name: tuple(values) for name, values in doc.get("enums", {}).items()}
            deferred = _references_from_json(doc.get("deferred", {}), where)
        except (KeyError, TypeError, AttributeError):
            raise MigrationFileError(f"{where}: malformed table definition") from None
        return cls(model, references, enums, deferred)


def _references_json(references: dict) -> dict:
    return {name: {"model": r.model, "table": r.table, "column": r.column, "key": field_to_json(r.key)}
            for name, r in references.items()}


def _references_from_json(doc: dict, where) -> dict:
    return {name: Reference(r["model"], r["table"], r["column"], field_from_json(r["key"], {}, where))
            for name, r in doc.items()}


def table_def(schema: Schema, model_name: str, without_keys=()) -> TableDef:
    """The TableDef of a model in a schema; ``without_keys`` lists keys with no constraint yet."""
    model = schema.models[model_name]
    references = {}
    deferred = {}
    enums = {}
    for f in model.fields:
        if f.target is not None:
            target = schema.models.get(f.target)
            if target is not None and target.primary_key is not None:
                key = target.primary_key
                found = deferred if f.name in without_keys else references
                found[f.name] = Reference(target.name, target.table, key.column, key)
        if f.enum is not None and f.enum in schema.enums:
            enums[f.enum] = schema.enums[f.enum].values
    return TableDef(model, references, enums, deferred)


# ---------------------------------------------------------------- the operations

_REGISTRY: dict = {}


def _register(cls):
    _REGISTRY[cls.op] = cls
    return cls


@dataclass(frozen=True)
class Operation:
    op: ClassVar[str] = ""
    destructive: ClassVar[bool] = False

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

    def describe(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def name_part(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def to_json(self) -> dict:  # pragma: no cover
        raise NotImplementedError


def _with_models(schema: Schema, **changed) -> Schema:
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


def _table_json(table):
    return {"table_def": table.to_json()} if table is not None else {}


def _read_table(doc, where):
    return TableDef.from_json(doc["table_def"], where) if "table_def" in doc else None


@_register
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

    def describe(self):
        return f"Create enum {self.name} ({', '.join(k for k, _v in self.members)})"

    def name_part(self):
        return f"enum_{self.name}"

    def to_json(self):
        return {"op": self.op, "name": self.name, "values": [list(m) for m in self.members]}

    @classmethod
    def from_json(cls, doc, state, where):
        return cls(doc["name"], enum_members_from_json(doc["name"], doc["values"], where))


@_register
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

    def describe(self):
        return f"Drop enum {self.name}"

    def name_part(self):
        return f"drop_enum_{self.name}"

    def to_json(self):
        return {"op": self.op, "name": self.name, "values": [list(m) for m in self.members]}

    @classmethod
    def from_json(cls, doc, state, where):
        if "values" in doc:
            return cls(doc["name"], enum_members_from_json(doc["name"], doc["values"], where))
        old = state.enums.get(doc["name"])
        return cls(doc["name"], old.members if old else ())


@_register
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

    def describe(self):
        old = dict(self.old_members)
        new = dict(self.new_members)
        parts = [f"+{k}" for k in new if k not in old]
        parts += [f"-{k}" for k in old if k not in new]
        parts += [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if k in old and old[k] != new[k]]
        if not parts:
            parts = ["reorder members"]
        return f"Alter enum {self.name} ({', '.join(parts)})"

    def name_part(self):
        return f"enum_{self.name}"

    def to_json(self):
        return {"op": self.op, "name": self.name,
                "old_values": [list(m) for m in self.old_members],
                "values": [list(m) for m in self.new_members],
                "tables": [t.to_json() for t in self.tables]}

    @classmethod
    def from_json(cls, doc, state, where):
        new = enum_members_from_json(doc["name"], doc["values"], where)
        if "old_values" in doc:
            old = enum_members_from_json(doc["name"], doc["old_values"], where)
        else:
            previous = state.enums.get(doc["name"])
            old = previous.members if previous else ()
        tables = tuple(TableDef.from_json(t, where) for t in doc.get("tables", ()))
        return cls(doc["name"], old, new, tables)


@_register
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

    def describe(self):
        return f"Create model {self.model} (table {self.table}, {len(self.definition.fields)} fields)"

    def name_part(self):
        return f"create_{self.model}"

    def to_json(self):
        doc = {"op": self.op, "model": self.model, "table": self.table, **_table_json(self.table_def)}
        if self.deferred_keys:
            doc["deferred_keys"] = list(self.deferred_keys)
        return doc

    @classmethod
    def from_json(cls, doc, state, where):
        table = _read_table(doc, where)
        if table is None:  # the earlier tool listed the fields; the keys came in add_fk ops
            built = model_from_json(doc["model"], {"table": doc["table"], "fields": doc["fields"]},
                                    state.enums, where)
            keys = tuple(f.name for f in built.fields if f.target is not None)
            table = table_def(_with_models(state, **{doc["model"]: built}), doc["model"], keys)
            return cls(doc["model"], doc["table"], table, keys)
        return cls(doc["model"], doc["table"], table, tuple(doc.get("deferred_keys", ())))


@_register
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

    def describe(self):
        return f"Drop model {self.model} (table {self.table})"

    def name_part(self):
        return f"drop_{self.model}"

    def to_json(self):
        return {"op": self.op, "model": self.model, "table": self.table, **_table_json(self.table_def)}

    @classmethod
    def from_json(cls, doc, state, where):
        table = _read_table(doc, where)
        if table is None and doc["model"] in state.models:
            table = table_def(state, doc["model"])
        return cls(doc["model"], doc["table"], table)


@_register
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

    def describe(self):
        tables = f" (table {self.old_table} -> {self.new_table})" if self.old_table != self.new_table else ""
        return f"Rename model {self.old_name} -> {self.new_name}{tables}"

    def name_part(self):
        if self.old_name == self.new_name:  # the model stays; its table moves
            return f"rename_{self.old_table}_{self.new_table}"
        return f"rename_{self.old_name}_{self.new_name}"

    def to_json(self):
        return {"op": self.op, "old_name": self.old_name, "new_name": self.new_name,
                "old_table": self.old_table, "new_table": self.new_table, **_table_json(self.table_def)}

    @classmethod
    def from_json(cls, doc, state, where):
        return cls(doc["old_name"], doc["new_name"], doc["old_table"], doc["new_table"],
                   _read_table(doc, where))


@dataclass(frozen=True)
class _TableOperation(Operation):
    """An operation on one existing table; table_def is that table right after it."""

    model: str
    table: str

    def with_table(self, schema_after):
        return replace(self, table_def=table_def(schema_after, self.model))


@_register
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

    def describe(self):
        return f"Add field {self.field.name} to {self.model} ({_field_summary(self.field)})"

    def name_part(self):
        return f"add_{self.field.name}"

    def to_json(self):
        return {"op": self.op, "model": self.model, "table": self.table, "field_name": self.field.name,
                "field_def": field_to_json(self.field), **_table_json(self.table_def)}

    @classmethod
    def from_json(cls, doc, state, where):
        f = field_from_json(doc["field_def"], state.enums, where)
        return cls(doc["model"], doc["table"], f, _read_table(doc, where))


@_register
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

    def describe(self):
        return f"Drop field {self.field.name} from {self.model}"

    def name_part(self):
        return f"drop_{self.field.name}"

    def to_json(self):
        return {"op": self.op, "model": self.model, "table": self.table, "field_name": self.field.name,
                "field_def": field_to_json(self.field), **_table_json(self.table_def)}

    @classmethod
    def from_json(cls, doc, state, where):
        if "field_def" in doc:
            f = field_from_json(doc["field_def"], state.enums, where)
        else:  # the earlier tool kept only the name; the definition is in the history
            f = _field_of(_model(state, doc["model"], where), doc["field_name"], where)
        return cls(doc["model"], doc["table"], f, _read_table(doc, where))


@_register
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

    def describe(self):
        changes = [f"{key}: {_show(getattr(self.old, key))} -> {_show(getattr(self.new, key))}"
                   for key in Field._fields if key not in ("name", "has_default")
                   and getattr(self.old, key) != getattr(self.new, key)
                   and not (key == "default" and not self.old.has_default and not self.new.has_default)]
        if self.old.has_default != self.new.has_default and not any(c.startswith("default") for c in changes):
            changes.append("default: " + ("removed" if self.old.has_default else f"{_show(self.new.default)}"))
        if self._follows_key():
            new_key = self.new_key
            after = f" -> {_key_summary(new_key)}" if new_key is not None else ""
            changes.append(f"follows the primary key {self.new.target}.{self.old_key.name}:"
                           f" {_key_summary(self.old_key)}{after}")
        return f"Alter field {self.new.name} on {self.model} ({'; '.join(changes)})"

    def _follows_key(self) -> bool:
        """Does the column change because the key it keeps pointing to changed type?"""
        if self.old_key is None or self.old.target != self.new.target:
            return False
        new_key = self.new_key
        if new_key is None:  # not attached yet: only a key change alters nothing else
            return self.old == self.new
        return referencing_type(self.old_key) != referencing_type(new_key)

    def name_part(self):
        return f"alter_{self.new.name}"

    def to_json(self):
        doc = {"op": self.op, "model": self.model, "table": self.table, "field_name": self.new.name,
               "old_def": field_to_json(self.old), "field_def": field_to_json(self.new),
               **_table_json(self.table_def)}
        if self.old_key is not None:
            doc["old_key"] = field_to_json(self.old_key)
        return doc

    @classmethod
    def from_json(cls, doc, state, where):
        new = field_from_json(doc["field_def"], state.enums, where)
        if "old_def" in doc:
            old = field_from_json(doc["old_def"], state.enums, where)
        else:
            old = _field_of(_model(state, doc["model"], where), doc["field_name"], where)
        old_key = field_from_json(doc["old_key"], state.enums, where) if "old_key" in doc else None
        return cls(doc["model"], doc["table"], old, new, _read_table(doc, where), old_key)


@_register
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

    def describe(self):
        return f"Rename field {self.model}.{self.old.name} -> {self.new.name}"

    def name_part(self):
        return f"rename_{self.old.name}_{self.new.name}"

    def to_json(self):
        return {"op": self.op, "model": self.model, "table": self.table, "old_name": self.old.name,
                "new_name": self.new.name, "old_def": field_to_json(self.old),
                "field_def": field_to_json(self.new), **_table_json(self.table_def)}

    @classmethod
    def from_json(cls, doc, state, where):
        if "old_def" in doc:
            old = field_from_json(doc["old_def"], state.enums, where)
            new = field_from_json(doc["field_def"], state.enums, where)
        else:
            old = _field_of(_model(state, doc["model"], where), doc["old_name"], where)
            column = doc["new_name"] if old.column == old.name else old.column
            new = old._replace(name=doc["new_name"], column=column)
        return cls(doc["model"], doc["table"], old, new, _read_table(doc, where))


@_register
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

    def describe(self):
        return f"Add foreign key {self.model}.{self.field_name} -> {self.target} (on delete {self.on_delete})"

    def name_part(self):
        return f"fk_{self.field_name}"

    def to_json(self):
        return {"op": self.op, "model": self.model, "table": self.table, "field_name": self.field_name,
                "to": self.target, "on_delete": self.on_delete, **_table_json(self.table_def)}

    @classmethod
    def from_json(cls, doc, state, where):
        if "from" in doc:  # the earlier tool: {"kind": "fk", "from", "field", "to", "on_delete"}
            model = _model(state, doc["from"], where)
            return cls(model.name, model.table, doc["field"], doc["to"], doc.get("on_delete", "CASCADE"))
        return cls(doc["model"], doc["table"], doc["field_name"], doc["to"], doc.get("on_delete", "CASCADE"),
                   _read_table(doc, where))


@_register
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

    def describe(self):
        return f"Drop foreign key constraint {self.model}.{self.field_name} -> {self.target}"

    def name_part(self):
        return f"drop_fk_{self.field_name}"

    def to_json(self):
        return {"op": self.op, "model": self.model, "table": self.table, "field_name": self.field_name,
                "to": self.target, "on_delete": self.on_delete, **_table_json(self.table_def)}

    @classmethod
    def from_json(cls, doc, state, where):
        if "from" in doc:
            model = _model(state, doc["from"], where)
            return cls(model.name, model.table, doc["field"], doc["to"], doc.get("on_delete", "CASCADE"))
        return cls(doc["model"], doc["table"], doc["field_name"], doc["to"], doc.get("on_delete", "CASCADE"),
                   _read_table(doc, where))


@_register
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
        return replace(self, columns=tuple(model.column_of(n) for n in self.index.fields), table_def=None)

    def reverse(self):
        return DropIndex(self.model, self.table, self.index, self.columns)

    def describe(self):
        kind = "unique index" if self.index.unique else "index"
        return f"Add {kind} {self.index.name} on {self.model} ({', '.join(self.index.fields)})"

    def name_part(self):
        return f"index_{self.index.name}"

    def to_json(self):
        return {"op": self.op, "model": self.model, "table": self.table, "index": index_to_json(self.index),
                "columns": list(self.columns)}

    @classmethod
    def from_json(cls, doc, state, where):
        return cls(doc["model"], doc["table"], index_from_json(doc["index"], where), tuple(doc["columns"]))


@_register
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
        return self

    def reverse(self):
        return AddIndex(self.model, self.table, self.index, self.columns)

    def describe(self):
        return f"Drop index {self.index.name} on {self.model}"

    def name_part(self):
        return f"drop_index_{self.index.name}"

    def to_json(self):
        return {"op": self.op, "model": self.model, "table": self.table, "index": index_to_json(self.index),
                "columns": list(self.columns)}

    @classmethod
    def from_json(cls, doc, state, where):
        return cls(doc["model"], doc["table"], index_from_json(doc["index"], where), tuple(doc["columns"]))


OPERATION_KINDS = tuple(_REGISTRY)


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


def _as_key(key: Field) -> Field:
    """A primary key as a referencing column sees it: its type only."""
    return key._replace(null=False, unique=False, primary_key=False, has_default=False, default=None)


def _key_summary(key: Field) -> str:
    text = key.type
    if key.type == "CharField":
        text += f"({key.max_length})"
    elif key.type == "DecimalField":
        text += f"({key.max_digits}, {key.decimal_places})"
    return text


def _show(value):
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "none"
    return repr(value) if isinstance(value, str) else str(value)


def _field_summary(f: Field) -> str:
    text = f.type
    if f.type == "CharField":
        text += f"({f.max_length})"
    elif f.type == "DecimalField":
        text += f"({f.max_digits}, {f.decimal_places})"
    elif f.target:
        text += f"({f.target})"
    elif f.enum:
        text += f"({f.enum})"
    if f.null:
        text += ", null"
    if f.has_default:
        text += f", default {_show(f.default)}"
    return text


def operation_from_json(doc, state: Schema, where: str) -> Operation:
    """One operation in either form; ``state`` is the schema just before it (earlier-tool
    operations do not carry everything and are completed from it)."""
    if not isinstance(doc, dict) or "op" not in doc:
        raise MigrationFileError(f"{where}: an operation must be an object with an 'op' key")
    cls = _REGISTRY.get(doc["op"])
    if cls is None:
        raise MigrationFileError(f"{where}: unknown operation '{doc['op']}'"
                                 f" (known: {', '.join(OPERATION_KINDS)})")
    try:
        return cls.from_json(doc, state, where)
    except KeyError as exc:
        raise MigrationFileError(f"{where}: operation {doc['op']} is missing {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise MigrationFileError(f"{where}: operation {doc['op']} is malformed ({exc})") from None


def fold(operations, schema: Schema) -> Schema:
    for operation in operations:
        schema = operation.apply(schema)
    return schema


def attach_tables(operations, schema: Schema) -> tuple[list, Schema]:
    """Give each operation the TableDef of the schema right after it; returns the
    completed operations and the final schema."""
    completed = []
    for operation in operations:
        operation = operation.with_table_before(schema)
        schema = operation.apply(schema)
        completed.append(operation.with_table(schema))
    return completed, schema

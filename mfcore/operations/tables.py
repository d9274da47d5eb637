"""Table definitions: what an operation carries so that a dialect can write its SQL
without reading any other file (SQLite's rebuild of a whole table included)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..schema import Field, Model, Schema


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


def referenced_key(schema: Schema, model_name: str) -> Optional[Field]:
    """The primary key of a model as a foreign key to it sees it: its name and column,
    with the type of the column it finally holds. A key that is itself a reference
    (the child of multi-table inheritance) takes the type at the end of that chain:
    a foreign key to the child has the type of the parent's key. None when the model
    or its key is unknown; a chain that never ends (a cycle) leaves the key as it is."""
    model = schema.models.get(model_name)
    if model is None or model.primary_key is None:
        return None
    key = end = model.primary_key
    seen = {model_name}
    while end.target is not None:
        target = schema.models.get(end.target)
        if target is None or target.primary_key is None or end.target in seen:
            return key
        seen.add(end.target)
        end = target.primary_key
    if end is key:
        return key
    return key._replace(type=end.type, max_length=end.max_length, max_digits=end.max_digits,
                        decimal_places=end.decimal_places, enum=end.enum, target=None, on_delete=None,
                        deferrable=None, fk_name=None)


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
                key = referenced_key(schema, f.target)
                found = deferred if f.name in without_keys else references
                found[f.name] = Reference(target.name, target.table, key.column, key)
        if f.enum is not None and f.enum in schema.enums:
            enums[f.enum] = schema.enums[f.enum].values
    return TableDef(model, references, enums, deferred)



class FoldingSchema(Schema):
    """A schema whose dicts belong to the fold running over it, so a step may change
    them in place: copying every model for every step made a fold over thousands of
    create_model steps quadratic. It never leaves the fold (see ``folded``)."""


def folding(schema: Schema) -> FoldingSchema:
    """The fold's own copy of ``schema``, or, after a step, the step's result as the
    fold's own: a step returns the dicts it was given or new ones, never anyone else's."""
    if type(schema) is FoldingSchema:
        return schema
    return FoldingSchema(enums=schema.enums, models=schema.models)


def fold_start(schema: Schema) -> FoldingSchema:
    return FoldingSchema(enums=dict(schema.enums), models=dict(schema.models))


def folded(schema: Schema) -> Schema:
    """The fold's result as a plain Schema (its dicts are nobody else's)."""
    return Schema(enums=schema.enums, models=schema.models)


def attach_tables(operations, schema: Schema) -> tuple[list, Schema]:
    """Give each operation the TableDef of the schema right after it; returns the
    completed operations and the final schema."""
    completed = []
    schema = fold_start(schema)
    for operation in operations:
        operation = operation.with_table_before(schema)
        schema = folding(operation.apply(schema))
        completed.append(operation.with_table(schema))
    return completed, folded(schema)


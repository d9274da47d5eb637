"""Table definitions: what an operation carries so that a dialect can write its SQL
without reading any other file (SQLite's rebuild of a whole table included)."""
from __future__ import annotations

from dataclasses import dataclass, field

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



def attach_tables(operations, schema: Schema) -> tuple[list, Schema]:
    """Give each operation the TableDef of the schema right after it; returns the
    completed operations and the final schema."""
    completed = []
    for operation in operations:
        operation = operation.with_table_before(schema)
        schema = operation.apply(schema)
        completed.append(operation.with_table(schema))
    return completed, schema


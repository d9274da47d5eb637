"""The earlier tool's files, in the current form.

The earlier mf wrote migration files and plans without a ``"format"`` key, fields as
``{"name", "type", "params", "kwargs"}`` (enum defaults as ``"UserRole.ADMIN"``,
references as bare names, ``db_index`` for an index), operations that name what the
history already says (a dropped column by name only, a foreign key as ``{"from",
"field", "to"}``, a model as a list of fields) and snapshots that keep ``on_delete``
in a ``relations`` list. store.py hands such documents here, once, as it reads them;
what comes back is what a current file would have given, and nothing past the
reader knows the earlier forms.
"""
from __future__ import annotations

from .errors import MigrationFileError, SchemaFileError
from .language.fields import FieldProblem, RELATION_TYPES, build_field
from .language.raw import Name
from .operations import (AddColumn, AddForeignKey, AlterColumn, AlterEnum, CreateModel, DropColumn, DropEnum,
                         DropForeignKey, DropModel, Operation, RenameColumn, attach_tables, table_def)
from .operations.codec import DECODERS, decode_operation, read_table, table_def_from_json
from .schema import Enum, Field, Index, Model, Schema, index_name
from .snapshot import check_envelope, enum_members_from_json, field_from_json, index_from_json, model_from_json


# ---------------------------------------------------------------- migration files and plans

def operations(documents: list, state: Schema, where: str) -> list:
    """The operations of a file in the earlier form, completed from ``state`` (the
    schema before the file) and given the table definitions the dialects need."""
    found = []
    start = state
    for position, document in enumerate(documents):
        operation = decode_operation(document, f"{where}: ops[{position}]", _decoders(state))
        found.append(operation)
        state = operation.apply(state)  # the next operation may need this one's result
    completed, _ = attach_tables(found, start)
    return completed


def _decoders(state: Schema) -> dict:
    """The current decoders, with the earlier tool's shapes completed from ``state``."""
    def decoder(kind):
        return lambda doc, where: kind(doc, state, where)

    completing = {
        "drop_enum": _drop_enum, "alter_enum": _alter_enum, "create_model": _create_model,
        "drop_model": _drop_model, "add_column": _add_column, "drop_column": _drop_column,
        "alter_column": _alter_column, "rename_column": _rename_column,
        "add_fk": _add_foreign_key, "drop_fk": _drop_foreign_key,
    }
    return {**DECODERS, **{op: decoder(kind) for op, kind in completing.items()}}


def _drop_enum(doc, state, where) -> Operation:
    if "values" in doc:
        return DropEnum(doc["name"], enum_members_from_json(doc["name"], doc["values"], where))
    old = state.enums.get(doc["name"])
    return DropEnum(doc["name"], old.members if old else ())


def _alter_enum(doc, state, where) -> Operation:
    new = enum_members_from_json(doc["name"], doc["values"], where)
    if "old_values" in doc:
        old = enum_members_from_json(doc["name"], doc["old_values"], where)
    else:
        previous = state.enums.get(doc["name"])
        old = previous.members if previous else ()
    return AlterEnum(doc["name"], old, new, tuple(table_def_from_json(t, where) for t in doc.get("tables", ())))


def _create_model(doc, state, where) -> Operation:
    table = read_table(doc, where)
    if table is not None:
        return CreateModel(doc["model"], doc["table"], table, tuple(doc.get("deferred_keys", ())))
    # The earlier tool listed the fields; the keys came in add_fk operations.
    built = model(doc["model"], {"table": doc["table"], "fields": doc["fields"]}, state.enums, where)
    keys = tuple(f.name for f in built.fields if f.target is not None)
    with_model = Schema(enums=state.enums, models={**state.models, doc["model"]: built})
    return CreateModel(doc["model"], doc["table"], table_def(with_model, doc["model"], keys), keys)


def _drop_model(doc, state, where) -> Operation:
    table = read_table(doc, where)
    if table is None and doc["model"] in state.models:
        table = table_def(state, doc["model"])
    return DropModel(doc["model"], doc["table"], table)


def _add_column(doc, state, where) -> Operation:
    return AddColumn(doc["model"], doc["table"], field(doc["field_def"], state.enums, where), read_table(doc, where))


def _drop_column(doc, state, where) -> Operation:
    if "field_def" in doc:
        dropped = field(doc["field_def"], state.enums, where)
    else:  # the earlier tool kept only the name; the definition is in the history
        dropped = _field_of(state, doc["model"], doc["field_name"], where)
    return DropColumn(doc["model"], doc["table"], dropped, read_table(doc, where))


def _alter_column(doc, state, where) -> Operation:
    new = field(doc["field_def"], state.enums, where)
    if "old_def" in doc:
        old = field(doc["old_def"], state.enums, where)
    else:
        old = _field_of(state, doc["model"], doc["field_name"], where)
    old_key = field(doc["old_key"], state.enums, where) if "old_key" in doc else None
    return AlterColumn(doc["model"], doc["table"], old, new, read_table(doc, where), old_key)


def _rename_column(doc, state, where) -> Operation:
    if "old_def" in doc:
        old = field(doc["old_def"], state.enums, where)
        new = field(doc["field_def"], state.enums, where)
    else:
        old = _field_of(state, doc["model"], doc["old_name"], where)
        column = doc["new_name"] if old.column == old.name else old.column
        new = old._replace(name=doc["new_name"], column=column)
    return RenameColumn(doc["model"], doc["table"], old, new, read_table(doc, where))


def _add_foreign_key(doc, state, where) -> Operation:
    if "from" not in doc:
        return DECODERS["add_fk"](doc, where)
    # The earlier tool: {"kind": "fk", "from", "field", "to", "on_delete"}.
    owner = _model(state, doc["from"], where)
    return AddForeignKey(owner.name, owner.table, doc["field"], doc["to"], doc.get("on_delete", "CASCADE"))


def _drop_foreign_key(doc, state, where) -> Operation:
    if "from" not in doc:
        return DECODERS["drop_fk"](doc, where)
    owner = _model(state, doc["from"], where)
    return DropForeignKey(owner.name, owner.table, doc["field"], doc["to"], doc.get("on_delete", "CASCADE"))


def _model(state, name, where) -> Model:
    try:
        return state.models[name]
    except KeyError:
        raise MigrationFileError(f"{where}: model '{name}' does not exist at this point of the history") from None


def _field_of(state, model_name, name, where) -> Field:
    owner = _model(state, model_name, where)
    found = owner.field(name)
    if found is None:
        raise MigrationFileError(f"{where}: field '{owner.name}.{name}' does not exist at this point of the history")
    return found


# ---------------------------------------------------------------- schema.json

def schema(doc, where: str) -> Schema:
    """A snapshot without a ``"format"`` key: the earlier tool's, or one whose fields
    are in either form."""
    check_envelope(doc, where)
    enums = {name: Enum(name, enum_members_from_json(name, members, where))
             for name, members in doc.get("enums", {}).items()}
    models = {name: model(name, m, enums, where) for name, m in doc.get("models", {}).items()}
    return Schema(enums=enums, models=_apply_relations(models, doc.get("relations", []), where))


def _apply_relations(models, relation_docs, where):
    """The earlier tool kept on_delete in its relations list, not on the field."""
    if not isinstance(relation_docs, list):
        raise SchemaFileError(f"{where}: 'relations' must be a list")
    for rel in relation_docs:
        if not isinstance(rel, dict):
            continue
        owner = models.get(rel.get("from"))
        on_delete = rel.get("on_delete")
        if owner is None or on_delete is None:
            continue
        fields = tuple(f._replace(on_delete=on_delete) if f.name == rel.get("field") and f.target
                       else f for f in owner.fields)
        models[owner.name] = owner.replace(fields=fields)
    return models


# ---------------------------------------------------------------- models and fields

def model(name: str, doc: dict, enums: dict, where: str) -> Model:
    """A model whose fields may be in the earlier form (a list, or keyed by name, with
    params/kwargs), which gets ``id`` when it declares no primary key, as the earlier
    tool's did implicitly."""
    if not isinstance(doc, dict) or "table" not in doc or "fields" not in doc:
        raise SchemaFileError(f"{where}: model '{name}' needs 'table' and 'fields'")
    raw_fields = doc["fields"]
    if isinstance(raw_fields, dict):  # the earlier tool keyed fields by name
        raw_fields = list(raw_fields.values())
    if not isinstance(raw_fields, list):
        raise SchemaFileError(f"{where}: model '{name}' needs 'table' and 'fields'")
    if not any(isinstance(raw, dict) and ("params" in raw or "kwargs" in raw) for raw in raw_fields):
        found = model_from_json(name, {**doc, "fields": raw_fields}, where)
        if any(f.primary_key for f in found.fields):
            return found
        return found.replace(fields=(Field("id", "AutoField", "id", primary_key=True),) + found.fields)
    index_docs = doc.get("indexes")
    indexes = [index_from_json(i, where) for i in index_docs] if index_docs else []
    fields = []
    for raw in raw_fields:
        if isinstance(raw, dict) and ("params" in raw or "kwargs" in raw):
            built, db_index = legacy_field(raw, enums, f"{where}: model {name}")
            if db_index:  # an index of the model here, as models.mp's db_index=true is
                indexes.append(Index(index_name("ix", doc["table"], [built.column]), (built.name,)))
        else:
            built = field_from_json(raw, f"{where}: model {name}")
        fields.append(built)
    if not any(f.primary_key for f in fields):
        fields.insert(0, Field("id", "AutoField", "id", primary_key=True))
    indexes = tuple(sorted(set(indexes), key=lambda i: i.name))
    return Model(doc.get("name", name), doc["table"], tuple(fields), indexes)


def field(doc, enums: dict, where: str) -> Field:
    """A field definition in either form; ``enums`` resolves the earlier tool's enum defaults."""
    if isinstance(doc, dict) and "name" in doc and "type" in doc and ("params" in doc or "kwargs" in doc):
        return legacy_field(doc, enums, where)[0]
    return field_from_json(doc, where)


def legacy_field(doc: dict, enums: dict, where: str) -> tuple:
    """The earlier tool's ``{"params": [...], "kwargs": {...}}`` through the models.mp builder;
    returns (Field, db_index)."""
    params = doc.get("params") or []
    kwargs = doc.get("kwargs") or {}
    if not isinstance(params, list) or not isinstance(kwargs, dict):
        raise SchemaFileError(f"{where}: field '{doc.get('name')}' has malformed params/kwargs")
    type_name = doc["type"]
    args = []
    for value in params:
        # The earlier tool wrote enum and model references as bare strings.
        if type_name == "EnumField" or type_name in RELATION_TYPES:
            value = Name(value) if isinstance(value, str) and not args else value
        args.append((None, value, None))
    for key, value in kwargs.items():
        if key == "default" and type_name == "EnumField" and isinstance(value, str) and "." in value:
            value = Name(value)  # "UserRole.ADMIN" meant the member, whose value is stored
        elif key == "on_delete" and isinstance(value, str):
            value = Name(value)
        args.append((key, value, None))
    try:
        built, db_index, problems = build_field("?", doc["name"], type_name, args, None, enums)
    except FieldProblem as problem:
        raise SchemaFileError(f"{where}: field '{doc['name']}': {problem.message}") from None
    if problems:
        raise SchemaFileError(f"{where}: field '{doc['name']}': {problems[0].message}")
    return built, db_index

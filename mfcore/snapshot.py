"""Schema <-> JSON: schema.json and the field definitions inside migration files.

The new form carries ``"format": 1``; the earlier tool's form (no ``format`` key,
fields as ``{"name", "type", "params", "kwargs"}``, enums as ``[[KEY, VALUE], ...]``)
is read everywhere and never written. Output is canonical: orjson with sorted keys
and two-space indent, so equal Schemas give byte-identical files.
"""
from __future__ import annotations

import orjson

from .compiled import twin
from .errors import SchemaFileError
from .gcpause import gc_paused
from .language.fields import FieldProblem, RELATION_TYPES, build_field
from .language.raw import Name
from .schema import Enum, Field, Index, Model, Schema, index_name

FORMAT = 1
_DUMP_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS

# Field attributes written only when they differ from these defaults.
_FIELD_DEFAULTS = Field("", "", "")._asdict()
_OPTIONAL_KEYS = ("null", "unique", "primary_key", "max_length", "max_digits", "decimal_places",
                  "auto_now", "auto_now_add", "enum", "on_delete")


def dumps(document) -> bytes:
    return orjson.dumps(document, option=_DUMP_OPTIONS) + b"\n"


# ---------------------------------------------------------------- fields

def field_to_json(f: Field) -> dict:
    doc = {"name": f.name, "type": f.type, "column": f.column}
    for key in _OPTIONAL_KEYS:
        value = getattr(f, key)
        if value != _FIELD_DEFAULTS[key]:
            doc[key] = value
    if f.has_default:
        doc["default"] = f.default
    if f.target is not None:
        doc["to"] = f.target
    return doc


def field_from_json(doc: dict, enums: dict, where: str = "schema") -> Field:
    """A field definition in either form; enums resolves earlier-tool enum defaults."""
    if not isinstance(doc, dict) or "name" not in doc or "type" not in doc:
        raise SchemaFileError(f"{where}: a field definition needs 'name' and 'type', got {_short(doc)}")
    if "params" in doc or "kwargs" in doc:
        return legacy_field(doc, enums, where)[0]
    built = new_form_fields([doc])
    if built is None:
        raise SchemaFileError(f"{where}: bad field definition {_short(doc)}: name, type and column are strings")
    return built[0]


def new_form_fields(raw_fields: list, field_class=Field):
    """Every field of a model in the new form, or None when any of them is not a plain
    new-form definition (the caller then reads them one by one and says what is wrong).
    The hot loop of loading a snapshot; mfcore._parser.new_form_fields is its compiled
    twin and must behave the same."""
    fields = []
    for doc in raw_fields:
        if type(doc) is not dict or "params" in doc or "kwargs" in doc:
            return None
        get = doc.get
        name = get("name")
        kind = get("type")
        column = get("column", name)
        if type(name) is not str or type(kind) is not str or type(column) is not str:
            return None
        fields.append(tuple.__new__(field_class, (
            name, kind, column, get("null", False), get("unique", False), get("primary_key", False),
            "default" in doc, get("default"), get("max_length"), get("max_digits"), get("decimal_places"),
            get("auto_now", False), get("auto_now_add", False), get("enum"), get("to"), get("on_delete"))))
    return tuple(fields)


_new_form_fields = twin(new_form_fields)


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


# ---------------------------------------------------------------- models and enums

def model_to_json(model: Model) -> dict:
    return {
        "name": model.name,
        "table": model.table,
        "fields": [field_to_json(f) for f in model.fields],
        "indexes": [index_to_json(i) for i in model.indexes],
    }


def index_to_json(index: Index) -> dict:
    return {"name": index.name, "fields": list(index.fields), "unique": index.unique}


def index_from_json(doc, where) -> Index:
    try:
        return Index(doc["name"], tuple(doc["fields"]), bool(doc.get("unique", False)))
    except (KeyError, TypeError):
        raise SchemaFileError(f"{where}: malformed index {_short(doc)}") from None


def model_from_json(name: str, doc: dict, enums: dict, where: str) -> Model:
    if not isinstance(doc, dict) or "table" not in doc or "fields" not in doc:
        raise SchemaFileError(f"{where}: model '{name}' needs 'table' and 'fields'")
    raw_fields = doc["fields"]
    if isinstance(raw_fields, dict):  # the earlier tool keyed fields by name
        raw_fields = list(raw_fields.values())
    index_docs = doc.get("indexes")
    indexes = [index_from_json(i, where) for i in index_docs] if index_docs else []
    fast = _new_form_fields(raw_fields, Field) if type(raw_fields) is list else None
    if fast is not None and not index_docs and fast and fast[0].primary_key:
        return Model(doc.get("name", name), doc["table"], fast, ())  # the common case, quickly
    fields = list(fast) if fast is not None else []
    for raw in (() if fast is not None else raw_fields):
        if isinstance(raw, dict) and ("params" in raw or "kwargs" in raw):
            built, db_index = legacy_field(raw, enums, f"{where}: model {name}")
            if db_index:  # an index of the model here, as models.mp's db_index=true is
                indexes.append(Index(index_name("ix", doc["table"], [built.column]), (built.name,)))
        else:
            built = field_from_json(raw, enums, f"{where}: model {name}")
        fields.append(built)
    if not any(f.primary_key for f in fields):
        fields.insert(0, Field("id", "AutoField", "id", primary_key=True))
    indexes = tuple(sorted(set(indexes), key=lambda i: i.name))
    return Model(doc.get("name", name), doc["table"], tuple(fields), indexes)


def enum_members_from_json(name, doc, where) -> tuple:
    try:
        members = tuple((str(key), str(value)) for key, value in doc)
    except (TypeError, ValueError):
        raise SchemaFileError(f"{where}: enum '{name}' must be a list of [KEY, VALUE] pairs") from None
    return members


def relations(schema: Schema) -> list:
    """The foreign keys of a schema, for readers of schema.json (derived, never read back)."""
    found = []
    for model_name in sorted(schema.models):
        for f in schema.models[model_name].fields:
            if f.target is not None:
                found.append({"kind": "fk" if f.type == "ForeignKey" else "one_to_one",
                              "from": model_name, "field": f.name, "to": f.target,
                              "on_delete": f.on_delete})
    return found


# ---------------------------------------------------------------- schema.json

def schema_to_json(schema: Schema, reuse=None) -> dict:
    """The document of schema.json. ``reuse`` is (an earlier Schema, its new-form
    document): models that are still the very same objects keep their JSON as it
    was read, so rewriting a large snapshot after a small change stays cheap."""
    old_models, old_docs = (reuse[0].models, reuse[1].get("models", {})) if reuse else ({}, {})
    models = {}
    for name, model in schema.models.items():
        if old_models.get(name) is model and name in old_docs:
            models[name] = old_docs[name]
        else:
            models[name] = model_to_json(model)
    return {
        "format": FORMAT,
        "enums": {name: [list(m) for m in e.members] for name, e in schema.enums.items()},
        "models": models,
        "relations": relations(schema),
    }


def schema_from_json(doc, where: str = "schema.json") -> Schema:
    with gc_paused():
        return _schema_from_json(doc, where)


def _schema_from_json(doc, where):
    if not isinstance(doc, dict) or not isinstance(doc.get("models", {}), dict) \
            or not isinstance(doc.get("enums", {}), dict):
        raise SchemaFileError(f"{where}: not a schema (expected an object with 'enums' and 'models')")
    fmt = doc.get("format")
    if fmt is not None and fmt != FORMAT:
        raise SchemaFileError(f"{where}: format {fmt!r} is newer than this mf understands (format {FORMAT})")
    enums = {name: Enum(name, enum_members_from_json(name, members, where))
             for name, members in doc.get("enums", {}).items()}
    models = {name: model_from_json(name, m, enums, where) for name, m in doc.get("models", {}).items()}
    if fmt is None:
        models = _apply_legacy_relations(models, doc.get("relations", []), where)
    return Schema(enums=enums, models=models)


def _apply_legacy_relations(models, relation_docs, where):
    """The earlier tool kept on_delete in its relations list, not on the field."""
    if not isinstance(relation_docs, list):
        raise SchemaFileError(f"{where}: 'relations' must be a list")
    for rel in relation_docs:
        if not isinstance(rel, dict):
            continue
        model = models.get(rel.get("from"))
        on_delete = rel.get("on_delete")
        if model is None or on_delete is None:
            continue
        fields = tuple(f._replace(on_delete=on_delete) if f.name == rel.get("field") and f.target
                       else f for f in model.fields)
        models[model.name] = model.replace(fields=fields)
    return models


def dump_schema(schema: Schema) -> bytes:
    """schema.json's bytes: canonical, so equal schemas give equal bytes."""
    return dumps(schema_to_json(schema))


def load_schema(path: str) -> Schema:
    """Read schema.json in the new or the earlier tool's form."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise SchemaFileError(f"{path}: no such file") from None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SchemaFileError(f"{path}: not valid JSON ({exc})") from None
    return schema_from_json(doc, path)


def _text(value, where):
    if not isinstance(value, str):
        raise SchemaFileError(f"{where}: expected a string, got {_short(value)}")
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."

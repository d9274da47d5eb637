"""Schema <-> JSON: schema.json and the field definitions inside migration files.

Only the current form (``"format": 1``) is read here; the earlier tool's forms become
current ones in legacy.py, where store.py reads files. Output is canonical: orjson
with sorted keys and two-space indent, so equal Schemas give byte-identical files.
This module also knows schema.json's byte layout (where each model's value lies),
which model_cache.py uses to copy unchanged models without reading them, and the
sources makemigrations ends the file with.
"""
from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from decimal import Decimal
from typing import Optional

import orjson

from .compiled import twin
from .errors import SchemaFileError
from .gcpause import gc_paused
from .schema import (DB_DEFAULTS, MAX_IDENTIFIER, OPCLASS, Check, Enum, Field, Index, Model, Schema,
                     check_expression_problem, decimal_text, exact_decimal, index_condition_problem)

FORMAT = 1
# schema.json's key for the digest of the models.mp text it was made from (store.models_digest).
# Its name sorts between "format" and "migration", ahead of the models, where rewrite() puts it.
MADE_FROM = "made_from"
# schema.json's key saying the project indexes foreign keys (README, "Foreign key
# indexes"): written only when true, so the files of projects older than the setting
# stay as they are. It sorts between "format" and "made_from".
INDEX_FOREIGN_KEYS = "index_foreign_keys"
_DUMP_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS

# Field attributes written only when they differ from these defaults.
_FIELD_DEFAULTS = Field("", "", "")._asdict()
_OPTIONAL_KEYS = ("null", "unique", "primary_key", "max_length", "max_digits", "decimal_places",
                  "auto_now", "auto_now_add", "enum", "on_delete", "fk_name", "key_name", "deferrable",
                  "db_default")


def dumps(document) -> bytes:
    return orjson.dumps(document, option=_DUMP_OPTIONS | orjson.OPT_APPEND_NEWLINE)


def dumps_pieces(document: dict, key: str, per_piece: int = 500):
    """dumps(document) as an iterator of pieces that, joined, are its bytes: the entries
    of ``document[key]`` (a dict at its top level) are made ``per_piece`` at a time, so
    that a schema.json of many thousands of models is written while it is made and is
    never whole in memory."""
    entries = document[key]
    if len(entries) <= per_piece:
        yield dumps(document)
        return
    opening = b"\n  %s: {" % orjson.dumps(key)
    outline = dumps({**document, key: {}})
    at = outline.index(opening + b"}") + len(opening)  # unique: the document's other keys are not this one
    inner_start = b"{%s\n" % opening
    inner_end = b"\n  }\n}\n"
    yield outline[:at]
    names = sorted(entries)
    for first in range(0, len(names), per_piece):
        part = dumps({key: {name: entries[name] for name in names[first:first + per_piece]}})
        yield b"\n" if first == 0 else b",\n"
        yield memoryview(part)[len(inner_start):-len(inner_end)]
    yield b"\n  "
    yield outline[at:]


# ---------------------------------------------------------------- fields

# (key, position in Field, default) of the optional keys: read by position, which is
# what makes writing a schema of many thousands of fields cheap.
_OPTIONAL = tuple((key, Field._fields.index(key), _FIELD_DEFAULTS[key]) for key in _OPTIONAL_KEYS)


def field_to_json(f: Field) -> dict:
    doc = {"name": f.name, "type": f.type, "column": f.column}
    for key, position, default in _OPTIONAL:
        value = f[position]
        if value != default:
            doc[key] = value
    if f.has_default:
        # A DecimalField's default as exact text: a JSON number would pass through a float.
        doc["default"] = decimal_text(f.default) if isinstance(f.default, Decimal) else f.default
    if f.target is not None:
        doc["to"] = f.target
    return doc


def field_from_json(doc: dict, where: str = "schema") -> Field:
    """A field definition in the current form."""
    if not isinstance(doc, dict) or "name" not in doc or "type" not in doc:
        raise SchemaFileError(f"{where}: a field definition needs 'name' and 'type', got {_short(doc)}")
    built = new_form_fields([doc])
    if built is None:
        raise SchemaFileError(f"{where}: bad field definition {_short(doc)}: name, type and column are strings")
    return built[0]


# What a field definition read from a file may hold: everything that reaches SQL is
# a checked integer, a name (always quoted by the dialects) or a literal (escaped).
_FLAGS = ("null", "unique", "primary_key", "auto_now", "auto_now_add")
_SIZES = {"max_length": 10_485_760, "max_digits": 1000, "decimal_places": 1000}
_NAMES = ("enum", "to", "on_delete", "fk_name", "key_name")
ON_DELETE_ACTIONS = ("CASCADE", "SET_NULL", "RESTRICT", "PROTECT", "NO_ACTION", "SET_DEFAULT")
DEFERRABLE_MODES = ("immediate", "deferred")  # DEFERRABLE INITIALLY IMMEDIATE / DEFERRED


def check_field_doc(doc, where: str) -> None:
    """A field definition's shape and every value's type, or SchemaFileError naming the
    key (``where`` is the path of the definition, e.g. ``002_x.json: ops[0].field_def``)."""
    if type(doc) is not dict or not _plainly_valid(doc):
        check_field_doc_fully(doc, where)


def check_field_doc_fully(doc, where: str) -> None:
    """check_field_doc without its shortcut for ordinary definitions."""
    if type(doc) is not dict:
        raise SchemaFileError(f"{where} must be an object, got {_short(doc)}")
    for key in ("name", "type"):
        if key not in doc:
            raise SchemaFileError(f"{where} is missing '{key}'")
    for key in ("name", "type", "column"):
        if key in doc and (type(doc[key]) is not str or not doc[key]):
            raise SchemaFileError(f"{where}.{key} must be a non-empty string, got {_short(doc[key])}")
    for key in _FLAGS:
        if key in doc and type(doc[key]) is not bool:
            raise SchemaFileError(f"{where}.{key} must be true or false, got {_short(doc[key])}")
    for key, limit in _SIZES.items():
        value = doc.get(key)
        if value is not None and (type(value) is not int or not 0 <= value <= limit
                                  or (value == 0 and key != "decimal_places")):
            raise SchemaFileError(f"{where}.{key} must be an integer from {int(key != 'decimal_places')} "
                                  f"to {limit}, got {_short(value)}")
    for key in _NAMES:
        if doc.get(key) is not None and (type(doc[key]) is not str or not doc[key]):
            raise SchemaFileError(f"{where}.{key} must be a non-empty string, got {_short(doc[key])}")
    if doc.get("on_delete") is not None and doc["on_delete"] not in ON_DELETE_ACTIONS:
        raise SchemaFileError(f"{where}.on_delete must be one of {', '.join(ON_DELETE_ACTIONS)}, "
                              f"got {_short(doc['on_delete'])}")
    if doc.get("deferrable") is not None and doc["deferrable"] not in DEFERRABLE_MODES:
        raise SchemaFileError(f"{where}.deferrable must be one of {', '.join(DEFERRABLE_MODES)}, "
                              f"got {_short(doc['deferrable'])}")
    for key in ("fk_name", "key_name"):
        if doc.get(key) is not None and (len(doc[key].encode("utf-8")) > MAX_IDENTIFIER or "\x00" in doc[key]):
            raise SchemaFileError(f"{where}.{key} must be a name of at most {MAX_IDENTIFIER} bytes, "
                                  f"got {_short(doc[key])}")
    if doc.get("db_default") is not None and doc["db_default"] not in DB_DEFAULTS:
        raise SchemaFileError(f"{where}.db_default must be one of {', '.join(DB_DEFAULTS)}, "
                              f"got {_short(doc['db_default'])}")
    kind = doc["type"]
    if kind == "CharField" and doc.get("max_length") is None:
        raise SchemaFileError(f"{where}.max_length is missing (a CharField needs one)")
    if kind == "DecimalField":
        digits, places = doc.get("max_digits"), doc.get("decimal_places")
        if digits is None or places is None:
            raise SchemaFileError(f"{where} needs max_digits and decimal_places (a DecimalField)")
        if places > digits:
            raise SchemaFileError(f"{where}.decimal_places ({places}) is more than max_digits ({digits})")
    if kind == "EnumField" and doc.get("enum") is None:
        raise SchemaFileError(f"{where}.enum is missing (an EnumField names its enum)")
    if "default" in doc:
        _check_json_value(doc["default"], f"{where}.default")
        default = doc["default"]
        if kind == "DecimalField" and default is not None and type(exact_decimal(default)) is not Decimal:
            raise SchemaFileError(f"{where}.default must be a number or its exact decimal text (\"12.50\"), "
                                  f"got {_short(default)}")


# The keys of most field definitions and what their values must be: 1 a non-empty
# string, 2 true or false, 3 a max_length.
_PLAIN_KEYS = {"name": 1, "type": 1, "column": 1, "enum": 1, "to": 1,
               **{key: 2 for key in _FLAGS}, "max_length": 3}


def _plainly_valid(doc: dict) -> bool:
    """True when the definition surely passes check_field_doc: one pass over the keys of
    an ordinary field, which is most of a schema.json (reading one of many thousands of
    models is mostly this). Anything else gets the full check, which names the problem."""
    if "name" not in doc or "type" not in doc:
        return False
    for key, value in doc.items():
        kind = _PLAIN_KEYS.get(key)
        if kind == 1:
            if type(value) is not str or not value:
                return False
        elif kind == 2:
            if type(value) is not bool:
                return False
        elif kind == 3:
            if type(value) is not int or not 0 < value <= _SIZES["max_length"]:
                return False
        elif key == "on_delete":
            if value not in ON_DELETE_ACTIONS:
                return False
        elif key == "default":
            kind_of_value = type(value)
            if kind_of_value is str:
                if "\x00" in value:
                    return False
            elif kind_of_value is int:
                if not -2 ** 63 <= value < 2 ** 63:
                    return False
            elif kind_of_value is not bool and kind_of_value is not float and value is not None:
                return False
        else:
            return False
    kind = doc["type"]
    return kind != "DecimalField" and kind != "EnumField" and (kind != "CharField" or "max_length" in doc)


def _check_json_value(value, where: str, depth: int = 0) -> None:
    """A default: JSON, not nested beyond reason, integers within 64 bits, no NUL."""
    if depth > 32:
        raise SchemaFileError(f"{where} is nested more than 32 levels deep")
    if type(value) is int and not -2 ** 63 <= value < 2 ** 63:
        raise SchemaFileError(f"{where} is beyond the 64-bit integer range")
    if type(value) is str and "\x00" in value:
        raise SchemaFileError(f"{where} contains a NUL character")
    if type(value) is list:
        for item in value:
            _check_json_value(item, where, depth + 1)
    elif type(value) is dict:
        for item in value.values():
            _check_json_value(item, where, depth + 1)


def check_index_doc(doc, where: str) -> None:
    if type(doc) is not dict:
        raise SchemaFileError(f"{where} must be an object, got {_short(doc)}")
    if type(doc.get("name")) is not str or not doc["name"]:
        raise SchemaFileError(f"{where}.name must be a non-empty string, got {_short(doc.get('name'))}")
    fields = doc.get("fields")
    if type(fields) is not list or not fields or any(type(f) is not str or not f for f in fields):
        raise SchemaFileError(f"{where}.fields must be a list of field names, got {_short(fields)}")
    for key in ("unique", "constraint"):
        if key in doc and type(doc[key]) is not bool:
            raise SchemaFileError(f"{where}.{key} must be true or false, got {_short(doc[key])}")
    if doc.get("constraint") and not doc.get("unique"):
        raise SchemaFileError(f"{where} is a constraint, so it must be unique")
    if doc.get("where") is not None and index_condition_problem(doc["where"]) is not None:
        raise SchemaFileError(f"{where}.where {index_condition_problem(doc['where'])}, got {_short(doc['where'])}")
    if doc.get("opclass") is not None and (type(doc["opclass"]) is not str or not OPCLASS.fullmatch(doc["opclass"])):
        raise SchemaFileError(f"{where}.opclass must be an operator class name, got {_short(doc['opclass'])}")


def check_check_doc(doc, where: str) -> None:
    """A check constraint: a name and an expression that is one SQL expression (it
    reaches SQL as written, so it is checked wherever it is read)."""
    if type(doc) is not dict:
        raise SchemaFileError(f"{where} must be an object, got {_short(doc)}")
    name = doc.get("name")
    if type(name) is not str or not name or "\x00" in name or len(name.encode("utf-8")) > MAX_IDENTIFIER:
        raise SchemaFileError(f"{where}.name must be a name of at most {MAX_IDENTIFIER} bytes, got {_short(name)}")
    problem = check_expression_problem(doc.get("expression"))
    if problem is not None:
        raise SchemaFileError(f"{where}.expression {problem}, got {_short(doc.get('expression'))}")


def check_model_doc(doc, where: str) -> None:
    if type(doc) is not dict:
        raise SchemaFileError(f"{where} must be an object, got {_short(doc)}")
    for key in ("name", "table"):
        if key in doc and (type(doc[key]) is not str or not doc[key]):
            raise SchemaFileError(f"{where}.{key} must be a non-empty string, got {_short(doc[key])}")
    if "table" not in doc:
        raise SchemaFileError(f"{where} is missing 'table'")
    if type(doc.get("fields")) is not list:
        raise SchemaFileError(f"{where}.fields must be a list, got {_short(doc.get('fields'))}")
    for position, field in enumerate(doc["fields"]):
        check_field_doc(field, f"{where}.fields[{position}]")
    indexes = doc.get("indexes", [])
    if type(indexes) is not list:
        raise SchemaFileError(f"{where}.indexes must be a list, got {_short(indexes)}")
    for position, index in enumerate(indexes):
        check_index_doc(index, f"{where}.indexes[{position}]")
    checks = doc.get("checks", [])
    if type(checks) is not list:
        raise SchemaFileError(f"{where}.checks must be a list, got {_short(checks)}")
    for position, check in enumerate(checks):
        check_check_doc(check, f"{where}.checks[{position}]")


def check_enum_members(doc, where: str) -> None:
    if type(doc) is not list or any(type(m) is not list or len(m) != 2
                                    or any(type(v) is not str or not v for v in m) for m in doc):
        raise SchemaFileError(f"{where} must be a list of [KEY, VALUE] string pairs, got {_short(doc)}")


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
        default = get("default")
        if kind == "DecimalField" and default is not None:
            default = exact_decimal(default)
        fields.append(tuple.__new__(field_class, (
            name, kind, column, get("null", False), get("unique", False), get("primary_key", False),
            "default" in doc, default, get("max_length"), get("max_digits"), get("decimal_places"),
            get("auto_now", False), get("auto_now_add", False), get("enum"), get("to"), get("on_delete"),
            get("fk_name"), get("key_name"), get("deferrable"), get("db_default"))))
    return tuple(fields)


def _fitting_twin():
    """The compiled twin, when it was built from the Field of these sources. A compiled
    module left from before a Field slot was added (an editable install not rebuilt)
    would give fields that are too short, and fail far from here; the Python loop is
    used instead."""
    compiled = twin(new_form_fields)
    if compiled is new_form_fields:
        return compiled
    probe = compiled([{"name": "n", "type": "IntegerField"}], Field)
    return compiled if len(probe[0]) == len(Field._fields) else new_form_fields


_new_form_fields = _fitting_twin()


# ---------------------------------------------------------------- models and enums

# Inside shared_model_documents(), a model's JSON is built once per model object and
# shared: a makemigrations that creates thousands of models writes each of them twice,
# in the migration's create_model and in schema.json. So is a field's JSON, per field
# object: validation makes a field declared alike in several models (an id, a
# created_at) one object, and a document for each use would hold several hundred
# megabytes at 20,000 models. The documents are never changed.
_shared_documents: Optional[dict] = None
_shared_fields: Optional[dict] = None


@contextmanager
def shared_model_documents():
    global _shared_documents, _shared_fields
    outer, outer_fields = _shared_documents, _shared_fields
    if outer is None:
        _shared_documents, _shared_fields = {}, {}
    try:
        yield
    finally:
        _shared_documents, _shared_fields = outer, outer_fields


def model_to_json(model: Model) -> dict:
    shared = _shared_documents
    if shared is not None:
        found = shared.get(id(model))
        if found is not None and found[0] is model:
            return found[1]
    doc = _model_document(model)
    if shared is not None:
        shared[id(model)] = (model, doc)  # the model is kept, so its id stays its own
    return doc


def _model_document(model: Model) -> dict:
    shared = _shared_fields
    fields = [field_to_json(f) for f in model.fields] if shared is None else _field_documents(model.fields, shared)
    doc = {
        "name": model.name,
        "table": model.table,
        "fields": fields,
        "indexes": [index_to_json(i) for i in model.indexes],
    }
    if model.checks:  # written only when there are some: files without checks stay as they were
        doc["checks"] = [check_to_json(c) for c in model.checks]
    return doc


def _field_documents(fields, shared: dict) -> list:
    documents = []
    for f in fields:
        found = shared.get(id(f))
        if found is None or found[0] is not f:
            found = shared[id(f)] = (f, field_to_json(f))  # the field is kept, so its id stays its own
        documents.append(found[1])
    return documents


def check_to_json(check: Check) -> dict:
    return {"name": check.name, "expression": check.expression}


def check_from_json(doc, where) -> Check:
    try:
        return Check(doc["name"], doc["expression"])
    except (KeyError, TypeError):
        raise SchemaFileError(f"{where}: malformed check {_short(doc)}") from None


def index_to_json(index: Index) -> dict:
    doc = {"name": index.name, "fields": list(index.fields), "unique": index.unique}
    if index.where is not None:
        doc["where"] = index.where
    if index.opclass is not None:
        doc["opclass"] = index.opclass
    if index.constraint:
        doc["constraint"] = True
    return doc


def index_from_json(doc, where) -> Index:
    try:
        return Index(doc["name"], tuple(doc["fields"]), bool(doc.get("unique", False)), doc.get("where"),
                     doc.get("opclass"), bool(doc.get("constraint", False)))
    except (KeyError, TypeError):
        raise SchemaFileError(f"{where}: malformed index {_short(doc)}") from None


def model_from_json(name: str, doc: dict, where: str) -> Model:
    if not isinstance(doc, dict) or "table" not in doc or not isinstance(doc.get("fields"), list):
        raise SchemaFileError(f"{where}: model '{name}' needs 'table' and 'fields'")
    raw_fields = doc["fields"]
    index_docs = doc.get("indexes")
    check_docs = doc.get("checks")
    fast = _new_form_fields(raw_fields, Field)
    if fast is not None and not index_docs and not check_docs and fast and fast[0].primary_key:
        return Model(doc.get("name", name), doc["table"], fast, ())  # the common case, quickly
    indexes = [index_from_json(i, where) for i in index_docs] if index_docs else []
    fields = fast if fast is not None else \
        tuple(field_from_json(raw, f"{where}: model {name}") for raw in raw_fields)
    indexes = tuple(sorted(set(indexes), key=lambda i: i.name))
    checks = tuple(sorted({check_from_json(c, where) for c in check_docs}, key=lambda c: c.name)) \
        if check_docs else ()
    return Model(doc.get("name", name), doc["table"], tuple(fields), indexes, checks)


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
    """A schema.json document in the current form (store.py hands the earlier tool's
    to legacy.py)."""
    with gc_paused():
        return _schema_from_json(doc, where)


def check_envelope(doc, where: str):
    """The checks every schema.json document passes, in either form; returns its format."""
    if not isinstance(doc, dict) or not isinstance(doc.get("models", {}), dict) \
            or not isinstance(doc.get("enums", {}), dict):
        raise SchemaFileError(f"{where}: not a schema (expected an object with 'enums' and 'models')")
    missing = [key for key in ("enums", "models") if key not in doc]
    if missing:
        # An empty object is no empty schema: taking it for one would recreate every
        # table (makemigrations) or drop nothing the history owns (reset).
        raise SchemaFileError(f"{where}: not a schema snapshot: no {' and no '.join(repr(k) for k in missing)} "
                              "key (restore it from version control, or delete it and run "
                              "`mf db makemigrations` to rebuild it from the migration files)")
    if type(doc.get(INDEX_FOREIGN_KEYS, True)) is not bool:
        raise SchemaFileError(f"{where}: '{INDEX_FOREIGN_KEYS}' must be true or false")
    fmt = doc.get("format")
    if fmt is not None and fmt != FORMAT:
        raise SchemaFileError(f"{where}: format {fmt!r} is newer than this mf understands (format {FORMAT})")
    return fmt


def _schema_from_json(doc, where):
    if check_envelope(doc, where) is None:
        raise SchemaFileError(f"{where}: no 'format' key (the earlier tool's form is read by store.load_schema)")
    check_document(doc, where)
    enums = {name: Enum(name, enum_members_from_json(name, members, where))
             for name, members in doc.get("enums", {}).items()}
    models = {name: model_from_json(name, m, where) for name, m in doc.get("models", {}).items()}
    return Schema(enums=enums, models=models)


def check_document(doc, where: str) -> None:
    """Every value of a current-form schema.json has the type it must have."""
    for name, members in doc.get("enums", {}).items():
        check_enum_members(members, f"{where}: enums.{name}")
    for name, model in doc.get("models", {}).items():
        check_model_doc(model, f"{where}: models.{name}")


def dump_schema(schema: Schema) -> bytes:
    """schema.json's bytes: canonical, so equal schemas give equal bytes."""
    return dumps(schema_to_json(schema))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


# ---------------------------------------------------------------- schema.json's byte layout
#
# What dumps() writes for a schema.json document: top-level keys in order (enums,
# format, made_from, migration, models, relations), two-space indent, one model per entry of
# "models". model_cache.py reads models where they lie and copies unchanged ones.
# makemigrations appends "sources" (model_cache.py): what each model was read from.

_INDENT = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
_MODELS_OPEN = b'\n  "models": {\n'
_RELATIONS_OPEN = b'\n  "relations": '
_ENTRY = re.compile(rb'\n    "([A-Za-z_][A-Za-z0-9_]*)": \{\n')


def reflects(snapshot: bytes, migration_name: str) -> bool:
    """Whether schema.json's bytes say they reflect this migration file."""
    return snapshot.find(b'\n  "migration": ' + orjson.dumps(migration_name) + b",\n") >= 0


def indexes_foreign_keys(snapshot: bytes) -> bool:
    """Whether schema.json's bytes record that the project indexes foreign keys: found
    where dumps() puts the key without parsing the document, else (a file laid out
    otherwise, by hand or by a merge) read from the document when it names the key."""
    key = b'"%s"' % INDEX_FOREIGN_KEYS.encode()
    if snapshot.find(b'\n  %s: true,\n' % key) >= 0:
        return True
    if snapshot.find(key) < 0:
        return False
    try:
        document = orjson.loads(snapshot)
    except orjson.JSONDecodeError:
        return False
    return isinstance(document, dict) and document.get(INDEX_FOREIGN_KEYS) is True


def made_from(snapshot: bytes) -> Optional[str]:
    """The models digest schema.json's bytes carry (see store.models_digest), found where
    dumps() puts it without parsing the document; None when it has none."""
    key = b'\n  "%s": "' % MADE_FROM.encode()
    start = snapshot.find(key)
    if start < 0:
        return None
    start += len(key)
    end = snapshot.find(b'",\n', start)
    if end < 0 or end - start > 200:
        return None
    return snapshot[start:end].decode("ascii", "replace")


def layout(snapshot: bytes):
    """({model: (start, end)}, (start, end)): where each model's value and the
    relations list lie in a schema.json written by dumps (with sources or without);
    None if it is not laid out as that writes it."""
    models_at = snapshot.find(_MODELS_OPEN)
    relations_at = snapshot.find(_RELATIONS_OPEN, models_at)
    body_end = sources_start(snapshot)
    if body_end is None:
        body_end = len(snapshot) - 3 if snapshot.endswith(b"\n}\n") else -1
    if models_at < 0 or relations_at < 0 or body_end < 0 or snapshot[body_end - 1:body_end] != b"]":
        return None
    found = [(match.group(1).decode(), match.end() - 2, match.start())
             for match in _ENTRY.finditer(snapshot, models_at, relations_at)]
    spans = {}
    # Each value ends where the next entry's ",\n" begins; the last before "\n  },".
    ends = [start - 1 for _name, _value, start in found[1:]] + [relations_at - 5]
    for (name, start, _entry), end in zip(found, ends):
        if snapshot[start:start + 1] != b"{" or snapshot[end - 1:end] != b"}":
            return None
        spans[name] = (start, end)
    return spans, (relations_at + len(_RELATIONS_OPEN), body_end)


# ---------------------------------------------------------------- schema.json's sources
#
# makemigrations ends schema.json with what each model was read from (model_cache.py
# makes the value): a last top-level key, "sources", whose own last key is the SHA-1
# of every byte of the file before that digest. A file changed anywhere else (by hand,
# by a merge, by another command that writes schema.json without sources) no longer
# matches it, and its sources are not used.

_SOURCES_OPEN = b',\n  "sources": '
_SOURCES_SEAL = b',\n    "sha1": "'
_SOURCES_CLOSE = b'"\n  }\n}\n'
_SHA1_HEX = 40


def sources_start(snapshot: bytes) -> Optional[int]:
    """Where the sources begin (their key's comma) in schema.json's bytes, when the file
    ends with them as with_sources() writes them, whatever the digest; else None."""
    if not snapshot.endswith(_SOURCES_CLOSE):
        return None
    at = snapshot.rfind(_SOURCES_OPEN, 0, len(snapshot) - len(_SOURCES_CLOSE))
    return at if at >= 0 else None


def with_sources(body, sources: bytes):
    """schema.json's bytes: ``body`` (as dumps, dumps_pieces or rewrite make it: bytes, or
    pieces) ending with the sources, whose value is ``sources`` (an object's text
    without its closing brace, laid out two spaces deep) sealed by their digest. Given
    as pieces to write one after the other, so that a large file is not copied once
    more: a list, or an iterator when ``body`` is one, sealing each piece as it comes."""
    if isinstance(body, (bytes, list)):
        return list(_sealed([body] if isinstance(body, bytes) else body, sources))
    return _sealed(body, sources)


def _sealed(body, sources: bytes):
    sealed = hashlib.sha1(usedforsecurity=False)
    last = None
    for piece in body:
        if last is not None:
            sealed.update(last)
            yield last
        last = piece
    if last is None or bytes(last[-3:]) != b"\n}\n":
        raise ValueError("schema.json's body must end as dumps() ends it")
    for piece in (memoryview(last)[:-3], _SOURCES_OPEN, sources, _SOURCES_SEAL):
        sealed.update(piece)
        yield piece
    yield sealed.hexdigest().encode()
    yield _SOURCES_CLOSE


def sealed_sources(snapshot: bytes) -> Optional[bytes]:
    """The text of the sources in schema.json's bytes, when their digest is that of the
    file before it (so nothing in the file changed since makemigrations wrote it);
    else None."""
    end = len(snapshot) - len(_SOURCES_CLOSE) - _SHA1_HEX
    start = sources_start(snapshot)
    if start is None or end < start or not snapshot.startswith(_SOURCES_SEAL, end - len(_SOURCES_SEAL)):
        return None
    view = memoryview(snapshot)
    if hashlib.sha1(view[:end], usedforsecurity=False).hexdigest().encode() != view[end:end + _SHA1_HEX]:
        return None
    return snapshot[start + len(_SOURCES_OPEN):end - len(_SOURCES_SEAL)] + b"}"


def without_sources(snapshot: bytes) -> bytes:
    """schema.json's bytes as dumps() writes the document without its sources."""
    start = sources_start(snapshot)
    return snapshot if start is None else snapshot[:start] + b"\n}\n"


def model_bytes(model: Model) -> bytes:
    """A model's value as dumps() lays it out inside schema.json (where layout() finds it)."""
    return _nested(orjson.dumps(_model_document(model), option=_INDENT), 4)


def schema_from_layout(snapshot: bytes, spans: dict, relations_span, known: dict,
                       where: str = "schema.json") -> Optional[Schema]:
    """The schema of schema.json's bytes, laid out as dumps() writes them (``spans`` and
    ``relations_span`` from layout()), when each model of ``known`` ({name: Model}) lies
    there as model_bytes() of that model: those bytes are what the writer makes of a
    checked model, so the model is taken as it is, neither parsed nor checked again
    (tests/test_snapshot.py holds that reading them would give it back and pass every
    check). The rest of the file is read and checked as schema_from_json reads it.
    None when anything is wrong, or not as dumps() writes it (the other models, the
    relations): the full reading then says what, or reads the file as it is."""
    view = memoryview(snapshot)
    pieces = []
    position = 0
    for start, end in sorted(spans[name] for name in known):
        pieces += [view[position:start], b"{}"]
        position = end
    pieces.append(view[position:])
    try:
        doc = orjson.loads(b"".join(pieces))
        if check_envelope(doc, where) != FORMAT:
            return None
        docs = doc["models"]
        if any(docs.get(name) != {} for name in known):
            return None  # a name given twice, or laid out otherwise
        for name, members in doc["enums"].items():
            check_enum_members(members, f"{where}: enums.{name}")
        models = {}
        for name, model_doc in docs.items():
            model = known.get(name)
            if model is None:
                check_model_doc(model_doc, f"{where}: models.{name}")
                span = spans.get(name)
                if span is None or view[span[0]:span[1]] != _nested(orjson.dumps(model_doc, option=_INDENT), 4):
                    return None  # kept as it lies, it would not be what dumps() writes of it
                model = model_from_json(name, model_doc, where)
            models[name] = model
        enums = {name: Enum(name, enum_members_from_json(name, members, where))
                 for name, members in doc["enums"].items()}
    except (orjson.JSONDecodeError, SchemaFileError):
        return None
    schema = Schema(enums=enums, models=models)
    start, end = relations_span
    if view[start:end] != _nested(orjson.dumps(relations(schema), option=_INDENT), 2):
        return None
    return schema


def model_at(snapshot: bytes, span, name: str) -> Model:
    """The model whose value lies at ``span`` (from layout) in schema.json's bytes."""
    return model_from_json(name, orjson.loads(snapshot[span[0]:span[1]]), "schema.json")


def rewrite(snapshot: bytes, kept: dict, relations_span, after: Schema, rewritten: set, migration_name: str,
            made_from_digest: Optional[str] = None, index_foreign_keys: bool = False) -> list:
    """schema.json's bytes for ``after``, copying the models in ``kept`` ({name: (start,
    end)} in ``snapshot``) as they lie and writing those in ``rewritten`` anew (a name
    of ``rewritten`` that ``after`` lacks is a model gone, with its relations): the
    same bytes as dumps of the whole document, as pieces to write one after the other
    (most of them views of ``snapshot``, which a large file is not copied into)."""
    names = sorted(kept.keys() | (rewritten & after.models.keys()))
    pieces = [b'{\n  "enums": ',
              _nested(orjson.dumps({name: [list(m) for m in e.members] for name, e in after.enums.items()},
                                   option=_INDENT), 2),
              b',\n  "format": ', str(FORMAT).encode()]
    if index_foreign_keys:
        pieces += [b',\n  "%s": true' % INDEX_FOREIGN_KEYS.encode()]
    if made_from_digest is not None:
        pieces += [b',\n  "%s": ' % MADE_FROM.encode(), orjson.dumps(made_from_digest)]
    pieces += [b',\n  "migration": ', orjson.dumps(migration_name), b',\n  "models": {']
    view = memoryview(snapshot)
    run_start = run_end = None  # a run of models copied as they lie, separators and all
    separator = b"\n"
    for name in names:
        head = b'%s    "%s": ' % (separator, name.encode())
        separator = b",\n"
        if name not in rewritten:
            start, end = kept[name]
            if run_end is not None and start == run_end + len(head):
                run_end = end  # next to the previous model in the old file, as in the new one
                continue
            if run_end is not None:
                pieces.append(view[run_start:run_end])
            pieces.append(head)
            run_start, run_end = start, end
            continue
        if run_end is not None:
            pieces.append(view[run_start:run_end])
            run_start = run_end = None
        pieces += [head, _nested(orjson.dumps(model_to_json(after.models[name]), option=_INDENT), 4)]
    if run_end is not None:
        pieces.append(view[run_start:run_end])
    pieces.append(b"\n  }" if names else b"}")
    start, end = relations_span
    kept_relations = [r for r in orjson.loads(snapshot[start:end]) if r["from"] not in rewritten]
    added = relations(Schema(models={name: after.models[name] for name in rewritten if name in after.models}))
    # relations() lists models in name order: a stable sort on the name merges the two.
    merged = sorted(kept_relations + added, key=_relation_owner)
    pieces += [b',\n  "relations": ', _nested(orjson.dumps(merged, option=_INDENT), 2), b"\n}\n"]
    return pieces


def _nested(value: bytes, depth: int) -> bytes:
    # JSON strings hold no raw newline, so every newline is indentation.
    return value.replace(b"\n", b"\n" + b" " * depth)


def _relation_owner(relation: dict) -> str:
    return relation["from"]

"""Operations <-> JSON in a migration file, in the current form only.

The earlier tool's forms become current ones in legacy.py, where files are read; a
decoder here reads what ``operation_to_json`` writes and raises KeyError, TypeError
or ValueError on anything else, which ``operation_from_json`` turns into one
sentence naming the file and the operation.
"""
from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

from ..errors import MigrationFileError, SchemaFileError
from ..schema import Check, Field, Index, decimal_text, exact_decimal
from ..snapshot import (check_check_doc, check_enum_members, check_field_doc, check_from_json, check_index_doc,
                        check_model_doc, check_to_json,
                        enum_members_from_json, field_from_json, field_to_json, index_from_json,
                        index_to_json, model_from_json, model_to_json)
from .records import (AddCheck, AddColumn, AddForeignKey, AddIndex, AlterColumn, AlterEnum, CreateEnum, CreateModel,
                      DropCheck, DropColumn, DropEnum, DropForeignKey, DropIndex, DropModel, Operation, RenameColumn,
                      RenameModel, RunPython, RunSQL)
from .tables import Reference, TableDef


def operation_to_json(op: Operation) -> dict:
    return _ENCODE[op.op](op)


def operation_from_json(doc, where: str) -> Operation:
    """One operation in the current form; ``where`` names the file and the position."""
    return decode_operation(doc, where, DECODERS)


def check_operation(op: Operation, where: str) -> Operation:
    """Every field an operation carries (its own, its table definitions') passes the
    checks of a field read from a file: whatever form the file was in, nothing
    unchecked reaches SQL."""
    for attribute in dataclasses.fields(op):
        value = getattr(op, attribute.name)
        for position, item in enumerate(value if type(value) is tuple else (value,)):
            here = f"{where}.{attribute.name}" + (f"[{position}]" if type(value) is tuple else "")
            if isinstance(item, Field):
                check_field_doc(field_to_json(item), here)
            elif isinstance(item, TableDef):
                for f in item.model.fields:
                    check_field_doc(field_to_json(f), f"{here}.model.fields.{f.name}")
                for name, reference in {**item.references, **item.deferred}.items():
                    check_field_doc(field_to_json(reference.key), f"{here}.references.{name}.key")
            elif isinstance(item, Index):
                check_index_doc(index_to_json(item), here)
            elif isinstance(item, Check):
                check_check_doc(check_to_json(item), here)
    return op


def decode_operation(doc, where: str, decoders: dict) -> Operation:
    """Check an operation's envelope, run its decoder, and say what is wrong in one
    sentence (the decoders raise KeyError, TypeError or ValueError)."""
    if not isinstance(doc, dict) or "op" not in doc:
        raise MigrationFileError(f"{where}: an operation must be an object with an 'op' key")
    if type(doc["op"]) is not str:
        raise MigrationFileError(f"{where}.op must be a string, got {_short(doc['op'])}")
    decoder = decoders.get(doc["op"])
    if decoder is None:
        raise MigrationFileError(f"{where}: unknown operation '{doc['op'][:60]}'"
                                 f" (known: {', '.join(OPERATION_KINDS)})")
    for key in _STRING_KEYS:
        if key in doc and (type(doc[key]) is not str or not doc[key]):
            raise MigrationFileError(f"{where}.{key} must be a non-empty string, got {_short(doc[key])}")
    try:
        return check_operation(decoder(doc, where), where)
    except SchemaFileError as exc:
        raise MigrationFileError(str(exc)) from None
    except KeyError as exc:
        raise MigrationFileError(f"{where}: operation {doc['op']} is missing {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise MigrationFileError(f"{where}: operation {doc['op']} is malformed ({exc})") from None


# Keys that hold a name wherever they appear in an operation (names reach SQL quoted).
_STRING_KEYS = ("model", "table", "field_name", "to", "on_delete", "name", "old_name", "new_name",
                "old_table", "new_table")


# ---------------------------------------------------------------- table definitions

def table_def_to_json(table: TableDef) -> dict:
    doc = {
        "model": model_to_json(table.model),
        "references": _references_json(table.references),
        "enums": {name: list(values) for name, values in table.enums.items()},
    }
    if table.deferred:
        doc["deferred"] = _references_json(table.deferred)
    return doc


def table_def_from_json(doc, where) -> TableDef:
    _check_table_def(doc, where)
    try:
        model = model_from_json(doc["model"].get("name", "?"), doc["model"], where)
        references = _references_from_json(doc.get("references", {}), where)
        enums = {name: tuple(values) for name, values in doc.get("enums", {}).items()}
        deferred = _references_from_json(doc.get("deferred", {}), where)
    except (KeyError, TypeError, AttributeError):
        raise MigrationFileError(f"{where}: malformed table definition") from None
    return TableDef(model, references, enums, deferred)


def _check_table_def(doc, where) -> None:
    """A table definition's shape, every value's type checked (they reach SQL)."""
    if type(doc) is not dict:
        raise SchemaFileError(f"{where} must be an object, got {_short(doc)}")
    if "model" not in doc:
        raise SchemaFileError(f"{where} is missing 'model'")
    check_model_doc(doc["model"], f"{where}.model")
    for key in ("references", "deferred"):
        references = doc.get(key, {})
        if type(references) is not dict:
            raise SchemaFileError(f"{where}.{key} must be an object, got {_short(references)}")
        for name, reference in references.items():
            here = f"{where}.{key}.{name}"
            if type(reference) is not dict:
                raise SchemaFileError(f"{here} must be an object, got {_short(reference)}")
            for part in ("model", "table", "column"):
                if type(reference.get(part)) is not str or not reference[part]:
                    raise SchemaFileError(f"{here}.{part} must be a non-empty string, "
                                          f"got {_short(reference.get(part))}")
            check_field_doc(reference.get("key"), f"{here}.key")
    enums = doc.get("enums", {})
    if type(enums) is not dict or any(type(v) is not list or any(type(x) is not str for x in v)
                                      for v in enums.values()):
        raise SchemaFileError(f"{where}.enums must map enum names to lists of values, got {_short(enums)}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _field(doc, key, where):
    """``doc[key]``, a field definition, checked and read."""
    check_field_doc(doc[key], f"{where}.{key}")
    return field_from_json(doc[key], f"{where}.{key}")


def _enum_members(name, doc, key, where):
    check_enum_members(doc[key], f"{where}.{key}")
    return enum_members_from_json(name, doc[key], f"{where}.{key}")


def _index(doc, where):
    check_index_doc(doc["index"], f"{where}.index")
    return index_from_json(doc["index"], f"{where}.index")


def _check(doc, where):
    check_check_doc(doc["check"], f"{where}.check")
    return check_from_json(doc["check"], f"{where}.check")


def _references_json(references: dict) -> dict:
    return {name: {"model": r.model, "table": r.table, "column": r.column, "key": field_to_json(r.key)}
            for name, r in references.items()}


def _references_from_json(doc: dict, where) -> dict:
    return {name: Reference(r["model"], r["table"], r["column"], field_from_json(r["key"], where))
            for name, r in doc.items()}


def _table_json(table):
    return {"table_def": table_def_to_json(table)} if table is not None else {}


def read_table(doc, where):
    return table_def_from_json(doc["table_def"], f"{where}.table_def") if "table_def" in doc else None


# ---------------------------------------------------------------- to JSON

def _create_enum_to_json(op):
    return {"op": op.op, "name": op.name, "values": [list(m) for m in op.members]}


def _drop_enum_to_json(op):
    return {"op": op.op, "name": op.name, "values": [list(m) for m in op.members]}


def _alter_enum_to_json(op):
    return {"op": op.op, "name": op.name,
            "old_values": [list(m) for m in op.old_members],
            "values": [list(m) for m in op.new_members],
            "tables": [table_def_to_json(t) for t in op.tables]}


def _create_model_to_json(op):
    doc = {"op": op.op, "model": op.model, "table": op.table, **_table_json(op.table_def)}
    if op.deferred_keys:
        doc["deferred_keys"] = list(op.deferred_keys)
    return doc


def _drop_model_to_json(op):
    return {"op": op.op, "model": op.model, "table": op.table, **_table_json(op.table_def)}


def _rename_model_to_json(op):
    return {"op": op.op, "old_name": op.old_name, "new_name": op.new_name,
            "old_table": op.old_table, "new_table": op.new_table, **_table_json(op.table_def)}


def _add_column_to_json(op):
    return {"op": op.op, "model": op.model, "table": op.table, "field_name": op.field.name,
            "field_def": field_to_json(op.field), **_table_json(op.table_def)}


def _drop_column_to_json(op):
    return {"op": op.op, "model": op.model, "table": op.table, "field_name": op.field.name,
            "field_def": field_to_json(op.field), **_table_json(op.table_def)}


def _alter_column_to_json(op):
    doc = {"op": op.op, "model": op.model, "table": op.table, "field_name": op.new.name,
           "old_def": field_to_json(op.old), "field_def": field_to_json(op.new),
           **_table_json(op.table_def)}
    if op.old_key is not None:
        doc["old_key"] = field_to_json(op.old_key)
    if op.backfill is not None:
        doc["backfill"] = decimal_text(op.backfill) if isinstance(op.backfill, Decimal) else op.backfill
    if op.accept_rounding:
        doc["accept_rounding"] = True
    return doc


def _rename_column_to_json(op):
    return {"op": op.op, "model": op.model, "table": op.table, "old_name": op.old.name,
            "new_name": op.new.name, "old_def": field_to_json(op.old),
            "field_def": field_to_json(op.new), **_table_json(op.table_def)}


def _add_foreign_key_to_json(op):
    return {"op": op.op, "model": op.model, "table": op.table, "field_name": op.field_name,
            "to": op.target, "on_delete": op.on_delete, **_table_json(op.table_def)}


def _drop_foreign_key_to_json(op):
    return {"op": op.op, "model": op.model, "table": op.table, "field_name": op.field_name,
            "to": op.target, "on_delete": op.on_delete, **_table_json(op.table_def)}


def _add_index_to_json(op):
    return {"op": op.op, "model": op.model, "table": op.table, "index": index_to_json(op.index),
            "columns": list(op.columns), **_table_json(op.table_def)}


def _drop_index_to_json(op):
    return {"op": op.op, "model": op.model, "table": op.table, "index": index_to_json(op.index),
            "columns": list(op.columns), **_table_json(op.table_def)}


def _add_check_to_json(op):
    return {"op": op.op, "model": op.model, "table": op.table, "check": check_to_json(op.check),
            **_table_json(op.table_def)}


def _drop_check_to_json(op):
    return {"op": op.op, "model": op.model, "table": op.table, "check": check_to_json(op.check),
            **_table_json(op.table_def)}


# ---------------------------------------------------------------- from JSON
#
# Names from a file end up in SQL (quoted by the dialects): each is checked to be a
# string here, once.

def _name(doc, key, default=None):
    value = doc[key] if default is None else doc.get(key, default)
    if type(value) is not str:
        raise TypeError(f"'{key}' must be a string, got {value!r:.40}")
    return value


def _list(doc, key) -> list:
    value = doc.get(key, [])
    if type(value) is not list:
        raise TypeError(f"'{key}' must be a list, got {value!r:.40}")
    return value


def _names(doc, key) -> tuple:
    values = doc.get(key, []) if key == "deferred_keys" else doc[key]
    if type(values) is not list or any(type(v) is not str for v in values):
        raise TypeError(f"'{key}' must be a list of strings")
    return tuple(values)


def _create_enum_from_json(doc, where):
    name = _name(doc, "name")
    return CreateEnum(name, _enum_members(name, doc, "values", where))


def _drop_enum_from_json(doc, where):
    name = _name(doc, "name")
    return DropEnum(name, _enum_members(name, doc, "values", where))


def _alter_enum_from_json(doc, where):
    name = _name(doc, "name")
    return AlterEnum(name, _enum_members(name, doc, "old_values", where),
                     _enum_members(name, doc, "values", where),
                     tuple(table_def_from_json(t, f"{where}.tables[{i}]")
                           for i, t in enumerate(_list(doc, "tables"))))


def _create_model_from_json(doc, where):
    return CreateModel(_name(doc, "model"), _name(doc, "table"), read_table(doc, where),
                       _names(doc, "deferred_keys"))


def _drop_model_from_json(doc, where):
    return DropModel(_name(doc, "model"), _name(doc, "table"), read_table(doc, where))


def _rename_model_from_json(doc, where):
    return RenameModel(_name(doc, "old_name"), _name(doc, "new_name"), _name(doc, "old_table"),
                       _name(doc, "new_table"), read_table(doc, where))


def _add_column_from_json(doc, where):
    return AddColumn(_name(doc, "model"), _name(doc, "table"), _field(doc, "field_def", where),
                     read_table(doc, where))


def _drop_column_from_json(doc, where):
    return DropColumn(_name(doc, "model"), _name(doc, "table"), _field(doc, "field_def", where),
                      read_table(doc, where))


def _alter_column_from_json(doc, where):
    # What changed is not in the file: the record works it out from both sides.
    old_key = _field(doc, "old_key", where) if "old_key" in doc else None
    backfill = doc.get("backfill")
    if backfill is not None and type(backfill) not in (str, int, float, bool):
        raise TypeError(f"'backfill' must be a string, a number or true/false, got {backfill!r:.40}")
    accept_rounding = doc.get("accept_rounding", False)
    if type(accept_rounding) is not bool:
        raise TypeError(f"'accept_rounding' must be true or false, got {accept_rounding!r:.40}")
    new = _field(doc, "field_def", where)
    if backfill is not None and new.type == "DecimalField":
        backfill = exact_decimal(backfill)
        if not isinstance(backfill, Decimal):
            raise TypeError(f"'backfill' of a DecimalField must be a number or its decimal text, got "
                            f"{doc.get('backfill')!r:.40}")
    return AlterColumn(_name(doc, "model"), _name(doc, "table"), _field(doc, "old_def", where), new,
                       read_table(doc, where), old_key, backfill=backfill, accept_rounding=accept_rounding)


def _rename_column_from_json(doc, where):
    return RenameColumn(_name(doc, "model"), _name(doc, "table"), _field(doc, "old_def", where),
                        _field(doc, "field_def", where), read_table(doc, where))


def _add_foreign_key_from_json(doc, where):
    return AddForeignKey(_name(doc, "model"), _name(doc, "table"), _name(doc, "field_name"), _name(doc, "to"),
                         _name(doc, "on_delete", "CASCADE"), read_table(doc, where))


def _drop_foreign_key_from_json(doc, where):
    return DropForeignKey(_name(doc, "model"), _name(doc, "table"), _name(doc, "field_name"), _name(doc, "to"),
                          _name(doc, "on_delete", "CASCADE"), read_table(doc, where))


def _add_index_from_json(doc, where):
    return AddIndex(_name(doc, "model"), _name(doc, "table"), _index(doc, where),
                    _names(doc, "columns"), read_table(doc, where))


def _drop_index_from_json(doc, where):
    return DropIndex(_name(doc, "model"), _name(doc, "table"), _index(doc, where),
                     _names(doc, "columns"), read_table(doc, where))


def _add_check_from_json(doc, where):
    return AddCheck(_name(doc, "model"), _name(doc, "table"), _check(doc, where), read_table(doc, where))


def _drop_check_from_json(doc, where):
    return DropCheck(_name(doc, "model"), _name(doc, "table"), _check(doc, where), read_table(doc, where))


DATABASES = ("postgresql", "sqlite")  # the keys of a per-database SQL map


def _run_sql_to_json(op):
    doc = {"op": op.op, "sql": _sql_to_json(op.sql)}
    if op.reverse_sql is not None:
        doc["reverse_sql"] = _sql_to_json(op.reverse_sql)
    if op.doc is not None:
        doc["doc"] = op.doc
    return doc


def _sql_to_json(sql):
    return sql if isinstance(sql, str) else dict(sql)


def _run_sql_from_json(doc, where):
    reverse = doc.get("reverse_sql")
    note = doc.get("doc")  # a note for the reader of the file; kept when it is text, else ignored
    return RunSQL(_sql_from_json(doc["sql"], "sql"), None if reverse is None else _sql_from_json(reverse, "reverse_sql"),
                  note if isinstance(note, str) else None)


def _sql_from_json(value, key):
    """One SQL text, or a map of them by database (checked here, once)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or not value:
        raise TypeError(f"'{key}' must be a string or a map of strings by database ({', '.join(DATABASES)})")
    unknown = [name for name in value if name not in DATABASES]
    if unknown:
        raise ValueError(f"'{key}' names unknown database {unknown[0]!r} (known: {', '.join(DATABASES)})")
    if any(type(text) is not str for text in value.values()):
        raise TypeError(f"each database's '{key}' must be a string")
    return tuple(sorted(value.items()))


_FUNCTION = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def _run_python_to_json(op):
    doc = {"op": op.op, "function": op.function}
    if op.reverse_function is not None:
        doc["reverse"] = op.reverse_function
    return doc


def _run_python_from_json(doc, where):
    reverse = doc.get("reverse")
    return RunPython(_function(doc["function"], "function"), None if reverse is None else
                     (_function(reverse, "reverse") if reverse != "" else ""))


def _function(value, key):
    if type(value) is not str or not _FUNCTION.fullmatch(value):
        raise ValueError(f"'{key}' must name a function as package.module:name, got {value!r:.60}")
    return value


_ENCODE = {
    "run_python": _run_python_to_json,
    "run_sql": _run_sql_to_json,
    "create_enum": _create_enum_to_json,
    "drop_enum": _drop_enum_to_json,
    "alter_enum": _alter_enum_to_json,
    "create_model": _create_model_to_json,
    "drop_model": _drop_model_to_json,
    "rename_model": _rename_model_to_json,
    "add_column": _add_column_to_json,
    "drop_column": _drop_column_to_json,
    "alter_column": _alter_column_to_json,
    "rename_column": _rename_column_to_json,
    "add_fk": _add_foreign_key_to_json,
    "drop_fk": _drop_foreign_key_to_json,
    "add_index": _add_index_to_json,
    "drop_index": _drop_index_to_json,
    "add_check": _add_check_to_json,
    "drop_check": _drop_check_to_json,
}

DECODERS = {
    "run_python": _run_python_from_json,
    "run_sql": _run_sql_from_json,
    "create_enum": _create_enum_from_json,
    "drop_enum": _drop_enum_from_json,
    "alter_enum": _alter_enum_from_json,
    "create_model": _create_model_from_json,
    "drop_model": _drop_model_from_json,
    "rename_model": _rename_model_from_json,
    "add_column": _add_column_from_json,
    "drop_column": _drop_column_from_json,
    "alter_column": _alter_column_from_json,
    "rename_column": _rename_column_from_json,
    "add_fk": _add_foreign_key_from_json,
    "drop_fk": _drop_foreign_key_from_json,
    "add_index": _add_index_from_json,
    "drop_index": _drop_index_from_json,
    "add_check": _add_check_from_json,
    "drop_check": _drop_check_from_json,
}

OPERATION_KINDS = tuple(DECODERS)

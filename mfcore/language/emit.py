"""Schema -> models.mp text: the reverse of the parser, for `mf db inspect`.

Parsing the text gives the schema back (models, fields, indexes, enums), except for
what the notes say: each note becomes a ``//`` comment above its model (or at the
top), naming what the language cannot say.
"""
from __future__ import annotations

import math
from decimal import Decimal

from ..schema import Index, Schema, check_default_name, decimal_text, index_name, table_name_for

_AUTO = ("AutoField", "BigAutoField")
_RELATIONS = ("ForeignKey", "OneToOneField")


class Unwritable(Exception):
    """A value the language has no literal for."""


def models_text(schema: Schema, notes=(), header: str = "", index_foreign_keys: bool = False) -> str:
    """The models.mp text of ``schema``; ``notes``: (table or None, sentence).
    ``index_foreign_keys``: the project indexes foreign keys: one without an index says
    db_index=false, and the index the setting makes is not written (the text reads back
    as the schema it came from)."""
    by_table: dict = {}
    for table, note in notes:
        by_table.setdefault(table, []).append(note)
    blocks = []
    top = [f"// {line}" for line in header.splitlines()] + [f"// {note}" for note in by_table.get(None, [])]
    if top:
        blocks.append("\n".join(top))
    for name, enum in sorted(schema.enums.items()):
        members = ", ".join(key if key == value else f"{key} = {string_literal(value)}"
                            for key, value in enum.members)
        blocks.append(f"enum {name} {{ {members} }}")
    for name, model in sorted(schema.models.items()):
        lines = [f"// {note}" for note in by_table.get(model.table, [])]
        lines.append(f"model {name} extends Model {{")
        implied = _implied_indexes(model) if index_foreign_keys else {}
        body, field_notes = _fields(model, schema, implied)
        lines = lines[:-1] + [f"// {note}" for note in field_notes] + lines[-1:] + body
        if model.table != table_name_for(name):
            lines.append(f"    table = {string_literal(model.table)}")
        written = [index for index in model.indexes if index not in implied.values()]
        if written:
            lines.append(f"    indexes = [{', '.join(_index(model, index) for index in written)}]")
        if model.checks:
            lines.append(f"    checks = [{', '.join(_check(model, check) for check in model.checks)}]")
        lines.append("}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _implied_indexes(model) -> dict:
    """{field: index or None} for each ForeignKey that models.mp leaves to the project's
    index_foreign_keys setting: its index when that is the one the setting makes (the
    only index beginning with it, plain, under the default name), None when no index
    begins with it (the field then says db_index=false); keys indexed otherwise are
    left out. As in validate.py, any index beginning with the key counts."""
    implied = {}
    for f in model.fields:
        if f.type != "ForeignKey" or f.unique or f.primary_key:
            continue
        leading = [index for index in model.indexes if index.fields[0] == f.name]
        if not leading:
            implied[f.name] = None
        elif len(leading) == 1 and leading[0] == Index(index_name("ix", model.table, [f.column]), (f.name,)):
            implied[f.name] = leading[0]
    return implied


def _fields(model, schema, implied) -> tuple:
    lines, notes = [], []
    for position, f in enumerate(model.fields):
        if position == 0 and f.name == "id" and f.column == "id" and f.type == "AutoField" and f.primary_key:
            continue  # the implicit key
        arguments, note = _arguments(f, schema)
        if f.name in implied and implied[f.name] is None:
            arguments.append("db_index=false")
        if note:
            notes.append(f"field {f.name}: {note}")
        lines.append(f"    {f.name} = {f.type}({', '.join(arguments)})")
    return lines, notes


def _arguments(f, schema) -> tuple:
    arguments = []
    note = None
    if f.type == "CharField":
        arguments.append(str(f.max_length))
    elif f.type == "DecimalField":
        arguments.append(f"{f.max_digits}, {f.decimal_places}")
    elif f.type == "EnumField":
        arguments.append(f.enum)
    elif f.type in _RELATIONS:
        arguments.append(f.target)
        arguments.append(f"on_delete={f.on_delete or 'CASCADE'}")
        if f.deferrable == "deferred":
            arguments.append("deferrable=true")
    if f.primary_key and f.type not in _AUTO:
        arguments.append("primary_key=true")
    if f.null and not f.primary_key:
        arguments.append("null=true")
    if f.unique and not f.primary_key and f.type != "OneToOneField":
        arguments.append("unique=true")
    if f.auto_now:
        arguments.append("auto_now=true")
    if f.auto_now_add:
        arguments.append("auto_now_add=true")
    if f.db_default == "uuid4":
        arguments.append("default=uuid4()")
    if f.has_default:
        try:
            arguments.append(f"default={_default(f, schema)}")
        except Unwritable as problem:
            note = f"default {problem} cannot be written in models.mp"
    if f.column != f.name:
        arguments.append(f"db_column={string_literal(f.column)}")
    return arguments, note


def _default(f, schema) -> str:
    value = f.default
    if f.type == "EnumField":
        for key, stored in schema.enums[f.enum].members:
            if stored == value:
                return f"{f.enum}.{key}"
        raise Unwritable(repr(value))
    return literal(value)


def literal(value) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unwritable(repr(value))
        text = repr(value)
        if "e" in text or "E" in text:
            raise Unwritable(text)
        return text
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, str):
        return string_literal(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{string_literal(key)}: {literal(item)}" for key, item in value.items()) + "}"
    raise Unwritable(repr(value))


def string_literal(text: str) -> str:
    """A double-quoted string; ``\\`` and ``"`` escaped; the language has no newline in one."""
    if "\n" in text or "\r" in text:
        raise Unwritable(repr(text))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _index(model, index) -> str:
    parts = list(index.fields)
    columns = [model.column_of(name) for name in index.fields]
    if index.name != index_name("ix", model.table, columns):
        parts.append(f"name={string_literal(index.name)}")
    if index.unique:
        parts.append("unique=true")
    if index.where is not None:
        parts.append(f"where={string_literal(index.where)}")
    if index.opclass is not None:
        parts.append(f"opclass={string_literal(index.opclass)}")
    return f"Index({', '.join(parts)})"


def _check(model, check) -> str:
    parts = [string_literal(check.expression)]
    if check.name != check_default_name(model.table, check.expression):
        parts.append(f"name={string_literal(check.name)}")
    return f"Check({', '.join(parts)})"

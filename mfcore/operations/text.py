"""Operations as text: the line each one prints in makemigrations' tree, and its part
of a migration file's name. Dispatched on ``op.op``; it reads the records, never builds them."""
from __future__ import annotations

import json
from typing import Optional

from ..schema import Field


def describe(op) -> str:
    return _DESCRIBE[op.op](op)


def name_part(op) -> str:
    return _NAME_PART[op.op](op)


def cannot_undo(op) -> Optional[str]:
    """Why this operation cannot be undone at all (None: it can)."""
    if op.op == "run_sql" and op.reverse_sql is None:
        return "its run_sql step has no reverse_sql (give one, \"\" when there is nothing to undo)"
    if op.op == "run_python" and op.reverse_function is None:
        return f"its run_python step {op.function} has no reverse (give one, \"\" when there is nothing to undo)"
    if op.op == "drop_model" and op.table_def is None:
        return f"{describe(op)}: the file does not record the table's definition"
    return None


def undo_loss(op) -> Optional[str]:
    """What undoing this operation cannot give back (None: nothing is lost)."""
    if op.op == "drop_model":
        return f"table {op.table} ({op.model}) comes back empty"
    if op.op == "drop_column":
        if not op.field.null and not op.field.has_default and not op.field.primary_key \
                and op.field.db_default is None:
            return (f"column {op.table}.{op.field.column} comes back empty, and being NOT NULL without a "
                    "default it can only come back while the table has no rows")
        return f"column {op.table}.{op.field.column} comes back empty"
    return None


# ---------------------------------------------------------------- describe

def _describe_create_enum(op):
    return f"Create enum {op.name} ({', '.join(k for k, _v in op.members)})"


def _describe_drop_enum(op):
    return f"Drop enum {op.name}"


def _describe_alter_enum(op):
    old = dict(op.old_members)
    new = dict(op.new_members)
    parts = [f"+{k}" for k in new if k not in old]
    parts += [f"-{k}" for k in old if k not in new]
    parts += [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if k in old and old[k] != new[k]]
    if not parts:
        parts = ["reorder members"]
    return f"Alter enum {op.name} ({', '.join(parts)})"


def _describe_create_model(op):
    return f"Create model {op.model} (table {op.table}, {len(op.definition.fields)} fields)"


def _describe_drop_model(op):
    return f"Drop model {op.model} (table {op.table})"


def _describe_rename_model(op):
    tables = f" (table {op.old_table} -> {op.new_table})" if op.old_table != op.new_table else ""
    return f"Rename model {op.old_name} -> {op.new_name}{tables}"


def _describe_add_column(op):
    return f"Add field {op.field.name} to {op.model} ({_field_summary(op.field)})"


def _describe_drop_column(op):
    return f"Drop field {op.field.name} from {op.model}"


def _describe_alter_column(op):
    changes = [f"{key}: {_aspect(key, getattr(op.old, key))} -> {_aspect(key, getattr(op.new, key))}"
               for key in Field._fields if key not in ("name", "has_default")
               and getattr(op.old, key) != getattr(op.new, key)
               and not (key == "default" and not op.old.has_default and not op.new.has_default)]
    if op.old.has_default != op.new.has_default and not any(c.startswith("default") for c in changes):
        changes.append("default: " + ("removed" if op.old.has_default else f"{_show(op.new.default)}"))
    if op.follows_key():
        new_key = op.new_key
        after = f" -> {_key_summary(new_key)}" if new_key is not None else ""
        changes.append(f"follows the primary key {op.new.target}.{op.old_key.name}:"
                       f" {_key_summary(op.old_key)}{after}")
    loss = op.rounding
    if loss is not None:
        changes.append(f"{loss.words}, accepted" if op.accept_rounding else
                       f"{loss.words}: migrate stops at a row it would change unless the rounding is accepted")
    return f"Alter field {op.new.name} on {op.model} ({'; '.join(changes)})"


def _describe_rename_column(op):
    return f"Rename field {op.model}.{op.old.name} -> {op.new.name}"


def _describe_add_foreign_key(op):
    return f"Add foreign key {op.model}.{op.field_name} -> {op.target} (on delete {op.on_delete})"


def _describe_drop_foreign_key(op):
    return f"Drop foreign key constraint {op.model}.{op.field_name} -> {op.target}"


def _describe_add_index(op):
    kind = "unique index" if op.index.unique else "index"
    extra = "".join([f" {op.index.opclass}" if op.index.opclass else "",
                     f" where {op.index.where}" if op.index.where else ""])
    return f"Add {kind} {op.index.name} on {op.model} ({', '.join(op.index.fields)}){extra}"


def _describe_add_check(op):
    return f"Add check {op.check.name} on {op.model}: {op.check.expression}"


def _describe_drop_check(op):
    return f"Drop check {op.check.name} on {op.model}"


def _name_part_add_check(op):
    return f"check_{op.check.name}"


def _name_part_drop_check(op):
    return f"drop_check_{op.check.name}"


def _describe_drop_index(op):
    return f"Drop index {op.index.name} on {op.model}"


# ---------------------------------------------------------------- name_part

def _name_part_create_enum(op):
    return f"enum_{op.name}"


def _name_part_drop_enum(op):
    return f"drop_enum_{op.name}"


def _name_part_alter_enum(op):
    return f"enum_{op.name}"


def _name_part_create_model(op):
    return f"create_{op.model}"


def _name_part_drop_model(op):
    return f"drop_{op.model}"


def _name_part_rename_model(op):
    if op.old_name == op.new_name:  # the model stays; its table moves
        return f"rename_{op.old_table}_{op.new_table}"
    return f"rename_{op.old_name}_{op.new_name}"


def _name_part_add_column(op):
    return f"add_{op.field.name}"


def _name_part_drop_column(op):
    return f"drop_{op.field.name}"


def _name_part_alter_column(op):
    return f"alter_{op.new.name}"


def _name_part_rename_column(op):
    return f"rename_{op.old.name}_{op.new.name}"


def _name_part_add_foreign_key(op):
    return f"fk_{op.field_name}"


def _name_part_drop_foreign_key(op):
    return f"drop_fk_{op.field_name}"


def _name_part_add_index(op):
    return f"index_{op.index.name}"


def _name_part_drop_index(op):
    return f"drop_index_{op.index.name}"


def _describe_run_sql(op):
    if op.unfilled:
        return f"Run SQL that fills {op.unfilled} (a template: write its SQL in the file before migrating)"
    databases = "" if isinstance(op.sql, str) else f" ({', '.join(name for name, _text in op.sql)})"
    return f"Run SQL{databases}"


def _describe_run_python(op):
    return f"Run Python {op.function}"


def _name_part_run_python(op):
    return "run_python"


def _name_part_run_sql(op):
    return "run_sql"


_DESCRIBE = {
    "run_sql": _describe_run_sql,
    "run_python": _describe_run_python,
    "create_enum": _describe_create_enum,
    "drop_enum": _describe_drop_enum,
    "alter_enum": _describe_alter_enum,
    "create_model": _describe_create_model,
    "drop_model": _describe_drop_model,
    "rename_model": _describe_rename_model,
    "add_column": _describe_add_column,
    "drop_column": _describe_drop_column,
    "alter_column": _describe_alter_column,
    "rename_column": _describe_rename_column,
    "add_fk": _describe_add_foreign_key,
    "drop_fk": _describe_drop_foreign_key,
    "add_index": _describe_add_index,
    "drop_index": _describe_drop_index,
    "add_check": _describe_add_check,
    "drop_check": _describe_drop_check,
}

_NAME_PART = {
    "run_sql": _name_part_run_sql,
    "run_python": _name_part_run_python,
    "create_enum": _name_part_create_enum,
    "drop_enum": _name_part_drop_enum,
    "alter_enum": _name_part_alter_enum,
    "create_model": _name_part_create_model,
    "drop_model": _name_part_drop_model,
    "rename_model": _name_part_rename_model,
    "add_column": _name_part_add_column,
    "drop_column": _name_part_drop_column,
    "alter_column": _name_part_alter_column,
    "rename_column": _name_part_rename_column,
    "add_fk": _name_part_add_foreign_key,
    "drop_fk": _name_part_drop_foreign_key,
    "add_index": _name_part_add_index,
    "drop_index": _name_part_drop_index,
    "add_check": _name_part_add_check,
    "drop_check": _name_part_drop_check,
}


# ---------------------------------------------------------------- helpers

def _key_summary(key: Field) -> str:
    text = key.type
    if key.type == "CharField":
        text += f"({key.max_length})"
    elif key.type == "DecimalField":
        text += f"({key.max_digits}, {key.decimal_places})"
    return text


def _aspect(key, value) -> str:
    """A field attribute as the tree shows a change of it: deferrable as models.mp says it."""
    if key == "deferrable":
        return {None: "false", "deferred": "true"}.get(value, f"initially {value}")
    return _show(value)


def _show(value):
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "none"
    if isinstance(value, (dict, list)):  # a JSONField's default, as models.mp writes it
        return json.dumps(value, ensure_ascii=False)
    return repr(value) if isinstance(value, str) else str(value)


def _field_summary(f: Field) -> str:
    text = _key_summary(f)  # the type and its size
    if f.type not in ("CharField", "DecimalField"):
        if f.target:
            text += f"({f.target})"
        elif f.enum:
            text += f"({f.enum})"
    if f.null:
        text += ", null"
    if f.has_default:
        text += f", default {_show(f.default)}"
    if f.db_default is not None:
        text += f", default {f.db_default}()"
    return text

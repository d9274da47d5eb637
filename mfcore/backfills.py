"""One-off values for the rows a NOT NULL change leaves without one (makemigrations).

Making a column NOT NULL, or adding a NOT NULL column without a default to a table
that exists, needs a value for the rows already there. Given one (`--backfill
Model.field=VALUE`, or the answer on a terminal), checked against the field's type,
it is written into the operation: the migration fills NULLs with it (UPDATE ... WHERE
col IS NULL), then sets the constraint. A new column is added nullable first, then
altered so. A unique column cannot take one value for every row: a run_sql step
fills it instead.

`--backfill Model.field=@sql` (or that answer on a terminal) asks for that step:
the migration adds the column nullable, then holds a run_sql template naming the
table and column to fill, then sets NOT NULL (and UNIQUE). The template's SQL is a
placeholder that migrate refuses until the user replaced it (steps.py).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import orjson

from .errors import UnsafeChangeError
from .language.fields import FieldProblem, _fit_default
from .operations import AddColumn, AlterColumn, RunSQL, attach_tables, fill_placeholder
from .questioner import BY_HAND
from .schema import Field, Schema


def parse_backfills(given) -> dict:
    """{(model, field): value text} from `--backfill Model.field=VALUE` arguments, or
    from {"Model.field": VALUE}."""
    found = {}
    if isinstance(given, dict):
        given = [f"{target}={value if isinstance(value, str) else orjson.dumps(value).decode()}"
                 for target, value in given.items()]
    for text in given or ():
        target, equals, value = text.partition("=")
        model, dot, field = target.partition(".")
        if not equals or not dot or not model or not field:
            raise UnsafeChangeError(f"--backfill {text}: expected Model.field=VALUE")
        found[(model.strip(), field.strip())] = value
    return found


def apply_backfills(operations, old: Schema, new: Schema, backfills: dict, questioner) -> list:
    """The operations with a backfill written into each NOT NULL change that needs one
    and has one (given, or asked of ``questioner``); the others are left for
    check_safety to refuse. A backfill given for a change that needs none is an error."""
    wanted = dict(backfills or {})
    changed = []
    touched = False
    for operation in operations:
        field = _needing_value(operation, old)
        if field is None:
            changed.append(operation)
            continue
        key = (operation.model, field.name)
        text = wanted.pop(key, None)
        if text is None:
            text = questioner.ask_backfill(operation.model, field)
        if text is None:
            changed.append(operation)
            continue
        touched = True
        if text.strip() == BY_HAND:
            changed += _filled_by_hand(operation, field)
            continue
        value = _value(operation.model, field, text, new)
        if isinstance(operation, AddColumn):
            nullable = field._replace(null=True)
            changed.append(replace(operation, field=nullable))
            changed.append(AlterColumn(operation.model, operation.table, nullable, field, backfill=value))
        else:
            changed.append(replace(operation, backfill=value))
    if wanted:
        names = ", ".join(f"{model}.{field}" for model, field in wanted)
        raise UnsafeChangeError(f"--backfill {names}: no change in this migration needs a value for it (only "
                                "making a column NOT NULL, or adding one to a table that exists, does)")
    if not touched:
        return list(operations)
    completed, _schema = attach_tables(changed, old)
    return completed


def _filled_by_hand(operation, field: Field) -> list:
    """The change with a run_sql template before the constraint: a new column is added
    nullable (and not yet unique), the rows are filled by the user's SQL, then the
    column gets its definition."""
    table = operation.table
    step = RunSQL(fill_placeholder(table, field.column), "", _fill_doc(table, field))
    if isinstance(operation, AddColumn):
        loose = field._replace(null=True, unique=False)
        return [replace(operation, field=loose), step, AlterColumn(operation.model, table, loose, field)]
    return [step, operation]


def _fill_doc(table: str, field: Field) -> str:
    column = field.column
    constraint = "NOT NULL and UNIQUE" if field.unique else "NOT NULL"
    return (f"Fill {table}.{column} in every row before it becomes {constraint}: replace \"sql\" with your "
            f"statements, for example UPDATE {table} SET {column} = ... WHERE {column} IS NULL (one text, or a map "
            "{\"postgresql\": ..., \"sqlite\": ...}). mf db migrate refuses this file while \"sql\" is the "
            "placeholder. reverse_sql \"\": undoing this migration needs nothing from this step.")


def filled_by_hand(operations) -> set:
    """{"table.column"} that a run_sql template of these operations is there to fill."""
    return {operation.unfilled for operation in operations if isinstance(operation, RunSQL) and operation.unfilled}


def _needing_value(operation, old: Schema) -> Optional[Field]:
    """The field whose rows an operation leaves without a value, or None."""
    if isinstance(operation, AddColumn) and operation.model in old.models:
        f = operation.field
        if not f.null and not f.has_default and not f.auto_now and not f.auto_now_add and not f.primary_key \
                and f.db_default is None:
            return f
    if isinstance(operation, AlterColumn) and operation.old.null and not operation.new.null \
            and operation.backfill is None:
        f = operation.new
        if not (f.has_default and f.default is not None) and not f.auto_now and not f.auto_now_add \
                and not f.primary_key and f.db_default is None:
            return f
    return None


def _value(model: str, field: Field, text: str, schema: Schema):
    """The stored form of a backfill typed as text: JSON when it reads as JSON (numbers,
    true/false, "quoted"), else the text itself; an enum member by its key or value."""
    where = f"--backfill {model}.{field.name}={text}"
    if field.unique or field.primary_key:
        raise UnsafeChangeError(
            f"{where}: '{model}.{field.name}' is unique, and one value for every row would break that. Fill it "
            f"row by row with a run_sql step instead: --backfill {model}.{field.name}={BY_HAND} writes the "
            "migration with that step to complete (see \"Backfills\" in the README)")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    enum = schema.enums.get(field.enum) if field.enum is not None else None
    if enum is not None and isinstance(value, str):
        value = enum.values_by_key().get(value.rpartition(".")[2], value)
    try:
        return _fit_default(field.type, value, False, field.max_length, enum)
    except FieldProblem as exc:
        raise UnsafeChangeError(f"{where}: {exc}") from None

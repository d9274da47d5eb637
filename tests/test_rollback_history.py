"""Rollback over random histories, through the real applier, on both databases.

For a random chain of schemas (the generators of test_dialect_sql), each step's
diff written as a migration file: migrating all, then rolling back to zero,
leaves only the ledger; rolling back k migrations leaves exactly the catalog a
straight migrate to that point makes; migrating again gives the catalog of a
straight migrate to the end. A few examples run by default (CI); set
MF_ROLLBACK_EXAMPLES for more.

With rows: histories whose changes a table holding rows can take both ways
(row_safe_histories: no change that needs the rows' values to convert, fit a new
constraint or be given one; those the database refuses on rows, and the undo is
rolled back, as test_rollback and the dialect tests check) get two rows in every
table after each migration (values of every column type; keys pointing at rows
that exist, NULL only where the column is nullable all along), and
after rollback k and migrate again every row is still there with its values,
except where an operation of the undone migrations says the data goes: a table
created by one of them is dropped and comes back empty, a column added by one is
dropped and comes back without its values, a dropped table or column comes back
empty. The expectation follows the schemas, migration by migration (carry), never
the database under test.
"""
from __future__ import annotations

import datetime
import decimal
import os
import sqlite3
import tempfile
import uuid
from typing import Optional

import anyio
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import dbutil
from mfcore import applier
from mfcore.config import config_for
from mfcore.differ import diff
from mfcore.errors import MfError
from mfcore.language.parser import parse
from mfcore.schema import Schema
from mfcore.store import suffix_for, write_migration
from test_dialect_postgresql import catalog as postgres_catalog
from foldcheck import Database
from test_dialect_sql import (DEFAULTS, FIELD_NAMES, KEYS, MEMBERS, MODEL_NAMES, changed_specs, field_specs,
                             model_specs, models_text, schema_specs)
from test_dialect_sqlite import sqlite_catalog

EXAMPLES = int(os.environ.get("MF_ROLLBACK_EXAMPLES", "12"))


@st.composite
def histories(draw):
    """models.mp texts, one per migration: a schema, then one or two changes of it."""
    spec = draw(schema_specs(KEYS))
    texts = [models_text(spec)]
    for _ in range(draw(st.integers(1, 2))):
        spec = draw(changed_specs(spec, KEYS))
        texts.append(models_text(spec))
    return texts


def write_history(directory: str, texts) -> int:
    """One migration file per text (the differ's operations); how many were written."""
    return len(write_levels(directory, texts))


def write_levels(directory: str, texts) -> list:
    """One migration file per text that changes something; the schema after each file."""
    old = Schema()
    levels = []
    for text in texts:
        new = parse(text)
        try:
            operations = diff(old, new)
        except MfError:  # a change the differ refuses (it asks for a default, say)
            assume(False)
        if operations:
            levels.append(new)
            write_migration(directory, len(levels), suffix_for(operations), operations)
        old = new
    assume(len(levels) >= 2)
    return levels


def check_history(dsn: str, directory: str, count: int, k: int, read_catalog) -> None:
    config = config_for(dsn, directory)
    at = {}
    for level in range(1, count + 1):
        anyio.run(lambda: applier.migrate(config, to=level))
        at[level] = read_catalog()
    full = at[count]
    anyio.run(lambda: applier.rollback(config, to=0, allow_data_loss=True))
    assert read_catalog() == read_catalog.empty
    assert anyio.run(lambda: applier.status(config)) and not any(
        s.applied for s in anyio.run(lambda: applier.status(config)))
    anyio.run(lambda: applier.migrate(config))
    assert read_catalog() == full
    undone = anyio.run(lambda: applier.rollback(config, count=k, allow_data_loss=True))
    assert len(undone) == k
    assert read_catalog() == (at[count - k] if count > k else read_catalog.empty)
    anyio.run(lambda: applier.migrate(config))
    assert read_catalog() == full


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts=histories(), data=st.data())
def test_rollback_on_sqlite_returns_to_each_point_of_a_random_history(texts, data):
    with tempfile.TemporaryDirectory() as directory:
        migrations = os.path.join(directory, "migrations")
        os.mkdir(migrations)
        count = write_history(migrations, texts)
        k = data.draw(st.integers(1, count))
        path = os.path.join(directory, "app.db")

        def read_catalog():
            connection = sqlite3.connect(path)
            try:
                return sqlite_catalog(connection)
            finally:
                connection.close()
        read_catalog.empty = {}
        check_history(path, migrations, count, k, read_catalog)


@pytest.fixture(scope="module")
def session():
    with dbutil.temporary_postgres_database("mf_rollback_history") as url:
        connection = dbutil.PostgresSession(url)
        try:
            yield connection
        finally:
            connection.close()


@settings(max_examples=max(EXAMPLES * 2 // 3, 1), deadline=None, suppress_health_check=list(HealthCheck))
@given(texts=histories(), data=st.data())
def test_rollback_on_postgresql_returns_to_each_point_of_a_random_history(session, texts, data):
    with tempfile.TemporaryDirectory() as migrations:
        count = write_history(migrations, texts)
        k = data.draw(st.integers(1, count))
        schema = session.fresh_schema()

        def read_catalog():
            session.execute(f'SET search_path TO "{schema}"')
            return postgres_catalog(session)
        read_catalog.empty = {"tables": {}, "enums": {}}
        try:
            check_history(f"{session.url}?search_path={schema}", migrations, count, k, read_catalog)
        finally:
            session.drop_schema()


# ================================================================ with rows

NUMBERS = ("IntegerField", "BigIntegerField", "DecimalField", "FloatField")  # integral values fit them all
TEXTS = ("CharField", "TextField")                                           # short texts fit them all
FOREIGN = ("ForeignKey", "OneToOneField")
UNIQUE_KINDS = ("IntegerField", "CharField", "UUIDField")  # where models_text writes unique=true
ROW_KEYS = (None, "BigAutoField()", "CharField(10, primary_key=true)")


def rendered_default(field, members) -> bool:
    """Does models_text give this field a default (auto_now_add included)?"""
    kind, _null, _unique, default, argument = field
    if kind == "EnumField":
        return default in members
    if kind == "DateTimeField" and argument:
        return True
    return default is not None and default in DEFAULTS.get(kind, ())


def row_safe(field, members) -> bool:
    """Can a table with rows take this column being added, or dropped and brought back
    by an undo? Its rows get NULL, or one default that no uniqueness forbids."""
    kind, null, unique, _default, _argument = field
    if kind in FOREIGN:
        return null
    unique = unique and kind in UNIQUE_KINDS
    defaulted = rendered_default(field, members)
    return (null or defaulted) and not (unique and defaulted)


def made_row_safe(field, members):
    if row_safe(field, members):
        return field
    kind, _null, unique, default, argument = field
    return (kind, True, unique, None if unique and kind in UNIQUE_KINDS else default, argument)


def sanitized(model, present):
    """A model whose foreign keys point at models of ``present`` (others become the
    IntegerField models_text would write, for good) and whose index is not unique."""
    fields = {}
    for name, (kind, null, unique, default, argument) in model["fields"].items():
        if kind in FOREIGN and argument[0] not in present:
            kind, unique, default, argument = "IntegerField", False, None, None
        fields[name] = (kind, null, unique, default, argument)
    index = model["index"]
    return dict(model, fields=fields, index=None if index is None else (index[0], False))


def marked(spec):
    """The spec with its "held" set grown: (model, field) pairs that were, at some level,
    NOT NULL without a default or unique. Such a column is never dropped afterwards:
    undoing the drop brings it back empty (or with one default), and undoing what
    came before would then ask those rows for a value or for distinct ones."""
    held = set(spec.get("held", ()))
    for name, model in spec["models"].items():
        for field_name, field in model["fields"].items():
            kind, _null, unique, _default, _argument = field
            if not row_safe(field, spec["members"]) or (unique and kind in UNIQUE_KINDS):
                held.add((name, field_name))
    return dict(spec, held=frozenset(held))


@st.composite
def row_safe_changes(draw, spec):
    """A variation of a schema that tables holding rows take both ways: members only
    added; models dropped with the (nullable) keys that point at them; columns dropped
    or added only when NULL or a default fills them; types changed only within
    NUMBERS or TEXTS; NOT NULL and UNIQUE only loosened; tables renamed; an implicit
    key widened to BigAutoField or back."""
    members = list(spec["members"])
    if draw(st.integers(0, 3)) == 0 and len(members) < len(MEMBERS):
        members.append(draw(st.sampled_from([m for m in MEMBERS if m not in members])))
    old_members = spec["members"]
    models = spec["models"]
    dropped = {name for name in sorted(models) if draw(st.integers(0, 9)) == 0}
    held = spec["held"]
    while True:  # a model stays while a key of a staying model that cannot be dropped points at it
        blocked = {argument[0] for name, model in models.items() if name not in dropped
                   for field_name, (kind, null, _u, _d, argument) in model["fields"].items()
                   if kind in FOREIGN and argument[0] in dropped and (not null or (name, field_name) in held)}
        if not blocked:
            break
        dropped -= blocked
    kept = [name for name in models if name not in dropped]
    # A dropped model's table comes back empty: what held its columns no longer matters.
    changed = {"members": members, "lowered": spec["lowered"], "models": {},
               "held": frozenset(pair for pair in held if pair[0] not in dropped)}
    for name in kept:
        model = dict(models[name], fields=dict(models[name]["fields"]))
        if draw(st.integers(0, 9)) == 0:
            model["table"] = not model["table"]
        if model["key"] in (None, "BigAutoField()") and draw(st.integers(0, 3)) == 0:
            model["key"] = "BigAutoField()" if model["key"] is None else None
        fields = model["fields"]
        before = set(fields)  # a name dropped here is not taken again: that would be an alter
        for field_name, field in sorted(fields.items()):
            kind, null, unique, default, argument = field
            if kind in FOREIGN and argument[0] in dropped:
                del fields[field_name]
                continue
            step = draw(st.integers(0, 5))
            if step == 0 and row_safe(field, old_members) and (name, field_name) not in held:
                del fields[field_name]
            elif step == 1 and kind in NUMBERS + TEXTS:
                kinds = NUMBERS if kind in NUMBERS else TEXTS
                if kind in NUMBERS and default is not None and not str(default).lstrip("-").isdigit():
                    # Rows the default filled hold 1.5 or 0.5: an integer column would round them.
                    kinds = ("DecimalField", "FloatField")
                new_kind = draw(st.sampled_from(kinds))
                fields[field_name] = (new_kind, null, unique and kind in UNIQUE_KINDS, default,
                                      draw(st.sampled_from((10, 30))) if new_kind == "CharField" else None)
            elif step == 2 and not null:
                fields[field_name] = (kind, True, unique, default, argument)
            elif step == 3 and unique:
                fields[field_name] = (kind, null, False, default, argument)
        for field_name in FIELD_NAMES:
            if field_name not in before and draw(st.integers(0, 4)) == 0:
                field = draw(field_specs())
                if field[0] in FOREIGN and field[4][0] not in kept:
                    continue
                fields[field_name] = made_row_safe(field, members)
        if draw(st.integers(0, 3)) == 0:
            model["index"] = None
        changed["models"][name] = model
    new = [name for name in MODEL_NAMES if name not in models and draw(st.integers(0, 3)) == 0]
    present = set(kept) | set(new)
    for name in new:
        changed["models"][name] = sanitized(draw(model_specs(ROW_KEYS)), present)
    return marked(changed)


@st.composite
def row_safe_histories(draw):
    """models.mp texts, one per migration, whose changes tables holding rows take both ways."""
    spec = draw(schema_specs(ROW_KEYS).filter(lambda drawn: drawn["models"]))  # tables to hold rows
    spec = marked(dict(spec, models={name: sanitized(model, spec["models"])
                                     for name, model in spec["models"].items()}))
    specs = [spec]
    for _ in range(draw(st.integers(1, 2))):
        spec = draw(row_safe_changes(spec))
        specs.append(spec)
    return [models_text(spec) for spec in specs]


class Unknown:
    """A value the test does not predict: a column that an operation (re)made."""

    def __repr__(self):
        return "<unknown>"


UNKNOWN = Unknown()


def carry(rows: dict, before: Schema, after: Schema) -> dict:
    """The rows after a migration from ``before`` to ``after`` (or the undo of one from
    ``after`` to ``before``: the same change): {model: {key: {field: value}}}. A model
    of both is the same table (renamed or altered) and keeps its rows; a new model's
    table is empty. A field of both keeps its values (types change only where values
    fit both); a new field, added or brought back, has values the test leaves open."""
    carried = {}
    for name, model in after.models.items():
        old = before.models.get(name)
        if old is None:
            carried[name] = {}
            continue
        old_fields = {f.name for f in old.fields}
        carried[name] = {key: {f.name: cells.get(f.name, UNKNOWN) if f.name in old_fields else UNKNOWN
                               for f in model.fields if not f.primary_key}
                         for key, cells in rows.get(name, {}).items()}
    return carried


def plain_value(f, n: int, driver: str, schema: Schema, lasting: set):
    """A value of field ``f``'s type, distinct for each ``n``, as the driver takes it (an
    enum's: one of the ``lasting`` values)."""
    postgres = driver == "postgresql"
    if f.type in ("IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField"):
        return n
    if f.type == "DecimalField":
        return decimal.Decimal(n) if postgres else n
    if f.type == "FloatField":
        return float(n)
    if f.type in TEXTS:
        return f"r{n}"
    if f.type == "BooleanField":
        return n % 2 == 0
    if f.type == "DateTimeField":
        moment = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=n)
        return moment if postgres else moment.isoformat(" ")
    if f.type == "DateField":
        day = datetime.date(2020, 1, 1) + datetime.timedelta(days=n)
        return day if postgres else day.isoformat()
    if f.type == "UUIDField":
        return uuid.UUID(int=n) if postgres else str(uuid.UUID(int=n))
    if f.type == "JSONField":
        return f"[{n}]"
    if f.type == "EnumField":
        values = [v for v in schema.enums[f.enum].values if v in lasting]
        return values[n % len(values)]
    raise AssertionError(f"no sample value for {f.type}")


def normal(value):
    """One form for a value however the driver returns it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, decimal.Decimal)):
        return float(value)
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def row_for(model, schema: Schema, rows: dict, n: int, driver: str, nullable: set, lasting: set) -> Optional[dict]:
    """Values for a new row of ``model``: a key of an existing row for each foreign key
    (a row no other row uses for a one-to-one), NULL only where the column is nullable
    all along the history; None when no row can be made."""
    values = {}
    for f in model.fields:
        if f.primary_key:
            if f.type == "CharField":
                values[f.name] = f"k{n}"
            continue
        if f.target is None:
            values[f.name] = plain_value(f, n, driver, schema, lasting)
            continue
        used = {cells.get(f.name) for cells in rows.get(model.name, {}).values()} \
            if f.type == "OneToOneField" else set()
        free = [key for key in rows.get(f.target, {}) if key not in used]
        if free:
            values[f.name] = free[n % len(free)]
        elif (model.name, f.name) in nullable:
            values[f.name] = None
        else:
            return None
    return values


def insert_rows(database: Database, schema: Schema, rows: dict, numbers, nullable: set, lasting: set,
                per_table: int = 2):
    """``per_table`` rows in every table that can take them, each recorded in ``rows``;
    tables after the tables their keys point at, where that order exists."""
    waiting = sorted(schema.models)
    last_pass = False
    while waiting:
        progressed = False
        for name in list(waiting):
            model = schema.models[name]
            targets = {f.target for f in model.fields if f.target not in (None, name)}
            if not last_pass and any(t in waiting and not rows.get(t) for t in targets):
                continue
            waiting.remove(name)
            progressed = True
            for _ in range(per_table):
                n = next(numbers)
                values = row_for(model, schema, rows, n, database.driver, nullable, lasting)
                if values is None:
                    break
                key_column = model.primary_key.column
                key = database.insert(model.table, {model.column_of(f): v for f, v in values.items()}, key_column)
                rows.setdefault(name, {})[key] = {f: v for f, v in values.items() if f != model.primary_key.name}
        last_pass = not progressed


def check_rows(database: Database, schema: Schema, rows: dict, context: str) -> None:
    """Every table holds exactly the expected rows, with the expected values where known."""
    for name, model in sorted(schema.models.items()):
        key = model.primary_key
        others = [f for f in model.fields if not f.primary_key]
        q = database.quote
        columns = ", ".join(q(c) for c in [key.column] + [f.column for f in others])
        found = {row[0]: dict(zip((f.name for f in others), row[1:]))
                 for row in database.fetch(f"SELECT {columns} FROM {q(model.table)}")}
        expected = rows.get(name, {})
        assert sorted(map(str, found)) == sorted(map(str, expected)), f"{context}: rows of {model.table}"
        for row_key, cells in expected.items():
            for field_name, value in cells.items():
                if value is not UNKNOWN:
                    assert normal(found[row_key][field_name]) == normal(value), \
                        f"{context}: {model.table} row {row_key!r} column {field_name}"


def nullable_all_along(levels) -> set:
    """(model, field) pairs that are nullable at every level where they exist."""
    seen, not_null = set(), set()
    for schema in levels:
        for name, model in schema.models.items():
            for f in model.fields:
                seen.add((name, f.name))
                if not f.null:
                    not_null.add((name, f.name))
    return seen - not_null


def check_history_with_rows(database: Database, directory: str, levels: list, k: int, read_catalog) -> None:
    config = config_for(database.dsn, directory)
    count = len(levels)
    schemas = [Schema()] + levels  # schemas[i]: after migration i
    nullable = nullable_all_along(levels)
    # Enum values present at every level: undoing a member's addition fails while rows use it.
    lasting = set.intersection(*({v for enum in schema.enums.values() for v in enum.values} for schema in levels))
    numbers = iter(range(1, 1_000_000))
    rows: dict = {}
    at = {}

    def run(function, **arguments):
        result = anyio.run(lambda: function(config, **arguments))
        database.schema_changed()
        return result

    for level in range(1, count + 1):
        run(applier.migrate, to=level)
        rows = carry(rows, schemas[level - 1], schemas[level])
        at[level] = read_catalog()
        check_rows(database, schemas[level], rows, f"after migrating to {level}")
        insert_rows(database, schemas[level], rows, numbers, nullable, lasting)
    full = at[count]

    undone = run(applier.rollback, count=k, allow_data_loss=True)
    assert len(undone) == k
    back = count - k
    for level in range(count, back, -1):
        rows = carry(rows, schemas[level], schemas[level - 1])
    assert read_catalog() == (at[back] if back else read_catalog.empty)
    check_rows(database, schemas[back], rows, f"after rolling back {k} of {count}")

    run(applier.migrate)
    for level in range(back + 1, count + 1):
        rows = carry(rows, schemas[level - 1], schemas[level])
    assert read_catalog() == full
    check_rows(database, schemas[count], rows, f"after rolling back {k} of {count} and migrating again")

    run(applier.rollback, to=0, allow_data_loss=True)
    assert read_catalog() == read_catalog.empty
    assert not any(s.applied for s in anyio.run(lambda: applier.status(config)))
    run(applier.migrate)
    assert read_catalog() == full
    check_rows(database, schemas[count], carry({}, Schema(), schemas[count]), "after rolling back all and migrating")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts=row_safe_histories(), data=st.data())
def test_rollback_keeps_the_rows_it_can_on_sqlite(texts, data):
    with tempfile.TemporaryDirectory() as directory:
        migrations = os.path.join(directory, "migrations")
        os.mkdir(migrations)
        levels = write_levels(migrations, texts)
        k = data.draw(st.integers(1, len(levels) - 1))  # rolling back all: at the end of every example
        path = os.path.join(directory, "app.db")

        def read_catalog():
            connection = sqlite3.connect(path)
            try:
                return sqlite_catalog(connection)
            finally:
                connection.close()
        read_catalog.empty = {}
        check_history_with_rows(Database.sqlite(path), migrations, levels, k, read_catalog)


@settings(max_examples=max(EXAMPLES * 2 // 3, 1), deadline=None, suppress_health_check=list(HealthCheck))
@given(texts=row_safe_histories(), data=st.data())
def test_rollback_keeps_the_rows_it_can_on_postgresql(session, texts, data):
    with tempfile.TemporaryDirectory() as migrations:
        levels = write_levels(migrations, texts)
        k = data.draw(st.integers(1, len(levels) - 1))  # rolling back all: at the end of every example
        schema = session.fresh_schema()

        def read_catalog():
            session.execute(f'SET search_path TO "{schema}"')
            return postgres_catalog(session)
        read_catalog.empty = {"tables": {}, "enums": {}}
        database = Database("postgresql", f"{session.url}?search_path={schema}", session, schema)
        try:
            check_history_with_rows(database, migrations, levels, k, read_catalog)
        finally:
            session.drop_schema()

"""Drift: how the live database differs from the schema its applied migrations build.

The expected side is not guessed from the schema: the dialect creates the schema the
applied migrations fold into (diff from nothing, the dialect's own SQL) somewhere that
leaves no trace (PostgreSQL: a schema inside a transaction rolled back; SQLite: an
empty in-memory database) and reads that back with the same catalog reader as the
live database. Both sides are then in the database's own spelling, so a type, a
default or an index mf made compares equal to itself: what is left is drift.

Tables and enum types that no migration ever made are "unmanaged": listed apart,
never drift, unless ``strict``. A table a migration made and a later one dropped is
drift when it is still there.

The repair (``sql``): the live catalog is read back into the Schema IR, with the
expected field kept for every column that matches, and the differ goes from that
schema to the expected one; the dialect writes the statements.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from .dialects.base import LEDGER_TABLE, parse_default
from .ledger import APPLIED, STARTED, steps_done
from .dialects.catalog import Catalog, Table
from .introspect import index_text, schema_of_catalog
from .operations import fold_start, folding
from .schema import Model, Schema


@dataclass(frozen=True)
class Difference:
    """One thing the database has otherwise than expected.

    ``sign``: "+" the database has it and the migrations do not, "-" the migrations
    have it and the database does not, "~" both have it, differently."""

    sign: str
    kind: str                 # table, column, primary key, foreign key, unique, index, check, enum
    table: Optional[str]      # None for an enum type
    name: str                 # the object: users, users.email, ix_users_email, userrole
    database: Optional[str] = None   # what the database has ("~")
    expected: Optional[str] = None   # what the migrations say ("~")
    # The database cannot be used as the migrations describe it: a table or enum type
    # missing, a foreign key to another table, an enum column whose default its own
    # values reject. Adopting a database stops on these (adoption.py); drift lists
    # them with the rest.
    breaks: bool = False

    def describe(self) -> str:
        if self.sign == "~":
            subject = self.name if self.kind == "column" else f"{self.kind} {self.name}"
            return f"[~] {subject}: {self.database} in the database, {self.expected} expected"
        where = "in the database only" if self.sign == "+" else "missing from the database"
        detail = f" {self.database or self.expected}" if (self.database or self.expected) else ""
        return f"[{self.sign}] {self.kind} {self.name}{detail} ({where})"

    def to_json(self) -> dict:
        return {"change": self.sign, "kind": self.kind, "table": self.table, "name": self.name,
                "database": self.database, "expected": self.expected, "description": self.describe()}


@dataclass
class DriftReport:
    differences: list = field(default_factory=list)  # [Difference]
    unmanaged: list = field(default_factory=list)    # "table x" / "type y", in no migration
    applied: int = 0                                 # how many applied migrations were folded
    strict: bool = False
    statements: list = field(default_factory=list)   # the repair, when asked for
    # Migrations marked "atomic": false whose run stopped midway (ledger state started),
    # and what of them the database holds: not drift, a migration to settle.
    partly_applied: list = field(default_factory=list)   # file names
    partial_changes: list = field(default_factory=list)  # [Difference] from the applied schema that they made
    resumable: list = field(default_factory=list)  # those of partly_applied made of steps: migrate finishes them

    @property
    def drifted(self) -> bool:
        return bool(self.differences) or bool(self.partly_applied) or (self.strict and bool(self.unmanaged))

    def verdict(self) -> str:
        """One line: the status --drift answer."""
        if not self.drifted:
            extra = f" ({len(self.unmanaged)} unmanaged)" if self.unmanaged else ""
            return f"No drift: the database matches its {self.applied} applied migration(s){extra}."
        count = len(self.differences) + (len(self.unmanaged) if self.strict else 0)
        partly = f"migration {', '.join(self.partly_applied)} is partly applied" if self.partly_applied else ""
        if not count:
            return f"Drift: {partly} (run `mf db drift`)."
        also = f"; {partly}" if partly else ""
        return (f"Drift: {count} difference(s) from the {self.applied} applied migration(s){also} "
                f"(run `mf db drift`).")

    def partial_lines(self) -> list:
        """The section on a migration partly applied: what it is, what to do, what of it
        the database holds."""
        lines = []
        for name in self.partly_applied:
            number = name.split("_", 1)[0]
            if name in self.resumable:
                lines.append(f"Partly applied: {name} stopped between its steps; `mf db migrate` resumes it "
                             "and finishes it.")
                continue
            lines.append(f"Partly applied: {name} runs outside a transaction and stopped midway (recorded as "
                         f"started); settle it with `mf db resolve {number} --applied` or `--rolled-back`.")
        if self.partial_changes:
            lines.append("  In the database from it:")
            lines += [f"    {d.describe()}" for d in self.partial_changes]
        return lines

    def to_json(self) -> dict:
        return {"drift": self.drifted, "applied": self.applied, "strict": self.strict,
                "differences": [d.to_json() for d in self.differences], "unmanaged": self.unmanaged,
                "partly_applied": [{"migration": name, "in_database": [d.to_json() for d in self.partial_changes]}
                                   for name in self.partly_applied],
                "sql": self.statements}


# ---------------------------------------------------------------- what the history owns

def owned_names(migrations) -> tuple:
    """(tables, enum type names) that any state along the migrations had."""
    tables, types = set(), set()
    state = fold_start(Schema())
    for migration in migrations:
        for operation in migration.operations:
            state = folding(operation.apply(state))
            # Only the model or enum an operation names can gain a name; looking at just
            # those keeps this in proportion to the operations, not operations x models.
            for model_name in (getattr(operation, "model", None), getattr(operation, "new_name", None)):
                if model_name in state.models:
                    tables.add(state.models[model_name].table)
            enum_name = getattr(operation, "name", None) if operation.op.endswith("_enum") else None
            if enum_name in state.enums:
                types.add(state.enums[enum_name].type_name)
    return tables, types


# ---------------------------------------------------------------- comparing two catalogs

def compare(actual: Catalog, expected: Catalog, *, owned_tables=(), owned_types=(),
            constraint_names: bool = False, enum_types: bool = False, show_type=str, same_type=None) -> tuple:
    """(differences, unmanaged) between the live catalog and the expected one."""
    differences: list = []
    unmanaged: list = []
    for name in sorted(set(expected.tables) - set(actual.tables)):
        differences.append(Difference("-", "table", name, name, breaks=True))
    for name in sorted(set(actual.tables) - set(expected.tables) - {LEDGER_TABLE}):
        if name in owned_tables:
            differences.append(Difference("+", "table", name, name))
        else:
            unmanaged.append(f"table {name}")
    for name in sorted(set(actual.tables) & set(expected.tables)):
        differences.extend(compare_table(actual.tables[name], expected.tables[name], constraint_names, show_type,
                                         _enum_values(expected, expected.tables[name]), same_type))
    if enum_types:
        for name in sorted(set(expected.enums) - set(actual.enums)):
            differences.append(Difference("-", "enum", None, name, expected=_labels(expected.enums[name]),
                                          breaks=True))
        for name in sorted(set(actual.enums) - set(expected.enums)):
            if name in owned_types:
                differences.append(Difference("+", "enum", None, name, database=_labels(actual.enums[name])))
            else:
                unmanaged.append(f"type {name}")
        for name in sorted(set(actual.enums) & set(expected.enums)):
            if actual.enums[name] != expected.enums[name]:
                differences.append(Difference("~", "enum", None, name,
                                              _labels(actual.enums[name]), _labels(expected.enums[name])))
    return differences, unmanaged


def _enum_values(catalog: Catalog, table: Table) -> dict:
    """column -> the values an enum column takes (its type's labels, or its CHECK list)."""
    values = {c.column: c.values for c in table.checks}
    for column in table.columns.values():
        labels = catalog.enums.get(column.type.strip('"'))
        if labels is not None:
            values[column.name] = labels
    return values


def compare_table(actual: Table, expected: Table, constraint_names: bool, show_type=str,
                  enum_values=None, same_type=None) -> list:
    table = actual.name
    enum_values = enum_values or {}
    same_type = same_type or (lambda a, b: a == b)
    found: list = []
    for column in expected.columns:
        if column not in actual.columns:
            found.append(Difference("-", "column", table, f"{table}.{column}",
                                    expected=_column_text(expected.columns[column], show_type)))
    for column in actual.columns:
        if column not in expected.columns:
            found.append(Difference("+", "column", table, f"{table}.{column}",
                                    database=_column_text(actual.columns[column], show_type)))
    for column, wanted in expected.columns.items():
        have = actual.columns.get(column)
        if have is None:
            continue
        where = f"{table}.{column}"
        if not same_type(have.type, wanted.type):
            found.append(Difference("~", "column", table, where, show_type(have.type), show_type(wanted.type)))
        if have.nullable != wanted.nullable:
            found.append(Difference("~", "column", table, where, _nullable(have.nullable),
                                    _nullable(wanted.nullable)))
        if have.default != wanted.default:
            stored = default_text(have.default)
            rejected = column in enum_values and stored is not None and stored not in enum_values[column]
            found.append(Difference("~", "column", table, where, _default(have.default), _default(wanted.default),
                                    breaks=rejected))
        if have.identity != wanted.identity:
            found.append(Difference("~", "column", table, where, _identity(have.identity),
                                    _identity(wanted.identity)))
    if actual.primary_key != expected.primary_key:
        found.append(Difference("~", "primary key", table, table,
                                _columns(actual.primary_key) or "none", _columns(expected.primary_key) or "none"))
    keys = _compare_grouped(table, "foreign key", actual.foreign_keys, expected.foreign_keys,
                            lambda k: k.columns, lambda k: _key_text(k, constraint_names))
    wanted_targets = {k.columns: k.target for k in expected.foreign_keys}
    elsewhere = {_subject(table, "foreign key", k.columns) for k in actual.foreign_keys
                 if wanted_targets.get(k.columns, k.target) != k.target}
    found += [replace(d, breaks=True) if d.name in elsewhere and d.sign != "-" else d for d in keys]
    found += _compare_grouped(table, "unique", actual.uniques, expected.uniques,
                              lambda u: u.columns, lambda u: _unique_text(u, constraint_names))
    found += _compare_grouped(table, "index", actual.indexes, expected.indexes,
                              lambda i: (i.name,), index_text)
    found += _compare_grouped(table, "check", actual.checks, expected.checks,
                              lambda c: (c.column,), lambda c: f"IN ({_labels(c.values)})")
    # By name, the expression in the database's own spelling on both sides (the expected
    # side was made by the same server): PostgreSQL rewrites what it stores.
    found += _compare_grouped(table, "check", actual.check_constraints, expected.check_constraints,
                              lambda c: (c.name or c.expression,), lambda c: f"CHECK ({c.expression})")
    return found


def _compare_grouped(table, kind, actual, expected, key_of, text_of) -> list:
    """Objects grouped by what they are on (columns, or a name): one "~" when each side
    has one, differently; "+" and "-" for what one side has more of."""
    found = []
    have, want = {}, {}
    for item in actual:
        have.setdefault(key_of(item), []).append(text_of(item))
    for item in expected:
        want.setdefault(key_of(item), []).append(text_of(item))
    for key in sorted(set(have) | set(want), key=str):
        mine, theirs = sorted(have.get(key, [])), sorted(want.get(key, []))
        if mine == theirs:
            continue
        name = _subject(table, kind, key)
        if len(mine) == 1 and len(theirs) == 1:
            found.append(Difference("~", kind, table, name, mine[0], theirs[0]))
            continue
        for text in mine:
            if text not in theirs:
                found.append(Difference("+", kind, table, name, database=text))
        for text in theirs:
            if text not in mine:
                found.append(Difference("-", kind, table, name, expected=text))
    return found


def _subject(table: str, kind: str, key: tuple) -> str:
    if kind == "index":
        return key[0]
    return f"{table}.{key[0]}" if len(key) == 1 else f"{table}({', '.join(key)})"


def default_text(sql) -> Optional[str]:
    """The string inside a default as a catalog shows it ('ADMIN', 'ADMIN'::userrole), or None."""
    if sql is None:
        return None
    parsed = parse_default(str(sql))
    return parsed if type(parsed) is str else None


def _key_text(key, names: bool) -> str:
    text = f"-> {key.target}({', '.join(key.target_columns)}) ON DELETE {key.on_delete}"
    if key.deferrable:
        text += " DEFERRABLE" + (" INITIALLY DEFERRED" if key.initially_deferred else "")
    return f"{text} named {key.name}" if names and key.name else text


def _unique_text(unique, names: bool) -> str:
    return f"UNIQUE ({', '.join(unique.columns)})" + (f" named {unique.name}" if names else "")


def _column_text(column, show_type=str) -> str:
    parts = [show_type(column.type), "NULL" if column.nullable else "NOT NULL"]
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    return " ".join(parts)


def _labels(values) -> str:
    return ", ".join(repr(v) for v in values)


def _columns(columns) -> str:
    return ", ".join(columns)


def _nullable(nullable: bool) -> str:
    return "nullable" if nullable else "NOT NULL"


def _default(default) -> str:
    return "no default" if default is None else f"default {default}"


def _identity(identity: bool) -> str:
    return "generated key" if identity else "not generated"


def repair_statements(dialect, actual: Catalog, expected: Catalog, expected_schema: Schema,
                      owned_tables) -> list:
    """Statements that take the database from ``actual`` to the expected schema, with
    the transaction (and SQLite's foreign-key switch) around them; [] when nothing."""
    from .differ import diff

    managed = Catalog({t: v for t, v in actual.tables.items() if t in owned_tables or t in expected.tables},
                      {t: v for t, v in actual.enums.items()
                       if t in {e.type_name for e in expected_schema.enums.values()}})
    live = schema_of_catalog(managed, dialect, expected_schema, expected)[0]
    operations = diff(live, expected_schema)
    if not operations:
        return []
    statements = dialect.migration_sql(operations)
    script = [dialect.begin_sql, *statements, "COMMIT"]
    if dialect.needs_foreign_keys_off(operations) and dialect.foreign_keys_off_sql:
        script = [dialect.foreign_keys_off_sql, *script, dialect.foreign_keys_on_sql]
    return script


# ---------------------------------------------------------------- the whole check

async def detect(config, *, strict: bool = False, with_sql: bool = False) -> DriftReport:
    """Compare the configured database with its applied migrations (see the module)."""
    from . import drivers, store
    from .dialects import dialect_for
    from .errors import DriftError

    dialect = dialect_for(config.driver)
    if not drivers.database_exists(config):
        raise DriftError(f"the database {config.display_dsn} does not exist yet; nothing to compare")
    async with await drivers.connect(config) as connection:
        states = await _ledger_states(connection, dialect)
        files = store.list_migration_files(config.migrations_dir)
        by_name = {f.name: f for f in files}
        missing = [name for name, _state in states if name not in by_name]
        if missing:
            raise DriftError(f"migration {missing[0]} is recorded as applied but its file is missing from "
                             f"{config.migrations_dir}; the expected schema cannot be built without it")
        applied = {name for name, state in states if state == APPLIED}
        started = [name for name, state in states if state == STARTED or steps_done(state) is not None]
        migrations, expected_schema = store.load_history(config.migrations_dir,
                                                         [f for f in files if f.name in applied])
        if started:
            begun, begun_schema = store.load_history(config.migrations_dir,
                                                     [f for f in files if f.name in applied or f.name in started])
        actual = await dialect.read_catalog(connection)
    expected = await expected_catalog(config, dialect, expected_schema)
    tables, types = owned_names(begun if started else migrations)
    differences, unmanaged = compare_catalogs(dialect, actual, expected, owned_tables=tables, owned_types=types)
    report = DriftReport(differences, unmanaged, len(migrations), strict)
    if started:
        # What differs from the applied schema but not from the one the started migration
        # builds is its work, done before it stopped; what differs from both is drift.
        after = await expected_catalog(config, dialect, begun_schema)
        still, still_unmanaged = compare_catalogs(dialect, actual, after, owned_tables=tables, owned_types=types)
        kept = set(still)
        report.partly_applied = sorted(started, key=lambda name: by_name[name].number)
        report.resumable = [name for name, state in states if steps_done(state) is not None]
        report.partial_changes = [d for d in differences if d not in kept]
        report.differences = [d for d in differences if d in kept]
        report.unmanaged = [u for u in unmanaged if u in still_unmanaged]
    if with_sql and report.differences and not started:
        # A migration left half-way is settled with resolve first: a repair now could
        # only guess which side of it the database is meant to be on.
        report.statements = repair_statements(dialect, actual, expected, expected_schema, tables)
    return report


async def expected_catalog(config, dialect, schema: Schema) -> Catalog:
    """The catalog ``schema`` has when mf creates it (diff from nothing, the dialect's
    SQL), built where it leaves nothing behind, on a connection of its own.

    It is built a part at a time (schema_parts), each part of at most
    max_tables_per_migration tables: on PostgreSQL in a transaction of its own that
    is rolled back, so that no transaction takes more locks than a migration may
    (one transaction creating 5,000 tables runs out of the server's lock table); on
    SQLite in an empty database of its own, since every CREATE costs in proportion to
    the schema already there."""
    from . import drivers
    from .differ import diff
    from .errors import DatabaseError

    tables: dict = {}
    enums: dict = {}
    scratch_config = replace(config, dsn=":memory:") if dialect.scratch_database else config
    scratch = None
    try:
        for part, whole in schema_parts(schema, config.max_tables_per_migration):
            statements = dialect.migration_sql(diff(Schema(), part))
            if scratch is not None and dialect.scratch_database:  # each part in an empty database
                await scratch.close()
                scratch = None
            if scratch is None:
                scratch = await drivers.connect(scratch_config)
            try:
                built = await dialect.catalog_of(scratch, statements)
            except drivers.StatementError as exc:
                raise DatabaseError(f"cannot build the expected schema to compare with ({exc.message}); on "
                                    f"PostgreSQL mf builds it in a schema it rolls back, which needs the right "
                                    f"to create a schema in the database") from None
            tables.update((name, built.tables[name]) for name in whole if name in built.tables)
            enums.update(built.enums)
    finally:
        if scratch is not None:
            await scratch.close()
    return Catalog({name: tables[name] for name in sorted(tables)}, enums)


def schema_parts(schema: Schema, max_tables: int):
    """``schema`` as schemas of at most ``max_tables`` tables each: (part, tables) pairs
    where every model is whole in exactly one part (``tables``: those models' tables).
    A model a part's foreign keys point to but that is whole elsewhere is in the part
    as its key alone, a table that only has to be there with the column referenced;
    every part has all the enums. The catalog of a table depends on nothing else, so
    the parts' catalogs together are the whole schema's. A chain of keys that are
    foreign keys and never ends makes one part of everything (it cannot be cut)."""
    from .operations import referenced_key

    stand_ins: dict = {}  # model name -> its key alone
    for model in schema.models.values():
        for f in model.fields:
            if f.target is None or f.target in stand_ins:
                continue
            key = referenced_key(schema, f.target)
            if key is None:
                continue  # no table of that model: the field references nothing
            if key.target is not None:
                yield schema, {m.table for m in schema.models.values()}
                return
            target = schema.models[f.target]
            stand_ins[f.target] = Model(target.name, target.table, (key,))
    whole: dict = {}
    keys_only: set = set()
    for name, model in schema.models.items():
        wanted = {f.target for f in model.fields if f.target in stand_ins and f.target != name}
        if whole and len(whole) + 1 + len((keys_only | wanted) - set(whole) - {name}) > max_tables:
            yield _part(schema, whole, keys_only, stand_ins)
            whole, keys_only = {}, set()
        whole[name] = model
        keys_only |= wanted
    if whole or not schema.models:
        yield _part(schema, whole, keys_only, stand_ins)


def _part(schema: Schema, whole: dict, keys_only: set, stand_ins: dict) -> tuple:
    models = dict(whole)
    for name in sorted(keys_only - set(whole)):
        models[name] = stand_ins[name]
    return Schema(enums=schema.enums, models=models), {m.table for m in whole.values()}


def compare_catalogs(dialect, actual: Catalog, expected: Catalog, *, owned_tables=(), owned_types=()) -> tuple:
    """compare() as the dialect reads its catalog (names it can address, enum types,
    its spelling of types)."""
    return compare(actual, expected, owned_tables=owned_tables, owned_types=owned_types,
                   constraint_names=dialect.catalog_constraint_names, enum_types=dialect.has_enum_types,
                   show_type=dialect.type_display, same_type=dialect.same_type)


async def _ledger_states(connection, dialect) -> list:
    """[(name, state)] of the ledger's rows, in the order they were written."""
    if not await connection.fetch(dialect.ledger_exists_sql()):
        return []
    return [(row[0], row[2]) for row in await connection.fetch(dialect.ledger_select_sql())]


"""SQLite: native ALTER where it gives the same table, the 12-step rebuild elsewhere.

SQLite alters little in place. What it can, and what the result would be with a
fresh CREATE TABLE, runs natively: ADD COLUMN (not for UNIQUE or primary keys, a
CURRENT_TIMESTAMP default, NOT NULL without a default, or a key with a non-NULL
default), RENAME COLUMN (columns with no named constraint: otherwise the names in
the table's definition would go stale), DROP COLUMN (no key, no UNIQUE, no foreign
key), RENAME TABLE. Everything else (type, nullability, default or unique changes,
adding or dropping a foreign key, an enum's CHECK after alter_enum) rebuilds the
table as sqlite.org prescribes (https://sqlite.org/lang_altertable.html#otheralter),
the new table made under the table's own name:

    -- keep <table>'s own triggers, indexes and views (read from sqlite_schema)
    CREATE TEMP TABLE "_mf_old_<table>" AS SELECT * FROM "<table>"
    (the AUTOINCREMENT counter set aside)
    DROP TABLE "<table>"
    CREATE TABLE "<table>" (...)                  -- the TableDef
    INSERT INTO "<table>" (...) SELECT ... FROM temp."_mf_old_<table>"
    (the AUTOINCREMENT counter carried over)
    DROP TABLE temp."_mf_old_<table>"
    CREATE INDEX ...                             -- the table's indexes again
    -- make <table>'s own triggers and indexes again, check its views still work

sqlite.org's own order creates "new_<table>" and renames it: since 3.26 every ALTER
TABLE RENAME re-reads and re-checks the whole schema (so does legacy_alter_table,
which only skips rewriting references), a second per table on a schema of thousands
of tables. Copying the rows aside and back costs in proportion to the table instead,
and since the table never changes its name, references to it (other tables' keys,
views, triggers) stay as they are. Several changes of one table in one migration
are one rebuild (see _merged_rebuilds). ADD COLUMN and DROP COLUMN re-read the whole
schema too: on a large schema a small table is rebuilt instead, chosen when the step
runs (_NativeOrRebuild).

The applier switches foreign keys off around the transaction and runs
``PRAGMA foreign_key_check`` before committing, on the tables the migration can
have broken and those referencing them (see base.py); a rebuild that fails (a NULL
into NOT NULL, a value outside an enum's CHECK, a duplicate into UNIQUE, an index
of the user's on a column that is gone) rolls back and leaves the table as it was.
"""
from __future__ import annotations

import re
from typing import Optional

from ..errors import DatabaseError
from ..operations import AlterEnum, DropModel, TableDef
from ..schema import POSITIVE_TYPES, Field
from .base import (DROPPED_INDEX, LEDGER_TABLE, CatalogStep, CatalogStepRefusal, Dialect, Plan, drop_order,
                   follows_later, has_unique_constraint, is_not_null, require_table, table_before, unquote)
from .catalog import Catalog, Check, CheckConstraint, Column, ForeignKey, Index, Table, Unique

_TYPES = {
    "AutoField": "INTEGER", "BigAutoField": "INTEGER",
    "IntegerField": "INTEGER", "BigIntegerField": "INTEGER", "SmallIntegerField": "INTEGER",
    "FloatField": "REAL", "TextField": "TEXT", "BooleanField": "BOOLEAN",
    "DateTimeField": "TEXT", "DateField": "TEXT", "TimeField": "TEXT",
    "UUIDField": "TEXT", "JSONField": "TEXT", "BinaryField": "BLOB", "EnumField": "TEXT",
    "IPAddressField": "TEXT",
    "PositiveIntegerField": "INTEGER", "PositiveBigIntegerField": "INTEGER", "PositiveSmallIntegerField": "INTEGER",
}

# Declared types -> fields: mf's own spellings, and those other tools write (Django:
# bigint, datetime, bool, decimal).
_FIELD_TYPES = {"INTEGER": "IntegerField", "INT": "IntegerField", "BIGINT": "BigIntegerField",
                "SMALLINT": "SmallIntegerField", "REAL": "FloatField", "DOUBLE PRECISION": "FloatField",
                "TEXT": "TextField", "BOOLEAN": "BooleanField", "BOOL": "BooleanField", "BLOB": "BinaryField",
                "DATETIME": "DateTimeField", "DATE": "DateField", "TIME": "TimeField"}

_INTEGER_FIELDS = ("IntegerField", "BigIntegerField", "SmallIntegerField")

# The page cache a run of DDL asks for: this many times the SQL text of the schema it
# leaves, in KiB, at most SCHEMA_CACHE_MAX_KIB (see hold_schema).
SCHEMA_CACHE_FACTOR = 4
SCHEMA_CACHE_MAX_KIB = 1 << 20


def schema_cache_kib(schema_bytes: int, statement_bytes: int) -> int:
    """The page cache (KiB) that holds a schema table of ``schema_bytes`` of SQL text
    once ``statement_bytes`` of DDL have run on it (see hold_schema)."""
    return min(SCHEMA_CACHE_FACTOR * (schema_bytes + statement_bytes) // 1024, SCHEMA_CACHE_MAX_KIB)

REBUILD_PREFIX = "_mf_old_"  # the rows set aside while their table is made again (a TEMP table)

# default=uuid4() on SQLite, which has no UUID function: a version 4 UUID in its text
# form, from randomblob() (the version nibble 4, the variant one of 8, 9, a, b).
UUID4_SQL = ("(lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'"
             " || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1)"
             " || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))))")


class SQLiteDialect(Dialect):
    """Also the applier's adapter: no run-wide lock (each migration's BEGIN IMMEDIATE
    takes the database's write lock, waiting up to lock_timeout for another process,
    and the ledger row's UNIQUE name refuses a migration applied meanwhile); foreign
    keys switched off outside the transaction around rebuilds and drops, checked with
    foreign_key_check before the commit; every statement transactional."""

    name = "sqlite"
    uuid4_sql = UUID4_SQL
    trigger_blocks = True
    title = "SQLite"
    begin_sql = "BEGIN IMMEDIATE"
    foreign_keys_off_sql = "PRAGMA foreign_keys=OFF"
    foreign_keys_on_sql = "PRAGMA foreign_keys=ON"
    foreign_key_check_sql = "PRAGMA foreign_key_check"
    ledger_types = ("INTEGER PRIMARY KEY", "VARCHAR", "TEXT", "REAL")

    # ------------------------------------------------------------ literals and types
    def users_words(self, message: str) -> str:
        # A rebuild works on a copy named _mf_new_<table>: the user knows <table>.
        return message.replace(REBUILD_PREFIX, "")

    def missing_object(self, error, statement: str) -> Optional[tuple]:
        dropped = DROPPED_INDEX.match(statement)
        if dropped and error.message.startswith("no such index"):
            return "index", unquote(dropped.group(1)), None
        return None

    def bool_literal(self, value: bool) -> str:
        return "1" if value else "0"

    def bytes_literal(self, value: bytes) -> str:
        return f"X'{value.hex().upper()}'"

    def placeholder(self, position: int) -> str:
        return "?"

    def type_sql(self, f: Field) -> str:
        if f.type == "CharField":
            return f"VARCHAR({f.max_length})"
        if f.type == "DecimalField":
            return f"NUMERIC({f.max_digits},{f.decimal_places})"
        return _TYPES.get(f.type, "TEXT")

    def auto_key_sql(self, type_sql: str, primary_key: str = "PRIMARY KEY") -> str:
        return f"{type_sql} {primary_key} AUTOINCREMENT"

    def check_sql(self, f: Field, table_def: Optional[TableDef]) -> Optional[str]:
        if f.enum is None:
            return super().check_sql(f, table_def)
        values = table_def.enums.get(f.enum, ())
        return f"{self.quote(f.column)} IN ({', '.join(self.string_literal(v) for v in values)})"

    # ------------------------------------------------------------ the applier's questions
    async def hold_schema(self, connection, statement_bytes: int) -> None:
        # SQLite parses its schema table again after every DDL statement, and that
        # table has no index: each CREATE, DROP or ALTER scans all of it. With the
        # default page cache (2 MB) a schema larger than that is read back from the
        # file at every statement: DDL on a schema of 4,000 tables took 1.4 to 1.8
        # times as long as with the table in memory. The cache is sized to hold the
        # schema table the run leaves, with the root pages its transactions add
        # (measured: 3 times the schema's SQL text is enough); SQLite takes the memory
        # only as pages are read.
        schema_bytes = (await connection.fetch("SELECT coalesce(sum(length(sql)), 0) FROM sqlite_master"))[0][0]
        wanted = schema_cache_kib(schema_bytes, statement_bytes)
        size = (await connection.fetch("PRAGMA cache_size"))[0][0]
        if size > 0:  # in pages
            size = -size * (await connection.fetch("PRAGMA page_size"))[0][0] // 1024
        if wanted > -size:
            await connection.execute(f"PRAGMA cache_size = -{wanted}")

    async def foreign_key_problem(self, connection, tables=None) -> Optional[str]:
        if tables is None:
            problems = await connection.fetch(self.foreign_key_check_sql)
        else:
            problems = []
            for table in sorted(await self._existing_with_referencing(connection, tables)):
                problems += await connection.fetch(f"PRAGMA foreign_key_check({self.quote(table)})")
        if not problems:
            return None
        table, rowid, parent = problems[0][0], problems[0][1], problems[0][2]
        return (f"{len(problems)} row(s) would break a foreign key, e.g. row {rowid} "
                f"of {table} references a missing row of {parent}")

    async def _existing_with_referencing(self, connection, tables) -> set:
        """Of ``tables`` those that exist, and every table with a foreign key to one of
        them: one query over the schema SQLite holds in memory (no table's SQL is read)."""
        if not tables:
            return set()
        wanted = sorted({t.lower() for t in tables})
        listed = ", ".join("?" * len(wanted))
        rows = await connection.fetch(
            "SELECT DISTINCT m.name FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS f"
            f" WHERE m.type = 'table' AND lower(f.\"table\") IN ({listed})"
            f" UNION SELECT name FROM sqlite_master WHERE type = 'table' AND lower(name) IN ({listed})",
            (*wanted, *wanted))
        return {r[0] for r in rows}

    def foreign_key_tables(self, operations) -> Optional[frozenset]:
        tables = set()
        for op in operations:
            if op.op in ("run_sql", "run_python"):
                return None  # it may write any row of any table
            if isinstance(op, AlterEnum):
                tables.update(t.model.table for t in op.tables)
            elif op.op == "rename_model":
                tables.update((op.old_table, op.new_table))
            elif op.op in ("create_enum", "drop_enum"):
                continue
            elif isinstance(getattr(op, "table", None), str):
                tables.add(op.table)
            else:
                return None  # an operation this check does not know
        return frozenset(tables)

    def ledger_exists_sql(self) -> str:
        return (f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = {self.string_literal(LEDGER_TABLE)}")

    def ledger_time(self, moment):
        # No time type: ISO 8601 text in UTC sorts and reads back exactly.
        return moment.isoformat()

    # ------------------------------------------------------------ the catalog
    async def table_names(self, connection) -> set:
        rows = await connection.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r[0] for r in rows if not r[0].startswith("sqlite_")}

    async def read_catalog(self, connection, tables=None) -> Catalog:
        # A few queries for all the tables, each pragma joined to sqlite_master: a
        # query a table (and a lookup of its definition, a scan of sqlite_master, each)
        # made reading 5,000 tables take some 170,000 queries.
        definitions, index_definitions = {}, {}
        for kind, name, sql in await connection.fetch("SELECT type, name, sql FROM sqlite_master"):
            if kind == "table" and not name.startswith("sqlite_"):
                definitions[name] = sql or ""
            elif kind == "index":
                index_definitions[name] = sql or ""
        names = set(definitions) if tables is None else set(definitions) & set(tables)
        tables_only = "FROM sqlite_master m JOIN {} WHERE m.type = 'table'"
        columns = await _grouped(connection, 'SELECT m.name, p.name, p.type, p."notnull", p.dflt_value, p.pk '
                                 + tables_only.format("pragma_table_xinfo(m.name) p") + " ORDER BY m.name, p.cid")
        keys = await _grouped(connection, 'SELECT m.name, p.id, p."table", p."from", p."to", p.on_delete '
                              + tables_only.format("pragma_foreign_key_list(m.name) p")
                              + " ORDER BY m.name, p.id, p.seq")
        index_lists = await _grouped(connection, 'SELECT m.name, p.name, p."unique", p.origin, p.partial '
                                     + tables_only.format("pragma_index_list(m.name) p") + " ORDER BY m.name, p.seq")
        index_columns = await _grouped(
            connection, 'SELECT p.name, x.name, x."desc" '
            + tables_only.format("pragma_index_list(m.name) p JOIN pragma_index_xinfo(p.name) x")
            + " AND x.key = 1 ORDER BY m.name, p.seq, x.seqno")
        catalog = Catalog()
        for name in sorted(names):
            catalog.tables[name] = self._table_of(name, definitions[name], columns.get(name, ()),
                                                  keys.get(name, ()), index_lists.get(name, ()),
                                                  index_columns, index_definitions)
        return catalog

    def _table_of(self, name: str, definition: str, columns, keys, index_list, index_columns,
                  index_definitions) -> Table:
        table = Table(name)
        keyed = []
        autoincrement = re.search(r"\bAUTOINCREMENT\b", definition, re.IGNORECASE) is not None
        key_columns = sum(1 for row in columns if row[4])
        for column, kind, notnull, default, pk in columns:
            # Type names are case-insensitive: one spelling for all. An INTEGER PRIMARY
            # KEY is the rowid, never NULL, whether NOT NULL is written or not.
            kind = kind.upper()
            rowid = bool(pk) and key_columns == 1 and kind == "INTEGER"
            table.columns[column] = Column(column, kind, not (notnull or rowid), default, bool(pk) and autoincrement)
            if pk:
                keyed.append((pk, column))
        table.checks = in_list_checks(definition)
        table.check_constraints = check_constraints(definition)
        table.primary_key = tuple(column for _n, column in sorted(keyed))
        by_id: dict = {}
        for key_id, target, source, target_column, on_delete in keys:
            by_id.setdefault(key_id, (target, on_delete, []))[2].append((source, target_column))
        named = constraint_names(definition)
        for target, on_delete, pairs in by_id.values():
            key = tuple(s for s, _t in pairs)
            table.foreign_keys.append(ForeignKey(key, target, tuple(t for _s, t in pairs), on_delete.upper(),
                                                 named.get(("foreign key", key)),
                                                 *named.get(("deferrable", key), (False, False))))
        for index, unique, origin, partial in index_list:
            if origin == "pk":
                continue
            described = index_columns.get(index, ())
            indexed = tuple(r[0] for r in described)
            if origin == "u":
                table.uniques.append(Unique(named.get(("unique", indexed), index), indexed))
            else:
                condition = _index_condition(index_definitions.get(index, "")) if partial else None
                descending = tuple(r[0] for r in described if r[0] is not None and r[1])
                table.indexes.append(Index(index, None if None in indexed else indexed, bool(unique),
                                           descending, condition))
        table.uniques.sort(key=lambda u: u.columns)
        table.indexes.sort(key=lambda i: i.name)
        return table

    scratch_database = True

    # SQLite keeps the declared type as written (the reader spells it in capitals):
    # mf's own spellings come back as they went out; one storage type serves several
    # fields (TEXT: text, times, UUIDs, JSON), and the plainest of them is read back.
    field_types = _FIELD_TYPES

    def same_type(self, actual: str, expected: str) -> bool:
        # Every integer type name has INTEGER affinity and stores the same values; mf
        # writes them all as INTEGER, another tool may write bigint (a key's column).
        return actual == expected or (_FIELD_TYPES.get(actual.upper()) in _INTEGER_FIELDS
                                      and _FIELD_TYPES.get(expected.upper()) in _INTEGER_FIELDS)
    char_type = re.compile(r"VARCHAR\((\d+)\)")
    decimal_type = re.compile(r"(?:NUMERIC|DECIMAL)\((\d+), ?(\d+)\)")

    # ------------------------------------------------------------ reset
    async def drop_plan(self, connection, tables: dict, enums) -> list:
        existing = await self.table_names(connection)
        owned = [t for t in drop_order(tables) if t in existing]
        # An owned table referenced from a table mf does not own: dropping it would
        # break (or, with ON DELETE CASCADE, empty) the user's table. Refuse.
        for other in sorted(existing - set(owned) - {LEDGER_TABLE}):
            references = await connection.fetch('SELECT "table" FROM pragma_foreign_key_list(?)', (other,))
            used = sorted({r[0] for r in references} & set(owned))
            if used:
                raise DatabaseError(
                    f"cannot drop {', '.join(used)}: table {other}, which mf does not own, references "
                    f"{'it' if len(used) == 1 else 'them'}; drop or change {other} first. Nothing was dropped.")
        return [(f"DROP TABLE {self.quote(table)}", f"table {table}") for table in owned]

    def needs_foreign_keys_off(self, operations) -> bool:
        # An added or dropped column may be a rebuild too, decided when it runs
        # (_NativeOrRebuild): dropping a referenced table with foreign keys on would
        # delete the rows that reference it.
        plan = Plan(operations=tuple(operations))
        return any(isinstance(op, DropModel) or op.op in ("add_column", "drop_column") or self._rebuilds(op, plan)
                   for op in plan.operations)

    def _rebuilds(self, op, plan: Plan) -> bool:
        """Does this operation rebuild a table?"""
        if op.op == "add_column":
            return not self._can_add_natively(op.field, require_table(op))
        if op.op == "drop_column":
            return not _plain_column(op.field)
        if op.op == "rename_column":
            return op.old.column != op.new.column and not self._can_rename_natively(op.old)
        if op.op == "alter_column":
            return not self._same_column(op) or (op.old.column != op.new.column
                                                 and not self._can_rename_natively(op.old))
        if op.op == "rename_model":
            return op.old_table != op.new_table and _has_named_constraints(op.table_def)
        if op.op == "add_fk":
            return True
        if op.op in ("add_index", "drop_index"):
            return op.index.constraint
        if op.op in ("add_check", "drop_check"):
            return True
        if op.op == "drop_fk":
            return not follows_later(op, plan)
        if isinstance(op, AlterEnum):
            return bool(op.tables) and _enum_check_changes(op)
        return False

    # ------------------------------------------------------------ enums: CHECK constraints
    def _create_enum(self, op, plan) -> list[str]:
        return []  # an enum lives in the CHECK of each column that uses it

    def _drop_enum(self, op, plan) -> list[str]:
        return []

    def _alter_enum(self, op, plan) -> list[str]:
        if not _enum_check_changes(op):
            return []
        renamed = _renamed_values(op)
        statements: list[str] = []
        for table_def in op.tables:
            sources = {}
            if renamed:
                for f in table_def.model.fields:
                    if f.enum == op.name:
                        sources[f.column] = self._renaming_case(f.column, renamed)
            statements.extend(self.rebuild(table_def, sources))
        return statements

    def _renaming_case(self, column: str, renamed: dict) -> str:
        quoted = self.quote(column)
        whens = " ".join(f"WHEN {self.string_literal(old)} THEN {self.string_literal(new)}"
                         for old, new in renamed.items())
        return f"CASE {quoted} {whens} ELSE {quoted} END"

    # ------------------------------------------------------------ tables
    def _rename_model(self, op, plan) -> list[str]:
        """RENAME TO, then, for a table with constraints named after it (a UNIQUE, a
        foreign key, an enum's CHECK), a rebuild that names them after the new table,
        as a new table would name them (SQLite cannot rename a constraint)."""
        statements = super()._rename_model(op, plan)
        if statements and _has_named_constraints(op.table_def):
            statements.extend(self.rebuild(op.table_def))
        return statements

    # ------------------------------------------------------------ columns
    def _add_column(self, op, plan) -> list[str]:
        table_def = require_table(op)
        rebuilt = self.rebuild(table_def, {op.field.column: None})
        if self._can_add_natively(op.field, table_def):
            native = f"ALTER TABLE {self.quote(op.table)} ADD COLUMN {self.column_sql(op.field, table_def)}"
            return [_NativeOrRebuild.of(f"add column {op.field.column} to {op.table}", op.table, native, rebuilt)]
        return rebuilt

    def _can_add_natively(self, f: Field, table_def: TableDef) -> bool:
        """Can ALTER TABLE ADD COLUMN add this column (sqlite.org's list of restrictions)?"""
        if f.primary_key or has_unique_constraint(f):
            return False
        default = self.default_sql(f)
        if f.auto_now or f.auto_now_add or f.db_default is not None:
            return False  # "Cannot add a column with non-constant default"
        if is_not_null(f) and default is None:
            return False  # refused even on an empty table; the rebuild fails only if rows exist
        if f.name in table_def.references and default is not None:
            return False  # with foreign keys on, a REFERENCES column must default to NULL
        return True

    def _drop_column(self, op, plan) -> list[str]:
        rebuilt = self.rebuild(require_table(op))
        if _plain_column(op.field):
            native = f"ALTER TABLE {self.quote(op.table)} DROP COLUMN {self.quote(op.field.column)}"
            return [_NativeOrRebuild.of(f"drop column {op.field.column} of {op.table}", op.table, native, rebuilt)]
        return rebuilt

    def _rename_column(self, op, plan) -> list[str]:
        if op.old.column == op.new.column:
            return []
        if self._can_rename_natively(op.old):
            return [f"ALTER TABLE {self.quote(op.table)} RENAME COLUMN {self.quote(op.old.column)}"
                    f" TO {self.quote(op.new.column)}"]
        return self.rebuild(require_table(op), {op.new.column: self.quote(op.old.column)})

    def _can_rename_natively(self, f: Field) -> bool:
        # SQLite rewrites every mention of the column (indexes, CHECKs, keys pointing at
        # it from other tables) but not the constraint names made from it. A primary key
        # has no named constraint and may be pointed at: renaming it natively is right.
        return f.primary_key or (not f.unique and f.target is None and f.enum is None
                                 and f.type not in POSITIVE_TYPES)

    def _alter_column(self, op, plan) -> list[str]:
        # A type change that rounds is checked and applied as on PostgreSQL, though
        # SQLite's type affinity would keep 2.7 in an INTEGER column: both databases
        # hold the same values after it.
        guard = self.rounding_guard(op, op.old.column)
        checked = [guard] if guard is not None else []
        loss = op.rounding
        if self._same_column(op):
            renamed = self._renamed_in_place(op)
            if loss is not None:  # DATETIME -> DATE: both TEXT, the values change
                column = self.quote(op.new.column)
                renamed.append(f"UPDATE {self.quote(op.table)} SET {column} = {self.rounded_sql(loss, column)}"
                               f" WHERE {column} IS NOT NULL")
            return checked + renamed
        return checked + self.rebuild(require_table(op), {op.new.column: self._altered_source(op)})

    def _altered_source(self, op) -> str:
        """The new column of an alter_column that rebuilds, read from the old one."""
        source = self.quote(op.old.column)
        if op.rounding is not None:
            source = self.rounded_sql(op.rounding, source)
        fill = self.fill_sql(op)
        if is_not_null(op.new) and not is_not_null(op.old) and fill is not None:
            source = f"COALESCE({source}, {fill})"
        return source

    def _renamed_in_place(self, op) -> list[str]:
        """An alter_column that leaves the column as it was, but for its name."""
        if op.old.column == op.new.column:
            return []
        if not self._can_rename_natively(op.old):
            return self.rebuild(require_table(op), {op.new.column: self.quote(op.old.column)})
        return [f"ALTER TABLE {self.quote(op.table)} RENAME COLUMN {self.quote(op.old.column)}"
                f" TO {self.quote(op.new.column)}"]

    def rounded_sql(self, loss, column: str) -> str:
        if loss.kind == "whole":
            return f"CAST(round({column}) AS INTEGER)"
        if loss.kind == "places":
            return f"round({column}, {loss.places})"
        if loss.kind == "float":
            return f"CAST({column} AS REAL)"
        return f"{loss.kind}({column})"  # date(), time() of the stored text

    def rounds_sql(self, loss, column: str) -> str:
        if loss.kind == "date":
            return f"time({column}) <> '00:00:00'"
        if loss.kind == "time":
            return "1"  # every value loses its date
        return f"{column} <> {self.rounded_sql(loss, column)}"

    def _same_column(self, op) -> bool:
        """Would both sides of an alter_column give the same column (up to its name)?
        Definitions that differ can still give one column here (SQLite has few types):
        the old side is then read with the key its reference pointed to (table_before)."""
        if "fk" in op.changes:
            return False
        if not op.changes - {"name", "column"}:
            return True
        renamed = op.old._replace(name=op.new.name, column=op.new.column)
        return self.column_sql(renamed, table_before(op)) == self.column_sql(op.new, require_table(op))

    # ------------------------------------------------------------ indexes
    def _add_index(self, op, plan) -> list[str]:
        # SQLite adds and drops table constraints only by making the table again.
        return self.rebuild(require_table(op)) if op.index.constraint else super()._add_index(op, plan)

    def _drop_index(self, op, plan) -> list[str]:
        return self.rebuild(require_table(op)) if op.index.constraint else super()._drop_index(op, plan)

    # ------------------------------------------------------------ checks
    # A CHECK lives in the table's definition: adding or dropping one makes the table again.
    def _add_check(self, op, plan) -> list[str]:
        return self.rebuild(require_table(op))

    def _drop_check(self, op, plan) -> list[str]:
        return self.rebuild(require_table(op))

    # ------------------------------------------------------------ foreign keys
    def _add_fk(self, op, plan) -> list[str]:
        return self.rebuild(require_table(op))

    def _drop_fk(self, op, plan) -> list[str]:
        if follows_later(op, plan):
            # A primary key changes type under it: foreign keys are off for this
            # migration, and the column's own alter_column rebuilds the table with the
            # constraint anyway. Dropping it first would be a rebuild for nothing.
            return []
        return self.rebuild(require_table(op))

    # ------------------------------------------------------------ the rebuild
    def migration_sql(self, operations, *, atomic: bool = True, online: bool = False) -> list[str]:
        # ``online`` changes nothing: SQLite's transactions lock the whole database
        # file, so there is no lighter lock to cut a migration into steps for.
        operations = tuple(operations)
        plan = Plan(atomic, operations)
        merged = self._merged_rebuilds(plan)
        statements: list[str] = []
        for position, operation in enumerate(operations):
            if position not in merged:
                statements.extend(self._statements(operation, plan))
            elif merged[position] is not None:
                statements.extend(self.rebuild(*merged[position]))
        return statements

    def _merged_rebuilds(self, plan: Plan) -> dict:
        """Changes of one table that one rebuild can make together: {position of an
        operation: None (a later rebuild makes it), or (TableDef, sources, index names)
        for the rebuild that makes it and the earlier ones}. A run of operations on a
        table (nothing between them renames, drops or creates it, nor runs data steps)
        with at least one rebuild becomes one rebuild, into the table after the last;
        a column computed from a column an earlier one computed ends the run there."""
        merged: dict = {}
        runs: dict = {}  # table -> [positions, sources, TableDef, rebuilds]

        def close(table):
            positions, sources, table_def, rebuilds = runs.pop(table)
            if rebuilds and len(positions) > 1:
                for position in positions[:-1]:
                    merged[position] = None
                merged[positions[-1]] = (table_def, {c: e for c, (_r, e) in sources.items()},
                                         self._index_names(plan, table))

        for position, op in enumerate(plan.operations):
            change = self._table_change(op, plan)
            if change is None:
                touched = _touched_tables(op)
                for table in list(runs) if touched is None else [t for t in touched if t in runs]:
                    close(table)
                continue
            sources, rebuilds = change
            run = runs.get(op.table)
            if run is not None:
                composed = _compose(run[1], sources)
                if composed is not None:
                    run[0].append(position)
                    run[1], run[2], run[3] = composed, require_table(op), run[3] or rebuilds
                    continue
                close(op.table)
            runs[op.table] = [[position], sources, require_table(op), rebuilds]
        for table in list(runs):
            close(table)
        return merged

    @staticmethod
    def _index_names(plan: Plan, table: str) -> set:
        """Every index of ``table`` the migration adds or drops: mf's, not the user's."""
        return {op.index.name for op in plan.operations
                if op.op in ("add_index", "drop_index") and op.table == table}

    def _table_change(self, op, plan: Plan) -> Optional[tuple]:
        """(sources, rebuilds) of an operation that changes one table's columns,
        indexes or keys: how each new column is read from the table before it
        ({column: (old column read or None, SQL expression or None)}, unlisted columns
        copied by name), and whether it needs a rebuild alone; None for the others."""
        if op.op not in _TABLE_CHANGES or getattr(op, "table_def", None) is None:
            return None
        if getattr(op, "rounding", None) is not None:
            return None  # its check runs first, on the table as it is: it stands alone
        if op.op == "add_column":
            return {op.field.column: (None, None)}, self._rebuilds(op, plan)
        if op.op in ("rename_column", "alter_column"):
            old, new = op.old.column, op.new.column
            if op.op == "rename_column" or self._same_column(op):
                return ({new: (old, self.quote(old))} if old != new else {}), self._rebuilds(op, plan)
            return {new: (old, self._altered_source(op))}, True
        return {}, self._rebuilds(op, plan)

    def rebuild(self, table_def: TableDef, sources: Optional[dict] = None, managed=()) -> list[str]:
        """Statements that rebuild a table into ``table_def``, keeping its rows and the
        triggers, indexes and views of the user's that it had.

        ``sources`` maps a new column to the SQL expression that computes it from a row
        of the old table, or to None for a column the old table lacks (it takes its
        default); every other column is copied by name. ``managed``: names of indexes
        of the table that are mf's besides those of ``table_def`` (dropped by the
        migration), which are not made again.
        """
        sources = sources or {}
        model = table_def.model
        table = self.quote(model.table)
        aside = self.quote(REBUILD_PREFIX + model.table)
        targets, expressions = [], []
        for f in model.fields:
            expression = sources.get(f.column, self.quote(f.column))
            if expression is not None:
                targets.append(self.quote(f.column))
                expressions.append(expression)
        counted = any(f.type in ("AutoField", "BigAutoField") for f in model.fields)
        own = _OwnObjects(self, model.table, {index.name for index in model.indexes} | set(managed), counted)
        statements = [own.keeper(), f"CREATE TEMP TABLE {aside} AS SELECT * FROM {table}",
                      f"DROP TABLE {table}", self.create_table_sql(table_def)]
        if targets:
            statements.append(f"INSERT INTO {table} ({', '.join(targets)})"
                              f" SELECT {', '.join(expressions)} FROM temp.{aside}")
        statements.append(f"DROP TABLE temp.{aside}")
        statements.extend(self.table_indexes_sql(table_def))
        statements.append(own.restorer())
        return statements


# Operations on one table that a rebuild of it can carry out together with others.
_TABLE_CHANGES = ("add_column", "drop_column", "rename_column", "alter_column", "add_index", "drop_index",
                  "add_fk", "drop_fk")


def _touched_tables(op) -> Optional[set]:
    """The tables an operation other than a _TABLE_CHANGES one creates, drops, renames
    or rebuilds; None when it may touch any (a data step, an unknown operation)."""
    if op.op in ("create_enum", "drop_enum"):
        return set()
    if isinstance(op, AlterEnum):
        return {t.model.table for t in op.tables}
    if op.op == "rename_model":
        return {op.old_table, op.new_table}
    if op.op in ("create_model", "drop_model") or isinstance(getattr(op, "table", None), str):
        return {op.table}  # (an index that is no constraint: made or dropped where it stands)
    return None


def _compose(first: dict, second: dict) -> Optional[dict]:
    """Sources ({column: (read, expression)}, see _table_change) of one rebuild that
    does what rebuilding with ``first``, then with ``second``, does; None when a
    column ``second`` computes (more than a copy) reads one ``first`` computes."""
    composed = dict(first)
    for column, (read, expression) in second.items():
        if expression is None:
            composed[column] = (None, None)
            continue
        before = first.get(read)
        if expression == _quoted(read):  # a copy, perhaps under a new name
            composed[column] = before if before is not None else (read, expression)
        elif before is None or before == (read, _quoted(read)):
            composed[column] = (read, expression)
        else:
            return None
    return composed


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _OwnObjects:
    """What a rebuilt table had that mf does not write (sqlite.org's procedure, steps 3
    and 10): the user's indexes and triggers on it, read from sqlite_schema just
    before the table is dropped and made again right after it is made; its views and
    the triggers elsewhere that mention it, checked before and after (a view over a
    column that is gone fails the migration, as SQLite's own ALTER TABLE does); and its
    AUTOINCREMENT counter, so that ids of deleted rows are never handed out again."""

    def __init__(self, dialect, table: str, managed: set, counted: bool):
        self.quote = dialect.quote
        self.table = table
        self.managed = {name.lower() for name in managed}
        self.counted = counted
        self.own: list = []        # (kind, name, sql)
        self.checked: list = []    # (kind, name, table it is on)
        self.counter = None
        self.sql_of: dict = {}     # trigger name -> its CREATE TRIGGER

    def keeper(self) -> "_Keep":
        step = _Keep(f"-- keep the indexes, triggers and views of {self.table} that mf does not manage")
        step.objects = self
        return step

    def restorer(self) -> "_Restore":
        step = _Restore(f"-- make them again on {self.table}, and check that its views and triggers still work")
        step.objects = self
        return step

    async def keep(self, connection) -> None:
        # One pass over sqlite_schema: the table's indexes, and every view and trigger
        # (a database has few; which of them mention the table is decided here).
        rows = await connection.fetch(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL AND"
            " (type IN ('view', 'trigger') OR (type = 'index' AND tbl_name = ? COLLATE NOCASE))", (self.table,))
        table = self.table.lower()
        views = {name.lower() for kind, name, _on, _sql in rows if kind == "view"}
        self.own, self.checked = [], []
        self.sql_of = {name: sql for kind, name, _on, sql in rows if kind == "trigger"}
        for kind, name, on, sql in rows:
            if kind == "index":
                if name.lower() not in self.managed:
                    self.own.append((kind, name, sql))
                continue
            mine = kind == "trigger" and on.lower() == table
            if mine:
                self.own.append((kind, name, sql))
            if (mine or table in sql.lower()) and not (kind == "trigger" and on.lower() in views) \
                    and await self._problem(connection, kind, name, on) is None:
                self.checked.append((kind, name, on))
        self.counter = None
        if self.counted:
            try:
                found = await connection.fetch("SELECT seq FROM sqlite_sequence WHERE name = ?", (self.table,))
            except Exception:  # noqa: BLE001 - no sqlite_sequence: no table ever had a counter
                found = []
            self.counter = found[0][0] if found else None

    async def restore(self, connection) -> None:
        for kind, name, sql in self.own:
            try:
                await connection.execute(sql)
            except Exception as exc:  # noqa: BLE001 - the driver's StatementError
                raise CatalogStepRefusal(
                    f"{self.table} is rebuilt, and its {kind} {name}, which mf does not manage, cannot be made "
                    f"again: {getattr(exc, 'message', exc)}; drop or change the {kind} first") from None
        for kind, name, on in self.checked:
            problem = await self._problem(connection, kind, name, on)
            if problem is not None:
                if kind == "trigger":
                    # Compiling a table's statements compiles all its triggers: name those
                    # that hold the name SQLite could not find (else the one checked).
                    missing = problem.rpartition(": ")[2].lower()
                    named = [n for k, n, o in self.checked if k == kind and o == on and missing and
                             missing in self.sql_of.get(n, "").lower()]
                    name = ", ".join(named) or name
                raise CatalogStepRefusal(
                    f"after {self.table} is rebuilt, the {kind} {name}, which mf does not manage, no longer works: "
                    f"{problem}; change or drop the {kind} first")
        if self.counter is not None:
            await connection.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?",
                                     (self.counter, self.table, self.counter))
            await connection.execute("INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS"
                                     " (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                                     (self.table, self.counter, self.table))

    async def _problem(self, connection, kind: str, name: str, on: str) -> Optional[str]:
        """Why the view, or the trigger (on table ``on``), would fail when used; None
        when it compiles. EXPLAIN compiles a statement, and the triggers it fires,
        without running it."""
        if kind == "view":
            statements = [f"EXPLAIN SELECT * FROM {self.quote(name)}"]
        else:
            target = self.quote(on)
            columns = [r[0] for r in await connection.fetch("SELECT name FROM pragma_table_info(?)", (on,))]
            statements = [f"EXPLAIN INSERT INTO {target} DEFAULT VALUES", f"EXPLAIN DELETE FROM {target}"]
            if columns:
                statements.append(f"EXPLAIN UPDATE {target} SET "
                                  + ", ".join(f"{self.quote(c)} = {self.quote(c)}" for c in columns))
        for statement in statements:
            try:
                await connection.fetch(statement)
            except Exception as exc:  # noqa: BLE001 - the driver's StatementError
                return str(getattr(exc, "message", exc))
        return None


# ALTER TABLE ADD COLUMN and DROP COLUMN make SQLite read and parse the whole schema
# again (every table, index, trigger and view), whatever the size of the table: at
# 5,000 tables each costs about as much as rebuilding a table of 10,000 rows. A column
# that either can add or drop is therefore added or dropped by rebuilding its table
# when the schema has at least SCHEMA_ENTRIES_FOR_REBUILD entries (sqlite_schema rows)
# and the table at most ROWS_PER_SCHEMA_ENTRY rows per entry; natively otherwise.
# Measured (python sqlite3 3.40, in memory): ADD COLUMN about 4 us per schema entry,
# a rebuild about 1.4 us per row of 20 short text columns and a few ms of fixed cost.
SCHEMA_ENTRIES_FOR_REBUILD = 1000
ROWS_PER_SCHEMA_ENTRY = 2


class _NativeOrRebuild(CatalogStep):
    """ALTER TABLE ADD/DROP COLUMN, or the same change as a rebuild of the table, chosen
    when it runs from the size of the schema and of the table (see ROWS_PER_SCHEMA_ENTRY).
    `mf db sql` prints both, as comments."""

    table: str
    native: str
    rebuilt: list

    @classmethod
    def of(cls, what: str, table: str, native: str, rebuilt: list) -> "_NativeOrRebuild":
        lines = [f"-- {what}: {native}, or, when the schema has at least {SCHEMA_ENTRIES_FOR_REBUILD} entries"
                 f" and {table} at most {ROWS_PER_SCHEMA_ENTRY} rows per entry, mf rebuilds {table}"
                 " (ALTER TABLE would read the whole schema again):"]
        for statement in rebuilt:
            lines.extend("--   " + line for line in str(statement).splitlines())
        lines += ["-- otherwise, and when this script runs outside mf:", native]
        step = cls("\n".join(lines))
        step.table, step.native, step.rebuilt = table, native, rebuilt
        return step

    async def rebuild_is_cheaper(self, connection) -> bool:
        entries = (await connection.fetch("SELECT count(*) FROM sqlite_master"))[0][0]
        if entries < SCHEMA_ENTRIES_FOR_REBUILD:
            return False
        most = entries * ROWS_PER_SCHEMA_ENTRY
        quoted = '"' + self.table.replace('"', '""') + '"'
        rows = (await connection.fetch(f"SELECT count(*) FROM (SELECT 1 FROM {quoted} LIMIT {most + 1})"))[0][0]
        return rows <= most

    async def run(self, connection) -> None:
        if not await self.rebuild_is_cheaper(connection):
            await connection.execute(self.native)
            return
        for statement in self.rebuilt:
            if isinstance(statement, CatalogStep):
                await statement.run(connection)
            else:
                await connection.execute(statement)


class _Keep(CatalogStep):
    objects: _OwnObjects

    async def run(self, connection) -> None:
        await self.objects.keep(connection)


class _Restore(CatalogStep):
    objects: _OwnObjects

    async def run(self, connection) -> None:
        await self.objects.restore(connection)

_NAME = r'(?:"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|[A-Za-z_][A-Za-z0-9_$]*)'
_IN_CHECK = re.compile(rf"(?:CONSTRAINT\s+({_NAME})\s+)?CHECK\s*\(\s*({_NAME})\s+IN\s*\(", re.IGNORECASE)
_LITERAL = re.compile(r"\s*'((?:[^']|'')*)'\s*([,)])")


async def _grouped(connection, sql: str) -> dict:
    """The rows of ``sql`` by their first column, each without it, in the order read."""
    grouped: dict = {}
    for first, *rest in await connection.fetch(sql):
        grouped.setdefault(first, []).append(rest)
    return grouped


def _unquote(name: str) -> str:
    if name[:1] in ('"', "`", "["):
        return name[1:-1].replace('""', '"') if name[0] == '"' else name[1:-1]
    return name


def in_list_checks(definition: str) -> list:
    """The ``CHECK (column IN ('a', 'b'))`` constraints of a CREATE TABLE text, values
    in order; checks of any other form are not read."""
    checks = []
    for match in _IN_CHECK.finditer(definition):
        values, position = [], match.end()
        while True:
            literal = _LITERAL.match(definition, position)
            if literal is None:
                break
            values.append(literal.group(1).replace("''", "'"))
            position = literal.end()
            if literal.group(2) == ")":
                name = _unquote(match.group(1)) if match.group(1) else None
                checks.append(Check(name, _unquote(match.group(2)), tuple(values)))
                break
    return checks


_CHECK_START = re.compile(rf"(?:\bCONSTRAINT\s+({_NAME})\s+)?\bCHECK\s*\(", re.IGNORECASE)
_IN_LIST = re.compile(rf"\s*{_NAME}\s+IN\s*\(\s*'(?:[^']|'')*'(?:\s*,\s*'(?:[^']|'')*')*\s*\)\s*", re.IGNORECASE)


def check_constraints(definition: str) -> list:
    """The CHECK constraints of a CREATE TABLE text other than the ``column IN (...)``
    lists of enums (in_list_checks reads those): name (None when unnamed) and the
    expression between its parentheses, as written."""
    found = []
    for item in _items(definition or ""):
        matches = list(_CHECK_START.finditer(item))
        if not matches:
            continue
        outside = _top_level(item)
        for match in matches:
            if match.start() not in outside:
                continue
            end = _closing(item, match.end())
            if end is None:
                continue
            expression = item[match.end():end]
            if _IN_LIST.fullmatch(expression):
                continue
            found.append(CheckConstraint(_unquote(match.group(1)) if match.group(1) else None, expression))
    return found


def _top_level(text: str) -> set:
    """Positions of ``text`` outside quotes and parentheses."""
    positions, depth, quote = set(), 0, None
    for position, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
            continue
        if char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0:
            positions.add(position)
    return positions


def _closing(text: str, start: int):
    """The position of the ')' that closes the '(' just before ``start``, or None."""
    depth, quote = 0, None
    for position in range(start, len(text)):
        char = text[position]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return position
            depth -= 1
    return None


_ITEM_MARK = re.compile(r"""['"`(),]""")


def _items(definition: str) -> list:
    """The comma-separated items (columns, table constraints) of a CREATE TABLE text."""
    start = definition.find("(")
    if start < 0:
        return []
    items, depth, quote, begin = [], 0, None, start + 1
    for mark in _ITEM_MARK.finditer(definition, start + 1):
        char = mark.group()
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                items.append(definition[begin:mark.start()].strip())
                break
            depth -= 1
        elif depth == 0:
            items.append(definition[begin:mark.start()].strip())
            begin = mark.end()
    else:
        items.append(definition[begin:].strip())
    return [item for item in items if item]


_CONSTRAINT = re.compile(rf"CONSTRAINT\s+({_NAME})\s+(REFERENCES|UNIQUE|FOREIGN\s+KEY)\s*(\(([^)]*)\))?",
                         re.IGNORECASE)
_TABLE_ITEM = re.compile(r"^(CONSTRAINT|PRIMARY|FOREIGN|UNIQUE|CHECK)\b", re.IGNORECASE)
_DEFERRABLE = re.compile(r"\bNOT\s+DEFERRABLE\b|\bDEFERRABLE(\s+INITIALLY\s+(DEFERRED|IMMEDIATE))?",
                         re.IGNORECASE)


def constraint_names(definition: str) -> dict:
    """What SQLite keeps only in the CREATE TABLE text: {("foreign key" | "unique",
    columns): the CONSTRAINT name, ("deferrable", columns): (deferrable, initially
    deferred)}."""
    found: dict = {}
    for item in _items(definition or ""):
        column = None
        if not _TABLE_ITEM.match(item):
            first = re.match(_NAME, item)
            column = _unquote(first.group(0)) if first else None
        for match in _CONSTRAINT.finditer(item):
            kind = "unique" if match.group(2).upper() == "UNIQUE" else "foreign key"
            listed = match.group(4)
            if listed is not None and match.group(2).upper() != "REFERENCES":
                columns = tuple(_unquote(c.strip()) for c in listed.split(","))
            else:
                columns = (column,)
            found[(kind, columns)] = _unquote(match.group(1))
        if column is not None and re.search(r"\bREFERENCES\b", item, re.IGNORECASE):
            columns = (column,)
        elif (keyed := re.search(r"\bFOREIGN\s+KEY\s*\(([^)]*)\)", item, re.IGNORECASE)) is not None:
            columns = tuple(_unquote(c.strip()) for c in keyed.group(1).split(","))
        else:
            continue
        deferrable = _DEFERRABLE.search(item)
        if deferrable is not None and not deferrable.group(0).upper().startswith("NOT"):
            found[("deferrable", columns)] = (True, (deferrable.group(2) or "").upper() == "DEFERRED")
    return found


def _index_condition(definition: str) -> Optional[str]:
    """The WHERE of a partial index's CREATE INDEX text."""
    found = re.search(r"\bWHERE\b(.*)$", definition or "", re.IGNORECASE | re.DOTALL)
    return found.group(1).strip() if found else None


def _plain_column(f: Field) -> bool:
    """Can DROP COLUMN remove it? (No key, no UNIQUE, no foreign key; an enum's CHECK
    belongs to the column and goes with it.)"""
    return not f.primary_key and not f.unique and f.target is None


def _has_named_constraints(table_def: Optional[TableDef]) -> bool:
    if table_def is None:
        return False  # an earlier tool's file: its constraints keep their names
    return any(has_unique_constraint(f) or f.enum is not None or f.type in POSITIVE_TYPES
               or f.name in table_def.references
               for f in table_def.model.fields)


def _renamed_values(op: AlterEnum) -> dict:
    """old stored value -> new stored value, for members kept under a new value."""
    new = dict(op.new_members)
    return {value: new[key] for key, value in op.old_members if key in new and new[key] != value}


def _enum_check_changes(op: AlterEnum) -> bool:
    old = {value for _key, value in op.old_members}
    new = {value for _key, value in op.new_members}
    return old != new or bool(_renamed_values(op))


DIALECT = SQLiteDialect()

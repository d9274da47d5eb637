"""PostgreSQL: ALTER in place, constraints by name, enums as native types.

Constraint names follow PostgreSQL's own convention (``<table>_pkey``,
``<table>_<column>_fkey``, ``_key``), shortened with a hash past 63 bytes (base.py);
renaming a table or a column renames them along, so later operations find them.

Enums. ``alter_enum`` takes the cheap path when it can: ``RENAME VALUE`` for members
whose stored value changed, ``ADD VALUE ... BEFORE/AFTER`` for new members in their
declared place. A value added inside a transaction cannot be used before the
transaction commits, and ADD VALUE may not run in a transaction at all before
PostgreSQL 12; so when the same (atomic) migration uses an added value (as a
default, or by converting a column to the enum), and whenever members are removed
or reordered, the type is recreated instead, all inside the transaction:

    (for each column: a check that no row holds a removed value, with a clear error)
    CREATE TYPE "_mf_new_<type>" AS ENUM (...new values...)
    ALTER TABLE ... ALTER COLUMN ... DROP DEFAULT
    ALTER TABLE ... ALTER COLUMN ... TYPE "_mf_new_<type>" USING <old value, renamed>::text::...
    DROP TYPE "<type>"
    ALTER TYPE "_mf_new_<type>" RENAME TO "<type>"
    ALTER TABLE ... ALTER COLUMN ... SET DEFAULT ...

An online plan (Plan.online: migrate's) adds the value in one step and uses it in the
next (a StepBoundary between), so the type is not recreated when members are only added.

Online forms (Plan.online, for tables that exist before the migration): foreign keys
and checks are added NOT VALID and validated after a StepBoundary; a column becomes NOT
NULL through a NOT VALID ``CHECK (column IS NOT NULL)`` validated in a later step, then
SET NOT NULL (proved from the check, no scan) and the check dropped; a dropped table
loses its foreign keys in a step before the DROP TABLE.

Nothing is ever dropped with CASCADE: a DROP that something else still depends on
fails, and the migration's transaction leaves the database as it was.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from typing import Optional

from ..language.fields import AUTO_TYPES
from ..operations import AddColumn, AlterColumn, CreateModel
from ..schema import POSITIVE_TYPES, Field, MAX_IDENTIFIER, constraint_name
from .base import (ADDRESSED_CONSTRAINT, DROPPED_INDEX, LEDGER_TABLE, Dialect, IndexBuild, IndexDrop, LockBudget, _clip,
                   check_name,
                   drop_order, field_foreign_key_name, field_primary_key_name, field_unique_name, foreign_key_name,
                   has_unique_constraint, is_not_null, key_dropped_before, online_table, primary_key_name,
                   require_table, step_boundary, table_before, unique_name, unquote)
from .catalog import Catalog, CheckConstraint, Column, ForeignKey, Index, Table, Unique

_TYPES = {
    "AutoField": "integer", "BigAutoField": "bigint",
    "IntegerField": "integer", "BigIntegerField": "bigint", "SmallIntegerField": "smallint",
    "FloatField": "double precision", "TextField": "text", "BooleanField": "boolean",
    "DateTimeField": "timestamptz", "DateField": "date", "TimeField": "time",
    "UUIDField": "uuid", "JSONField": "jsonb", "BinaryField": "bytea", "IPAddressField": "inet",
    "PositiveIntegerField": "integer", "PositiveBigIntegerField": "bigint", "PositiveSmallIntegerField": "smallint",
}

# format_type's spelling of a column type -> the field that makes it.
_FIELD_TYPES = {
    "integer": "IntegerField", "bigint": "BigIntegerField", "smallint": "SmallIntegerField",
    "double precision": "FloatField", "text": "TextField", "boolean": "BooleanField",
    "timestamp with time zone": "DateTimeField", "date": "DateField", "time without time zone": "TimeField",
    "uuid": "UUIDField", "jsonb": "JSONField", "bytea": "BinaryField", "inet": "IPAddressField",
}

_SHORT_TYPES = (("character varying", "varchar"), ("timestamp with time zone", "timestamptz"),
                ("time without time zone", "time"))

# Types between which PostgreSQL's assignment cast is the right conversion: it keeps
# values and fails on those that do not fit (an explicit cast to varchar(n) would
# silently cut them).
_FAMILIES = {
    "text": frozenset({"text", "varchar"}),
    "number": frozenset({"smallint", "integer", "bigint", "numeric", "double precision"}),
}

NEW_TYPE_PREFIX = "_mf_new_"

# The temporary check through which a column becomes NOT NULL online
# (``<table>_<column>_mf_not_null``; PostgreSQL 18's own NOT NULL constraints are
# ``<table>_<column>_not_null``, a name this one must not take).
NOT_NULL_CHECK_SUFFIX = "mf_not_null"

# The run-wide advisory lock's key: the first 8 bytes of sha256(b"mfcore:migrate") as a
# signed bigint, so mf's lock cannot collide with an application's small integer keys.
ADVISORY_LOCK_KEY = 956832486351254394


def advisory_lock_key(schema: Optional[str] = None) -> int:
    """The run-wide lock's key for the ledger in ``schema`` (a tenant's schema), or the
    database's key when the target is the whole database: sha256(b"mfcore:migrate:" +
    the schema's name), first 8 bytes as a signed bigint, so tenants of one database
    migrate in parallel and never wait for each other."""
    if schema is None:
        return ADVISORY_LOCK_KEY
    digest = hashlib.sha256(b"mfcore:migrate:" + schema.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def transaction_marker_key(schema: Optional[str] = None) -> int:
    """The key of the transaction-level advisory lock every migration transaction of the
    target takes (see transaction_marker_sql): sha256(b"mfcore:transaction" + ":" + the
    schema's name, for a tenant's schema), first 8 bytes as a signed bigint."""
    name = b"mfcore:transaction" + (b":" + schema.encode("utf-8") if schema is not None else b"")
    return int.from_bytes(hashlib.sha256(name).digest()[:8], "big", signed=True)


def _advisory_key_is(key: int, alias: str = "l") -> str:
    """pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits)."""
    return (f"{alias}.locktype = 'advisory' AND {alias}.objsubid = 1 "
            f"AND (({alias}.classid::bigint << 32) | {alias}.objid::bigint) = {key}")


# How often the server looks whether the client of a running statement is still there
# (PostgreSQL 14 and later): a migrator killed inside a long statement then frees its
# locks within seconds instead of when the statement ends.
CLIENT_CHECK_INTERVAL_MS = 2000

# Characters of a session's statement read from pg_stat_activity (Backend shows fewer).
_QUERY_READ = 200

# pg_constraint.confdeltype -> the ON DELETE action
_ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}

# The relations and types mf sees: those of the schemas on the search path.
_VISIBLE = "n.nspname = ANY(current_schemas(false))"


class PostgreSQLDialect(Dialect):
    """Also the applier's adapter: a session advisory lock on a connection of its own
    for the whole run, taken by polling pg_try_advisory_lock (a blocking
    pg_advisory_lock waits inside a transaction, which deadlocks with CREATE INDEX
    CONCURRENTLY); every migration transaction sets a local lock_timeout; statements
    that refuse a transaction run outside one."""

    name = "postgresql"
    title = "PostgreSQL"
    has_enum_types = True
    has_opclasses = True
    supports_non_atomic = True
    run_lock = True
    has_schemas = True
    limits_connections = True
    batches_statements = True
    dollar_quotes = True
    sets_lock_timeout = True
    runs_steps = True
    drop_failure_note = " (mf never drops with CASCADE)"
    ledger_types = ("bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "varchar", "timestamptz",
                    "double precision")

    # ------------------------------------------------------------ what the lint asks
    @property
    def lint_rules(self) -> tuple:
        from .postgresql_risks import RULES

        return RULES

    def statement_risks(self, statements: list) -> list:
        from .postgresql_risks import statement_risks

        return statement_risks(statements)

    def flags_own_sql(self, operations) -> bool:
        from .postgresql_risks import flags_own_sql

        return flags_own_sql(operations)

    def rewrites(self, operation, plan) -> list:
        from .postgresql_risks import rewrites

        return rewrites(self, operation, plan)

    def rewrite_risks(self, rewritten: list) -> list:
        from .postgresql_risks import changing_type_risks

        return changing_type_risks(rewritten)

    def rewrite_statement(self, rewrite):
        from .postgresql_risks import rewrite_statement

        return rewrite_statement(rewrite, self)

    # ------------------------------------------------------------ literals and types
    def string_literal(self, text: str) -> str:
        quoted = super().string_literal(text)
        if "\\" in text:
            # E'' reads the same whatever standard_conforming_strings says.
            return "E" + quoted.replace("\\", "\\\\")
        return quoted

    def bool_literal(self, value: bool) -> str:
        return "true" if value else "false"

    def bytes_literal(self, value: bytes) -> str:
        return f"E'\\\\x{value.hex()}'::bytea"  # E'' for the backslash, whatever the server's settings

    def json_literal(self, text: str) -> str:
        return f"{self.string_literal(text)}::jsonb"

    def placeholder(self, position: int) -> str:
        return f"${position}"

    def missing_object(self, error, statement: str) -> Optional[tuple]:
        if error.code != "42704":  # undefined_object
            return None
        addressed = ADDRESSED_CONSTRAINT.match(statement)
        if addressed:
            return "constraint", unquote(addressed.group(2)), unquote(addressed.group(1))
        dropped = DROPPED_INDEX.match(statement)
        if dropped:
            return "index", unquote(dropped.group(1)), None
        return None

    def transaction_prologue(self, statement_lock_timeout: str, statement_timeout: Optional[str] = None) -> list[str]:
        prologue = [f"SET LOCAL lock_timeout = {self.string_literal(statement_lock_timeout)}"]
        if statement_timeout is not None and not re.fullmatch(r"0+(ms|s|min|h)?", statement_timeout):
            prologue.append(f"SET LOCAL statement_timeout = {self.string_literal(statement_timeout)}")
        return prologue

    def transaction_marker_sql(self, schema: Optional[str] = None) -> Optional[str]:
        # The try form never waits: the run that takes it holds the run-wide lock, and
        # has waited for the marks of earlier runs already.
        return f"SELECT pg_try_advisory_xact_lock({transaction_marker_key(schema)})"

    def earlier_transactions_sql(self, schema: Optional[str] = None) -> Optional[str]:
        return (f"SELECT l.pid, a.application_name, a.state, left(a.query, {_QUERY_READ}) FROM pg_locks l "
                "LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.granted AND l.pid <> pg_backend_pid() "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND "
                f"{_advisory_key_is(transaction_marker_key(schema))} ORDER BY l.pid")

    def wait_for_earlier_transactions_sql(self, schema: Optional[str], seconds: float) -> Optional[str]:
        # lock_timeout for this one statement (set_config local to its own transaction),
        # set before the lock is asked for: the subquery runs first.
        milliseconds = max(1, round(seconds * 1000))
        return (f"SELECT pg_advisory_xact_lock({transaction_marker_key(schema)}) FROM "
                f"(SELECT set_config('lock_timeout', '{milliseconds}', true) OFFSET 0) AS timeout")

    def migration_session_sql(self) -> Optional[str]:
        # client_connection_check_interval is PostgreSQL 14's; CASE never calls set_config
        # on an older server.
        return ("SELECT pg_backend_pid(), CASE WHEN current_setting('server_version_num')::int >= 140000 THEN "
                f"set_config('client_connection_check_interval', '{CLIENT_CHECK_INTERVAL_MS}', false) END")

    def blockers_sql(self) -> Optional[str]:
        return ("SELECT DISTINCT ON (b.pid) b.pid, a.application_name, a.state, "
                f"left(a.query, {_QUERY_READ}) FROM unnest(pg_blocking_pids($1::int)) AS b(pid) "
                "LEFT JOIN pg_stat_activity a ON a.pid = b.pid ORDER BY b.pid")

    def is_statement_timeout(self, error) -> bool:
        return error.code == "57014" and "statement timeout" in error.message

    def session_lock_timeout_sql(self, statement_lock_timeout: str) -> Optional[tuple]:
        return f"SET lock_timeout = {self.string_literal(statement_lock_timeout)}", "RESET lock_timeout"

    def server_settings(self, command_timeout: float) -> dict:
        milliseconds = str(max(1, round(command_timeout * 1000)))
        # The keepalive probes notice a client whose host or network died within
        # about half a minute; the timeouts end what a stalled client left running.
        return {"statement_timeout": milliseconds, "idle_in_transaction_session_timeout": milliseconds,
                "tcp_keepalives_idle": "15", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}

    def lease_sql(self, seconds: float) -> Optional[str]:
        # idle_session_timeout is PostgreSQL 14's; on an older server this does nothing
        # (the WHERE is decided before set_config would be called).
        return (f"SELECT set_config('idle_session_timeout', '{max(1, round(seconds * 1000))}', false) "
                "WHERE current_setting('server_version_num')::int >= 140000")

    def try_lock_sql(self, schema: Optional[str] = None) -> str:
        key = advisory_lock_key(schema)
        # The attempt and the look at pg_locks are one statement: once the lock is held
        # its session is asked nothing that can leave the server waiting half-way
        # through a statement's messages (outside any timeout) should the network stall.
        # pg_locks shows a bigint key as classid (high 32 bits) and objid (low 32 bits).
        return (f"SELECT taken, CASE WHEN taken THEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND granted AND pid = pg_backend_pid() AND objsubid = 1 "
                f"AND ((classid::bigint << 32) | objid::bigint) = {key}) END "
                f"FROM (SELECT pg_try_advisory_lock({key}) AS taken OFFSET 0) AS attempt")

    def unlock_sql(self, schema: Optional[str] = None) -> str:
        return f"SELECT pg_advisory_unlock({advisory_lock_key(schema)})"

    def transactional_ddl_probe(self, table: str) -> Optional[tuple]:
        # Unqualified: made where the migrations' tables are made (a tenant's schema).
        quoted = self.quote(table)
        return (f"BEGIN; CREATE TABLE {quoted} (probe integer); ROLLBACK",
                f"SELECT to_regclass({self.string_literal(quoted)}) IS NULL",
                f"DROP TABLE IF EXISTS {quoted}")

    def session_settings(self, schema: Optional[str]) -> dict:
        # Only the tenant's schema: its ledger, tables and types, created and found there.
        return {"search_path": self.quote(schema)} if schema is not None else {}

    def use_schema_sql(self, schema: str) -> str:
        """The same setting on a connection already open (one reused from a pool)."""
        return f"SET search_path TO {self.quote(schema)}"

    async def connection_limit(self, connection) -> Optional[int]:
        return int((await connection.fetch("SHOW max_connections"))[0][0])

    async def lock_budget(self, connection) -> Optional[LockBudget]:
        # The lock table is sized at server start from these three; a transaction may take
        # more than max_locks_per_transaction as long as the table as a whole has room.
        row = (await connection.fetch(
            "SELECT current_setting('max_locks_per_transaction')::int, current_setting('max_connections')::int, "
            "current_setting('max_prepared_transactions')::int"))[0]
        return LockBudget(int(row[0]), int(row[1]), int(row[2]))

    def ledger_exists_sql(self) -> str:
        return f"SELECT 1 WHERE to_regclass({self.string_literal(self.quote(LEDGER_TABLE))}) IS NOT NULL"

    async def ledger_takes_steps(self, connection) -> bool:
        rows = await connection.fetch(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'c' AND conrelid = "
            f"to_regclass({self.string_literal(self.quote(LEDGER_TABLE))})")
        checks = [r[0] for r in rows if "state" in r[0]]
        return not checks or any("step %" in check for check in checks)

    def ledger_steps_upgrade_sql(self) -> list:
        q = self.quote
        name = q(LEDGER_TABLE + "_state_check")
        return [f"ALTER TABLE {q(LEDGER_TABLE)} DROP CONSTRAINT IF EXISTS {name}, "
                f"ADD CONSTRAINT {name} CHECK ({self.ledger_state_check()})"]

    async def index_validity(self, connection, name: str) -> Optional[bool]:
        rows = await connection.fetch(
            "SELECT i.indisvalid AND i.indisready FROM pg_index i WHERE i.indexrelid = to_regclass($1)",
            (self.quote(name),))
        return bool(rows[0][0]) if rows else None

    def drop_index_concurrently_sql(self, name: str) -> str:
        return f"DROP INDEX CONCURRENTLY {self.quote(name)}"

    def type_sql(self, f: Field) -> str:
        if f.type == "CharField":
            return f"varchar({f.max_length})"
        if f.type == "DecimalField":
            return f"numeric({f.max_digits},{f.decimal_places})"
        if f.type == "EnumField":
            return self.enum_type(f.enum)
        return _TYPES.get(f.type, "text")

    def enum_type(self, enum_name: str) -> str:
        return self.quote(enum_name.lower())

    def auto_key_sql(self, type_sql: str, primary_key: str = "PRIMARY KEY") -> str:
        return f"{type_sql} GENERATED BY DEFAULT AS IDENTITY {primary_key}"

    # ------------------------------------------------------------ the catalog
    async def table_names(self, connection) -> set:
        rows = await connection.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p') AND {_VISIBLE}")
        return {r[0] for r in rows}

    async def enum_type_names(self, connection) -> set:
        rows = await connection.fetch(
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            f"WHERE t.typtype = 'e' AND {_VISIBLE}")
        return {r[0] for r in rows}

    async def read_catalog(self, connection, tables=None) -> Catalog:
        wanted = await self.table_names(connection)
        if tables is not None:
            wanted &= set(tables)
        names = sorted(wanted)
        catalog = Catalog({name: Table(name) for name in names})
        for table, column, kind, notnull, default, identity in await connection.fetch(
                "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
                " pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '' FROM pg_attribute a"
                " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                f" WHERE a.attnum > 0 AND NOT a.attisdropped AND {_VISIBLE} AND c.relname = ANY($1::text[])"
                " ORDER BY c.relname, a.attnum", (names,)):
            catalog.tables[table].columns[column] = Column(column, kind, not notnull, default, identity)
        for table, name, kind, columns, target, target_columns, on_delete, deferrable, deferred, expression \
                in await connection.fetch(
                "SELECT c.relname, k.conname, k.contype::text,"
                " ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(num, i)"
                "  JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num ORDER BY u.i),"
                " f.relname,"
                " ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(num, i)"
                "  JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num ORDER BY u.i),"
                " k.confdeltype::text, k.condeferrable, k.condeferred,"
                " CASE WHEN k.contype = 'c' THEN pg_get_expr(k.conbin, k.conrelid) END FROM pg_constraint k"
                " JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                " LEFT JOIN pg_class f ON f.oid = k.confrelid"
                f" WHERE k.contype IN ('p', 'u', 'f', 'c') AND {_VISIBLE} AND c.relname = ANY($1::text[])"
                " ORDER BY c.relname, k.conname", (names,)):
            entry = catalog.tables[table]
            if kind == "p":
                entry.primary_key, entry.primary_key_name = tuple(columns), name
            elif kind == "u":
                entry.uniques.append(Unique(name, tuple(columns)))
            elif kind == "c":
                entry.check_constraints.append(CheckConstraint(name, expression))
            else:
                entry.foreign_keys.append(ForeignKey(tuple(columns), target, tuple(target_columns),
                                                     _ON_DELETE.get(on_delete, "NO ACTION"), name,
                                                     deferrable, deferred))
        for table, name, unique, columns, options, condition, opclasses in await connection.fetch(
                "SELECT c.relname, i.relname, x.indisunique,"
                " ARRAY(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY u(num, j)"
                "  LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.num ORDER BY u.j),"
                " x.indoption::int2[], pg_get_expr(x.indpred, x.indrelid),"
                " ARRAY(SELECT CASE WHEN o.opcdefault THEN NULL ELSE o.opcname END"
                "  FROM unnest(x.indclass::oid[]) WITH ORDINALITY u(class, j)"
                "  JOIN pg_opclass o ON o.oid = u.class ORDER BY u.j)"
                " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                " JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                f" WHERE {_VISIBLE} AND c.relname = ANY($1::text[])"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)"
                " ORDER BY c.relname, i.relname", (names,)):
            columns = tuple(columns)
            descending = tuple(c for c, option in zip(columns, options) if c is not None and option & 1)
            catalog.tables[table].indexes.append(
                Index(name, None if None in columns else columns, unique, descending, condition,
                      tuple(opclasses) if any(opclasses) else ()))
        for type_name, label in await connection.fetch(
                "SELECT t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
                f" JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {_VISIBLE}"
                " ORDER BY t.typname, e.enumsortorder"):
            catalog.enums[type_name] = catalog.enums.get(type_name, ()) + (label,)
        return catalog

    catalog_constraint_names = True

    async def catalog_of(self, connection, statements) -> Catalog:
        """Run in a new schema, alone on the search path, inside a transaction that is
        rolled back: nothing is left behind (it needs the right to create a schema)."""
        scratch = self.quote(f"_mf_scratch_{secrets.token_hex(6)}")
        await connection.execute("BEGIN")
        try:
            await connection.execute(f"CREATE SCHEMA {scratch}")
            await connection.execute(f"SET LOCAL search_path TO {scratch}")
            for statement in statements:
                await connection.execute(statement)
            return await self.read_catalog(connection)
        finally:
            await connection.execute("ROLLBACK")

    def type_display(self, type_sql: str) -> str:
        for long, short in _SHORT_TYPES:
            type_sql = type_sql.replace(long, short)
        return type_sql

    # How the catalog spells the types mf writes, for reading them back (base.field_type_of).
    field_types = _FIELD_TYPES
    char_type = re.compile(r"character varying\((\d+)\)")
    decimal_type = re.compile(r"numeric\((\d+),(\d+)\)")

    # ------------------------------------------------------------ reset
    async def drop_plan(self, connection, tables: dict, enums) -> list:
        rows = await connection.fetch(
            "SELECT t, to_regclass(quote_ident(t))::oid FROM unnest($1::text[]) AS t", (sorted(tables),))
        oids = {r[0]: r[1] for r in rows if r[1] is not None}
        edges = await connection.fetch(
            "SELECT conrelid::oid, confrelid::oid, conname FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid = ANY($1::oid[]) AND confrelid = ANY($1::oid[]) AND conrelid <> confrelid",
            (list(oids.values()),))
        table_of = {oid: name for name, oid in oids.items()}
        references = {name: set() for name in oids}
        constraints: dict = {}
        for source, target, constraint in edges:
            references[table_of[source]].add(table_of[target])
            constraints.setdefault((table_of[source], table_of[target]), []).append(constraint)
        order = drop_order(references)
        types = await connection.fetch(
            "SELECT t FROM unnest($1::text[]) AS t WHERE to_regtype(quote_ident(t)) IS NOT NULL", (sorted(enums),))
        plan = []
        # Constraints inside a cycle of owned tables go first (the only ones that would
        # stop a plain DROP TABLE among mf's own tables).
        position = {name: i for i, name in enumerate(order)}
        for (source, target), names in sorted(constraints.items()):
            if position[source] > position[target]:
                plan.extend((f"ALTER TABLE {self.quote(source)} DROP CONSTRAINT {self.quote(name)}", None)
                            for name in names)
        plan.extend((f"DROP TABLE {self.quote(table)}", f"table {table}") for table in order)
        plan.extend((f"DROP TYPE {self.quote(row[0])}", f"type {row[0]}") for row in types)
        return plan

    async def drop_dependents(self, connection, tables) -> list:
        # What DROP TABLE without CASCADE refuses for: a normal dependency (a foreign
        # key, a view's rule, a function body) of an object not part of these tables.
        rows = await connection.fetch(
            "WITH t AS (SELECT to_regclass(quote_ident(name))::oid AS oid FROM unnest($1::text[]) AS name)"
            " SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid), d.refobjid::regclass::text"
            " FROM pg_depend d"
            " LEFT JOIN pg_constraint c ON d.classid = 'pg_constraint'::regclass AND c.oid = d.objid"
            " LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid"
            " WHERE d.refclassid = 'pg_class'::regclass AND d.deptype = 'n'"
            " AND d.refobjid IN (SELECT oid FROM t WHERE oid IS NOT NULL)"
            " AND coalesce(c.conrelid, r.ev_class, 0) NOT IN (SELECT oid FROM t WHERE oid IS NOT NULL)"
            " ORDER BY 2, 1", (sorted(tables),))
        return [(row[0], row[1]) for row in rows]

    async def drop_locks(self, connection, tables) -> dict:
        # DROP TABLE locks the table and every object it takes along (indexes, the
        # TOAST table, constraints, defaults, the row type), and theirs in turn: a
        # 20-column table of the generated schema with 15 such objects took 30 locks.
        rows = await connection.fetch(
            "SELECT name, (SELECT count(*) FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass"
            " AND d.refobjid = to_regclass(quote_ident(name))) FROM unnest($1::text[]) AS name", (sorted(tables),))
        return {row[0]: 2 * (1 + int(row[1])) for row in rows}

    # ------------------------------------------------------------ enums
    def _create_enum(self, op, plan) -> list[str]:
        values = ", ".join(self.string_literal(v) for _k, v in op.members)
        return [f"CREATE TYPE {self.enum_type(op.name)} AS ENUM ({values})"]

    def _drop_enum(self, op, plan) -> list[str]:
        return [f"DROP TYPE {self.enum_type(op.name)}"]

    def _alter_enum(self, op, plan) -> list[str]:
        old = dict(op.old_members)
        renamed = {old[k]: v for k, v in op.new_members if k in old and old[k] != v}
        added = [v for k, v in op.new_members if k not in old]
        if [v for _k, v in op.old_members] == [v for _k, v in op.new_members]:
            return []  # only keys changed: the database stores values
        if self._can_alter_in_place(op, plan, renamed, added):
            statements = self._alter_enum_in_place(op, renamed)
            if added and plan.atomic and _uses_values(op.name, set(added), plan.operations, op):
                # Online: the new values commit in this step; what uses them runs in the next.
                statements.append(step_boundary(f"use the values added to {op.name}"))
            return statements
        return self._recreate_enum(op, renamed)

    def _can_alter_in_place(self, op, plan, renamed: dict, added: list) -> bool:
        old_keys = [k for k, _v in op.old_members]
        new_keys = [k for k, _v in op.new_members]
        if any(k not in new_keys for k in old_keys):
            return False  # a removed value: only a new type can lose it
        if [k for k in new_keys if k in old_keys] != old_keys:
            return False  # reordered: PostgreSQL cannot move a value
        old_values = {v for _k, v in op.old_members}
        if any(v in old_values for v in renamed.values()):
            return False  # values swapped or reused: RENAME VALUE would collide
        if added and plan.atomic and not plan.online and _uses_values(op.name, set(added), plan.operations, op):
            return False  # a value added in a transaction is unusable until it commits
        return True

    def _alter_enum_in_place(self, op, renamed: dict) -> list[str]:
        type_name = self.enum_type(op.name)
        statements = [f"ALTER TYPE {type_name} RENAME VALUE {self.string_literal(a)} TO {self.string_literal(b)}"
                      for a, b in renamed.items()]
        old_keys = {k for k, _v in op.old_members}
        values = [v for _k, v in op.new_members]
        first_kept = next((v for k, v in op.new_members if k in old_keys), None)
        for position, (key, value) in enumerate(op.new_members):
            if key in old_keys:
                continue
            # Values are added in declared order, so the one before is always there;
            # the first goes before the first value the type already has.
            if position > 0:
                where = f" AFTER {self.string_literal(values[position - 1])}"
            elif first_kept is not None:
                where = f" BEFORE {self.string_literal(first_kept)}"
            else:
                where = ""
            statements.append(f"ALTER TYPE {type_name} ADD VALUE {self.string_literal(value)}{where}")
        return statements

    def _recreate_enum(self, op, renamed: dict) -> list[str]:
        type_name = self.enum_type(op.name)
        new_type = self.quote(_clip(NEW_TYPE_PREFIX + op.name.lower(), MAX_IDENTIFIER))
        kept = {v for _k, v in op.new_members}
        removed = [v for _k, v in op.old_members if v not in renamed and v not in kept]
        columns = [(t, f) for t in op.tables for f in t.model.fields if f.enum == op.name]
        statements = [self._refuse_removed_values(op.name, t.model.table, f.column, removed)
                      for t, f in columns if removed]
        values = ", ".join(self.string_literal(v) for _k, v in op.new_members)
        statements.append(f"CREATE TYPE {new_type} AS ENUM ({values})")
        for t, f in columns:
            table, column = self.quote(t.model.table), self.quote(f.column)
            old_value = f"{column}::text"
            if renamed:
                whens = " ".join(f"WHEN {self.string_literal(a)} THEN {self.string_literal(b)}"
                                 for a, b in renamed.items())
                old_value = f"CASE {old_value} {whens} ELSE {old_value} END"
            statements.append(f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT")
            statements.append(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {new_type}"
                              f" USING ({old_value})::{new_type}")
        statements.append(f"DROP TYPE {type_name}")
        statements.append(f"ALTER TYPE {new_type} RENAME TO {type_name}")
        for t, f in columns:
            default = self.default_sql(f)
            # A default the enum no longer has belongs to a column that a later operation
            # of the migration changes; it sets the new default itself.
            if default is not None and f.default in kept:
                statements.append(f"ALTER TABLE {self.quote(t.model.table)} ALTER COLUMN"
                                  f" {self.quote(f.column)} SET DEFAULT {default}")
        return statements

    def _refuse_removed_values(self, enum_name: str, table: str, column: str, removed: list) -> str:
        """A DO block that stops the migration, with a message a user can act on, while
        rows still hold a value the enum loses."""
        shown = ", ".join(repr(v) for v in removed)
        message = (f"cannot remove {shown} from enum {enum_name}: rows of table {table} still use it"
                   f" in column {column}; change those rows first")
        body = (f"BEGIN\n    IF EXISTS (SELECT 1 FROM {self.quote(table)} WHERE {self.quote(column)}::text IN"
                f" ({', '.join(self.string_literal(v) for v in removed)})) THEN\n"
                f"        RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = {self.string_literal(message)};\n"
                f"    END IF;\nEND")
        return "DO " + dollar_quote(body)

    # ------------------------------------------------------------ tables
    def _drop_model(self, op, plan) -> list[str]:
        drop = super()._drop_model(op, plan)
        keys = self._outgoing_keys(op, plan) if plan.online else []
        if not keys:
            return drop
        # Dropping the table drops its keys too, but under ACCESS EXCLUSIVE on the tables
        # they point to until the whole step commits: the keys go first, in a short step.
        return [step_boundary(f"drop the foreign keys of {op.table}")] + [
            f"ALTER TABLE {self.quote(op.table)} DROP CONSTRAINT {self.quote(name)}" for name in keys] \
            + [step_boundary(f"drop table {op.table}")] + drop

    def _outgoing_keys(self, op, plan) -> list[str]:
        """The foreign key constraints a dropped table still has to other tables when
        its drop_model runs (not those an earlier drop_fk took off, nor those to a
        table dropped before it, which went with that table)."""
        if op.table_def is None:
            return []
        earlier = plan.operations[:plan.operations.index(op)] if op in plan.operations else ()
        taken_off = {o.field_name for o in earlier if o.op == "drop_fk" and o.table == op.table}
        dropped = {o.table for o in earlier if o.op == "drop_model"}
        model = op.table_def.model
        return [field_foreign_key_name(op.table, model.field(name))
                for name, reference in op.table_def.references.items()
                if reference.table != op.table and reference.table not in dropped and name not in taken_off]

    def _constraints_after_table_rename(self, op) -> list[str]:
        if op.table_def is None:
            return []  # an earlier tool's file: its constraints keep their names
        old, new = op.old_table, op.new_table
        renames = []
        model = op.table_def.model
        # A constraint with a name of its own (a database taken over) keeps it.
        if model.primary_key is not None and not model.primary_key.key_name:
            renames.append((primary_key_name(old), primary_key_name(new)))
        for f in model.fields:
            if has_unique_constraint(f) and not f.key_name:
                renames.append((unique_name(old, f.column), unique_name(new, f.column)))
            if f.name in op.table_def.references and not f.fk_name:
                renames.append((foreign_key_name(old, f.column), foreign_key_name(new, f.column)))
            if f.type in POSITIVE_TYPES:
                renames.append((check_name(old, f.column), check_name(new, f.column)))
        statements = self._rename_constraints(new, renames)
        key = model.primary_key
        if key is not None and key.type in AUTO_TYPES:
            statements += self._rename_sequence(sequence_name(old, key.column), sequence_name(new, key.column))
        return statements

    def _rename_sequence(self, old: str, new: str) -> list[str]:
        """An identity column's sequence, named as PostgreSQL names it for a new table."""
        if old == new:
            return []
        return [f"ALTER SEQUENCE {self.quote(old)} RENAME TO {self.quote(new)}"]

    def _rename_constraints(self, table: str, renames) -> list[str]:
        return [f"ALTER TABLE {self.quote(table)} RENAME CONSTRAINT {self.quote(a)} TO {self.quote(b)}"
                for a, b in renames if a != b]

    def _add_index(self, op, plan) -> list[str]:
        online = _built_online(op.table, plan)
        if op.index.constraint:
            if online:
                return self._unique_online(op.table, op.index.name, op.columns)
            return super()._add_index(op, plan)
        statement = self.create_index_sql(op.table, op.index, op.columns, concurrently=online or not plan.atomic)
        return [IndexBuild(statement, op.index.name) if online else statement]

    def _drop_index(self, op, plan) -> list[str]:
        if op.index.constraint or not _built_online(op.table, plan):
            return super()._drop_index(op, plan)
        # Without the ACCESS EXCLUSIVE lock a plain DROP INDEX takes on the table.
        return [IndexDrop(self.drop_index_concurrently_sql(op.index.name), op.index.name)]

    def _unique_online(self, table: str, name: str, columns) -> list[str]:
        """A UNIQUE constraint added to a table in use: its index built without blocking
        writes (a step outside the transaction), then taken over by the constraint in
        the next step (a short lock, no scan)."""
        listed = ", ".join(self.quote(c) for c in columns)
        build = f"CREATE UNIQUE INDEX CONCURRENTLY {self.quote(name)} ON {self.quote(table)} ({listed})"
        return [IndexBuild(build, name),
                f"ALTER TABLE {self.quote(table)} ADD CONSTRAINT {self.quote(name)} UNIQUE USING INDEX "
                f"{self.quote(name)}"]

    # ------------------------------------------------------------ columns
    def _add_column(self, op, plan) -> list[str]:
        table_def, f = require_table(op), op.field
        reference = table_def.references.get(f.name) if f.target is not None else None
        check = self.check_sql(f, table_def)
        unique_online = has_unique_constraint(f) and _built_online(op.table, plan)
        if not online_table(plan, op.table) or (reference is None and check is None and not unique_online):
            return [f"ALTER TABLE {self.quote(op.table)} ADD COLUMN {self.column_sql(f, table_def)}"]
        # The column without the constraints that would check every row under its lock:
        # a UNIQUE is built over an index made concurrently, a key or check is added NOT
        # VALID and validated in a later step.
        plain = f._replace(unique=False) if unique_online else f
        column = self.column_sql(plain, table_def, checked=reference is None and check is None)
        statements, validated = [f"ALTER TABLE {self.quote(op.table)} ADD COLUMN {column}"], []
        if unique_online:
            statements += self._unique_online(op.table, field_unique_name(op.table, f), [f.column])
        if check is not None:
            validated.append(check_name(op.table, f.column))
            statements.append(self._not_valid(op.table, validated[-1], f"CHECK ({check})"))
        if reference is not None:
            validated.append(field_foreign_key_name(op.table, f))
            statements.append(self._not_valid(op.table, validated[-1], f"FOREIGN KEY ({self.quote(f.column)}) "
                                              + self.references_sql(f, reference)))
        return statements + self._validations(op.table, validated)

    def _not_valid(self, table: str, name: str, constraint: str) -> str:
        """ADD CONSTRAINT ... NOT VALID: checked for rows written from now on, and only
        for those, so it takes its lock for a moment."""
        return f"ALTER TABLE {self.quote(table)} ADD CONSTRAINT {self.quote(name)} {constraint} NOT VALID"

    def _validations(self, table: str, names) -> list[str]:
        """A later step that validates constraints added NOT VALID: a scan under SHARE
        UPDATE EXCLUSIVE, which lets the table's reads and writes go on."""
        if not names:
            return []
        return [step_boundary(f"validate {', '.join(names)}"), SCAN_TIMEOUT] + [
            f"ALTER TABLE {self.quote(table)} VALIDATE CONSTRAINT {self.quote(name)}" for name in names]

    def _add_check(self, op, plan) -> list[str]:
        if not online_table(plan, op.table):
            return super()._add_check(op, plan)
        return [self._not_valid(op.table, op.check.name, f"CHECK ({op.check.expression})")] \
            + self._validations(op.table, [op.check.name])

    def _drop_column(self, op, plan) -> list[str]:
        # Its own constraints and indexes go with it; anything else that depends on it
        # (another table's key, a view) makes this fail rather than cascade.
        return [f"ALTER TABLE {self.quote(op.table)} DROP COLUMN {self.quote(op.field.column)}"]

    def _rename_column(self, op, plan) -> list[str]:
        has_key = op.old.target is not None and op.new.name in require_table(op).references
        return self._renamed_column(op.table, op.old, op.new.column, has_key)

    def _renamed_column(self, table: str, f: Field, column: str, has_key: bool) -> list[str]:
        """RENAME COLUMN, and the constraints named after the column (``has_key``: its
        foreign key constraint exists)."""
        if f.column == column:
            return []
        statements = [f"ALTER TABLE {self.quote(table)} RENAME COLUMN {self.quote(f.column)} TO {self.quote(column)}"]
        renames = []
        if has_unique_constraint(f) and not f.key_name:
            renames.append((unique_name(table, f.column), unique_name(table, column)))
        if has_key and not f.fk_name:
            renames.append((foreign_key_name(table, f.column), foreign_key_name(table, column)))
        if f.type in POSITIVE_TYPES:
            renames.append((check_name(table, f.column), check_name(table, column)))
        statements += self._rename_constraints(table, renames)
        if f.type in AUTO_TYPES:
            statements += self._rename_sequence(sequence_name(table, f.column), sequence_name(table, column))
        return statements

    def _add_fk(self, op, plan) -> list[str]:
        table_def = require_table(op)
        f = table_def.model.field(op.field_name)
        reference = table_def.references[op.field_name]
        name = field_foreign_key_name(op.table, f)
        constraint = f"FOREIGN KEY ({self.quote(f.column)}) " + self.references_sql(f, reference)
        if online_table(plan, op.table):
            return [self._not_valid(op.table, name, constraint)] + self._validations(op.table, [name])
        return [f"ALTER TABLE {self.quote(op.table)} ADD CONSTRAINT {self.quote(name)} {constraint}"]

    def _drop_fk(self, op, plan) -> list[str]:
        f = op.table_def.model.field(op.field_name) if op.table_def is not None else None
        name = field_foreign_key_name(op.table, f) if f is not None else foreign_key_name(op.table, op.field_name)
        return [f"ALTER TABLE {self.quote(op.table)} DROP CONSTRAINT {self.quote(name)}"]

    def _alter_column(self, op, plan) -> list[str]:
        """One change at a time, each as its own ALTER: constraints that the change
        affects come off first and go back on last."""
        change = _ColumnChange(self, op, plan)
        statements = self._renamed_column(op.table, op.old, op.new.column, op.old.target is not None)
        guard = self.rounding_guard(op, op.new.column) if change.type else None
        if guard is not None:
            statements.append(guard)
        constraints_on, validated = self._constraints_on(change)
        return statements + self._constraints_off(change) + self._column_changes(change) + constraints_on \
            + self._validations(op.table, validated) + self._not_null_finished(change)

    def rounded_sql(self, loss, column: str) -> str:
        # numeric's round() rounds halves away from zero, as SQLite's does (a double's
        # cast to integer would round them to even).
        if loss.kind == "whole":
            return f"round({column}::numeric)"
        if loss.kind == "places":
            return f"round({column}::numeric, {loss.places})"
        if loss.kind == "float":
            return f"{column}::double precision"
        return f"{column}::{loss.kind}"  # date, time: as the session's time zone sees them

    def rounds_sql(self, loss, column: str) -> str:
        if loss.kind in ("whole", "places"):
            return f"{column}::numeric <> {self.rounded_sql(loss, column)}"
        if loss.kind == "float":
            return f"{column} <> {column}::double precision::numeric"
        if loss.kind == "date":
            return f"{column} <> {column}::date"
        return "true"  # time: every value loses its date

    def _constraints_off(self, change) -> list[str]:
        old, new, t = change.old, change.new, change.quoted_table
        statements = []
        # By the name each constraint has: never IF EXISTS, which would hide a constraint
        # renamed or dropped outside mf and leave the column with two keys.
        if old.target is not None and change.key and not change.key_dropped:
            statements.append(f"ALTER TABLE {t} DROP CONSTRAINT {self.quote(change.old_foreign_key)}")
        if has_unique_constraint(old) and not has_unique_constraint(new):
            statements.append(f"ALTER TABLE {t} DROP CONSTRAINT {self.quote(change.old_unique)}")
        if old.type in POSITIVE_TYPES and new.type not in POSITIVE_TYPES:
            statements.append(f"ALTER TABLE {t} DROP CONSTRAINT {self.quote(check_name(change.table, new.column))}")
        if old.primary_key and not new.primary_key:
            statements.append(f"ALTER TABLE {t} DROP CONSTRAINT "
                              f"{self.quote(field_primary_key_name(change.table, old))}")
        # A key or UNIQUE that stays, under another name (a repair of drift).
        if (old.primary_key and new.primary_key) or (has_unique_constraint(old) and has_unique_constraint(new)):
            name_of = field_primary_key_name if new.primary_key else field_unique_name
            statements += self._rename_constraints(change.table, [(old.key_name or name_of(change.table, new),
                                                                   name_of(change.table, new))])
        if change.old_auto and not change.new_auto:
            statements.append(f"{change.alter} DROP IDENTITY")
        if change.old_default is not None and change.default:
            statements.append(f"{change.alter} DROP DEFAULT")
        return statements

    def _column_changes(self, change) -> list[str]:
        old, new, t, c = change.old, change.new, change.quoted_table, change.column
        statements = []
        if change.type:
            loss = change.rounding
            using = f" USING {self.rounded_sql(loss, c)}" if loss is not None \
                else self._using(c, old, change.old_type, new, change.new_type)
            statements.append(f"{change.alter} TYPE {change.new_type}{using}")
        # The default first: a row inserted while the backfill runs takes it, and the
        # constraint then holds for every row.
        if change.new_default is not None and not change.new_auto and change.default:
            statements.append(f"{change.alter} SET DEFAULT {change.new_default}")
        if change.not_null_check is not None:
            if change.fill is not None:
                # Its own step: the fill's scan holds no lock that an ALTER above took.
                statements.append(step_boundary(f"fill the NULLs of {change.table}.{new.column}"))
                statements += [SCAN_TIMEOUT, change.fill_sql]
            statements.append(self._not_valid(change.table, change.not_null_check, f"CHECK ({c} IS NOT NULL)"))
        elif is_not_null(new) and not is_not_null(old):
            if change.fill is not None:
                statements.append(change.fill_sql)
            statements.append(f"{change.alter} SET NOT NULL")
        elif is_not_null(old) and not is_not_null(new):
            statements.append(f"{change.alter} DROP NOT NULL")
        if change.new_auto and not change.old_auto:
            statements.append(f"{change.alter} ADD GENERATED BY DEFAULT AS IDENTITY")
            # The identity starts past the keys the column already holds.
            statements.append(f"SELECT setval(pg_get_serial_sequence({self.string_literal(t)},"
                              f" {self.string_literal(new.column)}), COALESCE(MAX({c}), 0) + 1, false) FROM {t}")
        return statements

    def _not_null_finished(self, change) -> list[str]:
        """After the NOT VALID check that the column is not NULL: in a later step the
        check is validated (a scan that lets traffic through), and SET NOT NULL, which
        PostgreSQL 12 and later prove from the valid check without a scan, replaces it."""
        if change.not_null_check is None:
            return []
        statements = [step_boundary(f"make {change.table}.{change.new.column} NOT NULL"), SCAN_TIMEOUT]
        if change.fill is not None:
            # Rows written NULL between the first fill and the check's commit.
            statements.append(change.fill_sql)
        quoted = self.quote(change.not_null_check)
        return statements + [f"ALTER TABLE {change.quoted_table} VALIDATE CONSTRAINT {quoted}",
                             f"{change.alter} SET NOT NULL",
                             f"ALTER TABLE {change.quoted_table} DROP CONSTRAINT {quoted}"]

    def _constraints_on(self, change) -> tuple:
        """The statements that put constraints on, and the names of those added NOT
        VALID (online), to validate in a later step."""
        old, new, t, c = change.old, change.new, change.quoted_table, change.column
        statements, validated = [], []
        if new.primary_key and not old.primary_key:
            statements.append(f"ALTER TABLE {t} ADD CONSTRAINT "
                              f"{self.quote(field_primary_key_name(change.table, new))} PRIMARY KEY ({c})")
        if has_unique_constraint(new) and not has_unique_constraint(old):
            if change.online:
                statements += self._unique_online(change.table, field_unique_name(change.table, new), [new.column])
            else:
                statements.append(f"ALTER TABLE {t} ADD CONSTRAINT "
                                  f"{self.quote(field_unique_name(change.table, new))} UNIQUE ({c})")
        added = []
        if new.type in POSITIVE_TYPES and old.type not in POSITIVE_TYPES:
            added.append((check_name(change.table, new.column), f"CHECK ({self.check_sql(new, change.table_def)})"))
        reference = change.table_def.references.get(new.name) if new.target is not None else None
        if reference is not None and (change.key or old.target is None):
            added.append((change.foreign_key, f"FOREIGN KEY ({c}) " + self.references_sql(new, reference)))
        for name, constraint in added:
            if change.online:
                statements.append(self._not_valid(change.table, name, constraint))
                validated.append(name)
            else:
                statements.append(f"ALTER TABLE {t} ADD CONSTRAINT {self.quote(name)} {constraint}")
        return statements, validated

    def _using(self, column: str, old: Field, old_type: str, new: Field, new_type: str) -> str:
        """The USING clause of a type change, or nothing where the assignment cast is right.

        Within a family (text and varchar; the numbers) the assignment cast keeps values
        and rejects those that do not fit. Across families the value goes through its
        text form, which every type can read and write, so a change that the data does
        not fit fails with the database's message and changes nothing."""
        source, source_family = column, _family(old_type)
        if old.type == "EnumField":
            source, source_family = f"{column}::text", "text"
        if new.type == "EnumField":
            via = "" if source_family == "text" and source != column else "::text"
            return f" USING {source}{via}::{new_type}"
        target_family = _family(new_type)
        if source_family == target_family and source_family != "other":
            return "" if source == column else f" USING {source}"
        # Cast to the type's base (text for varchar(n), numeric for numeric(p,s)); the
        # assignment to the column then checks the length or precision.
        base = new_type.split("(")[0]
        base = "text" if base == "varchar" else base
        if source_family == "text" or base == "text":
            return f" USING {source}::{base}"
        if old.type == "BooleanField" and target_family == "number":
            return f" USING {source}::integer::{base}"  # true -> 1: the text 'true' is no number
        return f" USING {source}::text::{base}"


# What can change a column's type: its own, the key it points to, or which key that is.
_TYPE_CHANGES = frozenset({"type", "key", "fk"})


class _ColumnChange:
    """What an alter_column changes, worked out once."""

    def __init__(self, dialect: PostgreSQLDialect, op, plan):
        self.table_def = require_table(op)
        self.key_dropped = key_dropped_before(op, plan)
        self.online = _built_online(op.table, plan)
        self.table, self.old, self.new = op.table, op.old, op.new
        self.quoted_table, self.column = dialect.quote(op.table), dialect.quote(op.new.column)
        self.fill = dialect.fill_sql(op)
        self.fill_sql = None if self.fill is None else \
            f"UPDATE {self.quoted_table} SET {self.column} = {self.fill} WHERE {self.column} IS NULL"
        self.alter = f"ALTER TABLE {self.quoted_table} ALTER COLUMN {self.column}"
        old, new = op.old, op.new
        self.online = online_table(plan, op.table)
        # Online NOT NULL goes through a check of this name (see _not_null_finished); a
        # new primary key or identity sets NOT NULL itself, as it must.
        self.not_null_check = None
        if self.online and is_not_null(new) and not is_not_null(old) and not new.primary_key \
                and new.type not in AUTO_TYPES:
            self.not_null_check = constraint_name(op.table, new.column, NOT_NULL_CHECK_SUFFIX)
        # The column is renamed first, and with it a constraint named after it by mf.
        self.old_foreign_key = old.fk_name or foreign_key_name(op.table, new.column)
        self.old_unique = old.key_name or unique_name(op.table, new.column)
        self.foreign_key = field_foreign_key_name(op.table, new)
        # A foreign key column had the type of the key it pointed to then (old_key; see
        # table_before). A file without it leaves that type unknown when the target
        # changes: the type is then set whatever it was.
        self.old_type = dialect.column_type(old, table_before(op))
        self.new_type = dialect.column_type(new, self.table_def)
        unknown = old.target is not None and old.target != new.target and op.old_key is None
        self.type = bool(op.changes & _TYPE_CHANGES) and (
            self.old_type != self.new_type or (unknown and new.target is not None))
        self.key = "fk" in op.changes or self.type
        self.rounding = op.rounding if self.type else None
        self.old_auto, self.new_auto = old.type in AUTO_TYPES, new.type in AUTO_TYPES
        self.old_default, self.new_default = dialect.default_sql(old), dialect.default_sql(new)
        self.default = self.old_default != self.new_default or self.type


# First in a step that scans a table under a lock that lets its traffic go on (a
# VALIDATE, a fill of NULLs): such a scan takes as long as the table needs, so it runs
# under the connection's statement_timeout (command_timeout), the session's default,
# rather than the migration transaction's shorter one.
SCAN_TIMEOUT = "SET LOCAL statement_timeout TO DEFAULT"


def _built_online(table: str, plan) -> bool:
    """Is an index on ``table`` built without blocking writes: an online plan, and a
    table that exists before the migration (one it creates is empty and unused)?"""
    return plan.online and plan.atomic and not any(
        isinstance(op, CreateModel) and op.table == table for op in plan.operations)


def sequence_name(table: str, column: str) -> str:
    """The name PostgreSQL gives the sequence of an identity column (its makeObjectName:
    the longer of table and column cut until ``<table>_<column>_seq`` fits 63 bytes)."""
    # In bytes, as PostgreSQL counts, each part then cut back to a character boundary.
    table_length, column_length = len(table.encode("utf-8")), len(column.encode("utf-8"))
    while table_length + column_length > MAX_IDENTIFIER - len("__seq"):
        if table_length > column_length:
            table_length -= 1
        else:
            column_length -= 1
    return f"{_clip(table, table_length)}_{_clip(column, column_length)}_seq"


def _family(type_sql: str) -> str:
    base = type_sql.split("(")[0]
    for name, members in _FAMILIES.items():
        if base in members:
            return name
    return "other"


def _uses_values(enum_name: str, values: set, operations, skip) -> bool:
    """Does an operation of the migration (other than ``skip``) use one of these enum
    values, as a default or by converting a column to the enum?"""
    for op in operations:
        if op is skip:
            continue
        fields: tuple = ()
        if isinstance(op, CreateModel) and op.table_def is not None:
            fields = op.table_def.model.fields
        elif isinstance(op, AddColumn):
            fields = (op.field,)
        elif isinstance(op, AlterColumn):
            fields = (op.new,)
            if op.new.enum == enum_name and op.old.enum != enum_name:
                return True
        for f in fields:
            if f.enum == enum_name and f.has_default and f.default in values:
                return True
    return False


def dollar_quote(body: str) -> str:
    """``body`` in dollar quotes whose tag does not occur in it."""
    tag, n = "$mf$", 0
    while tag in body:
        n += 1
        tag = f"$mf{n}$"
    return f"{tag}\n{body}\n{tag}"


DIALECT = PostgreSQLDialect()

"""What every dialect answers, and what is written once for all of them.

A dialect turns operations into statement strings; the applier runs them. The
contract between the two:

``migration_sql(operations, atomic=...)`` returns the statements of one migration,
in order. Each is one complete SQL statement without a trailing semicolon and
without parameters, ready for ``execute()``. None of them begins, commits or rolls
back a transaction, and none of them switches SQLite's ``foreign_keys`` pragma:
that is the applier's part.

atomic=True (the default): the applier runs every statement and the ledger row
inside one transaction.

- SQLite, on a connection in autocommit mode (``isolation_level=None``)::

      PRAGMA foreign_keys=OFF          -- only if needs_foreign_keys_off(ops); a no-op
                                       -- inside a transaction, so it comes first
      BEGIN IMMEDIATE
      <the statements>, <the ledger row>
      PRAGMA foreign_key_check         -- only if switched off: any row returned means
                                       -- the change broke a reference: ROLLBACK, report
      COMMIT                           -- (ROLLBACK on any failure)
      PRAGMA foreign_keys=ON           -- after COMMIT or ROLLBACK, if switched off

  needs_foreign_keys_off is true when a table is rebuilt (sqlite.org's 12-step
  procedure: a DROP TABLE with foreign keys on would delete or block the rows that
  refer to it) or dropped (same reason: no silent ON DELETE CASCADE).

- PostgreSQL: ``BEGIN``, ``transaction_prologue(...)`` (SET LOCAL lock_timeout and
  statement_timeout), ``transaction_marker_sql`` (a transaction-level advisory lock
  that tells a later run this transaction is still under way), the statements, the
  ledger row, ``COMMIT``. A transaction that gives up waiting for a lock is rolled back
  and run again from BEGIN (the applier's lock retries). ``needs_foreign_keys_off`` is always false.
  Adding an enum value (``ALTER TYPE ... ADD VALUE``) inside a transaction needs
  PostgreSQL 12 or later; the dialect avoids it (and recreates the type instead)
  when the same migration uses the new value, which PostgreSQL forbids before commit.

online=True (migrate's plan, where the dialect ``runs_steps``: PostgreSQL): the
statements may hold markers that cut the migration into steps. A StepBoundary
commits what came before it; an OutsideTransaction (an IndexBuild: CREATE INDEX
CONCURRENTLY) is a step of its own, run outside any transaction. The applier then
runs each transactional step as BEGIN, the prologue, its statements, the ledger's
'step N' (or 'applied' with the last), COMMIT; see applier._apply_in_steps. A
migration without markers runs as described above; an undo is never online.

atomic=False (a migration file with ``"atomic": false``): on PostgreSQL the applier
runs each statement on its own, outside any transaction (CREATE INDEX CONCURRENTLY
refuses to run inside one; ADD VALUE is then always used for new enum values, each
committed before the next statement). Only those two differ from the atomic form.
SQLite has nothing that must run outside a transaction, and a table rebuild must
not: the applier keeps its transaction there (and the statements are the same).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Optional

from ..datasteps import PythonCall
from ..errors import MigrationFileError
from ..language.fields import AUTO_TYPES
from .catalog import Catalog, Column
from .statements import split_statements
from ..operations import Operation, Reference, TableDef
from ..schema import (LEDGER_TABLE, MAX_IDENTIFIER, POSITIVE_TYPES, Field, clip_to_bytes as _clip, constraint_name,
                      decimal_text, exact_decimal)
LEDGER_COLUMNS = ("name", "checksum", "state")
LEDGER_DETAILED = LEDGER_COLUMNS + ("applied_at", "duration")
LEDGER_INSERTED = ("name", "checksum", "applied_at", "duration", "state")

ON_DELETE_SQL = {
    "CASCADE": "CASCADE",
    "SET_NULL": "SET NULL",
    "RESTRICT": "RESTRICT",
    "PROTECT": "RESTRICT",  # Django's PROTECT is enforced in Python; the database's nearest is RESTRICT
    "NO_ACTION": "NO ACTION",
    "SET_DEFAULT": "SET DEFAULT",
}

# The database fills in auto_now / auto_now_add columns.
CURRENT_TIME_SQL = {"DateTimeField": "CURRENT_TIMESTAMP", "DateField": "CURRENT_DATE",
                    "TimeField": "CURRENT_TIME"}


# ---------------------------------------------------------------- names

_QUOTED = r'"((?:[^"]|"")+)"'
ADDRESSED_CONSTRAINT = re.compile(rf"^ALTER TABLE {_QUOTED} (?:DROP|RENAME) CONSTRAINT {_QUOTED}")
DROPPED_INDEX = re.compile(rf"^DROP INDEX (?:CONCURRENTLY )?{_QUOTED}")


def unquote(name: str) -> str:
    return name.replace('""', '"')


def foreign_key_name(table: str, column: str) -> str:
    return constraint_name(table, column, "fkey")


def unique_name(table: str, column: str) -> str:
    return constraint_name(table, column, "key")


def check_name(table: str, column: str) -> str:
    return constraint_name(table, column, "check")


def positive_check_sql(quoted_column: str) -> str:
    """The CHECK a positive integer field implies."""
    return f"{quoted_column} >= 0"


def primary_key_name(table: str) -> str:
    """PostgreSQL's name for an unnamed PRIMARY KEY: ``<table>_pkey``, the table cut to fit."""
    return _clip(table, MAX_IDENTIFIER - 5) + "_pkey"


def field_foreign_key_name(table: str, f: Field) -> str:
    """The constraint of a field's foreign key: the name it has in a database mf took
    over (``fk_name``), else mf's."""
    return f.fk_name or foreign_key_name(table, f.column)


def field_unique_name(table: str, f: Field) -> str:
    return f.key_name or unique_name(table, f.column)


def field_primary_key_name(table: str, f: Field) -> str:
    return f.key_name or primary_key_name(table)


DEFERRABLE_SQL = {"immediate": " DEFERRABLE INITIALLY IMMEDIATE", "deferred": " DEFERRABLE INITIALLY DEFERRED"}


def has_unique_constraint(f: Field) -> bool:
    """A UNIQUE of its own (a primary key is unique already)."""
    return f.unique and not f.primary_key


def is_not_null(f: Field) -> bool:
    return not f.null or f.primary_key


# ---------------------------------------------------------------- the dialect

class CatalogStep(str):
    """A statement whose SQL depends on what the database holds when it runs (SQLite's
    rebuild keeping the table's own triggers, indexes and views): it reads as an SQL
    comment, which `mf db sql` and dry runs print, and the applier awaits
    ``run(connection)`` where it stands among the statements. What it refuses is
    raised as a CatalogStepRefusal, which fails the migration like a refused statement."""

    async def run(self, connection) -> None:  # pragma: no cover - see subclasses
        raise NotImplementedError


class CatalogStepRefusal(Exception):
    """A CatalogStep found that the migration cannot go on; the message says why."""


@dataclass(frozen=True)
class LockBudget:
    """The server's shared lock table: how many locks all transactions together can hold
    (PostgreSQL: max_locks_per_transaction x (max_connections + max_prepared_transactions))."""

    per_transaction: int
    connections: int
    prepared: int

    @property
    def total(self) -> int:
        return self.per_transaction * (self.connections + self.prepared)

    def describe(self) -> str:
        return (f"{self.total} (max_locks_per_transaction {self.per_transaction} x (max_connections "
                f"{self.connections} + max_prepared_transactions {self.prepared}))")


@dataclass(frozen=True)
class Backend:
    """Another session of the database server as messages may show it: its process id,
    application_name, state, and the start of its (current or last) statement -- never
    more of the statement, which may hold secrets."""

    pid: int
    application_name: Optional[str] = None
    state: Optional[str] = None
    query: Optional[str] = None

    QUERY_SHOWN = 80  # characters of the statement shown

    def describe(self) -> str:
        known = []
        if self.application_name:
            known.append(f"application_name {_shown(self.application_name, 40)!r}")
        if self.state:
            known.append(self.state)
        if self.query:
            label = "running" if self.state == "active" else "last statement"
            known.append(f"{label}: {_shown(self.query, self.QUERY_SHOWN)}")
        return f"pid {self.pid}" + (f" ({', '.join(known)})" if known else "")


def _shown(text: str, limit: int) -> str:
    """``text`` on one line, printable characters only, at most ``limit`` of them."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def describe_backends(backends) -> str:
    """``pid 4321 (...)`` or ``pids 4321 (...) and 4400 (...)``."""
    described = [b.describe() for b in backends]
    if len(described) == 1:
        return described[0]
    return "pids " + ", ".join(d[4:] for d in described[:-1]) + " and " + described[-1][4:]


class StepBoundary(str):
    """Among a migration's statements: the statements before it commit, and those after
    it run in a transaction of their own, a later step of the same migration (a
    constraint validated apart from the short lock that added it). Reads as an SQL
    comment."""


class OutsideTransaction(str):
    """A statement that cannot run inside a transaction block (CREATE INDEX
    CONCURRENTLY): a step of its own, after the statements before it have committed."""


class IndexDrop(OutsideTransaction):
    """``DROP INDEX CONCURRENTLY`` of index ``index`` (its name, unquoted). Written
    without IF EXISTS, so that an index dropped outside mf stops the migration; when a
    run resumes at this step and the index is gone, the run that stopped dropped it."""

    index: str

    def __new__(cls, sql: str, index: str):
        dropped = super().__new__(cls, sql)
        dropped.index = index
        return dropped


class IndexBuild(OutsideTransaction):
    """``CREATE [UNIQUE] INDEX CONCURRENTLY`` of index ``index`` (its name, unquoted):
    a build that a killed run or a failure can leave INVALID. Before it runs, the
    applier asks the dialect (index_validity) whether an index of that name is there:
    an INVALID one is dropped (DROP INDEX CONCURRENTLY) and built again; a VALID one
    found when a run resumes at this step was built by the run that was killed."""

    index: str

    def __new__(cls, sql: str, index: str):
        built = super().__new__(cls, sql)
        built.index = index
        return built


CONCURRENT_INDEX = re.compile(r'^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?'
                              r'(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))', re.IGNORECASE)


def index_build(statement: str):
    """``statement`` as an IndexBuild when it is a CREATE INDEX CONCURRENTLY (written by
    mf or by hand in a run_sql step), else as it is."""
    if isinstance(statement, IndexBuild) or type(statement) is not str:
        return statement
    found = CONCURRENT_INDEX.match(statement)
    if found is None:
        return statement
    name = unquote(found.group(1)) if found.group(1) is not None else found.group(2).lower()
    return IndexBuild(statement, name)


def has_steps(statements) -> bool:
    """Is a migration of these statements cut into steps (a marker among them)?"""
    return any(isinstance(s, (StepBoundary, OutsideTransaction)) for s in statements)


def cut_into_steps(statements) -> list:
    """[(outside, [statement, ...])]: the steps of a migration, in order. ``outside``:
    the step is one statement run outside a transaction; otherwise its statements run
    in one transaction. Empty transactional steps are left out."""
    parts: list = []
    current: list = []
    for statement in statements:
        if isinstance(statement, OutsideTransaction):
            if current:
                parts.append((False, current))
            parts.append((True, [statement]))
            current = []
        elif isinstance(statement, StepBoundary):
            if current:
                parts.append((False, current))
            current = []
        else:
            current.append(statement)
    if current:
        parts.append((False, current))
    return parts


@dataclass(frozen=True)
class Plan:
    """What a dialect may need to know beyond one operation: the whole migration.
    ``online``: the migration may be cut into steps (StepBoundary, OutsideTransaction)
    so that no step holds a lock that blocks traffic longer than it must; an undo,
    which runs as one transaction, is planned with ``online=False``."""

    atomic: bool = True
    operations: tuple = ()
    online: bool = False


class Dialect:
    """Turns operations into SQL for one database.

    Subclasses (dialects/sqlite.py, dialects/postgresql.py) set ``name``, the type
    names, how literals are written, and the operations the two databases carry out
    differently (``_add_column``, ``_alter_column``, ...). Table creation, indexes,
    drops, renames and column definitions are written once, here, as are quoting,
    literals and the ledger's queries. Subclasses also answer the applier's
    questions (the capability flags below) and read their catalog.
    """

    name: str = ""
    title: str = ""                  # the database's name in messages

    # ------------------------------------------------------------ what the applier asks
    has_enum_types = False           # enums are types of their own (else a CHECK per column)
    supports_non_atomic = False      # some statements refuse to run inside a transaction
    run_lock = False                 # one lock held for a whole run (else: each write
                                     # transaction takes the database's write lock)
    batches_statements = False       # one execute() may carry several statements
    dollar_quotes = False            # hand-written SQL may hold $tag$ ... $tag$ bodies
    trigger_blocks = False           # ... or CREATE TRIGGER ... BEGIN ...; END
    sets_lock_timeout = False        # statements give up after statement_lock_timeout
    begin_sql = "BEGIN"
    foreign_keys_off_sql: Optional[str] = None   # a switch that works outside a transaction
    foreign_keys_on_sql: Optional[str] = None
    foreign_key_check_sql: Optional[str] = None
    drop_failure_note = ""           # added to reset's error when a DROP fails
    has_schemas = False              # a database holds schemas: one target per schema (tenants)
    limits_connections = False       # a server with max_connections (see connection_limit)
    runs_steps = False               # migrate's plan is online: a migration may be cut into steps

    # ------------------------------------------------------------ what the lint asks (lint.py)
    lint_rules: tuple = ()           # the rules (risks.Rule) about this database's locks and types

    def statement_risks(self, statements: list) -> list:
        """[(position, risks.Risk)] in a migration's statements (risks.LintStatement)."""
        return []

    def flags_own_sql(self, operations) -> bool:
        """Could ``statement_risks`` flag a statement mf writes for ``operations``? When
        not, and they only create types and tables, the lint of makemigrations' draft
        leaves their SQL unwritten (lint.reads_statements). Here no rule reads statements."""
        return False

    def rewrites(self, operation: Operation, plan: Plan) -> list:
        """[risks.Rewrite]: the tables ``operation`` rewrites or scans while holding a lock
        that blocks reads and writes."""
        return []

    def rewrite_risks(self, rewritten: list) -> list:
        """[risks.Risk] that the lint reports for an operation's rewrites."""
        return []

    def rewrite_statement(self, rewrite):
        """A pattern matching the statement that carries out ``rewrite`` (None: unknown)."""
        return None

    def users_words(self, message: str) -> str:
        """A database's error message in the user's names (internal names taken out)."""
        return message

    def missing_object(self, error, statement: str) -> Optional[tuple]:
        """(kind, name, table or None) when ``error`` (a StatementError) says that the
        constraint or index ``statement`` addresses by name is not in the database; else
        None. Drops name what they drop, without IF EXISTS: a name that does not match
        is reported here rather than skipped."""
        return None

    def placeholder(self, position: int) -> str:  # pragma: no cover - see subclasses
        """The bound-parameter marker for the 1-based ``position`` (``?`` or ``$1``)."""
        raise NotImplementedError

    def transaction_prologue(self, statement_lock_timeout: str, statement_timeout: Optional[str] = None) -> list[str]:
        """Statements the applier runs first inside each migration's transaction:
        their lock timeout, and their statement timeout when ``statement_timeout`` is
        given and not "0"."""
        return []

    def transaction_marker_sql(self, schema: Optional[str] = None) -> Optional[str]:
        """A statement, run right after the prologue, that marks the transaction as a
        migration's of this target (``schema``) for as long as it lasts, so that a later
        run can wait for it (earlier_transactions_sql); None where there is no such mark."""
        return None

    def earlier_transactions_sql(self, schema: Optional[str] = None) -> Optional[str]:
        """A query for the other sessions that hold transaction_marker_sql's mark: rows
        of (pid, application_name, state, start of the query), see Backend."""
        return None

    def wait_for_earlier_transactions_sql(self, schema: Optional[str], seconds: float) -> Optional[str]:
        """A statement that returns once no other session holds the mark, or fails as a
        lock timeout after ``seconds``."""
        return None

    def migration_session_sql(self) -> Optional[str]:
        """Run once on the connection that applies migrations: one row whose first value
        identifies its session (its backend pid) for blockers_sql; it may also set what
        makes the server end the session's statement when its client is gone."""
        return None

    def blockers_sql(self) -> Optional[str]:
        """A query, with the session of migration_session_sql as parameter 1, for the
        sessions that hold the lock it waits for: rows as Backend takes them."""
        return None

    def is_statement_timeout(self, error) -> bool:
        """Did ``error`` (a StatementError) end a statement that ran longer than
        statement_timeout?"""
        return False

    def session_lock_timeout_sql(self, statement_lock_timeout: str) -> Optional[tuple]:
        """(set, reset): the statements around a non-atomic migration that give its
        statements, run outside a transaction, their lock timeout; None when none."""
        return None

    def try_lock_sql(self, schema: Optional[str] = None) -> str:  # pragma: no cover - only with run_lock
        """One attempt at the run-wide lock (of ``schema``'s ledger, when the target is one
        schema of the database): a row whose first value is true when taken, and whose
        second, when taken, says whether the session really holds the lock (an engine
        whose lock functions are stubs says no)."""
        raise NotImplementedError

    def unlock_sql(self, schema: Optional[str] = None) -> str:  # pragma: no cover - only with run_lock
        """Gives the run-wide lock back; a plain statement (its answer is not read)."""
        raise NotImplementedError

    def server_settings(self, command_timeout: float) -> dict:
        """Settings every connection opens with so that the server, too, gives up on a
        client that vanished (a stalled network, a dead host): it cancels a statement
        and ends a session idle inside a transaction after ``command_timeout``
        seconds, and probes an idle connection."""
        return {}

    def lease_sql(self, seconds: float) -> Optional[str]:
        """A statement after which the server ends this session when it stays idle for
        ``seconds`` (a run-wide lock's session, which its client keeps busy); None when
        the server has no such setting."""
        return None

    def transactional_ddl_probe(self, table: str) -> Optional[tuple]:
        """(probe, check, cleanup) that tell whether the server rolls DDL back: ``probe``
        creates table ``table`` inside a transaction and rolls it back; ``check`` gives
        one row whose first value is true when the table is gone; ``cleanup`` drops a
        table that was not. None where DDL is transactional by construction."""
        return None

    def transactional_ddl_refusal(self, where: str, survived: bool) -> Optional[str]:
        """What the probe's answer means: None when the table created inside a
        transaction was gone after its ROLLBACK (``survived`` False); else the sentence
        refusing the server ``where``."""
        if not survived:
            return None
        return (f"{where} does not roll DDL back: a table created inside a transaction was still there after "
                "ROLLBACK. mf applies each migration in one transaction together with its ledger row, so that a "
                "failed migration leaves nothing behind; it refuses this database and applied nothing")

    def session_settings(self, schema: Optional[str]) -> dict:
        """Settings a connection to the target opens with: for one schema of the
        database, what makes that schema the one its unqualified names mean."""
        return {}

    def use_schema_sql(self, schema: str) -> str:  # pragma: no cover - only with has_schemas
        raise NotImplementedError

    async def connection_limit(self, connection) -> Optional[int]:
        """How many connections the server takes at most (None: no such limit)."""
        return None

    async def lock_budget(self, connection) -> Optional[LockBudget]:
        """How many locks the server holds for all transactions together (None: no such
        limit, as on SQLite, whose transactions lock the whole database file)."""
        return None

    async def drop_dependents(self, connection, tables) -> list:
        """``[(object, table)]``: objects outside ``tables`` that depend on one of them,
        so that a DROP TABLE without CASCADE fails, as the database describes them.
        Asked before a reset drops in parts (a database with a lock table only)."""
        return []

    async def drop_locks(self, connection, tables) -> dict:
        """{table: how many locks dropping it takes, about}, on a database with a lock table."""
        return {}

    async def hold_schema(self, connection, statement_bytes: int) -> None:
        """Before a run whose statements come to ``statement_bytes``: room in the
        connection's memory for the schema the run leaves, where the database reads its
        schema again after every DDL statement. Nothing by default."""

    async def foreign_key_problem(self, connection, tables=None) -> Optional[str]:
        """After statements run with foreign keys off: what broke, or None. ``tables``:
        the tables whose rows the statements can have broken (see foreign_key_tables);
        None for every table."""
        return None

    def foreign_key_tables(self, operations) -> Optional[frozenset]:
        """The tables whose foreign keys a migration of ``operations`` can break while
        keys are off (the tables referencing them are found when checking); None when
        it can touch any (a data step)."""
        return None

    # ------------------------------------------------------------ the ledger
    # Column types of the ledger: key, varchar, time, real (see ledger.py).
    ledger_types: tuple = ()

    def ledger_create_sql(self) -> str:
        key, varchar, time, real = self.ledger_types
        q = self.quote
        return (f"CREATE TABLE IF NOT EXISTS {q(LEDGER_TABLE)} ("
                f"{q('id')} {key}, "
                f"{q('name')} {varchar}(255) NOT NULL UNIQUE, "
                f"{q('checksum')} {varchar}(64) NOT NULL, "
                f"{q('applied_at')} {time} NOT NULL, "
                f"{q('duration')} {real} NOT NULL DEFAULT 0, "
                f"{q('state')} {varchar}(16) NOT NULL DEFAULT {self.string_literal('applied')}"
                f" CHECK ({self.ledger_state_check()}))")

    def ledger_state_check(self) -> str:
        """The ledger's CHECK on ``state``: 'started', 'applied', and, where migrations
        can be made of steps, 'step N' (the first N steps committed)."""
        states = ", ".join(self.string_literal(s) for s in ("started", "applied"))
        check = f"{self.quote('state')} IN ({states})"
        if self.runs_steps:
            check += f" OR {self.quote('state')} LIKE {self.string_literal('step %')}"
        return check

    async def ledger_takes_steps(self, connection) -> bool:  # pragma: no cover - only with runs_steps
        """Does the ledger's CHECK on ``state`` take 'step N' (a ledger created by an
        earlier mf does not)?"""
        raise NotImplementedError

    def ledger_steps_upgrade_sql(self) -> list:  # pragma: no cover - only with runs_steps
        """Statements that let an earlier ledger's ``state`` take 'step N' (run in a
        transaction, under the run-wide lock)."""
        raise NotImplementedError

    def ledger_progress_sql(self) -> str:
        """A row's state set to $1 (a step reached), by name ($2)."""
        q, p = self.quote, self.placeholder
        return f"UPDATE {q(LEDGER_TABLE)} SET {q('state')} = {p(1)} WHERE {q('name')} = {p(2)}"

    async def index_validity(self, connection, name: str) -> Optional[bool]:  # pragma: no cover
        """Is the index ``name`` (on the search path) valid? None when there is none."""
        raise NotImplementedError

    def drop_index_concurrently_sql(self, name: str) -> str:  # pragma: no cover - only with runs_steps
        raise NotImplementedError

    def ledger_exists_sql(self) -> str:  # pragma: no cover - see subclasses
        """A query that returns a row when the ledger table exists."""
        raise NotImplementedError

    def ledger_select_sql(self, detailed: bool = False) -> str:
        columns = ", ".join(self.quote(c) for c in (LEDGER_DETAILED if detailed else LEDGER_COLUMNS))
        return f"SELECT {columns} FROM {self.quote(LEDGER_TABLE)} ORDER BY {self.quote('id')}"

    def ledger_state_sql(self) -> str:
        return (f"SELECT {self.quote('state')} FROM {self.quote(LEDGER_TABLE)}"
                f" WHERE {self.quote('name')} = {self.placeholder(1)}")

    def ledger_insert_sql(self, values=None) -> str:
        """The INSERT of one row (name, checksum, applied_at, duration, state): with
        placeholders, or with ``values`` written in."""
        columns = ", ".join(self.quote(c) for c in LEDGER_INSERTED)
        if values is None:
            written = ", ".join(self.placeholder(i) for i in range(1, len(LEDGER_INSERTED) + 1))
        else:
            written = ", ".join(self.literal(v) for v in values)
        return f"INSERT INTO {self.quote(LEDGER_TABLE)} ({columns}) VALUES ({written})"

    def ledger_mark_applied_sql(self) -> str:
        q, p = self.quote, self.placeholder
        return (f"UPDATE {q(LEDGER_TABLE)} SET {q('state')} = {self.string_literal('applied')}, "
                f"{q('checksum')} = {p(1)}, {q('applied_at')} = {p(2)}, {q('duration')} = {p(3)} "
                f"WHERE {q('name')} = {p(4)}")

    def ledger_rename_sql(self) -> str:
        q, p = self.quote, self.placeholder
        return f"UPDATE {q(LEDGER_TABLE)} SET {q('name')} = {p(1)} WHERE {q('name')} = {p(2)}"

    def ledger_delete_sql(self) -> str:
        return f"DELETE FROM {self.quote(LEDGER_TABLE)} WHERE {self.quote('name')} = {self.placeholder(1)}"

    def ledger_drop_sql(self) -> str:
        return f"DROP TABLE IF EXISTS {self.quote(LEDGER_TABLE)}"

    def ledger_time(self, moment):
        """``applied_at`` as the driver binds it."""
        return moment

    # ------------------------------------------------------------ the catalog
    async def table_names(self, connection) -> set:  # pragma: no cover - see subclasses
        """The tables on the connection's search path (the ledger included)."""
        raise NotImplementedError

    async def enum_type_names(self, connection) -> set:
        """The enum types on the connection's search path (none without has_enum_types)."""
        return set()

    async def read_catalog(self, connection, tables=None) -> Catalog:  # pragma: no cover
        """The tables (all, or those of ``tables`` that exist) and enum types, as
        catalog records."""
        raise NotImplementedError

    # Do constraint and UNIQUE names read from the catalog name the objects a statement
    # can address (PostgreSQL)? SQLite keeps no constraint names it can be asked for.
    catalog_constraint_names = False
    # Does CREATE INDEX take an operator class per column (PostgreSQL)? Elsewhere
    # an index's opclass is left out.
    has_opclasses = False
    # The default of a UUIDField with default=uuid4(): a new random UUID per row.
    uuid4_sql = "gen_random_uuid()"
    # Is the catalog of statements (catalog_of) built in an empty database of its own?
    # Otherwise on the live connection, in a schema of a transaction rolled back.
    scratch_database = False

    async def catalog_of(self, connection, statements) -> Catalog:
        """The catalog that ``statements`` (a creation from nothing) produce. Here: on
        ``connection``, an empty database of its own (scratch_database)."""
        for statement in statements:
            await connection.execute(statement)
        return await self.read_catalog(connection)

    # ------------------------------------------------------------ from the catalog back to fields
    def field_of_column(self, column: Column, name: str, enum: Optional[str] = None):
        """(Field, [what mf cannot say about the column]) for a catalog column: its type,
        length or precision, nullability and default. ``enum``: the enum (an IR name)
        the column holds, when the caller knows it holds one. Keys, UNIQUE and foreign
        keys are the caller's part (they are table constraints in the catalog)."""
        notes: list = []
        if enum is not None:
            kind, extra = "EnumField", {"enum": enum}
        else:
            kind, extra = self.field_type_of(column)
            if kind is None:
                notes.append(f"column {column.name} has type {column.type}, which mf has no field for")
                kind, extra = "TextField", {}
        if column.identity:
            kind = "BigAutoField" if kind == "BigIntegerField" else "AutoField"
        f = Field(name, kind, column.name, null=column.nullable, **extra)
        if column.default is None or f.type in AUTO_TYPES:
            return f, notes
        if _expression(column.default) == _expression(self.uuid4_sql):
            return f._replace(type="UUIDField" if f.type == "TextField" else f.type, db_default="uuid4"), notes
        parsed = parse_default(column.default)
        if isinstance(parsed, CurrentTime):
            # SQLite's TEXT holds times: the default says which kind.
            kind = _TIME_FIELDS[parsed] if f.type == "TextField" else f.type
            return f._replace(type=kind, auto_now_add=True), notes
        value = _default_for(f.type, parsed)
        if value is _UNREADABLE:
            notes.append(f"column {column.name} has the default {column.default}, which mf cannot write")
            return f, notes
        return f._replace(has_default=True, default=value), notes

    def same_type(self, actual: str, expected: str) -> bool:
        """Do two column types, as the catalog spells them, store and behave alike?"""
        return actual == expected

    def type_display(self, type_sql: str) -> str:
        """A catalog type as messages show it (PostgreSQL: ``varchar(20)``, not
        ``character varying(20)``)."""
        return type_sql

    field_types: dict = {}               # a catalog type -> the field that makes it
    char_type: Optional[re.Pattern] = None     # CharField's type; group 1 the length
    decimal_type: Optional[re.Pattern] = None  # DecimalField's; groups: digits, places

    def field_type_of(self, column: Column) -> tuple:
        """(field type, {max_length | max_digits, decimal_places}) of a column's database
        type; (None, {}) for a type mf has no field for."""
        sized = self.char_type.fullmatch(column.type)
        if sized:
            return "CharField", {"max_length": int(sized.group(1))}
        sized = self.decimal_type.fullmatch(column.type)
        if sized:
            return "DecimalField", {"max_digits": int(sized.group(1)), "decimal_places": int(sized.group(2))}
        return self.field_types.get(column.type), {}

    # ------------------------------------------------------------ reset
    async def drop_plan(self, connection, tables: dict, enums) -> list:  # pragma: no cover
        """``[(statement, what it drops or None)]`` that drop the owned ``tables``
        (name -> tables it references) and ``enums`` that exist, in an order that needs
        no CASCADE; the ledger is not among them. Raises DatabaseError when a table mf
        does not own depends on one of them."""
        raise NotImplementedError

    # ------------------------------------------------------------ quoting and literals
    def quote(self, identifier: str) -> str:
        """An identifier, always quoted: names with quotes, spaces or keywords work."""
        if "\x00" in identifier:
            raise MigrationFileError(f"the name {identifier!r} contains a NUL character")
        return '"' + identifier.replace('"', '""') + '"'

    def string_literal(self, text: str) -> str:
        if "\x00" in text:
            raise MigrationFileError(f"the text {text!r} contains a NUL character, which no database stores")
        return "'" + text.replace("'", "''") + "'"

    def bool_literal(self, value: bool) -> str:  # pragma: no cover - see subclasses
        raise NotImplementedError

    def bytes_literal(self, value: bytes) -> str:  # pragma: no cover
        raise NotImplementedError

    def json_literal(self, text: str) -> str:
        return self.string_literal(text)

    def literal(self, value) -> str:
        """A value written into DDL (defaults), escaped so nothing can be injected."""
        if value is None:
            return "NULL"
        if value is True or value is False:
            return self.bool_literal(value)
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise MigrationFileError(f"the number {value} cannot be written as a default")
            return repr(value)
        if isinstance(value, Decimal):  # a DecimalField's default, every digit of it
            if not value.is_finite():
                raise MigrationFileError(f"the number {value} cannot be written as a default")
            return decimal_text(value)
        if isinstance(value, str):
            return self.string_literal(value)
        if isinstance(value, (bytes, bytearray)):
            return self.bytes_literal(bytes(value))
        return self.json_literal(json.dumps(value, ensure_ascii=False))

    # ------------------------------------------------------------ column definitions
    def type_sql(self, f: Field) -> str:  # pragma: no cover - see subclasses
        """The column type of a field that is not a foreign key (AutoField: its integer type)."""
        raise NotImplementedError

    def auto_key_sql(self, type_sql: str, primary_key: str = "PRIMARY KEY") -> str:  # pragma: no cover
        """An AutoField's type and key clause, e.g. ``INTEGER PRIMARY KEY AUTOINCREMENT``
        (``primary_key``: the key clause, ``CONSTRAINT "name" PRIMARY KEY`` when named)."""
        raise NotImplementedError

    def check_sql(self, f: Field, table_def: Optional[TableDef]) -> Optional[str]:
        """A column CHECK constraint the database needs for this field (a positive
        integer's; SQLite's enums)."""
        if f.type in POSITIVE_TYPES:
            return positive_check_sql(self.quote(f.column))
        return None

    def column_type(self, f: Field, table_def: Optional[TableDef]) -> str:
        """A column's type; a foreign key takes the type of the key it points to."""
        if f.target is None:
            return self.type_sql(f)
        reference = reference_of(table_def, f)
        if reference is None or reference.key.target is not None:
            # No target to read (an earlier tool's file), or a key that is itself a
            # reference: the common case, an integer key.
            return self.type_sql(Field(f.name, "IntegerField", f.column))
        return self.type_sql(reference.key)

    def fill_sql(self, op) -> Optional[str]:
        """What fills an altered column's NULLs as it becomes NOT NULL: the operation's
        backfill, else the new default (None: nothing does)."""
        if op.backfill is not None:
            return self.default_sql(op.new._replace(has_default=True, default=op.backfill, auto_now=False,
                                                    auto_now_add=False))
        return self.default_sql(op.new)

    def default_sql(self, f: Field) -> Optional[str]:
        """The DEFAULT expression of a field, or None."""
        if f.auto_now or f.auto_now_add:
            return CURRENT_TIME_SQL.get(f.type, "CURRENT_TIMESTAMP")
        if f.db_default == "uuid4":
            return self.uuid4_sql
        if not f.has_default or f.default is None:
            return None
        value = f.default
        if f.type == "JSONField":
            return self.json_literal(json.dumps(value, ensure_ascii=False))
        if f.type == "BinaryField" and isinstance(value, str):
            return self.bytes_literal(value.encode("utf-8"))
        if f.type == "BooleanField":
            return self.bool_literal(bool(value))
        return self.literal(value)

    # ------------------------------------------------------------ type changes that round
    def rounded_sql(self, loss, column: str) -> str:  # pragma: no cover - see subclasses
        """The value of ``column`` (quoted) as the type change ``loss`` (an
        operations.Rounding) leaves it."""
        raise NotImplementedError

    def rounds_sql(self, loss, column: str) -> str:  # pragma: no cover - see subclasses
        """A condition, true for a non-NULL value of ``column`` that the change alters."""
        raise NotImplementedError

    def rounding_guard(self, op, column: str) -> Optional["Guard"]:
        """For an alter_column whose type change rounds values (op.rounding) and does not
        accept it: the check that stops the migration at the first row it would change
        (key order), naming the row. ``column``: the column's name when the check runs."""
        loss = op.rounding
        if loss is None or op.accept_rounding:
            return None
        key = require_table(op).model.primary_key
        quoted = self.quote(column)
        key_sql = self.quote(column if key is not None and key.name == op.new.name else key.column) \
            if key is not None else "NULL"
        sql = (f"-- mf stops the migration if a row would change\n"
               f"SELECT {key_sql}, {quoted}, {self.rounded_sql(loss, quoted)} FROM {self.quote(op.table)}"
               f" WHERE {quoted} IS NOT NULL AND {self.rounds_sql(loss, quoted)}"
               + (f" ORDER BY {key_sql}" if key is not None else "") + " LIMIT 1")
        def literal(text: str) -> str:  # a name, kept as it is by str.format
            return text.replace("{", "{{").replace("}", "}}")

        row = f"the row with {literal(key.column)} {{key}}" if key is not None else "a row"
        refusal = (f"cannot change {op.model}.{op.new.name} (column {literal(op.new.column)} of table "
                   f"{literal(op.table)}) from "
                   f"{_type_words(op.old)} to {_type_words(op.new)}: the change {loss.words} and would turn "
                   f"{{value}} into {{rounded}} in {row}; change such rows first, or accept the rounding "
                   "(`mf db makemigrations --accept-rounding`, or \"accept_rounding\": true on this "
                   "alter_column)")
        return Guard(sql, refusal)

    def references_sql(self, f: Field, reference: Reference) -> str:
        """``REFERENCES "target" ("id") ON DELETE ...``"""
        action = ON_DELETE_SQL.get(f.on_delete or "CASCADE", "CASCADE")
        return (f"REFERENCES {self.quote(reference.table)} ({self.quote(reference.column)})"
                f" ON DELETE {action}{DEFERRABLE_SQL.get(f.deferrable, '')}")

    def column_sql(self, f: Field, table_def: TableDef, *, checked: bool = True) -> str:
        """A full column definition, its one-column constraints included (named after the
        table of ``table_def``, whatever name the table is created under). ``checked``
        False leaves out its CHECK and its foreign key (added apart, NOT VALID)."""
        table = table_def.model.table
        kind = self.column_type(f, table_def)
        parts = [self.quote(f.column)]
        # A key named otherwise than the database would name it (a database taken over).
        primary_key = f"CONSTRAINT {self.quote(f.key_name)} PRIMARY KEY" if f.key_name else "PRIMARY KEY"
        if f.type in AUTO_TYPES:
            parts.append(self.auto_key_sql(kind, primary_key))
        else:
            parts.append(kind)
            if is_not_null(f):
                parts.append("NOT NULL")
            default = self.default_sql(f)
            if default is not None:
                parts.append(f"DEFAULT {default}")
            if f.primary_key:
                parts.append(primary_key)
        if has_unique_constraint(f):
            parts.append(f"CONSTRAINT {self.quote(field_unique_name(table, f))} UNIQUE")
        if not checked:
            return " ".join(parts)
        check = self.check_sql(f, table_def)
        if check is not None:
            parts.append(f"CONSTRAINT {self.quote(check_name(table, f.column))} CHECK ({check})")
        reference = table_def.references.get(f.name) if f.target is not None else None
        if reference is not None:
            parts.append(f"CONSTRAINT {self.quote(field_foreign_key_name(table, f))} "
                         + self.references_sql(f, reference))
        return " ".join(parts)

    def create_table_sql(self, table_def: TableDef, name: Optional[str] = None) -> str:
        """CREATE TABLE for a TableDef, under ``name`` when given (SQLite's rebuild)."""
        model = table_def.model
        parts = [self.column_sql(f, table_def) for f in model.fields]
        parts += [self.unique_constraint_sql(index, [model.column_of(n) for n in index.fields])
                  for index in model.indexes if index.constraint]
        parts += [self.check_constraint_sql(check) for check in model.checks]
        columns = ",\n    ".join(parts)
        return f"CREATE TABLE {self.quote(name or model.table)} (\n    {columns}\n)"

    def check_constraint_sql(self, check) -> str:
        """A table's CHECK constraint: the expression as the schema author wrote it."""
        return f"CONSTRAINT {self.quote(check.name)} CHECK ({check.expression})"

    def unique_constraint_sql(self, index, columns) -> str:
        """A UNIQUE constraint over several columns (an index that is a constraint)."""
        return f"CONSTRAINT {self.quote(index.name)} UNIQUE ({', '.join(self.quote(c) for c in columns)})"

    def create_index_sql(self, table: str, index, columns, *, concurrently: bool = False) -> str:
        unique = "UNIQUE " if index.unique else ""
        how = "CONCURRENTLY " if concurrently else ""
        opclass = f" {self.quote(index.opclass)}" if index.opclass is not None and self.has_opclasses else ""
        listed = ", ".join(self.quote(c) + opclass for c in columns)
        condition = f" WHERE {index.where}" if index.where is not None else ""
        return f"CREATE {unique}INDEX {how}{self.quote(index.name)} ON {self.quote(table)} ({listed}){condition}"

    def table_indexes_sql(self, table_def: TableDef) -> list[str]:
        """CREATE INDEX for every index a table's model declares."""
        model = table_def.model
        return [self.create_index_sql(model.table, index, [model.column_of(n) for n in index.fields])
                for index in model.indexes if not index.constraint]

    # ------------------------------------------------------------ operations
    def operation_sql(self, operation: Operation, *, atomic: bool = True) -> list[str]:
        """The statements that carry out one operation, in order (as if it were a
        migration of its own)."""
        return self._statements(operation, Plan(atomic, (operation,)))

    def migration_sql(self, operations, *, atomic: bool = True, online: bool = False) -> list[str]:
        """Every statement of a migration, in order. ``online`` (migrate's plan, where the
        dialect runs_steps): the migration may be cut into steps by markers among the
        statements (StepBoundary, OutsideTransaction)."""
        operations = tuple(operations)
        plan = Plan(atomic, operations, online and self.runs_steps)
        statements: list[str] = []
        for operation in operations:
            statements.extend(self._statements(operation, plan))
        if self.runs_steps and (plan.online or not atomic):
            # A CREATE INDEX CONCURRENTLY written by hand (run_sql) is handled as mf's own:
            # an INVALID index left by a failed build is dropped and built again.
            statements = [index_build(s) for s in statements]
        return tidy_boundaries(statements) if plan.online else statements

    def needs_foreign_keys_off(self, operations) -> bool:
        """Must foreign-key enforcement be switched off (outside the transaction) while
        these run? True for SQLite table rebuilds and drops; never for PostgreSQL."""
        return False

    def _statements(self, operation: Operation, plan: Plan) -> list[str]:
        handler = getattr(self, "_" + operation.op, None)
        if handler is None:
            raise MigrationFileError(f"the {self.name} dialect cannot carry out operation '{operation.op}'")
        return handler(operation, plan)

    # Written once: the same SQL on every database.
    def _create_model(self, op, plan) -> list[str]:
        table_def = require_table(op)
        return [self.create_table_sql(table_def)] + self.table_indexes_sql(table_def)

    def _run_sql(self, op, plan) -> list[str]:
        text = op.sql_for(self.name)
        if text is None:
            raise MigrationFileError(f"its run_sql step has no SQL for {self.name} (it has: "
                                     f"{', '.join(name for name, _text in op.sql)}); add a \"{self.name}\" entry")
        return split_statements(text, dollar_quotes=self.dollar_quotes, trigger_blocks=self.trigger_blocks)

    def _run_python(self, op, plan) -> list[str]:
        # Not SQL: the applier calls the function where this stands among the statements.
        return [PythonCall(op.function)] if op.function else []

    def _drop_model(self, op, plan) -> list[str]:
        return [f"DROP TABLE {self.quote(op.table)}"]

    def _rename_model(self, op, plan) -> list[str]:
        if op.old_table == op.new_table:
            return []
        return [f"ALTER TABLE {self.quote(op.old_table)} RENAME TO {self.quote(op.new_table)}"] \
            + self._constraints_after_table_rename(op)

    def _constraints_after_table_rename(self, op) -> list[str]:
        """Statements that rename constraints named after the old table (PostgreSQL)."""
        return []

    def _add_index(self, op, plan) -> list[str]:
        if op.index.constraint:
            return [f"ALTER TABLE {self.quote(op.table)} ADD {self.unique_constraint_sql(op.index, op.columns)}"]
        return [self.create_index_sql(op.table, op.index, op.columns)]

    def _add_check(self, op, plan) -> list[str]:
        return [f"ALTER TABLE {self.quote(op.table)} ADD {self.check_constraint_sql(op.check)}"]

    def _drop_check(self, op, plan) -> list[str]:
        return [f"ALTER TABLE {self.quote(op.table)} DROP CONSTRAINT {self.quote(op.check.name)}"]

    def _drop_index(self, op, plan) -> list[str]:
        if op.index.constraint:
            return [f"ALTER TABLE {self.quote(op.table)} DROP CONSTRAINT {self.quote(op.index.name)}"]
        return [f"DROP INDEX {self.quote(op.index.name)}"]


# ---------------------------------------------------------------- helpers for the dialects

class Guard(str):
    """A check among a migration's statements: a SELECT whose first row, if it finds
    one, stops the migration with ``refusal(row)`` (the applier runs it so). It reads
    as its SQL in `mf db sql` and the dry run."""

    message: str

    def __new__(cls, sql: str, message: str):
        guard = super().__new__(cls, sql)
        guard.message = message
        return guard

    def refusal(self, row) -> str:
        """The message for the row found: (key, value, value after the change)."""
        key, value, rounded = row[0], row[1], row[2]
        return self.message.format(key=key, value=value, rounded=rounded)


def _type_words(f: Field) -> str:
    if f.type == "DecimalField":
        return f"DecimalField({f.max_digits}, {f.decimal_places})"
    return f.type


class CurrentTime(str):
    """A default of the database's clock (CURRENT_TIMESTAMP, CURRENT_DATE, CURRENT_TIME)."""


_TIME_FIELDS = {"CURRENT_TIMESTAMP": "DateTimeField", "NOW()": "DateTimeField", "CURRENT_DATE": "DateField",
                "CURRENT_TIME": "TimeField"}
_UNREADABLE = object()
_SQL_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _expression(text: str) -> str:
    """A default expression without its outer parentheses and with single spaces, as
    catalogs give it back."""
    text = " ".join(text.split())
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    return text


def parse_default(text: str):
    """A default as a catalog shows it (``'x'::character varying``, ``0.0``, ``true``,
    ``X'6869'``, ``CURRENT_TIMESTAMP``): the text of a string literal, a number, a
    bool, bytes, a CurrentTime, or _UNREADABLE for an expression."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    upper = text.upper()
    if upper in _TIME_FIELDS:
        return CurrentTime(upper)
    if upper in ("TRUE", "FALSE"):
        return upper == "TRUE"
    if upper == "NULL":
        return None
    if _SQL_NUMBER.match(text):
        return Decimal(text) if any(c in text for c in ".eE") else int(text)  # exact, as the catalog has it
    if upper.startswith("X'") and text.endswith("'"):
        try:
            return bytes.fromhex(text[2:-1])
        except ValueError:
            return _UNREADABLE
    if not text.startswith("'"):
        return _UNREADABLE
    value, position = [], 1
    while position < len(text):
        if text[position] == "'":
            if text[position + 1:position + 2] == "'":
                value.append("'")
                position += 2
                continue
            rest = text[position + 1:]
            # Only casts may follow the literal (``::character varying``, ``::text::uuid``).
            if rest and not re.fullmatch(r'(::\s*("[^"]+"|[A-Za-z_][\w ]*(\(\d+(,\d+)?\))?)\s*)+', rest):
                return _UNREADABLE
            return "".join(value)
        value.append(text[position])
        position += 1
    return _UNREADABLE


def _default_for(field_type: str, parsed):
    """``parsed`` (parse_default's) as the IR stores a default of ``field_type``."""
    if parsed is _UNREADABLE or parsed is None:
        return _UNREADABLE
    try:
        if field_type in ("IntegerField", "BigIntegerField", "SmallIntegerField"):
            return int(parsed) if not isinstance(parsed, (bool, float, Decimal, bytes)) else _UNREADABLE
        if field_type == "FloatField":
            return float(parsed) if not isinstance(parsed, (bool, bytes)) else _UNREADABLE
        if field_type == "DecimalField":
            exact = exact_decimal(parsed) if not isinstance(parsed, (bool, bytes)) else _UNREADABLE
            return exact if isinstance(exact, Decimal) else _UNREADABLE
        if field_type == "BooleanField":
            if isinstance(parsed, str):
                return {"true": True, "false": False, "1": True, "0": False}.get(parsed.lower(), _UNREADABLE)
            return bool(parsed) if parsed in (0, 1) else _UNREADABLE
        if field_type == "JSONField":
            return json.loads(parsed) if isinstance(parsed, str) else _UNREADABLE
        if field_type == "BinaryField":
            if isinstance(parsed, bytes):
                return parsed.decode("utf-8")
            if isinstance(parsed, str) and parsed.startswith("\\x"):
                return bytes.fromhex(parsed[2:]).decode("utf-8")
            return _UNREADABLE
    except (ValueError, UnicodeDecodeError):
        return _UNREADABLE
    return parsed if isinstance(parsed, str) else _UNREADABLE


def tidy_boundaries(statements: list) -> list:
    """Statements with no empty step: no StepBoundary first, last, or right after another
    (each operation puts its boundaries where it needs them, not knowing its neighbours)."""
    tidy: list = []
    for statement in statements:
        if isinstance(statement, StepBoundary) and (not tidy or isinstance(tidy[-1], StepBoundary)):
            continue
        tidy.append(statement)
    while tidy and isinstance(tidy[-1], StepBoundary):
        tidy.pop()
    return tidy


def step_boundary(reason: str) -> StepBoundary:
    """A StepBoundary that reads as an SQL comment saying why the step ends there."""
    return StepBoundary(f"-- next step: {reason}")


def created_in(plan: Plan, table: str) -> bool:
    """Is ``table`` created by the migration itself (so no traffic can use it yet)?"""
    return any(getattr(other, "op", None) == "create_model" and other.table == table for other in plan.operations)


def online_table(plan: Plan, table: str) -> bool:
    """May a change of ``table`` take its online form: an online plan, and a table that
    exists before the migration (a table created by it keeps the plain forms)."""
    return plan.online and not created_in(plan, table)


def require_table(op) -> TableDef:
    """The operation's TableDef; a clear error when a file lacks it."""
    table_def = getattr(op, "table_def", None)
    if table_def is None:
        raise MigrationFileError(
            f"operation {op.op} on table '{getattr(op, 'table', '?')}' carries no table definition;"
            " complete it with operations.attach_tables() from the schema before writing SQL")
    return table_def


def reference_of(table_def: Optional[TableDef], f: Field) -> Optional[Reference]:
    """Where a foreign key points, whether or not its constraint exists yet."""
    if table_def is None:
        return None
    return table_def.references.get(f.name) or table_def.deferred.get(f.name)



def table_before(op) -> TableDef:
    """The table as the old side of an alter_column saw it, for reading the old column's
    type. The same as its TableDef, except for the reference of a foreign key column:
    with ``old_key``, it points at that key (the one the column pointed to, as it was);
    without it (files written before it was recorded for every foreign key), a field that
    pointed elsewhere has no reference here, and its old type is taken to be an integer."""
    table_def = require_table(op)
    old, name = op.old, op.new.name
    old_key = getattr(op, "old_key", None)
    current = reference_of(table_def, op.new)
    if old.target is None or (old_key is None and old.target == op.new.target):
        return table_def
    references = {k: v for k, v in table_def.references.items() if k != name}
    deferred = {k: v for k, v in table_def.deferred.items() if k != name}
    if old_key is not None:
        if current is not None and current.model == old.target:
            reference = replace(current, key=old_key)
        else:  # pointed elsewhere: only the key is read, for the column's type
            reference = Reference(old.target, "", old_key.column, old_key)
        if name in table_def.deferred:
            deferred[name] = reference
        else:
            references[name] = reference
    return replace(table_def, references=references, deferred=deferred)


def follows_later(op, plan: Plan) -> bool:
    """Is ``op`` (a drop_fk) followed, later in the same migration, by the alter_column
    that makes its column follow a changed primary key and puts the constraint back?"""
    later = False
    for other in plan.operations:
        if other is op:
            later = True
        elif later and getattr(other, "old_key", None) is not None and other.op == "alter_column" \
                and other.model == op.model and other.new.name == op.field_name:
            return True
    return False


def key_dropped_before(op, plan: Plan) -> bool:
    """Is ``op`` (an alter_column) preceded, in the same migration, by the drop_fk that
    took its column's constraint off (a primary key it points to changes type), with
    nothing between that put it back?"""
    dropped = False
    for other in plan.operations:
        if other is op:
            return dropped
        if getattr(other, "model", None) != op.model:
            continue
        if other.op in ("drop_fk", "add_fk") and other.field_name == op.new.name:
            dropped = other.op == "drop_fk"
        elif other.op == "alter_column" and other.new.name == op.new.name and other.new.target is not None:
            dropped = False  # it puts the key back
    return dropped


def drop_order(tables: dict) -> list:
    """Tables (name -> set of tables it references) ordered so that a referencing table
    comes before the table it references; cycles are broken arbitrarily (the caller
    removes those constraints first)."""
    remaining = {t: set(refs) & set(tables) - {t} for t, refs in tables.items()}
    order = []
    while remaining:
        referenced = set().union(*remaining.values()) if remaining else set()
        free = sorted(t for t in remaining if t not in referenced)
        if not free:  # a cycle: take one table out of it
            free = [sorted(remaining)[0]]
        for table in free:
            order.append(table)
            del remaining[table]
        for refs in remaining.values():
            refs.difference_update(free)
    return order

"""`mf db lint`: migrations checked, before they run, for changes that break running
clients or block traffic (the rules of squawk and strong_migrations).

Two kinds of rules. Rules about the application, which hold on every database
(dropping or renaming what running code still uses, transaction control inside mf's
transaction), are here. Rules about locks, rewrites and types are the database's:
its dialect lists them (``lint_rules``) and finds them (``statement_risks``,
``rewrites``). A rule applies to the operation (mf knows what changes, and which
tables existed before: the history is folded) and/or to the SQL that will run, mf's
and the hand-written run_sql statements alike, read one statement at a time.

A migration accepts rules by name in its file: ``"lint": {"accept": ["ban-drop-column"]}``;
their findings are reported as accepted and do not fail the lint.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from operator import attrgetter
from typing import Optional

from .dialects.base import OutsideTransaction, Plan, StepBoundary
from .dialects.risks import IDENTIFIER, LintStatement, Risk, Rule, identifier, is_comment, normalized
from .errors import MfError, MigrationFileError

APPLICATION_RULES = (
    Rule("ban-drop-column", "a column dropped from a table that exists before the migration",
         "clients deployed before the migration still read or write it and fail until they are replaced; "
         "the data is gone",
         "stop using the column in the code and deploy, then drop it in a later migration (accept the rule there)"),
    Rule("ban-drop-table", "a table dropped that exists before the migration",
         "clients still using it fail; the rows are gone; its foreign keys lock the tables they reference",
         "stop using the table and deploy, then drop it in a later migration (accept the rule there)"),
    Rule("renaming-column", "a column renamed",
         "clients deployed before the migration still use the old name and fail until they are replaced",
         "expand/contract: add the new column, write both, backfill, switch reads, then drop the old one"),
    Rule("renaming-table", "a table renamed",
         "clients deployed before the migration still use the old name and fail until they are replaced",
         "create the new table (or a view under the old name), move clients, then drop the old one"),
    Rule("transaction-nesting", "BEGIN, COMMIT, ROLLBACK or END in a run_sql step that runs in mf's transaction",
         "it ends mf's transaction early: what follows runs outside it and the ledger no longer commits "
         "with the migration",
         "leave transactions to mf; put statements that cannot run in a transaction in a migration marked "
         "\"atomic\": false"),
)

# The rules whose finding means the table is rewritten (a ⏳ line in `mf db sql`).
_REWRITING_RULES = frozenset({"adding-field-with-default", "adding-serial-primary-key-field", "changing-column-type"})


@dataclass(frozen=True)
class Finding:
    """One rule broken by one migration: where (``operation``: its position in "ops";
    ``statement``: its line in `mf db sql NNN` -- in the "sql" list of its --json,
    step headings, BEGIN, the prologue and COMMIT counted -- from 1; either may be
    None), why, and the safe way."""

    rule: str
    migration: str
    operation: Optional[int]
    operation_kind: Optional[str]
    statement: Optional[int]
    sql: Optional[str]
    reason: str
    alternative: str
    accepted: bool = False

    @property
    def where(self) -> str:
        parts = []
        if self.operation is not None:
            parts.append(f"ops[{self.operation}] ({self.operation_kind})")
        if self.statement is not None:
            parts.append(f"statement {self.statement}")
        return ", ".join(parts) or "the migration"

    def to_json(self) -> dict:
        return {"rule": self.rule, "migration": self.migration, "operation": self.operation,
                "op": self.operation_kind, "statement": self.statement, "sql": self.sql,
                "reason": self.reason, "alternative": self.alternative, "accepted": self.accepted}


@dataclass(frozen=True)
class LintReport:
    driver: str
    migrations: tuple   # the names checked, in order
    findings: tuple     # Finding, in migration then statement order

    @property
    def problems(self) -> list:
        """The findings no migration accepted: what fails the lint."""
        return [f for f in self.findings if not f.accepted]


def rules_for(dialect) -> tuple:
    """The rules that apply on ``dialect``'s database."""
    return APPLICATION_RULES + tuple(dialect.lint_rules)


def known_rules() -> dict:
    """{name: Rule} over every database mf knows (what a "lint.accept" may name)."""
    from .dialects import dialect_for

    rules = {rule.name: rule for rule in APPLICATION_RULES}
    for driver in ("sqlite", "postgresql"):
        rules.update((rule.name, rule) for rule in dialect_for(driver).lint_rules)
    return rules


# ---------------------------------------------------------------- a project

def lint_project(config, numbers=(), every: bool = False) -> LintReport:
    """Lint the pending migrations (those .applied does not list; no database is read),
    or those ``numbers`` names (numbers or file names), or ``every`` one."""
    from . import store
    from .dialects import dialect_for

    directory = config.migrations_dir
    files = store.list_migration_files(directory)
    if numbers:
        # A number stands for every file it has; a file name for that file.
        present = {f.number for f in files} | {f.name for f in files}
        for which in numbers:
            if which not in present:
                raise MigrationFileError(f"no migration file {which} in {directory}" if isinstance(which, str)
                                         else f"no migration numbered {which:03d} in {directory}")
        wanted = {f.name for f in files if f.number in set(numbers) or f.name in set(numbers)}
    elif every:
        wanted = {f.name for f in files}
    else:
        applied = set(store.read_applied(directory) or ())
        wanted = {f.name for f in files if f.name not in applied}
    if not wanted:
        return LintReport(config.driver, (), ())
    last = max(f.number for f in files if f.name in wanted)
    history, _schema = store.load_history(directory, [f for f in files if f.number <= last])
    known = known_rules()
    for migration in history:
        if migration.name in wanted:
            check_accepted(migration.name, migration.lint_accept, known)
    dialect = dialect_for(config.driver)
    before, _after = store.schemas_around(history)
    findings: list = []
    for migration in history:
        if migration.name in wanted:
            tables = frozenset(map(_table_of, before[migration.name].models.values()))
            findings += lint_migration(dialect, migration, tables, config=config)
    names = tuple(m.name for m in history if m.name in wanted)
    return LintReport(config.driver, names, tuple(findings))


def check_accepted(name: str, accepted, known: dict) -> None:
    """A "lint.accept" naming no rule is a mistake in the file (MigrationFileError)."""
    for rule in accepted:
        if rule not in known:
            close = difflib.get_close_matches(rule, list(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else " (`mf db lint --rules` lists them)"
            raise MigrationFileError(f"{name}: 'lint.accept' names unknown rule '{rule}'{hint}")


# ---------------------------------------------------------------- a migration

def migration_statements(dialect, migration, online: bool = True) -> list:
    """The migration's statements as migrate runs them (see steps.step_for; ``online``:
    the config's), without importing its run_python functions."""
    atomic = migration.atomic or not dialect.supports_non_atomic
    try:
        return dialect.migration_sql(migration.operations, atomic=atomic, online=online)
    except MigrationFileError as exc:
        raise MigrationFileError(f"{migration.name}: {exc}") from None


def lint_migration(dialect, migration, tables_before: frozenset, statements: Optional[list] = None,
                   config=None, drafted: bool = False) -> list:
    """[Finding] for one migration (store.Migration); ``tables_before``: the tables that
    exist before it. ``config``: the project's (its ``online`` plans the statements, its
    timeouts make the prologue), so that a finding's statement is numbered as the line
    of `mf db sql NNN` that shows it; without it, migrate's default plan and prologue.
    ``drafted``: the operations are makemigrations' own, just made from models.mp; their
    statements are then written out only when that can matter (see reads_statements)."""
    operations = tuple(migration.operations)
    atomic = migration.atomic or not dialect.supports_non_atomic
    rules = {rule.name: rule for rule in rules_for(dialect)}
    accepted = set(migration.lint_accept)
    found: list = []  # (operation, statement number, sql, Risk)
    for position, operation in enumerate(operations):
        for risk in _operation_risks(operation, tables_before):
            found.append((position, None, None, risk))
        for risk in dialect.rewrite_risks(dialect.rewrites(operation, Plan(atomic, operations))):
            found.append((position, None, None, risk))
    lines: list = []
    if statements is not None or not drafted or reads_statements(dialect, operations):
        if statements is None:
            statements = migration_statements(dialect, migration, config.online if config is not None else True)
        lines = shown_lines(dialect, migration, statements, config)
        found += _statement_findings(dialect, operations, atomic, statements)
    found.sort(key=lambda item: (item[0] if item[0] is not None else -1, item[1] or 0))
    return [Finding(risk.rule, migration.name, position,
                    operations[position].op if position is not None else None,
                    lines[number - 1] if number is not None else None,
                    normalized(sql) if sql is not None else None, risk.reason, rules[risk.rule].alternative,
                    risk.rule in accepted)
            for position, number, sql, risk in found]


# What a first migration holds. Written by makemigrations, their SQL is written without
# error (what would stop it, a NUL or a number too large, models.mp's reader refuses),
# and the application's rules, which read only run_sql steps, find nothing in it.
_CREATES = frozenset({"create_model", "create_enum"})


def reads_statements(dialect, operations: tuple) -> bool:
    """Must makemigrations write out the statements of ``operations`` (its own) for the
    lint? Not when they only create types and tables and the database's rules find
    nothing in mf's SQL for them (dialect.flags_own_sql): the first migration of a large
    project, tens of thousands of statements. Otherwise writing them may refuse a value
    (a backfill's) or a rule may find something."""
    for operation in operations:
        if operation.op not in _CREATES or (operation.op == "create_model" and operation.table_def is None):
            return True
    return dialect.flags_own_sql(operations)


def _statement_findings(dialect, operations: tuple, atomic: bool, statements: list) -> list:
    """[(operation, statement number, sql, Risk)] that the rules find in ``statements``."""
    found: list = []
    listed = lint_statements(dialect, operations, atomic, statements)
    checked = [s for s in listed if not is_comment(s.sql)]
    for index, risk in dialect.statement_risks(checked):
        statement = checked[index]
        found.append((statement.operation, statement.number, statement.sql, risk))
    for statement in checked:
        if statement.hand_written:
            for risk in _statement_risks(statement):
                found.append((statement.operation, statement.number, statement.sql, risk))
    if any(position is None for position, _number, _sql, _risk in found):
        # mf's own statements are traced to their operation only when one is reported:
        # it means writing each operation's SQL again.
        owners, _exact = _owners(dialect, operations, atomic, statements)
        found = [(owners[number - 1] if position is None else position, number, sql, risk)
                 for position, number, sql, risk in found]
    return found


def shown_lines(dialect, migration, statements: list, config=None) -> list:
    """For each of ``statements`` (migration_statements'), its line in `mf db sql NNN`
    (the "sql" list of its --json), from 1: the statements are shown among step
    headings, each transaction's BEGIN, prologue and COMMIT (steps.shown_statements)."""
    from .config import DEFAULT_STATEMENT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT
    from .steps import planned_step, shown_statements
    from .steps import shown_lines as lines_of

    step = planned_step(dialect, migration, statements)
    lock_timeout = config.statement_lock_timeout if config is not None else DEFAULT_STATEMENT_LOCK_TIMEOUT
    timeout = config.statement_timeout if config is not None else DEFAULT_STATEMENT_TIMEOUT
    return lines_of(step, shown_statements(step, dialect, lock_timeout, timeout))


def lint_statements(dialect, operations: tuple, atomic: bool, statements: list) -> list:
    """[LintStatement]: each statement with its transaction step and its operation."""
    owners, exact = _owners(dialect, operations, atomic, statements, only="run_sql")
    listed = []
    step = 0
    for index, sql in enumerate(statements):
        outside = isinstance(sql, OutsideTransaction) or not atomic
        if isinstance(sql, StepBoundary) or (outside and index > 0):
            step += 1
        owner = owners[index]
        hand_written = index in exact and operations[owner].op == "run_sql"
        listed.append(LintStatement(str(sql), index + 1, step, not outside, hand_written, owner))
        if isinstance(sql, OutsideTransaction) and atomic:
            step += 1
    return listed


_SEARCH_AHEAD = 64


def _owners(dialect, operations: tuple, atomic: bool, statements: list, only: Optional[str] = None) -> tuple:
    """([the position of the operation each statement carries out], {indexes found
    exactly}). Each operation's own statements are found in order among the
    migration's; a statement written for the migration as a whole (it depends on the
    other operations) goes with the operation before it. ``only``: trace only the
    operations of that kind (run_sql: its statements are its text, split), nothing else."""
    owners: list = [None] * len(statements)
    exact: set = set()
    cursor = 0
    for position, operation in enumerate(operations):
        if only is not None and operation.op != only:
            continue
        try:
            own = dialect.operation_sql(operation, atomic=atomic)
        except MfError:
            continue
        for text in own:
            # A statement written otherwise in the migration as a whole is not looked
            # for far ahead: the search stays linear in the migration's length.
            for index in range(cursor, min(len(statements), cursor + _SEARCH_AHEAD)):
                if owners[index] is None and str(statements[index]) == str(text):
                    owners[index] = position
                    exact.add(index)
                    cursor = index + 1
                    break
    if only is not None:
        return owners, exact
    last = None
    for index, owner in enumerate(owners):
        if owner is None:
            owners[index] = last
        else:
            last = owner
    return owners, exact


# ---------------------------------------------------------------- the application's rules

# The operations whose risk depends on the tables that exist before the migration.
_DROPS = frozenset({"drop_column", "drop_model"})


def _operation_risks(operation, tables_before: frozenset) -> list:
    kind = operation.op
    if kind == "drop_column" and operation.table in tables_before:
        return [Risk("ban-drop-column", f"column {operation.table}.{operation.field.column} is dropped")]
    if kind == "drop_model" and operation.table in tables_before:
        return [Risk("ban-drop-table", f"table {operation.table} is dropped")]
    if kind == "rename_column" and operation.old.column != operation.new.column:
        return [Risk("renaming-column", f"column {operation.table}.{operation.old.column} is renamed "
                                        f"to {operation.new.column}")]
    if kind == "alter_column" and operation.old.column != operation.new.column:
        return [Risk("renaming-column", f"column {operation.table}.{operation.old.column} is renamed "
                                        f"to {operation.new.column} (db_column)")]
    if kind == "rename_model" and operation.old_table != operation.new_table:
        return [Risk("renaming-table", f"table {operation.old_table} is renamed to {operation.new_table}")]
    return []


_ALTER = re.compile(rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?({IDENTIFIER})\s+(.*)$", re.IGNORECASE)
_DROP_COLUMN = re.compile(rf"\bDROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(?!CONSTRAINT\b|DEFAULT\b|NOT\b|"
                          rf"IDENTITY\b|EXPRESSION\b)({IDENTIFIER})", re.IGNORECASE)
_RENAME_COLUMN = re.compile(rf"^RENAME\s+(?:COLUMN\s+)?(?!TO\b|CONSTRAINT\b)({IDENTIFIER})\s+TO\s+({IDENTIFIER})",
                            re.IGNORECASE)
_RENAME_TABLE = re.compile(rf"^RENAME\s+TO\s+({IDENTIFIER})", re.IGNORECASE)
_DROP_TABLE = re.compile(rf"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?({IDENTIFIER})", re.IGNORECASE)
_TRANSACTION = re.compile(r"^(?:BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT)\b(?!\s*\.)", re.IGNORECASE)


def _statement_risks(statement: LintStatement) -> list:
    """The application's rules in a hand-written statement."""
    text = normalized(statement.sql)
    if statement.in_transaction and _TRANSACTION.match(text):
        return [Risk("transaction-nesting", f"{text.split()[0].upper()} inside the migration's transaction")]
    dropped = _DROP_TABLE.match(text)
    if dropped:
        return [Risk("ban-drop-table", f"table {identifier(dropped.group(1))} is dropped")]
    altered = _ALTER.match(text)
    if altered is None:
        return []
    table, actions = identifier(altered.group(1)), altered.group(2)
    renamed_table = _RENAME_TABLE.match(actions)
    if renamed_table:
        return [Risk("renaming-table", f"table {table} is renamed to {identifier(renamed_table.group(1))}")]
    renamed = _RENAME_COLUMN.match(actions)
    if renamed:
        return [Risk("renaming-column", f"column {table}.{identifier(renamed.group(1))} is renamed "
                                        f"to {identifier(renamed.group(2))}")]
    return [Risk("ban-drop-column", f"column {table}.{identifier(column.group(1))} is dropped")
            for column in _DROP_COLUMN.finditer(actions)]


# ---------------------------------------------------------------- rewrites

def operation_rewrites(dialect, operations, atomic: bool) -> list:
    """For each operation, [risks.Rewrite]: the tables it rewrites under a lock that
    blocks reads and writes (the ⏳ of makemigrations' tree)."""
    operations = tuple(operations)
    plan = Plan(atomic, operations)
    return [dialect.rewrites(operation, plan) for operation in operations]


def rewrite_notes(dialect, migration, statements: list) -> dict:
    """{statement index: [note]}: the ⏳ line `mf db sql` prints before a statement that
    rewrites a table."""
    atomic = migration.atomic or not dialect.supports_non_atomic
    notes: dict = {}
    taken: set = set()
    for rewritten in operation_rewrites(dialect, migration.operations, atomic):
        for rewrite in rewritten:
            pattern = dialect.rewrite_statement(rewrite)
            if pattern is None:
                continue
            for index, sql in enumerate(statements):
                if index not in taken and pattern.match(str(sql)):
                    taken.add(index)
                    notes.setdefault(index, []).append(f"⏳ rewrites table {rewrite.table} ({rewrite.why})")
                    break
    operations = tuple(migration.operations)
    listed = [s for s in lint_statements(dialect, operations, atomic, statements) if not is_comment(s.sql)]
    for index, risk in dialect.statement_risks(listed):
        statement = listed[index]
        if statement.hand_written and risk.rule in _REWRITING_RULES:
            altered = _ALTER.match(normalized(statement.sql))
            table = identifier(altered.group(1)) if altered else "?"
            notes.setdefault(statement.number - 1, []).append(f"⏳ rewrites table {table} ({risk.reason})")
    return notes


def sql_rewrite_notes(config, which) -> dict:
    """{statement text: [note]} for the statements that rewrite a table of the migration
    ``which`` names (a number or a file name, see store.find_migration)."""
    from . import store
    from .dialects import dialect_for

    files = store.list_migration_files(config.migrations_dir)
    file = store.find_migration(files, which, config.migrations_dir)
    migration = store.read_migrations(config.migrations_dir, files, [file])[file.name]
    dialect = dialect_for(config.driver)
    statements = migration_statements(dialect, migration, config.online)
    # By the statement's text: `mf db sql` shows the statements among step headings and
    # each step's BEGIN, prologue and COMMIT.
    return {str(statements[index]).rstrip(";"): notes
            for index, notes in rewrite_notes(dialect, migration, statements).items()}


# ---------------------------------------------------------------- makemigrations

_table_of = attrgetter("table")  # the tables before each file of a first migration: many thousands


def lint_draft(config, schema_before, result) -> tuple:
    """(findings, rewrites) for the files makemigrations writes (writer.MakeMigrationsResult):
    the findings of each file, and for each of ``result.operations`` its rewrites."""
    from . import store
    from .dialects import dialect_for
    from .operations import fold

    dialect = dialect_for(config.driver)
    state = schema_before
    findings: list = []
    rewrites: list = []
    for planned in result.files:
        name = os.path.basename(planned.path)
        atomic = planned.atomic  # not read back from its bytes: a first migration can be large
        number = int(name.split("_", 1)[0])
        migration = store.Migration(store.MigrationFile(number, name, planned.path), tuple(planned.operations),
                                    atomic, "", False)
        # Only a drop asks which tables exist before it: the files of a first migration
        # drop nothing, and listing its thousands of tables for each file is long.
        drops = any(operation.op in _DROPS for operation in planned.operations)
        tables = frozenset(map(_table_of, state.models.values())) if drops else frozenset()
        findings += lint_migration(dialect, migration, tables, config=config, drafted=True)
        rewrites += operation_rewrites(dialect, planned.operations, atomic or not dialect.supports_non_atomic)
        state = fold(planned.operations, state)
    if len(rewrites) != len(result.operations):
        rewrites = [[] for _ in result.operations]
    return findings, rewrites

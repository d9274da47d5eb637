"""What is risky on PostgreSQL while traffic runs: the lint rules about locks, rewrites
and types (after squawk and strong_migrations), the checks that find them in a
migration's statements, and the changes that still rewrite a table under ACCESS
EXCLUSIVE (announced with ⏳ by makemigrations and `mf db sql`).

The statements are read with small regular expressions: one statement at a time, in
the order migrate runs them, remembering what the migration did before (tables it
created, constraints it added NOT VALID and validated). mf's safe forms pass:
CREATE/DROP INDEX CONCURRENTLY outside a transaction, ADD CONSTRAINT ... NOT VALID then
VALIDATE CONSTRAINT in a later transaction, SET NOT NULL after a validated
CHECK (col IS NOT NULL), UNIQUE ... USING INDEX.
"""
from __future__ import annotations

import re
from typing import Optional

from .risks import IDENTIFIER, LintStatement, Risk, Rewrite, Rule, identifier, masked, normalized

RULES = (
    Rule("require-concurrent-index-creation",
         "CREATE INDEX without CONCURRENTLY on a table the migration did not create",
         "the build holds a SHARE lock: every INSERT, UPDATE and DELETE on the table waits until it ends",
         "CREATE INDEX CONCURRENTLY, in a migration step of its own outside the transaction"),
    Rule("require-concurrent-index-deletion",
         "DROP INDEX without CONCURRENTLY, of an index the migration did not create",
         "it takes ACCESS EXCLUSIVE on the index's table: reads and writes wait",
         "DROP INDEX CONCURRENTLY, outside the transaction"),
    Rule("ban-concurrent-index-creation-in-transaction",
         "CREATE or DROP INDEX CONCURRENTLY in a statement that runs inside a transaction",
         "PostgreSQL refuses it: the migration fails",
         "leave the index to mf (it runs CONCURRENTLY outside the transaction), or put the statement in a "
         "migration marked \"atomic\": false"),
    Rule("constraint-missing-not-valid",
         "ADD CONSTRAINT ... CHECK on an existing table without NOT VALID, or VALIDATE CONSTRAINT in the "
         "same transaction as the ADD ... NOT VALID",
         "every row is checked while ACCESS EXCLUSIVE is held: reads and writes wait for the scan",
         "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a later transaction (it takes only "
         "SHARE UPDATE EXCLUSIVE)"),
    Rule("adding-foreign-key-constraint",
         "a FOREIGN KEY (or REFERENCES) added to an existing table without NOT VALID",
         "the rows are validated while both tables are locked (SHARE ROW EXCLUSIVE): writes to both wait",
         "ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, then VALIDATE CONSTRAINT in a later transaction"),
    Rule("disallowed-unique-constraint",
         "ADD ... UNIQUE or PRIMARY KEY on an existing table without USING INDEX",
         "the index is built under ACCESS EXCLUSIVE: reads and writes wait for the whole build",
         "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX"),
    Rule("adding-not-nullable-field",
         "ALTER COLUMN ... SET NOT NULL on an existing table without a validated CHECK (col IS NOT NULL)",
         "every row is scanned under ACCESS EXCLUSIVE",
         "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID; VALIDATE it in a later transaction; then "
         "SET NOT NULL (PostgreSQL 12+ skips the scan) and drop the check"),
    Rule("adding-required-field",
         "ADD COLUMN ... NOT NULL without a DEFAULT on an existing table",
         "it fails as soon as the table has a row",
         "add the column nullable (or with a default), backfill it, then make it NOT NULL"),
    Rule("adding-field-with-default",
         "ADD COLUMN with a volatile DEFAULT (random(), gen_random_uuid(), clock_timestamp(), nextval(), ...) "
         "or a STORED generated column, on an existing table",
         "the table is rewritten under ACCESS EXCLUSIVE (a constant or now() default is not)",
         "add the column without the default, set the default, backfill in batches with run_sql"),
    Rule("adding-serial-primary-key-field",
         "ADD COLUMN serial/bigserial or GENERATED ... AS IDENTITY on an existing table",
         "the table is rewritten under ACCESS EXCLUSIVE to fill the new column",
         "add a plain bigint column, attach a sequence as its default, backfill in batches"),
    Rule("changing-column-type",
         "a column type change that rewrites the table (narrowing a varchar, int -> bigint, an enum recreated, "
         "any hand-written ALTER COLUMN ... TYPE)",
         "the table is rewritten (or scanned) under ACCESS EXCLUSIVE, and clients may break on the new type",
         "expand/contract: add a new column, backfill it in batches with run_sql, switch readers and writers, "
         "drop the old column (README: Rewrites)"),
    Rule("ban-drop-database", "DROP DATABASE in a migration", "it removes every table",
         "drop databases by hand, never from a migration"),
    Rule("ban-truncate-cascade", "TRUNCATE ... CASCADE",
         "it empties every table that references the table, recursively",
         "truncate the tables you mean, by name, without CASCADE"),
    Rule("prefer-robust-stmts",
         "a hand-written statement outside a transaction without IF [NOT] EXISTS",
         "a run that stops half-way cannot run again: the object already exists (or is already gone)",
         "CREATE INDEX CONCURRENTLY IF NOT EXISTS, DROP INDEX CONCURRENTLY IF EXISTS, ADD COLUMN IF NOT EXISTS"),
    Rule("require-timeout-settings",
         "statements that could wait for a lock forever",
         "a DDL statement queued behind a long query blocks every query that comes after it",
         "keep mf's timeouts; do not switch lock_timeout or statement_timeout off in run_sql",
         accepted="mf's runner starts every transaction with SET LOCAL lock_timeout (statement_lock_timeout, "
                  "configurable) and gives the connection a statement_timeout; reported only when a run_sql step "
                  "sets either to 0 or resets it"),
    Rule("prefer-bigint-over-int", "integer / serial columns in hand-written SQL",
         "a 32-bit key runs out at 2,147,483,647; widening it later rewrites the table",
         "bigint (BigIntegerField / BigAutoField in models.mp)"),
    Rule("prefer-bigint-over-smallint", "smallint / smallserial columns in hand-written SQL",
         "it runs out at 32,767; widening it later rewrites the table", "bigint"),
    Rule("prefer-identity", "serial / bigserial columns in hand-written SQL",
         "serial types make permissions, dependencies and dumps harder",
         "GENERATED BY DEFAULT AS IDENTITY (what mf writes for AutoField)"),
    Rule("prefer-text-field", "varchar(n) columns in hand-written SQL",
         "changing the limit later rewrites the table under ACCESS EXCLUSIVE",
         "text with a CHECK (length(col) <= n), which is changed with NOT VALID + VALIDATE"),
    Rule("ban-char-field", "char(n) columns in hand-written SQL",
         "char pads values with blanks and is no faster than text", "text (or varchar)"),
    Rule("prefer-timestamptz", "timestamp without time zone in hand-written SQL",
         "values lose their time zone; comparisons across zones go wrong",
         "timestamptz (what mf writes for DateTimeField)"),
    Rule("prefer-jsonb", "json columns in hand-written SQL",
         "json has no equality operator (SELECT DISTINCT and GROUP BY fail) and is reparsed on every read",
         "jsonb (what mf writes for JSONField)"),
)

_ADD_COLUMN_START = re.compile(rf"\bADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?!(?:CONSTRAINT|CHECK|UNIQUE|"
                               rf"PRIMARY|FOREIGN|EXCLUDE)\b)({IDENTIFIER})\s+(.*)$", re.IGNORECASE)
_CREATE_TABLE = re.compile(rf"^CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE\s+"
                           rf"(?:IF\s+NOT\s+EXISTS\s+)?({IDENTIFIER})(.*)$", re.IGNORECASE)
_CREATE_INDEX = re.compile(rf"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(IF\s+NOT\s+EXISTS\s+)?"
                           rf"(?:({IDENTIFIER})\s+)?ON\s+(?:ONLY\s+)?({IDENTIFIER})", re.IGNORECASE)
_DROP_INDEX = re.compile(rf"^DROP\s+INDEX\s+(CONCURRENTLY\s+)?(IF\s+EXISTS\s+)?({IDENTIFIER})", re.IGNORECASE)
_ALTER_TABLE = re.compile(rf"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?({IDENTIFIER})\s+(.*)$",
                          re.IGNORECASE)
_NOT_VALID = re.compile(r"\bNOT\s+VALID\b", re.IGNORECASE)
_ADDED_CONSTRAINT = re.compile(rf"\bADD\s+CONSTRAINT\s+({IDENTIFIER})", re.IGNORECASE)
_ADD_CHECK = re.compile(rf"\bADD\s+(?:CONSTRAINT\s+{IDENTIFIER}\s+)?CHECK\b", re.IGNORECASE)
_ADD_UNIQUE = re.compile(rf"\bADD\s+(?:CONSTRAINT\s+{IDENTIFIER}\s+)?(?:UNIQUE|PRIMARY\s+KEY)\b", re.IGNORECASE)
_FOREIGN_KEY = re.compile(r"\bFOREIGN\s+KEY\b|\bREFERENCES\b", re.IGNORECASE)
_USING_INDEX = re.compile(r"\bUSING\s+INDEX\b", re.IGNORECASE)
_NOT_NULL_CHECK = re.compile(rf"\bCHECK\s*\(\s*\(?\s*({IDENTIFIER})\s*\)?\s+IS\s+NOT\s+NULL\s*\)", re.IGNORECASE)
_VALIDATE = re.compile(rf"\bVALIDATE\s+CONSTRAINT\s+({IDENTIFIER})", re.IGNORECASE)
_SET_TYPE = re.compile(rf"\bALTER\s+(?:COLUMN\s+)?({IDENTIFIER})\s+(?:SET\s+DATA\s+)?TYPE\b\s*(.*)$",
                       re.IGNORECASE)
_SET_NOT_NULL = re.compile(rf"\bALTER\s+(?:COLUMN\s+)?({IDENTIFIER})\s+SET\s+NOT\s+NULL\b", re.IGNORECASE)
_VOLATILE_DEFAULT = re.compile(r"\bDEFAULT\b.*\b(random|gen_random_uuid|uuid_generate_v[14]|clock_timestamp|"
                               r"timeofday|nextval)\s*\(", re.IGNORECASE)
_STORED = re.compile(r"\bGENERATED\s+ALWAYS\s+AS\s*\(.*\)\s*STORED\b", re.IGNORECASE)
_AUTO = re.compile(r"\b(?:small|big)?serial\d?\b|\bGENERATED\s+(?:ALWAYS|BY\s+DEFAULT)\s+AS\s+IDENTITY\b",
                   re.IGNORECASE)
_NOT_NULL = re.compile(r"\bNOT\s+NULL\b", re.IGNORECASE)
_DEFAULT = re.compile(r"\bDEFAULT\b", re.IGNORECASE)
_INLINE_UNIQUE = re.compile(r"\bUNIQUE\b|\bPRIMARY\s+KEY\b", re.IGNORECASE)
_TRUNCATE_CASCADE = re.compile(r"^TRUNCATE\b.*\bCASCADE\b", re.IGNORECASE)
_DROP_DATABASE = re.compile(r"^DROP\s+DATABASE\b", re.IGNORECASE)
_TIMEOUT_OFF = re.compile(r"^(?:SET\s+(?:LOCAL\s+|SESSION\s+)?(lock_timeout|statement_timeout)\s*(?:=|TO)\s*"
                          r"(?:0|'0'|DEFAULT)\s*$|RESET\s+(lock_timeout|statement_timeout|ALL)\b)", re.IGNORECASE)
_ROBUST = re.compile(r"\bIF\s+(?:NOT\s+)?EXISTS\b", re.IGNORECASE)
_NEEDS_ROBUST = re.compile(r"^(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX|CREATE\s+TABLE|DROP\s+TABLE|"
                           r"ALTER\s+TABLE\s+.*\bADD\s+COLUMN|ALTER\s+TABLE\s+.*\bDROP\s+COLUMN)\b", re.IGNORECASE)
_TYPES = (
    ("prefer-identity", re.compile(r"\b(?:big|small)?serial[248]?\b", re.IGNORECASE), "a serial column"),
    ("prefer-bigint-over-int", re.compile(r"\b(?:int|integer|int4|serial|serial4)\b", re.IGNORECASE),
     "a 32-bit integer column"),
    ("prefer-bigint-over-smallint", re.compile(r"\b(?:smallint|int2|smallserial|serial2)\b", re.IGNORECASE),
     "a smallint column"),
    ("prefer-text-field", re.compile(r"\b(?:varchar|character\s+varying)\s*\(", re.IGNORECASE),
     "a varchar(n) column"),
    ("ban-char-field", re.compile(r"\b(?:char|character|bpchar)\b(?!\s+varying)", re.IGNORECASE),
     "a char column"),
    ("prefer-timestamptz", re.compile(r"\btimestamp\b(?!\s+with\s+time\s+zone)(?:\s*\(\d+\))?"
                                      r"(?!\s*with\s+time\s+zone)", re.IGNORECASE),
     "a timestamp without time zone column"),
    ("prefer-jsonb", re.compile(r"\bjson\b", re.IGNORECASE), "a json column"),
)


class _Migration:
    """What the statements before the current one did."""

    def __init__(self):
        self.created_tables: set = set()
        self.created_indexes: set = set()
        self.not_valid: dict = {}        # (table, constraint) -> the step that added it NOT VALID
        self.not_null_checks: dict = {}  # (table, constraint) -> the column it checks IS NOT NULL
        self.validated_not_null: set = set()  # (table, column) with a validated CHECK (col IS NOT NULL)


def statement_risks(statements: list) -> list:
    """[(position in ``statements``, Risk)] for a migration's statements (LintStatement),
    in order."""
    found = []
    state = _Migration()
    for position, statement in enumerate(statements):
        found.extend((position, risk) for risk in _risks(statement, state))
    return found


def flags_own_sql(operations) -> bool:
    """Could statement_risks flag a statement mf writes for ``operations``? Not when they
    only create enum types and tables, as a first migration does: CREATE TYPE matches no
    check, CREATE TABLE only records its table, and each CREATE INDEX mf writes for a new
    table (never CONCURRENTLY) is on the table just recorded. Provided the table's and
    the indexes' names hold no "--" or "/*": normalized() would take that for a comment
    and read another name."""
    for operation in operations:
        if operation.op == "create_enum":
            continue
        if operation.op != "create_model" or operation.table_def is None:
            return True
        model = operation.table_def.model
        names = [model.table] + [index.name for index in model.indexes if not index.constraint]
        if any("--" in name or "/*" in name for name in names):
            return True
    return False


def _risks(statement: LintStatement, state: _Migration) -> list:
    text = normalized(statement.sql)
    risks = []
    if statement.hand_written:
        risks += _hand_written(statement, text)
    created = _CREATE_TABLE.match(text)
    if created:
        state.created_tables.add(identifier(created.group(1)))
        if statement.hand_written:
            risks += _types(created.group(2))
        return risks
    index = _CREATE_INDEX.match(text)
    if index:
        return risks + _create_index(statement, index, state)
    dropped = _DROP_INDEX.match(text)
    if dropped:
        return risks + _drop_index(statement, dropped, state)
    altered = _ALTER_TABLE.match(text)
    if altered:
        table = identifier(altered.group(1))
        if table not in state.created_tables:
            risks += _alter_table(statement, table, altered.group(2), state)
    return risks


def _hand_written(statement: LintStatement, text: str) -> list:
    risks = []
    if _TRUNCATE_CASCADE.match(masked(text)):
        risks.append(Risk("ban-truncate-cascade", "TRUNCATE ... CASCADE empties every table that references it"))
    if _DROP_DATABASE.match(text):
        risks.append(Risk("ban-drop-database", "DROP DATABASE in a migration"))
    off = _TIMEOUT_OFF.match(text)
    if off:
        risks.append(Risk("require-timeout-settings",
                          f"it switches off the {(off.group(1) or off.group(2)).lower()} that mf sets, so a statement "
                          "can wait for a lock while every query queues behind it"))
    if not statement.in_transaction and _NEEDS_ROBUST.match(text) and not _ROBUST.search(text):
        risks.append(Risk("prefer-robust-stmts", "it runs outside a transaction: a run that stops after it "
                                                 "cannot run it again"))
    return risks


def _create_index(statement: LintStatement, index, state: _Migration) -> list:
    table = identifier(index.group(4))
    if index.group(3):
        state.created_indexes.add(identifier(index.group(3)))
    if index.group(1):
        if statement.in_transaction:
            return [Risk("ban-concurrent-index-creation-in-transaction",
                         "CREATE INDEX CONCURRENTLY cannot run inside a transaction block")]
        return []
    if table in state.created_tables:
        return []
    return [Risk("require-concurrent-index-creation",
                 f"table {table} exists before this migration: building the index blocks its writes")]


def _drop_index(statement: LintStatement, dropped, state: _Migration) -> list:
    if dropped.group(1):
        if statement.in_transaction:
            return [Risk("ban-concurrent-index-creation-in-transaction",
                         "DROP INDEX CONCURRENTLY cannot run inside a transaction block")]
        return []
    name = identifier(dropped.group(3))
    if name in state.created_indexes:
        return []
    return [Risk("require-concurrent-index-deletion",
                 f"dropping index {name} takes ACCESS EXCLUSIVE on its table")]


def _alter_table(statement: LintStatement, table: str, actions: str, state: _Migration) -> list:
    risks = []
    plain = masked(actions)
    not_valid = bool(_NOT_VALID.search(plain))
    added = _ADDED_CONSTRAINT.search(actions)
    if added and not_valid:
        key = (table, identifier(added.group(1)))
        state.not_valid[key] = statement.step
        check = _NOT_NULL_CHECK.search(actions)
        if check:
            state.not_null_checks[key] = identifier(check.group(1))
    validated = _VALIDATE.search(actions)
    if validated:
        key = (table, identifier(validated.group(1)))
        if state.not_valid.get(key) == statement.step and statement.in_transaction:
            risks.append(Risk("constraint-missing-not-valid",
                              f"constraint {key[1]} is validated in the transaction that added it: the scan "
                              f"runs while ACCESS EXCLUSIVE on {table} is still held"))
        if key in state.not_null_checks:
            state.validated_not_null.add((table, state.not_null_checks[key]))
    column = _ADD_COLUMN_START.search(actions)
    if column:
        risks += _add_column(statement, table, identifier(column.group(1)), column.group(2))
    elif _FOREIGN_KEY.search(plain) and _ADD_ANY.search(plain) and not not_valid:
        risks.append(Risk("adding-foreign-key-constraint",
                          f"the foreign key is validated while {table} and the table it references are locked"))
    elif _ADD_CHECK.search(actions) and not not_valid:
        risks.append(Risk("constraint-missing-not-valid",
                          f"every row of {table} is checked under ACCESS EXCLUSIVE"))
    elif _ADD_UNIQUE.search(actions) and not _USING_INDEX.search(plain):
        risks.append(Risk("disallowed-unique-constraint",
                          f"the unique index is built under ACCESS EXCLUSIVE on {table}"))
    if statement.hand_written:
        retyped = _SET_TYPE.search(actions)
        if retyped:
            risks.append(Risk("changing-column-type",
                              f"changing the type of {table}.{identifier(retyped.group(1))} can rewrite the table "
                              "under ACCESS EXCLUSIVE"))
            risks += _types(retyped.group(2))
    not_null = _SET_NOT_NULL.search(actions)
    if not_null and (table, identifier(not_null.group(1))) not in state.validated_not_null:
        risks.append(Risk("adding-not-nullable-field",
                          f"SET NOT NULL scans every row of {table} under ACCESS EXCLUSIVE"))
    return risks


_ADD_ANY = re.compile(r"\bADD\b", re.IGNORECASE)


def _add_column(statement: LintStatement, table: str, column: str, definition: str) -> list:
    plain = masked(definition)
    where = f"{table}.{column}"
    risks = []
    if _STORED.search(plain):
        risks.append(Risk("adding-field-with-default", f"the stored generated column {where} rewrites {table}"))
    elif _VOLATILE_DEFAULT.search(plain):
        risks.append(Risk("adding-field-with-default", f"the volatile default of {where} rewrites {table}"))
    if _AUTO.search(plain):
        risks.append(Risk("adding-serial-primary-key-field", f"filling {where} rewrites {table}"))
    elif _NOT_NULL.search(plain) and not _DEFAULT.search(plain):
        risks.append(Risk("adding-required-field", f"{where} is NOT NULL without a default: it fails on any row"))
    if _FOREIGN_KEY.search(plain) and not _NOT_VALID.search(plain):
        risks.append(Risk("adding-foreign-key-constraint",
                          f"the foreign key of {where} locks {table} and the table it references"))
    if _INLINE_UNIQUE.search(plain):
        risks.append(Risk("disallowed-unique-constraint",
                          f"the unique index of {where} is built under ACCESS EXCLUSIVE on {table}"))
    if statement.hand_written:
        risks += _types(definition)
    return risks


def _types(definition: str) -> list:
    """Type preferences, for the column definitions of hand-written SQL."""
    plain = masked(definition)
    risks = []
    seen = set()
    for rule, pattern, words in _TYPES:
        if pattern.search(plain) and rule not in seen:
            if rule == "prefer-bigint-over-int" and "prefer-identity" in seen and not re.search(
                    r"\b(?:int|integer|int4)\b", plain, re.IGNORECASE):
                continue  # serial alone: prefer-identity says it, and bigserial is no better
            seen.add(rule)
            risks.append(Risk(rule, f"{words} in hand-written SQL"))
    return risks


# ---------------------------------------------------------------- rewrites

def rewrites(dialect, operation, plan) -> list:
    """[Rewrite] for the tables ``operation`` rewrites under ACCESS EXCLUSIVE."""
    from .postgresql import _ColumnChange

    if operation.op == "alter_column" and operation.table_def is not None:
        change = _ColumnChange(dialect, operation, plan)
        if change.type and _type_rewrites(change.old_type, change.new_type):
            return [Rewrite(operation.table, operation.new.column,
                            f"{dialect.type_display(change.old_type)} -> {dialect.type_display(change.new_type)}")]
        return []
    if operation.op == "alter_enum":
        return _enum_rewrites(dialect, operation, plan)
    if operation.op == "add_column":
        return _new_column_rewrites(dialect, operation)
    return []


def _new_column_rewrites(dialect, op) -> list:
    """A column added with a value computed per row (a volatile default, an identity):
    PostgreSQL writes every row again to fill it."""
    from ..language.fields import AUTO_TYPES

    if op.field.type in AUTO_TYPES:
        return [Rewrite(op.table, op.field.column, "identity column filled for every row", rule=None)]
    default = dialect.default_sql(op.field)
    if default is not None and _VOLATILE_DEFAULT.search(f"DEFAULT {default}"):
        return [Rewrite(op.table, op.field.column, f"volatile default {default}", rule=None)]
    return []


def _enum_rewrites(dialect, op, plan) -> list:
    old = dict(op.old_members)
    if [v for _k, v in op.old_members] == [v for _k, v in op.new_members]:
        return []
    renamed = {old[k]: v for k, v in op.new_members if k in old and old[k] != v}
    added = [v for k, v in op.new_members if k not in old]
    if dialect._can_alter_in_place(op, plan, renamed, added):
        return []
    new_keys = {k for k, _v in op.new_members}
    why = "a value removed" if any(k not in new_keys for k in old) else "values reordered or reused"
    return [Rewrite(t.model.table, f.column, f"enum {op.name} recreated ({why})")
            for t in op.tables for f in t.model.fields if f.enum == op.name]


_TYPE_FORM = re.compile(r"^([a-z ]+?)\s*(?:\((\d+)(?:\s*,\s*(\d+))?\))?$")


def _type_rewrites(old_type: str, new_type: str) -> bool:
    """Does changing a column from ``old_type`` to ``new_type`` rewrite the table?
    PostgreSQL keeps the rows when the old values are valid as they are: a varchar
    made longer or unlimited, numeric given more digits with the same scale."""
    if old_type == new_type:
        return False
    old, new = _TYPE_FORM.match(old_type), _TYPE_FORM.match(new_type)
    if old is None or new is None:
        return True  # an enum or another named type: the values are converted
    old_base, new_base = old.group(1), new.group(1)
    if old_base == "varchar" and new_base == "text":
        return False
    if old_base == new_base == "varchar":
        return new.group(2) is not None and old.group(2) is not None and int(new.group(2)) < int(old.group(2))
    if old_base == new_base == "numeric":
        if new.group(2) is None:
            return False
        return old.group(2) is None or int(new.group(2)) < int(old.group(2)) or new.group(3) != old.group(3)
    return True


def changing_type_risks(rewritten: list) -> list:
    """The changing-column-type findings of an operation's rewrites."""
    return [Risk(r.rule, f"{r.why} rewrites table {r.table} under ACCESS EXCLUSIVE")
            for r in rewritten if r.rule is not None]


def rewrite_statement(rewrite: Rewrite, dialect) -> Optional[re.Pattern]:
    """The statement that carries out ``rewrite``: its ALTER COLUMN ... TYPE, or the
    ADD COLUMN of a new column."""
    table, column = re.escape(dialect.quote(rewrite.table)), re.escape(dialect.quote(rewrite.column))
    if rewrite.rule is None:
        return re.compile(rf"^ALTER TABLE {table} ADD COLUMN {column} ")
    return re.compile(rf"^ALTER TABLE {table} ALTER COLUMN {column} TYPE\b")

"""What a migration locks: the database objects its operations create, alter or point
at, all of which its one transaction holds locks on until it commits.

PostgreSQL keeps every lock of every transaction in one shared table of fixed size
(about max_locks_per_transaction x max_connections entries), and a transaction that
needs more fails with "out of shared memory" after doing most of its work. Counting
here, from the operations alone and without a database, serves both sides of that
limit: makemigrations splits a migration that touches more tables than the project
allows (split_operations), and migrate compares a pending migration's estimate
with the server's table before running anything (lock_estimate).

Each object is a key such as ("table", "orders") or ("index", "orders", "orders_pkey"),
so that what several operations of one migration touch counts once, as the database
counts it. The estimate errs high: measured on PostgreSQL 15 against the generated
schemas of benchmarks/generate.py it comes out a few per cent above the locks the
transaction really holds (tests/test_lock_budget.py compares the two).
"""
from __future__ import annotations

from typing import Optional

from .records import AlterEnum, CreateEnum, DropEnum, RenameModel
from .tables import TableDef

# What the applier adds to every migration's transaction: the ledger (its table, key
# index, name index, sequence, toast table and index, row type, constraints) and the
# transaction's own ids.
LEDGER_LOCKS = 12

# Column types stored with a variable length: a table holding one gets a TOAST table
# and its index on PostgreSQL, two more objects created and locked.
_VARIABLE_LENGTH = frozenset({"CharField", "TextField", "JSONField", "BinaryField", "DecimalField"})


def locked_objects(operation) -> set:
    """The objects one operation creates, alters, drops or references (a foreign key
    locks the table it points at); empty for a data step, whose SQL is its own."""
    found = _locked(operation, table_objects)
    if isinstance(operation, (CreateEnum, DropEnum, AlterEnum)):
        found.add(("type", operation.name))
    table = getattr(operation, "table", None)
    index = getattr(operation, "index", None)
    if index is not None and table is not None:
        found.add(("index", table, index.name))  # a dropped index is no longer in the table_def
    return found


def _locked(operation, of_table) -> set:
    """What ``of_table`` gives of each table an operation touches, with the tables it
    names (its own, the old name of a renamed one)."""
    if isinstance(operation, (CreateEnum, DropEnum)):
        return set()
    if isinstance(operation, AlterEnum):
        found: set = set()
        for table_def in operation.tables:
            found |= of_table(table_def)
        return found
    table_def: Optional[TableDef] = getattr(operation, "table_def", None)
    table = getattr(operation, "table", None)
    found = of_table(table_def) if table_def is not None else set()
    if table is not None:
        found.add(("table", table))
    if isinstance(operation, RenameModel):
        found.add(("table", operation.old_table))
    return found


def table_objects(table_def: TableDef) -> set:
    """A table and what comes with it: its row type, key sequence, TOAST table, every
    index and constraint, and the tables its foreign keys point at."""
    model = table_def.model
    table = model.table
    found = {("table", table), ("type", table)}
    for f in model.fields:
        if f.primary_key:
            found |= {("index", table, "pkey"), ("constraint", table, "pkey")}
            if f.type.endswith("AutoField"):  # an identity column: its sequence
                found.add(("sequence", table, f.column))
        elif f.unique:
            found |= {("index", table, f.column), ("constraint", table, f.column)}
        if f.type in _VARIABLE_LENGTH:
            found |= {("toast", table), ("index", table, "toast")}
        if f.enum is not None:
            found.add(("type", f.enum))
    for field_name, reference in {**table_def.references, **table_def.deferred}.items():
        found |= {("table", reference.table), ("constraint", table, "fk " + field_name)}
    for index in model.indexes:
        found.add(("index", table, index.name))
        if index.constraint:
            found.add(("constraint", table, index.name))
    return found


def tables_of(objects: set) -> set:
    return {key for key in objects if key[0] == "table"}


def locked_tables(operation) -> set:
    """tables_of(locked_objects(operation)), without listing the rest: what splitting a
    migration counts, for each of a first migration's many thousand operations."""
    return _locked(operation, _tables_of_table)


def _tables_of_table(table_def: TableDef) -> set:
    """The tables among table_objects(table_def): its own and those its foreign keys point at."""
    found = {("table", table_def.model.table)}
    for reference in {**table_def.references, **table_def.deferred}.values():
        found.add(("table", reference.table))
    return found


def lock_estimate(operations) -> int:
    """About how many locks one transaction running ``operations`` (and its ledger row)
    holds at its end on PostgreSQL: every object counted once."""
    objects: set = set()
    for operation in operations:
        objects |= locked_objects(operation)
    return len(objects) + LEDGER_LOCKS


def split_operations(operations, max_tables: int) -> list:
    """``operations`` cut into consecutive parts, each touching at most ``max_tables``
    tables (a table a foreign key points at counts); one part when they all fit. The
    order is kept, so the parts applied one after another do what the whole did: the
    differ puts a table before the tables that point at it and a cycle's keys after
    both tables, so no part points at a table a later part creates. An operation that
    alone touches more tables than that makes a part of its own."""
    parts: list = []
    current: list = []
    touched: set = set()
    for operation in operations:
        tables = locked_tables(operation)
        if current and len(touched | tables) > max_tables:
            parts.append(current)
            current, touched = [], set()
        current.append(operation)
        touched |= tables
    if current or not parts:
        parts.append(current)
    return parts

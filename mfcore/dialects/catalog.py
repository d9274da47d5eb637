"""What a dialect reads from a live database's catalog: plain records, the same for
every database, so code past the dialect (adoption today, drift detection later)
compares them without knowing where they came from.

Names are as the database stores them; types are the database's own spelling
(``varchar(20)``, ``INTEGER``); defaults are the SQL text the catalog shows
(``'ADMIN'::userrole``, ``0``), or None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    default: Optional[str] = None
    identity: bool = False  # filled by the database: an identity column, AUTOINCREMENT


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple
    target: str             # the referenced table
    target_columns: tuple
    on_delete: str          # NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT
    name: Optional[str] = None  # None where it has none (SQLite: no CONSTRAINT name)
    deferrable: bool = False
    initially_deferred: bool = False


@dataclass(frozen=True)
class Unique:
    """A UNIQUE constraint: its CONSTRAINT name (on SQLite, read from the table's
    definition; the name of its automatic index when it has none)."""

    name: str
    columns: tuple


@dataclass(frozen=True)
class Index:
    """An index made with CREATE INDEX (not one that backs a key or a UNIQUE)."""

    name: str
    columns: tuple          # None for an expression
    unique: bool
    descending: tuple = ()  # the columns sorted DESC
    condition: Optional[str] = None  # a partial index's WHERE, as the database shows it
    opclasses: tuple = ()   # per column: its operator class where not the type's default, else None


@dataclass(frozen=True)
class Check:
    """A ``column IN (...)`` CHECK: how SQLite keeps an enum column's values."""

    name: Optional[str]
    column: str
    values: tuple


@dataclass(frozen=True)
class CheckConstraint:
    """Any other CHECK constraint: its name (None where it has none) and its expression
    as the database gives it back (SQLite: as written; PostgreSQL: its own spelling)."""

    name: Optional[str]
    expression: str


@dataclass
class Table:
    name: str
    columns: dict = field(default_factory=dict)        # name -> Column, in table order
    primary_key: tuple = ()
    primary_key_name: Optional[str] = None             # where the database names it
    foreign_keys: list = field(default_factory=list)   # [ForeignKey]
    uniques: list = field(default_factory=list)        # [Unique]
    indexes: list = field(default_factory=list)        # [Index]
    checks: list = field(default_factory=list)         # [Check]
    check_constraints: list = field(default_factory=list)  # [CheckConstraint]: the checks not in checks


@dataclass
class Catalog:
    tables: dict = field(default_factory=dict)  # name -> Table
    enums: dict = field(default_factory=dict)   # type name -> (label, ...) in declared order

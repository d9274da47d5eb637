"""Operations -> SQL, one module per database, registered by driver name.

A dialect is the whole adapter for its database, in the manner of Alembic's
DefaultImpl and PostgresqlImpl: shared behaviour once in base.py, differences in the
subclasses. It knows no files and opens no connections. It turns operations into
statement strings (identifiers quoted, values escaped, one implementation for all),
writes the ledger's SQL, reads the catalog through a connection it is given
(catalog.py's records), plans reset's drops, and answers what the applier asks of a
database: its lock, the transaction's first statements, whether statements may run
outside a transaction, whether foreign keys must be switched off around a change,
whether enums are types of their own, how parameters are written.
"""
from __future__ import annotations

import importlib

_MODULES = {
    "sqlite": "mfcore.dialects.sqlite",
    "postgresql": "mfcore.dialects.postgresql",
}
ALIASES = {"postgres": "postgresql", "sqlite3": "sqlite"}


def canonical_driver(name: str) -> str | None:
    name = (name or "").strip().lower()
    name = ALIASES.get(name, name)
    return name if name in _MODULES else None


def dialect_for(driver: str):
    """The Dialect instance for a driver name (sqlite, postgresql, or the alias postgres)."""
    canonical = canonical_driver(driver)
    if canonical is None:
        raise ValueError(f"unknown database driver '{driver}' (known: sqlite, postgresql)")
    module = importlib.import_module(_MODULES[canonical])
    return module.DIALECT

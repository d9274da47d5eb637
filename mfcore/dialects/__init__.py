"""Operations -> SQL, one module per database, registered by driver name.

A dialect knows no files and no connections: it turns operations into statement
strings (identifiers quoted, values escaped) and answers the few questions the
applier must ask of a database (can this run in a transaction, must foreign keys
be switched off around it, how are parameters written).
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

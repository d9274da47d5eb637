"""mf: async schema migrations for projects whose data model lives in models.mp.

    import mfcore
    applied = await mfcore.migrate()                 # config found from the cwd
    undone = await mfcore.rollback(steps=1)          # undo the newest applied migration
    records = await mfcore.status()                  # every command of `mf` is a function here
    schema = mfcore.parse(open("models.mp").read())
    operations = mfcore.diff(old_schema, schema)

Importing mfcore is cheap: the parser, the differ and the database drivers load
on first use.
"""
from __future__ import annotations

from .errors import (ConfigError, DatabaseError, DataLossError, DriftError, IntegrityError, IrreversibleError,
                     LockTimeoutError, MfError, MigrationFileError, ModelsError, RebaseConflictError,
                     SchemaFileError, SquashError, UnresolvedMigrationError, UnsafeChangeError)

__version__ = "0.1.0"

__all__ = [
    "migrate", "rollback", "rollback_sql", "makemigrations", "status", "migrate_all", "rollback_all", "status_all",
    "sql", "lint_migrations", "pending_sql", "resolve", "reset", "reset_plan", "carry_over", "drift", "inspect", "baseline", "rebase", "squash",
    "parse", "diff", "load_schema", "dump_schema", "load_config",
    "MfError", "ConfigError", "ModelsError", "SchemaFileError", "MigrationFileError", "UnsafeChangeError",
    "IntegrityError", "DriftError", "DatabaseError", "LockTimeoutError", "UnresolvedMigrationError",
    "IrreversibleError", "DataLossError", "RebaseConflictError", "SquashError", "__version__",
]

_LAZY = {
    "migrate": ("mfcore.api", "migrate"),
    "rollback": ("mfcore.api", "rollback"),
    "rollback_sql": ("mfcore.api", "rollback_sql"),
    "makemigrations": ("mfcore.api", "makemigrations"),
    "status": ("mfcore.api", "status"),
    "migrate_all": ("mfcore.api", "migrate_all"),
    "rollback_all": ("mfcore.api", "rollback_all"),
    "status_all": ("mfcore.api", "status_all"),
    "sql": ("mfcore.api", "sql"),
    "lint_migrations": ("mfcore.api", "lint_migrations"),
    "pending_sql": ("mfcore.api", "pending_sql"),
    "resolve": ("mfcore.api", "resolve"),
    "reset": ("mfcore.api", "reset"),
    "reset_plan": ("mfcore.api", "reset_plan"),
    "carry_over": ("mfcore.api", "carry_over"),
    "drift": ("mfcore.api", "drift"),
    "inspect": ("mfcore.api", "inspect"),
    "baseline": ("mfcore.api", "baseline"),
    "rebase": ("mfcore.api", "rebase"),
    "squash": ("mfcore.api", "squash"),
    "parse": ("mfcore.language.parser", "parse"),
    "diff": ("mfcore.differ", "diff"),
    "load_schema": ("mfcore.store", "load_schema"),
    "dump_schema": ("mfcore.snapshot", "dump_schema"),
    "load_config": ("mfcore.config", "load_config"),
}


def __getattr__(name):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'mfcore' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

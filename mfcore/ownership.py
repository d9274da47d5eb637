"""What the schema owns, for `mf db reset`: every table and enum type the migration
history names, and the order in which tables can be dropped without CASCADE.
No database access: the applier drops what this module lists.
"""
from __future__ import annotations

from .config import Config
from .errors import MigrationFileError
from .history import migration_files
from .schema import Schema
from .store import load_history, read_snapshot


def owned_objects(config: Config) -> tuple:
    """Every table (with the tables it references) and enum type named by any state
    of the migration history, and by schema.json."""
    files = migration_files(config.migrations_dir)
    try:
        history, _final = load_history(config.migrations_dir, files)
    except MigrationFileError as exc:
        raise MigrationFileError(f"cannot tell which tables mf owns, so nothing was dropped: {exc}") from None
    tables: dict = {}
    enums: set = set()

    def take(schema: Schema) -> None:
        for model in schema.models.values():
            refs = tables.setdefault(model.table, set())
            for f in model.fields:
                target = schema.models.get(f.target) if f.target else None
                if target is not None:
                    refs.add(target.table)
        enums.update(e.type_name for e in schema.enums.values())

    state = Schema()
    for migration in history:
        for operation in migration.operations:
            state = operation.apply(state)
        take(state)
    snapshot, _name = read_snapshot(config.migrations_dir)
    if snapshot is not None:
        take(snapshot)
    if config.driver != "postgresql":
        enums = set()
    return tables, enums


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

"""What the schema owns, for `mf db reset`: every table and enum type the migration
history names. No database access: the dialect plans the drops (the order in which
tables can go without CASCADE), the applier runs them.
"""
from __future__ import annotations

from .config import Config
from .dialects import dialect_for
from .errors import MigrationFileError
from .history import migration_files
from .operations import fold
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
        state = fold(migration.operations, state)
        take(state)
    snapshot, _name = read_snapshot(config.migrations_dir)
    if snapshot is not None:
        take(snapshot)
    if not dialect_for(config.driver).has_enum_types:
        enums = set()
    return tables, enums

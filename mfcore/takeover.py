"""Taking over a database made by another tool: `mf db baseline`.

The live catalog is read into the Schema IR (introspect), and written as migration
001 with its schema.json, and models.mp when the project has none; 001 is recorded
as applied without running (migrate's fake). So that later migrations address the
objects that exist, the database's single-column keys and UNIQUEs are first renamed
to the names mf's operations use (PostgreSQL; SQLite rebuilds tables and never
addresses them by name), and indexes keep their own names in 001 and the snapshot.
The renames run in one transaction before anything is written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .dialects.base import LEDGER_TABLE


@dataclass
class BaselineResult:
    migration: str                                 # the file written, e.g. 001_baseline.json
    tables: int
    renamed: list = field(default_factory=list)    # the RENAME CONSTRAINT statements run
    notes: list = field(default_factory=list)      # [(table or None, what models.mp cannot say)]
    models_written: bool = False                   # models.mp was written (the project had none)


async def baseline(config, *, name: str = "baseline") -> BaselineResult:
    from . import applier, drivers, store
    from .differ import diff
    from .dialects import dialect_for
    from .errors import ConfigError, DatabaseError
    from .introspect import schema_of_catalog
    from .language.emit import models_text
    from .schema import Schema

    directory = config.migrations_dir
    if store.list_migration_files(directory):
        raise ConfigError(f"{directory} has migration files already; baseline starts a history, so it needs "
                          "an empty migrations directory")
    dialect = dialect_for(config.driver)
    if not drivers.database_exists(config):
        raise DatabaseError(f"the database {config.display_dsn} does not exist; there is nothing to take over")
    async with await drivers.connect(config) as connection:
        if await connection.fetch(dialect.ledger_exists_sql()):
            raise DatabaseError(f"the database {config.display_dsn} has an {LEDGER_TABLE} ledger already: mf "
                                "migrates it, there is nothing to take over")
        catalog = await dialect.read_catalog(connection)
        if not catalog.tables:
            raise DatabaseError(f"the database {config.display_dsn} has no tables; there is nothing to take "
                                "over (run makemigrations and migrate)")
        renames = dialect.constraint_renames_sql(catalog)
        schema, notes = schema_of_catalog(catalog, dialect, unique_indexes=True)
        operations = diff(Schema(), schema)
        if renames:
            await connection.execute(dialect.begin_sql)
            try:
                for statement in renames:
                    await connection.execute(statement)
            except drivers.StatementError as exc:
                await connection.execute("ROLLBACK")
                raise DatabaseError(f"baseline could not rename the database's constraints to mf's names "
                                    f"({exc.message}); nothing was changed") from None
            await connection.execute("COMMIT")
    os.makedirs(directory, exist_ok=True)
    path = store.write_migration(directory, 1, name, operations)
    migration = os.path.basename(path)
    store.write_snapshot(directory, schema, migration)
    models_written = not os.path.exists(config.models_path)
    if models_written:
        header = f"Taken over from the {dialect.title} database {config.display_dsn} by `mf db baseline`."
        store.atomic_write(config.models_path, models_text(schema, notes, header).encode("utf-8"))
    await applier.migrate(config, fake=True)
    return BaselineResult(migration, len(schema.models), renames, notes, models_written)

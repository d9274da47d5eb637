"""Taking over a database made by another tool: `mf db baseline`.

The live catalog is read into the Schema IR (introspect), and written as migration
001 with its schema.json, and models.mp when the project has none; 001 is recorded
as applied without running (migrate's fake). More tables than
max_tables_per_migration make consecutive parts, as makemigrations splits a
migration, all recorded as applied. The database is not changed: its
constraints and indexes keep the names they have, and 001 and schema.json record
them (a field's ``fk_name`` and ``key_name`` where they are not the names mf gives,
an index under its own name, a DEFERRABLE foreign key), so later migrations address
the objects that exist and a fresh database built from the files has the same names.
"""
from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass, field

from .dialects.base import LEDGER_TABLE


@dataclass
class BaselineResult:
    migration: str                                 # the (first) file written, e.g. 001_baseline.json
    tables: int
    kept_names: list = field(default_factory=list)  # "table.constraint": names not mf's, kept in 001
    notes: list = field(default_factory=list)      # [(table or None, what models.mp cannot say)]
    models_written: bool = False                   # models.mp was written (the project had none)
    # Every file written: one, or the parts of a baseline of more tables than
    # max_tables_per_migration (001_baseline_part1.json, 002_baseline_part2.json, ...).
    migrations: list = field(default_factory=list)


async def baseline(config, *, name: str = "baseline") -> BaselineResult:
    from . import applier, drivers, store
    from .differ import diff
    from .dialects import dialect_for
    from .errors import ConfigError, DatabaseError
    from .introspect import schema_of_catalog
    from .language.emit import models_text
    from .operations import split_operations
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
    refuse_doubled_constraints(catalog)
    schema, notes = schema_of_catalog(catalog, dialect, unique_indexes=True)
    operations = diff(Schema(), schema)
    # As makemigrations splits a migration: a fresh database built from the files
    # applies each part in its own transaction, within a stock server's lock table.
    parts = split_operations(operations, config.max_tables_per_migration)
    suffixes = store.part_suffixes(name, len(parts)) if len(parts) > 1 else [name]
    os.makedirs(directory, exist_ok=True)
    written: list = []
    try:
        for number, (part, suffix) in enumerate(zip(parts, suffixes), 1):
            written.append(store.write_migration(directory, number, suffix, part))
        migrations = [os.path.basename(path) for path in written]
        index_foreign_keys = store.index_foreign_keys(config.index_foreign_keys, None, False)  # a new history
        store.write_snapshot(directory, schema, migrations[-1], index_foreign_keys=index_foreign_keys)
    except BaseException:
        for path in written:  # schema.json could not follow them: the files go too
            with suppress(OSError):
                os.unlink(path)
        raise
    models_written = not os.path.exists(config.models_path)
    if models_written:
        header = f"Taken over from the {dialect.title} database {config.display_dsn} by `mf db baseline`."
        store.atomic_write(config.models_path, models_text(schema, notes, header, index_foreign_keys).encode("utf-8"))
    await applier.migrate(config, fake=True)
    return BaselineResult(migrations[0], len(schema.models), kept_names(schema), notes, models_written, migrations)


def refuse_doubled_constraints(catalog) -> None:
    """A column with two foreign keys (or two UNIQUEs) of its own: a field has one of
    each, so 001 could not say both, and which one to keep is the user's call."""
    from .errors import DriftError

    for table in sorted(catalog.tables.values(), key=lambda t: t.name):
        for kind, items in (("foreign keys", table.foreign_keys), ("UNIQUE constraints", table.uniques)):
            seen: dict = {}
            for item in items:
                if len(item.columns) != 1:
                    continue
                column = item.columns[0]
                if column in seen:
                    first, second = sorted((seen[column] or "(unnamed)", item.name or "(unnamed)"))
                    raise DriftError(f"column {table.name}.{column} has two {kind}, {first} and {second}; "
                                     "drop the one that is not wanted, then run baseline again")
                seen[column] = item.name


def kept_names(schema) -> list:
    """The constraints 001 addresses by the database's own names (not mf's)."""
    found = []
    for model in sorted(schema.models.values(), key=lambda m: m.table):
        for f in model.fields:
            found += [f"{model.table}.{name}" for name in (f.key_name, f.fk_name) if name]
    return found

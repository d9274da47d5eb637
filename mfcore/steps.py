"""Pending migrations read and translated to SQL for the configured driver, ready to
run: a malformed file stops a run here, before anything is applied.

The dialect is imported when first needed, so `import mfcore` loads no SQL code.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .store import Migration, read_migrations


@dataclass(frozen=True)
class Step:
    """A pending migration read, translated and ready to run."""

    migration: Migration
    statements: tuple
    atomic: bool            # runs inside one transaction
    foreign_keys_off: bool  # foreign keys switched off around the transaction (a rebuild)

    @property
    def name(self) -> str:
        return self.migration.name


class Prepared:
    """Pending migrations read and translated to SQL before anything runs, so a
    malformed file stops the run with nothing applied."""

    def __init__(self, config: Config, files):
        from .dialects import dialect_for

        self.directory = config.migrations_dir
        self.dialect = dialect_for(config.driver)
        self.files = files
        self.steps: dict = {}

    def __getitem__(self, name: str) -> Step:
        return self.steps[name]

    def load(self, wanted) -> None:
        wanted = [f for f in wanted if f.name not in self.steps]
        if not wanted:
            return
        migrations = read_migrations(self.directory, self.files, wanted)
        for file in wanted:
            self.steps[file.name] = self._step(migrations[file.name])

    def _step(self, migration: Migration) -> Step:
        return step_for(self.dialect, migration)


def step_for(dialect, migration: Migration) -> Step:
    """A migration translated by ``dialect``. Where every statement mf writes can run
    in a transaction, a migration marked "atomic": false (written for statements such
    as CREATE INDEX CONCURRENTLY) still runs in one, which is strictly safer."""
    atomic = migration.atomic or not dialect.supports_non_atomic
    statements = tuple(dialect.migration_sql(migration.operations, atomic=atomic))
    return Step(migration, statements, atomic, dialect.needs_foreign_keys_off(migration.operations))

"""Pending migrations read and translated to SQL for the configured driver, ready to
run: a malformed file stops a run here, before anything is applied. Applied ones to
roll back, translated into their undo (UndoPlan) the same way.

The dialect is imported when first needed, so `import mfcore` loads no SQL code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from .config import Config
from .datasteps import PythonCall, import_root, resolve
from .errors import IrreversibleError, MigrationFileError
from .gcpause import gc_paused
from .operations import cannot_undo, undo, undo_loss
from .schema import Schema
from .store import Migration, load_history, read_migrations, schemas_around


@dataclass(frozen=True)
class Step:
    """A pending migration read, translated and ready to run."""

    migration: Migration
    statements: tuple
    atomic: bool            # runs inside one transaction
    foreign_keys_off: bool  # foreign keys switched off around the transaction (a rebuild)
    foreign_key_tables: Optional[frozenset] = None  # checked before the commit (None: every table)
    # A migration cut into steps (markers among its statements, see dialects/base.py):
    # [(outside, [statement, ...])] in order; None when it runs as one transaction.
    parts: Optional[tuple] = None

    @property
    def name(self) -> str:
        return self.migration.name


class Prepared:
    """Pending migrations read and translated to SQL before anything runs, so a
    malformed file stops the run with nothing applied."""

    def __init__(self, config: Config, files):
        from .dialects import dialect_for

        self.config = config
        self.directory = config.migrations_dir
        self.dialect = dialect_for(config.driver)
        self.files = files
        self.steps: dict = {}

    def __getitem__(self, name: str) -> Step:
        return self.steps[name]

    def take(self, name: str) -> Step:
        """The step of ``name``, which this no longer keeps (see applier._each)."""
        return self.steps.pop(name)

    def load(self, wanted, partly_applied=()) -> None:
        """Read and translate ``wanted`` (files). ``partly_applied``: the names of
        migrations the ledger records as partly applied ('step N'): they are resumed in
        the steps a run began, also when the config's ``online`` is false now."""
        wanted = [f for f in wanted if f.name not in self.steps]
        if not wanted:
            return
        # Reading and translating a large first migration builds millions of objects
        # that form no cycles: the collector's passes over them took a third of the time
        # (gcpause.py; 20,000 models: 8.6 s, 5.8 s paused).
        with gc_paused():
            migrations = read_migrations(self.directory, self.files, wanted)
            for file in wanted:
                self.steps[file.name] = self._step(migrations[file.name], file.name in partly_applied)

    def _step(self, migration: Migration, resuming: bool = False) -> Step:
        return step_for(self.dialect, migration, import_root(self.config), online=self.config.online or resuming)


def step_for(dialect, migration: Migration, project_dir: Optional[str] = None, *, online: bool = True) -> Step:
    """A migration translated by ``dialect``. Where every statement mf writes can run
    in a transaction, a migration marked "atomic": false (written for statements such
    as CREATE INDEX CONCURRENTLY) still runs in one, which is strictly safer.
    ``project_dir``: where run_python functions are imported from (default: here).
    ``online``: the dialect may cut the migration into steps (see dialects/base.py);
    False: one transaction, all or nothing, with the plain forms."""
    _refuse_templates(migration)
    atomic = migration.atomic or not dialect.supports_non_atomic
    statements = _translated(
        migration, lambda: dialect.migration_sql(migration.operations, atomic=atomic, online=online),
        project_dir or os.getcwd())
    return planned_step(dialect, migration, statements)


def planned_step(dialect, migration: Migration, statements) -> Step:
    """A migration whose ``statements`` ``dialect`` wrote already (with step_for's
    "atomic"), cut into steps as migrate cuts it. makemigrations' dry run and the lint
    use it as they are: a run_python function is not imported, a run_sql template not
    refused (only running them needs that)."""
    from .dialects.base import cut_into_steps, has_steps

    atomic = migration.atomic or not dialect.supports_non_atomic
    statements = tuple(statements)
    parts = None
    if atomic and dialect.runs_steps and has_steps(statements):
        parts = tuple(cut_into_steps(statements))
    return Step(migration, statements, atomic, dialect.needs_foreign_keys_off(migration.operations),
                dialect.foreign_key_tables(migration.operations), parts)


class StepHeading(str):
    """A line `mf db sql` prints as it is (no semicolon): the heading of a step."""


def shown_statements(step: Step, dialect, statement_lock_timeout: str, statement_timeout: Optional[str] = None) -> list:
    """What `mf db sql` and dry runs print for a migration: on PostgreSQL what runs, the
    transaction's BEGIN, prologue (its timeouts) and COMMIT included; for a migration
    cut into steps, each step headed. The ledger's update is left out. Elsewhere (SQLite)
    and for a migration run statement by statement ("atomic": false), its statements."""
    prologue = [dialect.begin_sql] + dialect.transaction_prologue(statement_lock_timeout, statement_timeout)
    if step.parts is None:
        if dialect.runs_steps and step.atomic and step.statements:
            return prologue + list(step.statements) + ["COMMIT"]
        return list(step.statements)
    shown: list = []
    total = len(step.parts)
    for number, (outside, statements) in enumerate(step.parts, 1):
        if outside:
            shown.append(StepHeading(f"-- step {number} of {total}: outside a transaction"))
            shown.extend(statements)
        else:
            shown.append(StepHeading(f"-- step {number} of {total}: in a transaction"))
            shown.extend(prologue + list(statements) + ["COMMIT"])
    return shown


def shown_lines(step: Step, shown: list) -> list:
    """For each of ``step.statements``, its line in ``shown`` (shown_statements(step,
    ...)), from 1; None for a step boundary, which is no line (the steps are headed)."""
    from .dialects.base import StepBoundary

    numbers: list = []
    cursor = 0
    for statement in step.statements:
        if step.parts is not None and isinstance(statement, StepBoundary):
            numbers.append(None)  # cut away by cut_into_steps
            continue
        # The statements are the very objects shown_statements placed among the
        # headings and prologues: found by identity, in order, never by text (a
        # hand-written statement may read like a prologue's).
        found = next((index for index in range(cursor, len(shown)) if shown[index] is statement), None)
        if found is None:
            numbers.append(None)
            continue
        numbers.append(found + 1)
        cursor = found + 1
    return numbers


def _refuse_templates(migration: Migration) -> None:
    """A run_sql step that still holds the placeholder makemigrations wrote is no SQL
    yet: running it would do nothing and the NOT NULL after it would fail on the rows."""
    for position, operation in enumerate(migration.operations):
        target = getattr(operation, "unfilled", None)
        if target:
            raise MigrationFileError(
                f"{migration.name}: ops[{position}] is the run_sql template makemigrations wrote to fill {target}, "
                "not SQL yet: replace its \"sql\" with the statements that fill every row (see its \"doc\"), "
                "then migrate again")


def _translated(migration: Migration, translate, project_dir: str) -> list:
    """``translate()``, its run_python functions imported, with a problem either finds
    (a step with no SQL for this database, a function that does not import) named with
    the migration's file."""
    try:
        return [resolve(statement, project_dir) if isinstance(statement, PythonCall) else statement
                for statement in translate()]
    except MigrationFileError as exc:
        raise MigrationFileError(f"{migration.name}: {exc}") from None


# ---------------------------------------------------------------- undoing

@dataclass(frozen=True)
class UndoPlan:
    """Applied migrations to undo, newest first, translated before anything runs."""

    steps: tuple   # a Step per migration, its statements the undo's
    losses: tuple  # sentences: what the undo cannot give back (a dropped table comes back empty)


def undo_plan(config: Config, files, names) -> UndoPlan:
    """The undo of the migrations ``names`` (applied, newest first), read with the history
    before them. What cannot be undone at all stops here (IrreversibleError), before
    anything runs."""
    from .dialects import dialect_for

    if not names:
        return UndoPlan((), ())
    wanted = set(names)
    newest = max(f.number for f in files if f.name in wanted)
    history, _schema = load_history(config.migrations_dir, [f for f in files if f.number <= newest])
    dialect = dialect_for(config.driver)
    # A squashed migration and its originals build one schema: fold it once; the one left
    # out goes from where its range starts (the parts of a split squash one after another).
    _before, after = schemas_around(history)
    by_name = {m.name: m for m in history}
    problems, losses, steps = [], [], []
    for name in names:
        migration = by_name[name]
        problems += [f"{name}: {why}" for why in map(cannot_undo, migration.operations) if why]
        losses += [f"{name}: {loss}" for loss in map(undo_loss, migration.operations) if loss]
        if not problems:
            steps.append(undo_step_for(dialect, migration, after[name], import_root(config)))
    if problems:
        raise IrreversibleError("cannot undo " + "; ".join(problems) + ". Nothing was undone.")
    return UndoPlan(tuple(steps), tuple(losses))


def undo_step_for(dialect, migration: Migration, schema_after: Schema, project_dir: Optional[str] = None) -> Step:
    """The undo of an applied ``migration`` (``schema_after``: the schema it left), as a
    step: always one transaction, whatever the migration's own "atomic" says."""
    operations, _before = undo(migration.operations, schema_after)
    statements = tuple(_translated(migration, lambda: dialect.migration_sql(operations, atomic=True),
                                  project_dir or os.getcwd()))
    return Step(migration, statements, True, dialect.needs_foreign_keys_off(operations),
                dialect.foreign_key_tables(operations))

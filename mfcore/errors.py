"""The errors mf raises. The CLI catches MfError and nothing else."""
from __future__ import annotations


class MfError(Exception):
    """Base of every error mf reports to its user."""

    exit_code = 2


class ConfigError(MfError):
    """language_config.yaml is missing, malformed or names something that is not there."""


class ModelsError(MfError):
    """models.mp has one or more errors; ``problems`` lists each with its location."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n\n".join(p.render() for p in self.problems))


class SchemaFileError(MfError):
    """schema.json cannot be read as a schema."""


class MigrationFileError(MfError):
    """A migration file, or the migrations directory as a whole, is malformed or inconsistent."""


class FileWriteError(MfError):
    """A file of the project cannot be written (a read-only directory or disk, a full
    disk); the file is as it was."""


class UnsafeChangeError(MfError):
    """makemigrations refuses a change that could not be applied safely; says what to do instead."""


class IntegrityError(MfError):
    """Applied history and the files on disk disagree (edited, deleted or misnumbered files)."""


class RebaseConflictError(MfError):
    """`mf db rebase` found two branches changing the same thing: nothing was changed."""


class SquashError(MfError):
    """`mf db squash` cannot squash the range asked for: nothing was written."""


class DriftError(MfError):
    """The database does not match what the migrations say it should hold."""

    exit_code = 2


class DatabaseError(MfError):
    """The database refused a connection or a statement; the migration was rolled back."""

    exit_code = 3


class LockTimeoutError(DatabaseError):
    """Another process held the migration lock for longer than the configured timeout."""


class LockBudgetError(DatabaseError):
    """A migration would take more locks than the server's lock table holds: refused
    before anything ran."""


class UnresolvedMigrationError(MfError):
    """A non-transactional migration died half-way; `mf db resolve` must settle it first."""


class ResolveError(MfError):
    """`mf db resolve` was asked to settle a migration that is not left half-applied."""


class IrreversibleError(MfError):
    """A migration asked to be undone cannot be: nothing was undone."""


class DataLossError(MfError):
    """Undoing would lose data (a dropped table comes back empty) and that was not allowed."""

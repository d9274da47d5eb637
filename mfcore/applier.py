"""Applies migration files to a database (SPEC §4 migrate/status/reset/resolve/sql, §6).

The shape of a run:

1. Survey, without any lock: list the files (two with one number is an error),
   read the ledger and .applied, hash the bytes of every applied file and check
   them against the ledger (§6.5), decide about adoption (§6.2). With nothing to
   do this is all, and it is fast: applied files are hashed, never parsed.
2. Otherwise read and translate every pending file (a malformed one stops the run
   before anything runs), then take the lock, as the dialect says: a run-wide lock
   held on a connection of its own, polled, then the survey again; or none, where
   every migration's own write transaction is the lock and the ledger is consulted
   inside it (the row's UNIQUE name), so a migration another process applied
   meanwhile is rolled back, found in the ledger and skipped.
3. Each migration runs in one transaction together with its ledger row. A failing
   statement rolls that migration back and stops the run with a DatabaseError
   naming the migration, the statement and the database's message.
4. .applied is rewritten from the ledger while the lock is held, at the end of the
   run (and after a failure), so it mirrors the ledger; a run that finds it behind
   (a crash between the commit and the write) rebuilds it.

Here: the public coroutines and _Database: the lock, the transactions, applying a
step and keeping .applied in line. Every SQL text and every difference between
databases comes from the dialect (dialects/). The files, their checksums and the
survey's checks are in history.py (no database access); reading and translating
pending files in steps.py; what reset drops in ownership.py.

Nothing here prints or exits: results are returned, problems raised as MfError.
"""
from __future__ import annotations

import os
import random
import time
import uuid
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional, TypeVar

import anyio

from . import adoption, ledger
from .config import Config, duration_seconds
from .datasteps import MigrationConnection, PythonCall
from .dialects import dialect_for
from .dialects.base import (Backend, CatalogStep, CatalogStepRefusal, Guard, IndexBuild, IndexDrop,
                            describe_backends)
from .drivers import Connection, PreparedQuery, StatementError, connect, database_exists
from .errors import (DatabaseError, DataLossError, DriftError, FileWriteError, IntegrityError, LockBudgetError,
                     LockTimeoutError, MfError, MigrationFileError, ResolveError,
                     UnresolvedMigrationError)
from .history import (Checksums, Survey, ahead_notice, ahead_of, adoption_decision, check_target,
                      check_unresolved, cut, listed_files, migration_files, number_of, out_of_order_refusal,
                      read_history, survey_from)
from .ledger import APPLIED, STARTED, LedgerEntry
from .operations import fold, lock_estimate
from .ownership import applied_files, owned_objects
from .schema import Schema
from .steps import Prepared, Step, UndoPlan, shown_statements, undo_plan
from .store import find_migration, load_history, read_applied, write_applied

LOCK_POLL_MAX = 0.25  # seconds between two attempts at a run-wide lock, at most
LOCK_RETRY_FIRST_WAIT = 0.5  # seconds before the first retry after a lock timeout (then doubling)

EventCallback = Callable[[str, str, int, int], object]
T = TypeVar("T")


# ================================================================ public functions

@dataclass(frozen=True)
class MigrationStatus:
    """One line of `mf db status`.

    state: "applied"; "pending"; "started" (a non-atomic migration that never
    finished: see resolve); "partial" (a migration made of steps of which a run
    committed ``steps_done`` of ``steps``: the next migrate resumes it); "edited" (applied, but the file changed since);
    "missing" (applied, but the file is gone); "replaced" (it will not run: a squashed
    migration stands for it, or it stands for originals that run instead; or, applied,
    its file was removed after a squash replaced it); "ahead" (applied, and newer than
    every file: the code is older than the database); "out_of_order" (not applied,
    numbered below the newest applied migration, and migrate refuses to run it there)."""

    name: str
    applied: bool
    applied_at: Optional[object] = None  # datetime (UTC) when applied
    state: str = "pending"
    duration: Optional[float] = None     # seconds the migration took
    steps_done: Optional[int] = None     # "partial": the steps committed so far
    steps: Optional[int] = None          # "partial": its steps (None when its file does not read)


class MigrateResult(list):
    """The names migrate applied (a list, empty when there was nothing to do), and what
    the run has to tell: ``notices``, sentences for the user (also logged by the API);
    ``ahead``, applied migrations newer than every file (the code is older than the
    database); ``models_changed``, a sentence when models.mp holds changes no migration
    holds (filled in by api.migrate), else None; ``warnings``, the notices among
    ``notices`` that ask the user to act (the API logs them as warnings)."""

    def __init__(self, names=(), *, notices=None, ahead=()):
        super().__init__(names)
        self.notices = notices if notices is not None else []
        self.ahead = list(ahead)
        self.models_changed: Optional[str] = None
        self.warnings: list = []


class StatusReport(list):
    """status(): a MigrationStatus per migration (a list), and what they add up to."""

    INTEGRITY_STATES = ("edited", "missing", "started", "out_of_order")

    def __init__(self, records=(), *, notices=None):
        super().__init__(records)
        self.notices = notices if notices is not None else []
        self.models_changed: Optional[str] = None  # see MigrateResult (filled in by api.status)

    @property
    def pending(self) -> list:
        return [r.name for r in self if r.state in ("pending", "partial")]

    @property
    def ahead(self) -> list:
        return [r.name for r in self if r.state == "ahead"]

    @property
    def problems(self) -> list:
        """The records migrate would refuse to run with."""
        return [r for r in self if r.state in self.INTEGRITY_STATES]

    @property
    def check_code(self) -> int:
        """`mf db status --check`: 2 when the history has integrity problems, 1 when
        something is pending or models.mp holds unmigrated changes, else 0."""
        if self.problems:
            return 2
        if self.pending or self.models_changed:
            return 1
        return 0


async def migrate(config: Config, *, to: Optional[int] = None, fake: bool = False,
                  dry_run: bool = False, on_event: Optional[EventCallback] = None,
                  notices: Optional[list] = None, files: Optional[list] = None) -> "MigrateResult":
    """Apply every unapplied migration in numeric order; returns the names applied.

    ``to``: stop after the migration with that number. ``fake``: record the
    migrations as applied without running them. ``dry_run``: change nothing and
    return the names that would be applied. ``on_event(kind, name, index, total)`` is
    called with kind "start" before a migration runs and "applied" after it
    committed ("skipped" when another process applied it meanwhile); index counts
    from 1 within the ``total`` migrations of this run; kind "retry" when a
    migration's transaction waited longer than statement_lock_timeout for a lock, was
    rolled back and is about to run again (then ``index`` is the retry's number and
    ``total`` lock_retries; the notice saying so is in ``notices`` already). It may be
    a coroutine function. ``notices``, when given, receives sentences the user should read
    (differences found when adopting a database made by the earlier tool; the
    database being ahead of the files). Returns a MigrateResult: the names applied,
    with the notices. ``files``: the migration files, when the caller listed them already.
    """
    if files is None:
        files = migration_files(config.migrations_dir)
    check_target(files, to)
    if notices is None:
        notices = []
    if dry_run:
        survey = await _read_only_survey(config, files)
        return MigrateResult([f.name for f in cut(survey.pending, to)], notices=notices, ahead=survey.ahead)
    prepared = Prepared(config, files)
    if not database_exists(config):
        # Read and translate what would run before the SQLite file is created: a
        # malformed migration must leave no trace, not even an empty database file.
        survey = await _read_only_survey(config, files)
        prepared.load(cut(survey.pending, to))
    async with await connect(config) as connection:
        database = _database_for(connection, config)
        database.notices = notices
        survey = await database.survey(files)
        behind = config.mirrors_applied_file and survey.applied_file_behind
        if not survey.adopt and not cut(survey.pending, to) and not behind and not survey.renames:
            return _result([], survey, files, notices)
        prepared.load(cut(survey.pending, to), _partly_applied(survey))  # what the check above read is kept
        if not fake:
            await database.check_lock_budget([prepared[f.name] for f in cut(survey.pending, to)])
        async with database.exclusive():
            applied, survey = await _run(database, files, prepared, to, fake, on_event)
            return _result(applied, survey, files, notices)


def _partly_applied(survey: Survey) -> set:
    """The migrations the ledger records as partly applied ('step N'): a run resumes
    them in the steps it began with, whatever the config's ``online`` says now."""
    return {e.name for e in survey.entries or () if ledger.steps_done(e.state) is not None}


def _result(applied, survey: Survey, files, notices: list) -> "MigrateResult":
    result = MigrateResult(applied, notices=notices, ahead=survey.ahead)
    if survey.ahead:
        notices.append(ahead_notice(survey.ahead, files))
        result.warnings.append(notices[-1])
    return result


class PendingSQL(list):
    """[(name, [statement, ...]), ...]; ``offline`` is why the database could not be
    reached when the plan was made from .applied instead (else None)."""

    offline: Optional[str] = None


async def pending_sql(config: Config, *, to: Optional[int] = None) -> PendingSQL:
    """[(name, [statement, ...]), ...] for each migration ``migrate`` would apply. When
    the database cannot be reached but .applied is there, the plan comes from .applied
    (what this directory last saw applied) and says so in ``offline``."""
    files = migration_files(config.migrations_dir)
    check_target(files, to)
    offline: list = []
    survey = await _read_only_survey(config, files, offline=offline)
    prepared = Prepared(config, files)
    pending = cut(survey.pending, to)
    prepared.load(pending, _partly_applied(survey))
    dialect = dialect_for(config.driver)
    plan = PendingSQL((f.name, shown_statements(prepared[f.name], dialect, config.statement_lock_timeout,
                                                          config.statement_timeout))
                      for f in pending)
    plan.offline = offline[0] if offline else None
    return plan


def migration_statements(config: Config, which, *, reverse: bool = False) -> tuple:
    """(name, [statement, ...]) of the migration ``which`` names (a number or a file
    name, see store.find_migration) on the configured driver (with ``reverse``, of its
    undo); no database needed."""
    files = migration_files(config.migrations_dir)
    file = find_migration(files, which, config.migrations_dir)
    if reverse:
        return file.name, list(undo_plan(config, files, [file.name]).steps[0].statements)
    prepared = Prepared(config, files)
    prepared.load([file])
    return file.name, shown_statements(prepared[file.name], dialect_for(config.driver),
                                            config.statement_lock_timeout, config.statement_timeout)


async def rollback(config: Config, *, count: Optional[int] = None, to: Optional[int] = None,
                   dry_run: bool = False, allow_data_loss: bool = False, fake: bool = False,
                   on_event: Optional[EventCallback] = None, notices: Optional[list] = None) -> list:
    """Undo applied migrations, newest first; returns the names undone.

    ``count``: the newest ``count`` applied (default 1); ``to``: every one numbered
    above ``to`` (0: all). Each undo runs in one transaction that also removes its
    ledger row, under the lock migrate takes; .applied follows. What cannot be undone
    (IrreversibleError) or would come back empty (DataLossError, unless
    ``allow_data_loss``) is named before anything runs, and nothing is done.
    ``dry_run``: change nothing, return the names that would be undone. ``fake``:
    only remove the ledger rows, newest first, each in its transaction, running no
    undo (the database keeps what the migrations made; nothing needs to be reversible).
    ``on_event`` hears "start", "retry" and "rolled_back" (see migrate); ``notices``,
    when given, receives the sentences saying what the run waited for (see migrate)."""
    files = migration_files(config.migrations_dir)
    if to:
        check_target(files, to)
    if not database_exists(config):
        return []
    async with await connect(config) as connection:
        database = _database_for(connection, config)
        if notices is not None:
            database.notices = notices
        survey = await database.survey(files)
        plan = _undo_plan(config, files, survey, count, to, allow_data_loss, fake)
        if dry_run or not (plan.steps or survey.applied_file_behind or survey.renames):
            return [step.name for step in plan.steps]
        async with database.exclusive():
            return await _run_undo(database, config, files, count, to, allow_data_loss, fake, on_event)


async def rollback_sql(config: Config, *, count: Optional[int] = None, to: Optional[int] = None) -> PendingSQL:
    """[(name, [statement, ...]), ...] of each undo ``rollback`` would run, newest first;
    changes nothing. As for ``pending_sql``, a database that cannot be reached is
    planned from .applied when it is there, and ``offline`` says why."""
    files = migration_files(config.migrations_dir)
    if to:
        check_target(files, to)
    if not database_exists(config):
        return PendingSQL()
    offline: list = []
    plan = await _read_only_undo_plan(config, files, count, to, offline=offline)
    undo = PendingSQL((step.name, list(step.statements)) for step in plan.steps)
    undo.offline = offline[0] if offline else None
    return undo


async def rollback_losses(config: Config, *, count: Optional[int] = None, to: Optional[int] = None) -> list:
    """What ``rollback`` could not bring back (sentences); changes nothing."""
    files = migration_files(config.migrations_dir)
    if to:
        check_target(files, to)
    if not database_exists(config):
        return []
    return list((await _read_only_undo_plan(config, files, count, to)).losses)


async def _read_only_undo_plan(config, files, count, to, offline: Optional[list] = None) -> UndoPlan:
    survey = await _read_only_survey(config, files, offline=offline)
    return _undo_plan(config, files, survey, count, to, allow_data_loss=True)


def _to_undo(files, survey: Survey, count: Optional[int], to: Optional[int]) -> list:
    """The applied migrations to undo, newest first."""
    by_name = {f.name: f for f in files}
    # The files' order, not only their numbers: the parts of a split squash share one.
    position = {f.name: place for place, f in enumerate(files)}
    applied = [name for name in survey.applied_names + [f.name for f in survey.adopt] if name in by_name]
    applied.sort(key=position.__getitem__, reverse=True)
    if to is not None:
        return [name for name in applied if by_name[name].number > to]
    return applied[:1 if count is None else count]


@dataclass(frozen=True)
class _LedgerOnly:
    """A fake undo: the migration's ledger row goes, and nothing runs."""

    name: str
    statements: tuple = ()
    foreign_keys_off: bool = False


def _undo_plan(config, files, survey, count, to, allow_data_loss, fake: bool = False) -> UndoPlan:
    if survey.ahead:
        # The newest applied migrations have no file here: undoing older ones under them
        # would take the database to a state no history describes.
        raise IntegrityError(
            f"the database is ahead of the migration files in {config.migrations_dir}: "
            f"{', '.join(survey.ahead)} {'is' if len(survey.ahead) == 1 else 'are'} applied but not here (newer "
            "code applied them). Nothing was undone; roll back with the code that has those files.")
    partial = [e.name for e in survey.entries or () if ledger.steps_done(e.state) is not None]
    if partial:
        number = number_of(partial[0]) or 0
        raise UnresolvedMigrationError(
            f"migration {partial[0]} is partly applied (a run stopped between its steps); nothing was undone. "
            f"Finish it with `mf db migrate` first, then roll back; or, if you undid its steps by hand, "
            f"`mf db resolve {number:03d} --rolled-back`")
    names = _to_undo(files, survey, count, to)
    if fake:
        return UndoPlan(tuple(_LedgerOnly(name) for name in names), ())
    plan = undo_plan(config, files, names)
    if plan.losses and not allow_data_loss:
        raise DataLossError("undoing would lose data: " + "; ".join(plan.losses)
                            + ". Nothing was undone; pass --allow-data-loss (allow_data_loss=True) to go ahead.")
    return plan


async def _run_undo(database, config, files, count, to, allow_data_loss, fake, on_event) -> list:
    """Inside the lock: survey again (another run may have moved the ledger), then undo
    newest first, each migration in its own transaction with its ledger row."""
    database.on_event = on_event
    try:
        survey = await database.settled_survey(files)
        plan = _undo_plan(config, files, survey, count, to, allow_data_loss, fake)
        if not fake:
            await database.check_lock_budget(plan.steps, undoing=True)
            await database.hold_schema(plan.steps)
        undone = await _each(list(plan.steps), database.unapply, "rolled_back", on_event)
    except BaseException:
        # Also when interrupted (Ctrl-C cancels the run): .applied follows what committed.
        with anyio.CancelScope(shield=True), suppress(MfError, OSError):
            await database.sync_applied_file()
        raise
    await database.sync_applied_file()
    return undone


async def status(config: Config) -> "StatusReport":
    """A MigrationStatus for every migration file, in numeric order, then one for each
    ledger row whose file is gone ("ahead" when every such row is newer than the newest
    file, see history.ahead_of; else "missing"). A pending file numbered below the
    newest applied migration is "out_of_order" (migrate refuses it)."""
    files = migration_files(config.migrations_dir)
    entries = None
    if database_exists(config):
        async with await connect(config) as connection:
            entries = await ledger.read_ledger(connection, detailed=True)
    sums = Checksums()
    reading = read_history(files, entries or [], sums)
    ahead = ahead_of(files, reading.gone)
    by_name = {reading.current_name(e.name): e for e in entries or ()}
    refused = _refused_out_of_order(config, files, reading, ahead)
    report = StatusReport()
    for file in files:
        entry = by_name.pop(file.name, None)
        if entry is None:
            if file.name in reading.done:  # a squashed migration whose originals are all applied
                report.append(MigrationStatus(file.name, True, state="applied"))
            else:
                state = "replaced" if file.name in reading.replaced else \
                    "out_of_order" if file.name in refused else "pending"
                report.append(MigrationStatus(file.name, False, state=state))
        elif entry.state == STARTED:
            report.append(MigrationStatus(file.name, False, entry.applied_at, "started", entry.duration))
        elif ledger.steps_done(entry.state) is not None:
            report.append(MigrationStatus(file.name, False, entry.applied_at, "partial", entry.duration,
                                          ledger.steps_done(entry.state), _step_count(config, files, file)))
        else:
            state = "applied" if sums.matches(file, entry.checksum) else "edited"
            report.append(MigrationStatus(file.name, True, entry.applied_at, state, entry.duration))
    gone = set(reading.gone)
    for entry in by_name.values():
        state = ("ahead" if entry.name in ahead else "missing") if entry.name in gone else "replaced"
        report.append(MigrationStatus(entry.name, entry.state == APPLIED, entry.applied_at, state, entry.duration))
    if ahead:
        report.notices.append(ahead_notice(ahead, files))
    return report


def _step_count(config: Config, files, file) -> Optional[int]:
    """How many steps migrate cuts ``file`` into; None when it does not read."""
    try:
        prepared = Prepared(config, files)
        prepared.load([file], {file.name})  # partly applied: in the steps a run began
    except MfError:
        return None
    parts = prepared[file.name].parts
    return len(parts) if parts is not None else 1


def _refused_out_of_order(config: Config, files, reading, ahead) -> set:
    """The pending files numbered below the newest applied migration that migrate would
    refuse to run there (see history.out_of_order_refusal): all of them while the
    database is ahead of the files."""
    pending = [f for f in files if f.name not in reading.done and f.name not in reading.replaced]
    if ahead:
        return {f.name for f in pending}
    newest = max((number_of(name) or 0 for name in reading.done), default=0)
    below = [f for f in pending if f.number < newest]
    if not below:
        return set()
    try:
        refusal = out_of_order_refusal(config.migrations_dir, files, reading, below)
    except MfError:
        refusal = "its files do not read"
    return {f.name for f in below} if refusal is not None else set()


async def resolve(config: Config, which, applied: bool) -> str:
    """Settle a non-atomic migration that a run left 'started' (or a migration made of
    steps left partly applied, 'step N'): ``applied=True`` records
    it as applied (its changes are all in the database), ``False`` forgets it (none
    are, or they were undone), so the next migrate runs it again. Returns a sentence
    saying what was done."""
    files = migration_files(config.migrations_dir)
    number = number_of(which) if isinstance(which, str) else which
    if not database_exists(config):
        raise ResolveError(f"the database {config.dsn} does not exist; nothing to resolve")
    async with await connect(config) as connection:
        database = _database_for(connection, config)
        async with database.exclusive():
            async with database.write_transaction():
                entries = await ledger.read_ledger(connection) or []
                matching = [e for e in entries if (e.name == which if isinstance(which, str)
                                                   else number_of(e.name) == number)]
                entry = next((e for e in matching if e.state == STARTED or ledger.steps_done(e.state) is not None),
                             None)
                if entry is None:
                    if matching:
                        raise ResolveError(f"{matching[0].name} is applied, not unresolved; nothing to resolve")
                    raise ResolveError(f"migration {number:03d} was never started on this database; "
                                       "nothing to resolve")
                if applied:
                    file = next((f for f in files if f.name == entry.name), None)
                    if file is None:
                        raise ResolveError(f"{entry.name} is not in {config.migrations_dir}; restore the "
                                           "file before recording it as applied")
                    await ledger.mark_applied(connection, entry.name, file.checksum())
                else:
                    await ledger.forget(connection, entry.name)
            await database.sync_applied_file()
    if applied:
        return f"Recorded {entry.name} as applied."
    return f"Recorded {entry.name} as rolled back; the next migrate runs it again."


async def reset_database(config: Config, expected: Optional[list] = None) -> list:
    """Drop the tables and enum types the schema owns, and the ledger: nothing else.

    The schema's objects are the tables and enum types of the schema the applied
    migrations build (ownership.py), those of them the catalog holds. Tables go in
    reverse dependency order; nothing is dropped with CASCADE, so an object mf does
    not own that depends on one of these stops the reset with the database's message
    and nothing dropped. ``expected``: what the user was shown (reset_plan); when the
    database would now lose anything else, nothing is dropped. Returns what was
    dropped, e.g. ["table lt_invoices", "type userrole", "table mf_migrations"]."""
    files = migration_files(config.migrations_dir)
    if not database_exists(config):
        return []
    async with await connect(config) as connection:
        database = _database_for(connection, config)
        async with database.exclusive():
            plan = await database.owned_drop_plan(files)
            listed = [what for _statement, what in plan if what is not None]
            if expected is not None and listed != list(expected):
                raise DriftError(
                    f"the database {config.display_dsn} changed since the list of what to drop was made: it "
                    f"would now drop {_listing(listed)} instead of {_listing(expected)}; nothing was dropped, "
                    "run reset again")
            return await database.drop_owned(plan)


async def reset_plan(config: Config) -> list:
    """What reset_database would drop now, e.g. ["table lt_invoices", "type userrole",
    "table mf_migrations"], without dropping anything ([] when the database does not
    exist)."""
    files = migration_files(config.migrations_dir)
    if not database_exists(config):
        return []
    async with await connect(config) as connection:
        plan = await _database_for(connection, config).owned_drop_plan(files)
    return [what for _statement, what in plan if what is not None]


def _listing(objects) -> str:
    return ", ".join(objects) if objects else "nothing"


async def forget_history(config: Config) -> list:
    """Empty the ledger (reset without dropping anything): every row of mf_migrations is
    removed, under the migration lock and in one transaction; the table itself and the
    schema's tables stay. The next migrate finds the tables and records the new
    migrations that create them as applied (see _Database._catalog_adoption). Returns
    the names forgotten ([] when the database or its ledger does not exist)."""
    if not database_exists(config):
        return []
    async with await connect(config) as connection:
        database = _database_for(connection, config)
        async with database.exclusive():
            try:
                async with database.write_transaction():
                    if not await ledger.ledger_exists(connection):
                        return []
                    names = [entry.name for entry in await ledger.read_ledger(connection) or []]
                    for name in names:
                        await ledger.forget(connection, name)
            except StatementError as exc:
                raise DatabaseError(f"cannot empty the ledger {ledger.LEDGER_TABLE} on {config.display_dsn}: "
                                    f"{exc.message}; nothing was changed") from None
    return names


# ================================================================ looking without a lock

async def _read_only_survey(config: Config, files, offline: Optional[list] = None) -> Survey:
    """The survey without changing anything (dry runs); a missing SQLite file is an
    empty database, not created. With ``offline`` (a list), a database that cannot be
    reached is read from .applied instead, when there is one, and the reason is
    appended to ``offline``."""
    if not database_exists(config):
        applied_file = read_applied(config.migrations_dir) if config.mirrors_applied_file else None
        sums = Checksums()
        adopt = []
        if applied_file:
            adopt = adoption_decision(config, listed_files(files, applied_file, config.migrations_dir),
                                      set(), set())
        return survey_from(files, None, applied_file, adopt, sums, config.migrations_dir)
    try:
        connection = await connect(config)
    except DatabaseError as exc:
        applied_file = read_applied(config.migrations_dir) \
            if offline is not None and config.mirrors_applied_file else None
        if applied_file is None:
            raise
        offline.append(str(exc))
        sums = Checksums()
        entries = [LedgerEntry(f.name, sums.of(f), APPLIED)
                   for f in listed_files(files, applied_file, config.migrations_dir)]
        return survey_from(files, entries, applied_file, [], sums, config.migrations_dir)
    async with connection:
        return await _database_for(connection, config).survey(files)


# ================================================================ a run

async def _run(database, files, prepared: Prepared, to, fake: bool, on_event) -> tuple:
    """Inside the lock: survey again, adopt, apply, mirror the ledger in .applied.
    Returns the names applied and that survey."""
    try:
        survey = await database.settled_survey(files)
        pending = cut(survey.pending, to)
        for name in survey.out_of_order:
            if any(f.name == name for f in pending):
                database.notices.append(
                    f"{name} runs after migrations numbered above it that this database applied first; "
                    "in this order they build the same schema as in the files' order.")
        prepared.load(pending, _partly_applied(survey))
        database.on_event = on_event
        steps = [prepared.take(file.name) for file in pending]
        if not fake:  # files that appeared while the lock was awaited
            await database.check_lock_budget(steps)
            await database.hold_schema(steps)
        applied = await _each(steps, lambda step: database.apply(step, fake), "applied", on_event)
    except BaseException:
        # Keep .applied in line with what did commit, also when interrupted (Ctrl-C
        # cancels the run); the original error matters more.
        with anyio.CancelScope(shield=True), suppress(MfError, OSError):
            await database.sync_applied_file()
        raise
    await database.sync_applied_file()
    return applied, survey


async def _each(steps: list, run, done: str, on_event) -> list:
    """``await run(step)`` for each step in order, telling ``on_event`` "start", then
    ``done`` (or "skipped" when run says another process did it first); the names done.
    ``steps`` is emptied as they run, and a step that ran is let go: the steps of a
    first migration of 20,000 models hold 200 MB, and SQLite's own memory grows with
    each table created."""
    names = []
    total = len(steps)
    steps.reverse()
    for index in range(1, total + 1):
        step = steps.pop()
        await _emit(on_event, "start", step.name, index, total)
        if await run(step):
            names.append(step.name)
            await _emit(on_event, done, step.name, index, total)
        else:
            await _emit(on_event, "skipped", step.name, index, total)
    return names


async def _emit(on_event, kind, name, index, total) -> None:
    if on_event is not None:
        result = on_event(kind, name, index, total)
        if hasattr(result, "__await__"):
            await result


def _database_for(connection: Connection, config: Config, sums: Optional[Checksums] = None) -> "_Database":
    return _Database(connection, config, dialect_for(connection.driver), sums)


async def apply_step(connection: Connection, config: Config, step: Step, *, fake: bool = False) -> bool:
    """Run one prepared migration on an open connection exactly as migrate runs each
    of its migrations (its transaction, its ledger row); False when the ledger shows
    another process applied it first. No run-wide lock is taken."""
    return await _database_for(connection, config).apply(step, fake)


class _Database:
    """What a run does with one database. What differs by database, the dialect says:
    its lock (a run-wide lock, or each transaction's write lock), the transaction's
    first statements, foreign keys switched off around a migration, the catalog."""

    def __init__(self, connection: Connection, config: Config, dialect, sums: Optional[Checksums] = None):
        self.connection = connection
        self.config = config
        self.dialect = dialect
        self.directory = config.migrations_dir
        self.sums = sums or Checksums()
        self.ledger_ready = False  # the ledger table is known to exist
        self.notices: list = []    # things the user should hear of, e.g. adoption warnings
        prologue = [dialect.begin_sql] + dialect.transaction_prologue(config.statement_lock_timeout,
                                                                      config.statement_timeout)
        marker = dialect.transaction_marker_sql(config.schema)
        if marker is not None:
            prologue.append(marker)
        self._begin_statements = ["; ".join(prologue)] if dialect.batches_statements else prologue
        self.on_event: Optional[EventCallback] = None  # hears "retry" (see migrate)
        self._holder: Optional[Connection] = None  # the run-wide lock's connection, while held
        self._session_id = None  # the migration session, as blockers_sql asks about it
        self._holder_questions: dict = {}  # what the lock's connection asks once it holds the lock, prepared
        self._lock_budget = None       # read from the server once per run (check_lock_budget)
        self._lock_budget_read = False
        self._within_budget: set = set()

    # ------------------------------------------------------------ the server's lock table
    async def check_lock_budget(self, steps, *, undoing: bool = False) -> None:
        """Refuse, before anything runs, a migration whose transaction would take more
        locks than the server's lock table holds for all sessions together: PostgreSQL
        would fail it with "out of shared memory" after doing most of its work. The
        estimate is the one makemigrations splits by (operations/locks.py)."""
        for step in steps:
            if step.name in self._within_budget:
                continue
            if not self._lock_budget_read:
                self._lock_budget = await self.dialect.lock_budget(self.connection)
                self._lock_budget_read = True
            if self._lock_budget is None:
                return
            estimate = lock_estimate(step.migration.operations)
            if estimate > self._lock_budget.total:
                raise self._over_budget(step, estimate, undoing)
            self._within_budget.add(step.name)

    async def hold_schema(self, steps) -> None:
        """Room for the schema these steps leave, where the database parses its schema
        again after every DDL statement (SQLite: see its dialect)."""
        if not steps:
            return
        with suppress(StatementError):  # only a matter of speed: the run goes on without it
            await self.dialect.hold_schema(self.connection, sum(
                len(statement) for step in steps for statement in step.statements if isinstance(statement, str)))

    def _over_budget(self, step: Step, estimate: int, undoing: bool) -> LockBudgetError:
        what = "undoing it" if undoing else "applying it"
        advice = ("raise max_locks_per_transaction in postgresql.conf and restart the server" if undoing else
                  "split it: delete the file (and any files after it that no database has applied), then run "
                  "`mf db makemigrations` again, which writes migrations of at most max_tables_per_migration "
                  "tables each (lower it if need be); or raise max_locks_per_transaction in postgresql.conf "
                  "and restart the server")
        return LockBudgetError(
            f"{step.name}: {what} would take about {estimate} locks in one transaction, more than the lock table "
            f"of {self.config.display_dsn} holds for all sessions together, {self._lock_budget.describe()}; "
            f"nothing was {'undone' if undoing else 'applied'}. To go on, {advice}.")

    # ------------------------------------------------------------ locking
    @asynccontextmanager
    async def exclusive(self):
        """Held for a whole run: excludes every other mf run on this database. Without
        a run-wide lock (SQLite), each write transaction's lock does that job."""
        if not self.dialect.run_lock:
            yield
            return
        holder = await connect(self.config)
        try:
            # The lock's session is idle for the whole run: with a lease the server ends
            # it, and frees the lock, when this process stops keeping it busy (it died,
            # or its network stalled) instead of keeping it for ever.
            lease = self.dialect.lease_sql(self.config.command_timeout)
            if lease is not None:
                await holder.execute(lease)
            await self._check_transactional_ddl(holder)
            await self._prepare_holder_questions(holder)
            await self._take_lock(holder)
            await self._wait_for_earlier_transactions()
            await self._prepare_migration_session()
            holder.start_heartbeat(self.config.command_timeout / 4)
            self._holder = holder
            connection_trouble = False
            try:
                yield
            except DatabaseError:
                # Maybe a stalled or lost connection: asking the lock's session for
                # anything could wait out command_timeout once more. Its close frees the lock.
                connection_trouble = True
                raise
            finally:
                if not connection_trouble:
                    with anyio.CancelScope(shield=True):
                        with suppress(StatementError, DatabaseError):
                            await holder.execute(self.dialect.unlock_sql(self.config.schema))
        finally:
            self._holder = None
            self._holder_questions = {}
            # Closing the session frees the lock in any case.
            with anyio.CancelScope(shield=True):
                await holder.close()

    async def _prepare_holder_questions(self, holder: Connection) -> None:
        """Everything the lock's session will be asked while it holds the lock, parsed by
        the server before the lock is taken: once held, each question is one exchange
        ending in Sync. A network that stalls half-way through a parse would otherwise
        leave the server waiting for the rest of the statement, outside every timeout
        and every lease, holding the lock for as long as the stalled socket stays open."""
        questions = {"earlier": self.dialect.earlier_transactions_sql(self.config.schema),
                     "wait": self.dialect.wait_for_earlier_transactions_sql(self.config.schema,
                                                                            self.config.lock_timeout),
                     "blockers": self.dialect.blockers_sql()}
        prepared = {}
        for key, sql in questions.items():
            if sql is None:
                continue
            try:
                prepared[key] = await holder.prepare(sql)
            except StatementError as exc:
                raise DatabaseError(f"{self.config.display_dsn} cannot prepare what mf asks while it holds the "
                                    f"migration lock ({exc.message}); nothing was applied") from None
        self._holder_questions = prepared

    async def _take_lock(self, holder: Connection) -> None:
        """Poll for the lock on ``holder`` (a connection of its own) with growing,
        jittered pauses until lock_timeout."""
        deadline = time.monotonic() + self.config.lock_timeout
        delay = 0.005
        while True:
            try:
                rows = await holder.fetch(self.dialect.try_lock_sql(self.config.schema))
            except StatementError as exc:
                raise DatabaseError(
                    f"{self.config.display_dsn} cannot give mf its migration lock ({exc.message}); mf applies "
                    "migrations only under a session advisory lock, so nothing was applied") from None
            if rows[0][0]:
                if len(rows[0]) > 1 and not rows[0][1]:
                    raise DatabaseError(
                        f"{self.config.display_dsn} said the migration lock was taken but holds no such lock; its "
                        "advisory locks do not lock, so mf refuses to migrate it (two runs could apply a "
                        "migration twice)")
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeoutError(
                    f"another mf run held the migration lock on {self.config.display_dsn} for more than "
                    f"{self.config.lock_timeout:g} s; try again when it is done (or raise "
                    "database.lock_timeout)")
            await anyio.sleep(min(delay * random.uniform(0.5, 1.5), remaining))
            delay = min(delay * 2, LOCK_POLL_MAX)

    async def _wait_for_earlier_transactions(self) -> None:
        """A run killed inside a statement frees the run-wide lock at once (its session
        ends with the process), while the server may still run that statement's
        transaction, and hold its locks, until it notices that the client is gone. Such a
        transaction holds the mark of the dialect's transaction_marker_sql: wait for it to
        end, at most lock_timeout, saying so; then give up naming it."""
        query = self._holder_questions.get("earlier")
        if query is None:
            return
        earlier = await self._backends(query)
        if not earlier:
            return
        where = self.config.display_dsn
        self.notices.append(
            f"Waiting for the transaction of an earlier mf run on {where}, {describe_backends(earlier)}: that run "
            "is gone (the migration lock was free), but the server still runs its transaction, whose locks would "
            f"block this run (waiting at most lock_timeout {self.config.lock_timeout:g} s).")
        started = time.monotonic()
        wait = self._holder_questions.get("wait")
        if self.config.lock_timeout > 0 and wait is not None:
            try:
                await wait.fetch()
                self.notices.append(f"The earlier run's transaction ended after {time.monotonic() - started:.1f} s; "
                                    "this run goes on.")
                return
            except StatementError as exc:
                if not exc.is_lock_timeout:
                    raise DatabaseError(f"{where} could not say when an earlier mf run's transaction ends "
                                        f"({exc.message}); nothing was applied") from None
        still = await self._backends(query) or earlier
        raise LockTimeoutError(
            f"the transaction of an earlier mf run, {describe_backends(still)}, still runs on {where} after "
            f"lock_timeout {self.config.lock_timeout:g} s: that run is gone (the migration lock was free), but the "
            "server has not ended its transaction, whose locks would block this run; nothing was applied. Run "
            "migrate again when it has ended (or end it: SELECT pg_cancel_backend(pid))")

    async def _backends(self, query: PreparedQuery, *args) -> list:
        """Other sessions of the server, as ``query`` (of the dialect) finds them."""
        try:
            rows = await query.fetch(args)
        except StatementError as exc:
            raise DatabaseError(f"{self.config.display_dsn} cannot list its sessions ({exc.message}); "
                                "nothing was applied") from None
        return [Backend(*row) for row in rows]

    async def _prepare_migration_session(self) -> None:
        """The migration session's id (for blockers_sql), and whatever the dialect sets
        on it (PostgreSQL 14+: the server ends its statement soon after its client is gone)."""
        query = self.dialect.migration_session_sql()
        if query is None:
            return
        try:
            rows = await self.connection.fetch(query)
        except StatementError as exc:
            raise DatabaseError(f"cannot prepare the migration session on {self.config.display_dsn}: "
                                f"{exc.message}; nothing was applied") from None
        self._session_id = rows[0][0]

    async def _check_transactional_ddl(self, holder: Connection) -> None:
        """An engine that commits DDL on its own would break one transaction per
        migration, silently: refuse it, before anything runs. Asked on the lock's
        connection, which has the run's settings (search_path), before it takes the
        lock. A server that cannot create the table at all (no such schema, no
        privilege, no DDL inside a transaction) is not refused here: the run's first transaction fails with the
        server's words and is rolled back, which is safe."""
        probe = self.dialect.transactional_ddl_probe(f"mf_ddl_probe_{uuid.uuid4().hex[:12]}")
        if probe is None:
            return
        create_and_roll_back, check, cleanup = probe
        try:
            await holder.execute(create_and_roll_back)
        except StatementError:
            with suppress(StatementError, DatabaseError):
                await holder.execute("ROLLBACK")
            return
        survived = not (await holder.fetch(check))[0][0]
        if survived:
            with suppress(StatementError, DatabaseError):
                await holder.execute(cleanup)
        refusal = self.dialect.transactional_ddl_refusal(self.config.display_dsn, survived)
        if refusal is not None:
            raise DatabaseError(refusal)

    @asynccontextmanager
    async def write_transaction(self):
        """A transaction that holds the database's write lock (no run-wide lock) or
        runs under the run's lock."""
        await self._begin()
        try:
            yield
        except BaseException:
            await self._rollback()
            raise
        try:
            await self.connection.execute("COMMIT")
        except StatementError as exc:
            await self._rollback()
            raise DatabaseError(f"COMMIT failed on {self.config.display_dsn}: {exc.message}") from None

    async def _begin(self) -> None:
        try:
            for statement in self._begin_statements:
                await self.connection.execute(statement)
        except StatementError as exc:
            if exc.is_lock_timeout:
                raise LockTimeoutError(
                    f"another process kept the {self.dialect.title} database {self.config.display_dsn} "
                    f"locked for more than {self.config.lock_timeout:g} s; try again when it is done") from None
            raise DatabaseError(f"cannot start a transaction on {self.config.display_dsn}: {exc.message}") \
                from None
        except BaseException:
            # Interrupted while BEGIN was under way: the driver may still carry it out,
            # so end the transaction it may have started.
            await self._rollback()
            raise

    async def _rollback(self) -> None:
        with anyio.CancelScope(shield=True):
            with suppress(StatementError, DatabaseError):
                await self.connection.execute("ROLLBACK")

    @asynccontextmanager
    async def _foreign_keys_off(self, wanted: bool = True):
        """Foreign keys switched off around a transaction (they cannot be switched
        inside one), where the database has such a switch and ``wanted``."""
        off, on = self.dialect.foreign_keys_off_sql, self.dialect.foreign_keys_on_sql
        if not wanted or off is None:
            yield
            return
        await self.connection.execute(off)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await self.connection.execute(on)

    # ------------------------------------------------------------ survey
    async def survey(self, files) -> Survey:
        entries = await ledger.read_ledger(self.connection)
        if entries is not None:
            self.ledger_ready = True
        applied_file = read_applied(self.directory) if self.config.mirrors_applied_file else None
        adopt = []
        from_catalog = False
        if entries is None and applied_file:
            listed = listed_files(files, applied_file, self.directory)
            adopt = await self._adoption(listed, await self.dialect.table_names(self.connection),
                                         await self.dialect.enum_type_names(self.connection))
        elif entries == [] and files:
            # A ledger with no row: emptied by `mf db reset` (or everything rolled back). The
            # database may still hold the tables a new 001 creates; a database that never had
            # a ledger is migrated as usual (a table in the way fails its migration).
            adopt = await self._catalog_adoption(files)
            from_catalog = bool(adopt)
        return survey_from(files, entries, applied_file, adopt, self.sums, self.directory, from_catalog)

    async def _catalog_adoption(self, files) -> list:
        """A database with an empty ledger (after `mf db reset`) that already holds tables
        the migrations create: the longest run of files from the first whose schema
        the catalog matches exactly (the adoption comparison, no difference at all), to be
        recorded as applied without running. [] when the database holds none of their
        tables (they are applied as usual). Anything else is a DriftError naming every
        difference: nothing is recorded or run."""
        existing = await self.dialect.table_names(self.connection) - {ledger.LEDGER_TABLE}
        if not existing:
            return []  # the usual first run: nothing to compare, nothing parsed
        history, _schema = load_history(self.directory, files)
        schemas = []  # the schema after each file
        state = Schema()
        for migration in history:
            state = fold(migration.operations, state)
            schemas.append(state)
        created = set().union(*({m.table for m in schema.models.values()} for schema in schemas))
        if not created & existing:
            return []
        existing_types = await self.dialect.enum_type_names(self.connection)
        for count in range(len(schemas), 0, -1):
            schema = schemas[count - 1]
            tables = {m.table for m in schema.models.values()}
            if not tables or not tables <= existing or (created - tables) & existing:
                continue  # its tables are not all there, or a later file's are
            if not await self._catalog_differences(schema, existing_types):
                return list(files[:count])
        differences = await self._catalog_differences(schemas[-1], existing_types)
        raise DriftError(
            f"the ledger of {self.config.display_dsn} is empty, but the database already holds tables the "
            f"migrations in {self.directory} create ({', '.join(sorted(created & existing))}), and it does not "
            "match them, so mf records nothing as applied and runs nothing:\n"
            + "\n".join(f"  - {item}" for item in differences)
            + "\nNothing was changed. Bring the database in line with the migrations (or drop those tables, "
            "e.g. `mf db reset --drop-db`) and run migrate again.")

    async def _catalog_differences(self, schema, existing_types) -> list:
        """Every way the database differs from ``schema``, as mf db drift says it."""
        findings = await adoption.compare_with_database(self.config, self.connection, self.dialect, schema)
        types = {e.type_name for e in schema.enums.values()} if self.dialect.has_enum_types else set()
        return (findings.blocking + findings.warnings
                + [f"enum type {name} does not exist in the database" for name in sorted(types - existing_types)])

    async def _adoption(self, listed, existing_tables, existing_types) -> list:
        """§6.2, after a look at the catalog: the listed files to record as applied
        (the database holds what they create), or [] when it holds none of it and they
        are to be applied. Anything in between is drift, reported in full."""
        if not existing_tables and not existing_types:
            return []  # an empty database: nothing to compare, the history is not read
        _history, schema = load_history(self.directory, listed)
        tables = {m.table for m in schema.models.values()}
        types = {e.type_name for e in schema.enums.values()} if self.dialect.has_enum_types else set()
        if not (tables & existing_tables) and not (types & existing_types):
            return []
        findings = await adoption.compare_with_database(self.config, self.connection, self.dialect, schema)
        if findings.blocking:
            raise DriftError(adoption.report(len(listed), findings))
        for line in adoption.warning_lines(findings):
            if line not in self.notices:
                self.notices.append(line)
        return list(listed)

    # ------------------------------------------------------------ writing
    async def settled_survey(self, files) -> Survey:
        """Inside the lock: the survey, with what it found to record written first --
        migrations adopted from .applied, ledger rows of renamed files renamed -- so
        that the ledger names the files as they are now."""
        survey = await self.survey(files)
        if survey.adopt:
            await self.adopt(survey.adopt)
            if survey.adopt_from_catalog:
                it, creates = ("it", "it creates") if len(survey.adopt) == 1 else ("them", "they create")
                self.notices.append(
                    f"Recorded {', '.join(f.name for f in survey.adopt)} as applied without running {it}: the "
                    f"database already holds what {creates}, and its catalog matches.")
            else:
                self.notices.append(f"Recorded {len(survey.adopt)} migration(s) listed in .applied as applied: "
                                    "the database already holds what they create.")
        if survey.renames:
            await self.rename(survey.renames)
            survey = await self.survey(files)
        return survey

    async def rename(self, renames) -> None:
        """Rename the ledger rows of renamed files (same content), in one transaction."""
        async with self.write_transaction():
            for old, new in renames:
                await ledger.rename(self.connection, old, new)
        for old, new in renames:
            self.notices.append(f"{old} was applied here and is now {new} (same content, renumbered): "
                                "its ledger row was renamed.")

    async def adopt(self, files) -> None:
        """Record migrations whose objects the database already holds (the earlier tool
        applied them, or the ledger was emptied by reset), in one transaction with the
        ledger's creation. Another process may have adopted them first."""
        async with self.write_transaction():
            if await ledger.ledger_exists(self.connection) and await ledger.read_ledger(self.connection):
                return
            await ledger.ensure_ledger(self.connection)
            for file in files:
                await ledger.record(self.connection, file.name, self.sums.of(file))
        self.ledger_ready = True

    async def apply(self, step: Step, fake: bool) -> bool:
        """Run one migration and write its ledger row, in one transaction; False when
        another process turned out to have applied it first.

        There is no separate look at the ledger before the statements: the row's
        UNIQUE name is that check, inside the transaction that holds the lock. A
        migration applied meanwhile fails (its statements, or its ledger row), is
        rolled back, and is then found in the ledger and skipped."""
        if not step.atomic:
            return await self._apply_outside_transaction(step, fake)
        if step.parts is not None:
            return await self._apply_in_steps(step, fake)
        # A table rebuild (SQLite): foreign keys off outside the transaction, checked
        # before the commit (_run_statements).
        async with self._foreign_keys_off(step.foreign_keys_off and not fake):
            return await self._apply_in_transaction(step, fake)

    async def _apply_in_transaction(self, step: Step, fake: bool) -> bool:
        async def attempt() -> None:
            started = time.perf_counter()
            await self._begin()
            try:
                if not self.ledger_ready:
                    await self._ensure_ledger()
                if not fake:
                    await self._run_statements(step)
                await self._record_and_commit(step, time.perf_counter() - started)
            except BaseException:
                await self._rollback()
                raise

        try:
            await self._with_lock_retries(step, attempt)
        except _StatementFailed as failed:
            if await self._applied_meanwhile(step):
                return False
            raise self._failure(step, failed, rolled_back=True) from None
        self.ledger_ready = True
        return True

    async def _with_lock_retries(self, step: Step, attempt: Callable[[], Awaitable[T]]) -> T:
        """``await attempt()``: one try of a transaction, from BEGIN to COMMIT, that rolls
        itself back and raises _StatementFailed when a statement fails. A try that gave
        up waiting longer than statement_lock_timeout for a lock runs again from BEGIN,
        up to lock_retries times, after a jittered pause that doubles from
        LOCK_RETRY_FIRST_WAIT up to lock_retry_max_wait: each short wait queues the
        application's queries behind the migration only briefly, and the pauses let them
        through. Each retry is a notice and a "retry" event; the last failure carries
        the sessions seen holding the lock, the number of tries and the time they took."""
        retries = self.config.lock_retries if self.dialect.sets_lock_timeout else 0
        first = time.monotonic()
        for retry in range(retries + 1):
            blockers: list = []
            try:
                return await self._watching_blockers(attempt, blockers)
            except _StatementFailed as failed:
                if not failed.error.is_lock_timeout:
                    raise
                failed.blockers, failed.tries, failed.waited = tuple(blockers), retry + 1, time.monotonic() - first
                if retry == retries:
                    raise
            pause = min(self.config.lock_retry_max_wait, LOCK_RETRY_FIRST_WAIT * 2 ** min(retry, 30)) \
                * random.uniform(0.5, 1.0)
            held = f" held by {describe_backends(blockers)}" if blockers else ""
            self.notices.append(f"{step.name}: waited longer than statement_lock_timeout "
                                f"{self.config.statement_lock_timeout} for a lock{held}; rolled back, retry "
                                f"{retry + 1} of {retries} in {pause:.1f} s.")
            await _emit(self.on_event, "retry", step.name, retry + 1, retries)
            await anyio.sleep(pause)
        raise AssertionError("unreachable: the last try returns or raises")  # pragma: no cover

    async def _watching_blockers(self, attempt: Callable[[], Awaitable[T]], seen: list) -> T:
        """``await attempt()`` while the run-wide lock's connection asks, every quarter of
        statement_lock_timeout, which sessions hold the lock the migration session waits
        for (the migration's own connection is busy waiting); the last answer that named
        any is left in ``seen``. Without a run-wide lock's connection, just the attempt."""
        holder, session, query = self._holder, self._session_id, self._holder_questions.get("blockers")
        lock_wait = duration_seconds(self.config.statement_lock_timeout)
        if holder is None or session is None or query is None or lock_wait <= 0:
            return await attempt()
        interval = min(max(lock_wait / 4, 0.05), 1.0)
        done = anyio.Event()
        asked = False

        async def watch() -> None:
            nonlocal asked
            while True:
                with anyio.move_on_after(interval):
                    await done.wait()
                if done.is_set():
                    return
                asked = True
                with anyio.CancelScope(shield=True):  # never cut a question half-way
                    try:
                        found = await self._backends(query, session)
                    except (StatementError, DatabaseError):
                        return  # the failure, if any, is the attempt's to report
                if found:
                    seen[:] = found

        outcome: tuple = ()
        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            try:
                outcome = (True, await attempt())
            except Exception as exc:  # noqa: BLE001 - raised below, outside the task group (anyio would wrap it)
                outcome = (False, exc)
            finally:
                done.set()
        if asked:  # a question ends the lock's heartbeat (see Connection.start_heartbeat)
            holder.start_heartbeat(self.config.command_timeout / 4)
        succeeded, value = outcome
        if not succeeded:
            raise value
        return value

    async def _record_and_commit(self, step: Step, duration: float) -> None:
        if self.dialect.batches_statements:
            # The row and the COMMIT in one round trip.
            statement = ledger.record_statement(self.dialect, step.name, step.migration.checksum, duration) \
                + "; COMMIT"
            try:
                await self.connection.execute(statement)
            except StatementError as exc:
                raise _StatementFailed(0, 0, statement, exc, "recording it in the ledger") from None
            return
        try:
            await ledger.record(self.connection, step.name, step.migration.checksum, duration)
        except StatementError as exc:
            raise _StatementFailed(0, 0, "INSERT INTO mf_migrations ...", exc, "recording it in the ledger") \
                from None
        try:
            await self.connection.execute("COMMIT")
        except StatementError as exc:
            raise _StatementFailed(0, 0, "COMMIT", exc, "COMMIT") from None

    async def _apply_in_steps(self, step: Step, fake: bool) -> bool:
        """A migration cut into steps (step.parts): each transactional step in a
        transaction of its own that also records, in the ledger, the step reached
        ('step N', 'applied' with the last); a step outside a transaction (an index
        built CONCURRENTLY) runs alone, its progress recorded right after it. A row
        'step N' left by a run that stopped is resumed at step N + 1. The run-wide
        lock is held across every step. False when the ledger shows it applied."""
        started = time.perf_counter()
        total = len(step.parts)
        checksum = step.migration.checksum
        async with self.write_transaction():
            try:
                if not self.ledger_ready:
                    await self._ensure_ledger()
                if await ledger.ensure_steps(self.connection):
                    self.notices.append(f"The ledger {ledger.LEDGER_TABLE} now also records how far a migration made "
                                        "of steps got (state 'step N').")
                state = await ledger.state_of(self.connection, step.name)
                recorded_before = state is not None  # by a run that stopped: this one resumes it
                if state is None and step.parts[0][0] and not fake:
                    # Its first step runs outside a transaction: the row comes first, so
                    # that a run stopped inside that step leaves a trace to resume from.
                    await ledger.record(self.connection, step.name, checksum, 0.0, state=ledger.step_state(0))
                    state = ledger.step_state(0)
            except StatementError as exc:
                raise DatabaseError(f"cannot record {step.name} in the ledger {ledger.LEDGER_TABLE} on "
                                    f"{self.config.display_dsn}: {exc.message}; nothing was applied") from None
        self.ledger_ready = True
        if state == APPLIED:
            return False
        if state == STARTED:
            check_unresolved([LedgerEntry(step.name, "", STARTED)])
        done = ledger.steps_done(state) if state is not None else 0
        has_row = state is not None
        if fake:
            await self._begin()
            try:
                await self._finish_steps(step, has_row, time.perf_counter() - started)
            except BaseException:
                await self._rollback()
                raise
            return True
        if done:
            self.notices.append(f"{step.name}: resumed at step {done + 1} of {total} (a run stopped after step "
                                f"{done}).")
        for number, (outside, statements) in enumerate(step.parts, 1):
            if number <= done:
                continue
            last = number == total
            if outside:
                try:
                    await self._run_statements(step, statements, resuming=recorded_before and number == done + 1)
                except _StatementFailed as failed:
                    cleaned = await self._after_failed_build(step, failed, number)
                    raise self._step_failure(step, failed, number, total, outside=True, cleaned=cleaned) from None

            async def attempt(number=number, outside=outside, statements=statements, last=last) -> None:
                await self._begin()
                try:
                    if not outside:
                        await self._run_statements(step, statements)
                    if last:
                        await self._finish_steps(step, has_row, time.perf_counter() - started)
                    else:
                        await self._record_step(step, number, has_row)
                        await self.connection.execute("COMMIT")
                except StatementError as exc:
                    await self._rollback()
                    raise _StatementFailed(0, 0, "COMMIT", exc, "COMMIT") from None
                except BaseException:
                    await self._rollback()
                    raise

            try:
                # A step that gave up waiting for a lock runs again from its BEGIN.
                await self._with_lock_retries(step, attempt)
            except _StatementFailed as failed:
                raise self._step_failure(step, failed, number, total, outside=False) from None
            has_row = True
        return True

    async def _record_step(self, step: Step, number: int, has_row: bool) -> None:
        try:
            if has_row:
                await ledger.record_progress(self.connection, step.name, number)
            else:
                await ledger.record(self.connection, step.name, step.migration.checksum, 0.0,
                                    state=ledger.step_state(number))
        except StatementError as exc:
            raise _StatementFailed(0, 0, "UPDATE mf_migrations ...", exc, "recording the step in the ledger") \
                from None

    async def _finish_steps(self, step: Step, has_row: bool, duration: float) -> None:
        """The last step's ledger row ('applied') and the COMMIT, in the open transaction."""
        if not has_row:
            await self._record_and_commit(step, duration)
            return
        try:
            await ledger.mark_applied(self.connection, step.name, step.migration.checksum, duration)
        except StatementError as exc:
            raise _StatementFailed(0, 0, "UPDATE mf_migrations ...", exc, "recording it in the ledger") from None
        try:
            await self.connection.execute("COMMIT")
        except StatementError as exc:
            raise _StatementFailed(0, 0, "COMMIT", exc, "COMMIT") from None

    async def _after_failed_build(self, step: Step, failed: "_StatementFailed", number: int) -> bool:
        """After an index build that failed (duplicates, a lock timeout): the INVALID index
        it left is dropped now, and when nothing of the migration had committed, its row
        ('step 0') goes too, so the failure leaves the database as it was. True when
        that cleanup was done (a cleanup that fails is left to the next run)."""
        build = failed.statement
        if not isinstance(build, IndexBuild) and number != 1:
            return False
        try:
            if isinstance(build, IndexBuild) \
                    and await self.dialect.index_validity(self.connection, build.index) is False:
                await self.connection.execute(self.dialect.drop_index_concurrently_sql(build.index))
            if number == 1:
                async with self.write_transaction():
                    if await ledger.state_of(self.connection, step.name) == ledger.step_state(0):
                        await ledger.forget(self.connection, step.name)
        except (StatementError, DatabaseError):
            return False
        return True

    def _step_failure(self, step: Step, failed: "_StatementFailed", number: int, total: int,
                      outside: bool, cleaned: bool = False) -> DatabaseError:
        if number == 1 and (not outside or (cleaned and not isinstance(failed.statement, IndexBuild))):
            # Nothing of the migration had committed (a statement outside a transaction
            # that failed changed nothing): as for a migration of one transaction.
            return self._failure(step, failed, rolled_back=True)
        if number == 1:
            before = "no step before it had committed"
        elif number == 2:
            before = "step 1 before it stays committed and the ledger records it"
        else:
            before = f"steps 1-{number - 1} before it stay committed and the ledger records them"
        if outside and isinstance(failed.statement, IndexBuild) and cleaned:
            what = f"It ran outside a transaction; the INVALID index {failed.statement.index} it left was dropped"
        elif outside and isinstance(failed.statement, IndexBuild):
            what = (f"It ran outside a transaction; an index {failed.statement.index} it left INVALID is dropped "
                    "and built again by the next migrate")
        elif outside:
            what = "It ran outside a transaction"
        else:
            what = "That step was rolled back"
        again = f"it resumes at step {number}" if number > 1 else "it runs it again"
        outcome = (f"stopped at step {number} of {total}. {what}; {before}. Fix the cause and run "
                   f"`mf db migrate` again: {again}")
        return self._failure(step, failed, rolled_back=False, outcome=outcome)

    async def _index_build(self, step: Step, build: IndexBuild, resuming: bool) -> None:
        """CREATE INDEX CONCURRENTLY, after a look at an index of that name: an INVALID
        one (a build that was killed or failed) is dropped and built again; a VALID one
        found when resuming at this step was built by the run that stopped."""
        connection = self.connection
        valid = await self.dialect.index_validity(connection, build.index)
        if valid is False:
            await connection.execute(self.dialect.drop_index_concurrently_sql(build.index))
            self.notices.append(f"{step.name}: the index {build.index} was left INVALID by a build that did not "
                                "finish; it was dropped and built again.")
        elif valid and resuming:
            self.notices.append(f"{step.name}: the index {build.index} was built by a run that stopped before "
                                "recording it; it is taken as done.")
            return
        await connection.execute(str(build))  # the driver takes a str, no subclass

    async def _ensure_ledger(self) -> None:
        try:
            await ledger.ensure_ledger(self.connection)
        except StatementError as exc:
            where = f" in schema {self.config.schema}" if self.config.schema is not None else ""
            raise DatabaseError(f"cannot create the ledger {ledger.LEDGER_TABLE} on {self.config.display_dsn}"
                                f"{where}: {exc.message}") from None

    async def unapply(self, step: Step) -> bool:
        """Run the undo ``step`` and remove its migration's ledger row, in one
        transaction (tried again after a lock timeout, as a migration is); False when
        the row is gone already (another run undid it). A _LedgerOnly step (a fake
        undo) has no statements: only the row goes."""
        async def attempt() -> bool:
            await self._begin()
            try:
                if await ledger.state_of(self.connection, step.name) != APPLIED:
                    await self._rollback()
                    return False
                await self._run_statements(step)
                await ledger.forget(self.connection, step.name)
                await self.connection.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise
            return True

        async with self._foreign_keys_off(step.foreign_keys_off):
            try:
                return await self._with_lock_retries(step, attempt)
            except _StatementFailed as failed:
                raise self._undo_failure(step, failed) from None
            except StatementError as exc:
                raise DatabaseError(f"undoing {step.name} failed on {self.config.display_dsn} and was rolled "
                                    f"back; it stays applied: {exc.message}") from None

    def _undo_failure(self, step: Step, failed: "_StatementFailed") -> DatabaseError:
        shown = failed.statement if len(failed.statement) <= 600 else failed.statement[:600] + " ..."
        if isinstance(failed.statement, Guard):
            shown = "a check mf runs before the change"
        said = failed.error.message
        if failed.error.is_lock_timeout and self.dialect.sets_lock_timeout:
            said += f" ({self._lock_wait_story(failed)})"
        kind = LockTimeoutError if failed.error.is_lock_timeout else DatabaseError
        error = kind(
            f"undoing {step.name} failed on {self.config.display_dsn} and was rolled back; it stays applied, "
            f"as do the migrations before it. {failed.label}: {shown} -- the database said: {said}")
        error.migration = step.name
        error.statement = failed.statement
        error.server_message = failed.error.message
        error.code = failed.error.code
        return error

    async def _applied_meanwhile(self, step: Step) -> bool:
        """After a failure: is the migration in the ledger after all (another run
        applied it)? A 'started' row is an unresolved non-atomic migration."""
        try:
            state = await ledger.state_of(self.connection, step.name)
        except (StatementError, DatabaseError):
            return False
        if state == STARTED:
            check_unresolved([LedgerEntry(step.name, "", STARTED)])
        return state == APPLIED

    async def _run_statements(self, step: Step, statements=None, resuming: bool = False) -> None:
        """``statements`` (default: all of the step's) in order; ``resuming``: a run
        resumes at them (see _index_build)."""
        statements = step.statements if statements is None else statements
        total = len(statements)
        index = 0
        while index < total:
            statement = statements[index]
            if not isinstance(statement, _RUN_ON_ITS_OWN):
                # A run of plain statements goes to the driver at once (one trip to
                # aiosqlite's thread); asyncpg takes a str, no subclass (an OutsideTransaction is one).
                end = index + 1
                while end < total and not isinstance(statements[end], _RUN_ON_ITS_OWN):
                    end += 1
                try:
                    await self.connection.execute_each([str(s) for s in statements[index:end]])
                except StatementError as exc:
                    failed = index + exc.position
                    raise _StatementFailed(failed + 1, total, statements[failed], exc) from None
                index = end
                continue
            index += 1
            try:
                if isinstance(statement, IndexBuild):
                    await self._index_build(step, statement, resuming)
                elif isinstance(statement, IndexDrop):
                    if resuming and await self.dialect.index_validity(self.connection, statement.index) is None:
                        self.notices.append(f"{step.name}: the index {statement.index} was dropped by a run that "
                                            "stopped before recording it; the drop is taken as done.")
                    else:
                        await self.connection.execute(str(statement))
                elif isinstance(statement, PythonCall):
                    await self._call(statement)
                elif isinstance(statement, CatalogStep):
                    try:
                        await statement.run(self.connection)
                    except CatalogStepRefusal as refusal:
                        raise StatementError(str(refusal)) from None
                else:  # a Guard
                    found = await self.connection.fetch(str(statement))  # asyncpg takes a str, no subclass
                    if found:
                        raise StatementError(statement.refusal(found[0]))
            except StatementError as exc:
                raise _StatementFailed(index, total, statement, exc) from None
        if step.foreign_keys_off:
            # Only the tables the migration can have broken, and those referencing them:
            # a whole-database check reads every row of every table.
            try:
                problem = await self.dialect.foreign_key_problem(self.connection, step.foreign_key_tables)
            except StatementError as exc:
                problem = exc.message
            if problem is not None:
                raise _StatementFailed(total, total, self.dialect.foreign_key_check_sql, StatementError(problem))

    async def _call(self, call: PythonCall) -> None:
        """A run_python step: the project's function, given this migration's connection.
        Whatever it raises fails the migration like a refused statement."""
        try:
            await call.function(MigrationConnection(self.connection, self.dialect.name))
        except StatementError:
            raise
        except Exception as exc:  # the project's code: whatever it raises fails the migration
            raise StatementError(f"{call.function_name} raised {type(exc).__name__}: {exc}") from None

    async def _apply_outside_transaction(self, step: Step, fake: bool) -> bool:
        """Recorded as started in a transaction of its own, run statement by statement,
        then marked applied. A run that dies in between leaves 'started' behind."""
        connection = self.connection
        started = time.perf_counter()
        async with self.write_transaction():
            if not self.ledger_ready:
                await self._ensure_ledger()
            await ledger.record(connection, step.name, step.migration.checksum, 0.0, state=STARTED)
        self.ledger_ready = True
        if not fake:
            timeout = self.dialect.session_lock_timeout_sql(self.config.statement_lock_timeout)
            if timeout is not None:
                await connection.execute(timeout[0])
            try:
                await self._run_statements(step)
            except _StatementFailed as failed:
                raise self._failure(step, failed, rolled_back=False) from None
            finally:
                if timeout is not None:
                    with anyio.CancelScope(shield=True), suppress(StatementError, DatabaseError):
                        await connection.execute(timeout[1])
        await ledger.mark_applied(connection, step.name, step.migration.checksum, time.perf_counter() - started)
        return True

    def _missing_object(self, step: Step, failed: "_StatementFailed") -> Optional[str]:
        """The reason when the statement addressed a constraint or index by a name the
        database does not have (renamed or dropped outside mf)."""
        found = self.dialect.missing_object(failed.error, failed.statement)
        if found is None:
            return None
        kind, name, table = found
        if table is None:  # DROP INDEX names no table: the migration's operation does
            table = next((op.table for op in step.migration.operations
                          if getattr(op, "index", None) is not None and op.index.name == name), None)
        where = f" of table {table}" if table else ""
        return (f"the {kind} {name}{where} is not in the database (renamed or dropped outside mf?); "
                f"`mf db drift` shows how the database differs from its migrations")

    def _lock_wait_story(self, failed: "_StatementFailed") -> str:
        """How a statement that gave up waiting for a lock came to give up, and who held the lock."""
        story = f"it waited longer than statement_lock_timeout {self.config.statement_lock_timeout} for a lock"
        if failed.tries > 1:
            story += f", {failed.tries} times in {failed.waited:.0f} s ({failed.tries - 1} retries)"
        holders = (f"the lock is held by {describe_backends(failed.blockers)}" if failed.blockers else
                   "another session holds it")
        return f"{story}; {holders}; run migrate again when that session's transaction is done"

    def _failure(self, step: Step, failed: "_StatementFailed", rolled_back: bool,
                 outcome: Optional[str] = None) -> DatabaseError:
        # The statement on one line, after the reason: a DO block or a long CREATE TABLE
        # must not bury what the database said.
        shown = " ".join(failed.statement.split())
        if isinstance(failed.statement, Guard):
            shown = "a check mf runs before the change"  # its message is the reason
        elif shown.startswith("DO "):
            shown = "a check mf runs before the change (DO block)"  # its message is the reason
        shown = shown if len(shown) <= 300 else shown[:300] + " ..."
        said = self.dialect.users_words(failed.error.message)
        missing = self._missing_object(step, failed)
        if missing is not None:
            reason = missing
        elif failed.error.is_lock_timeout and self.dialect.sets_lock_timeout:
            reason = f"{said} ({self._lock_wait_story(failed)})"
        elif rolled_back and self.dialect.is_statement_timeout(failed.error):
            reason = (f"{said} (it ran longer than statement_timeout {self.config.statement_timeout}; raise "
                      "database.statement_timeout for a statement that must run that long, or do the work in "
                      "smaller pieces)")
        else:
            reason = said
        if outcome is not None:
            pass
        elif rolled_back:
            outcome = "was rolled back; migrations before it stay applied"
        else:
            outcome = (f"runs outside a transaction, so statements before it stayed committed; it is "
                       f"recorded as started: check the database, then run `mf db resolve "
                       f"{step.migration.file.number:03d} --applied` or `--rolled-back`")
        kind = LockTimeoutError if failed.error.is_lock_timeout else DatabaseError
        error = kind(
            f"migration {step.name} failed on {self.config.display_dsn}: {reason.rstrip('.')}. It {outcome}. "
            f"{failed.label}: {shown}")
        error.migration = step.name
        error.statement = failed.statement
        error.server_message = failed.error.message
        error.code = failed.error.code
        return error

    async def sync_applied_file(self) -> None:
        """Rewrite .applied from the ledger if they differ (the caller holds the lock;
        without a run-wide lock the write lock orders the writers of .applied: the
        last one wrote the newest ledger)."""
        if self.dialect.run_lock:
            await self._write_applied_file(await ledger.read_ledger(self.connection))
            return
        async with self.write_transaction():
            await self._write_applied_file(await ledger.read_ledger(self.connection))

    async def _write_applied_file(self, entries) -> None:
        if entries is None or not self.config.mirrors_applied_file:
            return
        names = [e.name for e in entries if e.state == APPLIED]
        try:
            current = read_applied(self.directory)
        except MigrationFileError:
            current = None
        if current == names:
            return
        try:
            await anyio.to_thread.run_sync(write_applied, self.directory, names)
        except (OSError, FileWriteError) as exc:
            # The ledger holds the truth; a read-only deployment still migrates.
            import warnings

            from .files import describe_os_error

            warnings.warn(f"mf: could not update {os.path.join(self.directory, '.applied')}: "
                          f"{describe_os_error(exc) if isinstance(exc, OSError) else exc}; "
                          "the database's ledger is up to date", RuntimeWarning, stacklevel=2)

    # ------------------------------------------------------------ reset
    async def owned_drop_plan(self, files) -> list:
        """``[(statement, what it drops or None)]``: the dialect's drops of the owned
        tables and enum types that the catalog holds, then the ledger's."""
        entries = await ledger.read_ledger(self.connection)
        applied_file = read_applied(self.directory) if entries is None and self.config.mirrors_applied_file else None
        applied = applied_files(files, entries, applied_file, self.directory)
        tables, enums = owned_objects(self.directory, applied, self.dialect.has_enum_types)
        existing = await self.dialect.table_names(self.connection)
        tables = {name: refs for name, refs in tables.items() if name in existing and name != ledger.LEDGER_TABLE}
        enums = set(enums) & await self.dialect.enum_type_names(self.connection)
        plan = await self.dialect.drop_plan(self.connection, tables, enums)
        if entries is not None:
            plan.append((self.dialect.ledger_drop_sql(), f"table {ledger.LEDGER_TABLE}"))
        return plan

    async def drop_owned(self, plan) -> list:
        """Run the drops of owned_drop_plan in one transaction (foreign keys off around
        it where the database has the switch).

        On a database with a lock table, drops that would take more than half of it
        (the dialect's estimate), or more than max_tables_per_migration tables, run
        in parts within both, a transaction each, in the plan's order: one
        transaction dropping thousands of tables runs out of a stock PostgreSQL
        server's locks. The parts start only when nothing outside the plan depends
        on its tables (what would stop a DROP without CASCADE); a part that fails all
        the same leaves the parts before it dropped and the ledger (dropped last) in
        place, and reset run again drops the rest."""
        parts = [plan]
        budget = await self.dialect.lock_budget(self.connection)
        if budget is not None:
            table_of = {statement: what.split(" ", 1)[1] for statement, what in plan
                        if what and what.startswith("table ")}
            locks = await self.dialect.drop_locks(self.connection, table_of.values())
            costs = [locks.get(table_of.get(statement), 4) for statement, _what in plan]
            ceiling = budget.total // 2  # other sessions hold locks too
            most = self.config.max_tables_per_migration
            if sum(costs) > ceiling or len(table_of) > most:
                dependents = await self.dialect.drop_dependents(self.connection, table_of.values())
                if dependents:
                    described = ", ".join(f"{thing} depends on table {table}" for thing, table in dependents[:3])
                    more = f" (and {len(dependents) - 3} more)" if len(dependents) > 3 else ""
                    raise DatabaseError(f"cannot drop the schema's tables on {self.config.display_dsn}: "
                                        f"{described}{more}; nothing was dropped{self.dialect.drop_failure_note}")
                parts, taken, tables = [[]], 0, 0
                for entry, cost in zip(plan, costs):
                    if parts[-1] and (taken + cost > ceiling or tables == most):
                        parts.append([])
                        taken = tables = 0
                    parts[-1].append(entry)
                    taken += cost
                    tables += entry[0] in table_of
        dropped: list = []
        for part in parts:
            done = []
            async with self._foreign_keys_off():
                async with self.write_transaction():
                    for statement, what in part:
                        await self._drop(statement, dropped)
                        if what is not None:
                            done.append(what)
            dropped += done
        return dropped

    async def _drop(self, statement: str, dropped: list) -> None:
        """One DROP of reset; a failure rolls its transaction back (``dropped``: what
        transactions before it dropped)."""
        try:
            await self.connection.execute(statement)
        except StatementError as exc:
            if dropped:
                outcome = (f"the {len(dropped)} object(s) dropped in the transactions before it stay dropped, "
                           f"the rest is left: run reset again to drop it")
            else:
                outcome = "nothing was dropped"
            raise DatabaseError(f"{statement} failed on {self.config.display_dsn}: {exc.message}; "
                                f"{outcome}{self.dialect.drop_failure_note}") from None


# What _run_statements hands to the driver one by one, each with its own handling.
_RUN_ON_ITS_OWN = (IndexBuild, IndexDrop, PythonCall, CatalogStep, Guard)


class _StatementFailed(Exception):
    """Statement ``position`` of ``total`` failed (or, with ``label``, the ledger
    row or the COMMIT)."""

    def __init__(self, position: int, total: int, statement: str, error: StatementError,
                 label: Optional[str] = None):
        super().__init__(error.message)
        self.position, self.total, self.statement, self.error = position, total, statement, error
        self.label = label or f"Statement {position} of {total}"
        # After a lock timeout (see _Database._with_lock_retries): the sessions seen
        # holding the lock, how many tries the transaction had, and the seconds they took.
        self.blockers: tuple = ()
        self.tries = 1
        self.waited = 0.0

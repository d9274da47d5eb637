"""The public API: every command of `mf` is a function here first.

    migrate, makemigrations            apply / write migrations
    rollback, rollback_sql             undo applied migrations, newest first
    status, sql, pending_sql           look without changing anything
    drift                              compare the live database with the applied migrations
    inspect                            models.mp from a live database
    baseline                           take over a database made by another tool
    resolve, reset                     settle a half-applied migration; start over
    rebase, squash                     after a merge: renumber one branch; one migration for many
    carry_over                         the earlier tool's single-plan projects, once
    migrate_all, rollback_all,         every target of targets: and tenants: at once
    status_all

Each takes a Config, a path to language_config.yaml, or nothing (found from the
working directory). The coroutines run in the caller's event loop: none starts a
loop of its own, so migrate() drops into a FastAPI/Starlette lifespan. Nothing
here prints or exits: results are returned, problems raised as MfError. migrate()
also logs through logging.getLogger("mfcore"): each migration applied (INFO), each
notice (INFO), and what the user must act on (WARNING: models.mp holds changes no
migration holds; the database is ahead of the files).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from .config import Config, Fleet, config_for, load_config, load_fleet
from .errors import ConfigError
from .questioner import AnswerQuestioner, InteractiveQuestioner, Questioner

ConfigLike = Union[Config, str, os.PathLike, None]

log = logging.getLogger("mfcore")

__all__ = [
    "migrate", "rollback", "rollback_sql", "rollback_losses", "makemigrations", "carry_over", "status", "sql",
    "migration_names", "pending_sql", "resolve", "reset", "reset_plan", "drift", "inspect", "baseline", "migrate_all",
    "rollback_all", "status_all", "rebase", "squash",
    "resolve_config", "ResetResult", "Questioner", "InteractiveQuestioner", "AnswerQuestioner",
]


def resolve_config(config: ConfigLike = None, *, dsn: Optional[str] = None,
                   migrations_dir: Optional[str] = None) -> Config:
    """A Config from whatever the caller gave."""
    if isinstance(config, Config):
        resolved = config
    elif config is not None:
        resolved = load_config(os.fspath(config))
    elif dsn is not None and migrations_dir is not None:
        return config_for(dsn, migrations_dir)
    else:
        resolved = load_config()
    if dsn is not None:
        resolved = resolved.with_database(dsn)
    if migrations_dir is not None:
        from dataclasses import replace

        resolved = replace(resolved, migrations_dir=os.path.abspath(migrations_dir))
    return resolved


# ---------------------------------------------------------------- writing and applying

async def migrate(config: ConfigLike = None, *, dsn: Optional[str] = None,
                  migrations_dir: Optional[str] = None, to: Optional[int] = None, fake: bool = False,
                  on_event: Optional[Callable] = None, notices: Optional[list] = None,
                  allow_data_loss: bool = False) -> list:
    """Apply every unapplied migration; returns the names applied (empty when up to date).

    ``to``: bring the database to migration ``to``: apply up to it, or, when newer
    ones are applied, undo those first, as rollback(to=...) does (``on_event`` hears
    "rolled_back" for each; ``allow_data_loss`` as there). ``fake``: record without
    running, both ways: pending migrations are recorded as applied, and newer applied
    ones below ``to`` only lose their ledger rows (rollback(fake=True)).

    A project still in the earlier single-plan format is carried over first
    (carry_over). Safe to call from many processes or tasks at once: each migration
    is applied exactly once, the others wait and return. ``on_event(kind, name,
    index, total)`` hears "start", "applied" and "skipped"; ``notices`` receives
    sentences the user should read.

    Returns a MigrateResult: the list of names applied, with ``notices`` (every
    sentence for the user), ``ahead`` (applied migrations newer than every file: the
    database is ahead of this code, which is no error) and ``models_changed`` (a
    sentence when models.mp holds changes no migration holds, else None). Each is
    also logged on the "mfcore" logger; the last two as warnings.
    """
    resolved = resolve_config(config, dsn=dsn, migrations_dir=migrations_dir)
    _require_migrations_dir(resolved)
    from . import applier
    from .history import migration_files
    from .unmigrated import unmigrated_changes

    if notices is None:
        notices = []
    await carry_over(resolved, notices=notices)
    if to is not None:
        await applier.rollback(resolved, to=to, allow_data_loss=allow_data_loss, fake=fake, on_event=on_event,
                               notices=notices)
    files = migration_files(resolved.migrations_dir)
    result = await applier.migrate(resolved, to=to, fake=fake, on_event=on_event, notices=notices, files=files)
    result.models_changed = unmigrated_changes(resolved, files)
    if result.models_changed is not None:
        notices.append(result.models_changed + ".")
        result.warnings.append(notices[-1])
    _log_run(result)
    return result


def _log_run(result) -> None:
    for name in result:
        log.info("applied %s", name)
    _log_notices(result)


async def rollback(config: ConfigLike = None, *, steps: Optional[int] = None, to: Optional[int] = None,
                   dry_run: bool = False, allow_data_loss: bool = False, fake: bool = False,
                   on_event: Optional[Callable] = None, notices: Optional[list] = None) -> list:
    """Undo applied migrations, newest first; returns the names undone (empty when none is applied).

    ``steps``: how many of the newest applied (default 1); ``to``: every one numbered
    above ``to`` (0: all of them). Each undo is the reverse of what the migration's file
    records, run in one transaction that also removes its ledger row, under the lock
    migrate takes; .applied follows. A migration that cannot be undone
    (IrreversibleError), or an undo that cannot bring data back -- a dropped table or
    column returns empty -- (DataLossError, unless ``allow_data_loss``), is named before
    anything runs, and nothing is done. ``dry_run``: change nothing; return the names
    that would be undone. ``fake``: remove the ledger rows only (newest first, each in
    its transaction, under the lock), running no undo: the tables stay as they are, and
    nothing needs to be reversible or is lost. ``on_event(kind, name, index, total)``
    hears "start", "rolled_back" and, as for migrate, "retry" (an undo's transaction
    waited longer than statement_lock_timeout for a lock and runs again); ``notices``
    receives the sentences the user should read (each retry, a wait for an earlier
    run's transaction, a renamed ledger row), each also logged (INFO) on the "mfcore"
    logger, as migrate's are.
    """
    resolved = _rollback_config(config, steps, to)
    from . import applier

    if notices is None:
        notices = []
    heard = len(notices)
    try:
        return await applier.rollback(resolved, count=steps, to=to, dry_run=dry_run,
                                      allow_data_loss=allow_data_loss, fake=fake, on_event=on_event,
                                      notices=notices)
    finally:
        for notice in notices[heard:]:
            log.info("%s", notice)


async def rollback_sql(config: ConfigLike = None, *, steps: Optional[int] = None,
                       to: Optional[int] = None) -> list:
    """[(name, [statement, ...]), ...] of each undo rollback would run, newest first (its
    dry run); changes nothing. A database that cannot be reached is read from .applied
    when it is there; the list's ``offline`` then says why (else it is None)."""
    resolved = _rollback_config(config, steps, to)
    from . import applier

    return await applier.rollback_sql(resolved, count=steps, to=to)


async def rollback_losses(config: ConfigLike = None, *, steps: Optional[int] = None,
                          to: Optional[int] = None) -> list:
    """What rollback with these arguments could not bring back, one sentence each (a
    dropped table comes back empty); [] when nothing. Changes nothing; raises
    IrreversibleError as rollback would."""
    resolved = _rollback_config(config, steps, to)
    from . import applier

    return await applier.rollback_losses(resolved, count=steps, to=to)


def _rollback_config(config: ConfigLike, steps: Optional[int], to: Optional[int]) -> Config:
    if steps is not None and to is not None:
        raise ConfigError("rollback takes a number of migrations or a target (--to), not both")
    if steps is not None and steps < 1:
        raise ConfigError(f"rollback: the number of migrations to undo must be 1 or more, not {steps}")
    resolved = resolve_config(config)
    _require_migrations_dir(resolved)
    return resolved


def makemigrations(config: ConfigLike = None, *, name: Optional[str] = None, dry_run: bool = False,
                   check: bool = False, empty: bool = False, questioner: Optional[Questioner] = None,
                   backfill=None, accept_rounding: bool = False, max_tables: Optional[int] = None):
    """Write the next migration file for the changes in models.mp (see MakeMigrationsResult).

    ``max_tables``: instead of the config's max_tables_per_migration, the most tables one
    file may touch; a migration touching more is split into consecutive files.

    ``backfill``: one-off values for the rows a NOT NULL change leaves without one,
    {"Model.field": "VALUE"} or ["Model.field=VALUE", ...] (VALUE as typed: JSON or text).
    ``accept_rounding``: type changes that round values (FloatField -> IntegerField,
    fewer decimal places, DateTimeField -> DateField, ...) round them when applied;
    without it such a change stops migrate at the first row it would change.
    ``dry_run``/``check``: write nothing. A project still in the earlier single-plan
    format is carried over too (no database is needed), but only once the new
    migration has passed its checks: a refused change leaves every file as it was.
    """
    from . import carryover, writer
    from .backfills import parse_backfills
    from .gcpause import gc_paused
    from .snapshot import shared_model_documents

    resolved = _with_max_tables(resolve_config(config), max_tables)
    writing = not (dry_run or check)
    if writing:
        from . import store

        store.remove_stale_temporaries(resolved.migrations_dir)
    with gc_paused(), shared_model_documents():
        carried = carryover.pending_conversion(resolved.migrations_dir, resolved.max_tables_per_migration)
        draft = writer.draft_migration(resolved, name=name, empty=empty, questioner=questioner,
                                       backfills=parse_backfills(backfill), accept_rounding=accept_rounding,
                                       carried=carried, repair=writing)
        if carried is not None:
            if writing:
                carryover.write(resolved.migrations_dir, carried)
            draft.result.notices.append(carryover.describe(resolved.migrations_dir, carried, writing))
        if draft.result.files:
            from .lint import lint_draft

            # What `mf db lint` will say about the file, shown now; it fails nothing here.
            draft.result.findings, draft.result.rewrites = lint_draft(resolved, draft.old, draft.result)
        if writing:
            writer.write_draft(draft)
        elif dry_run and draft.result.files:
            draft.result.sql = _draft_sql(resolved, draft.result)
    return draft.result


def collector_paused():
    """A context in which the cyclic garbage collector is paused, as it is while
    makemigrations works (gcpause.py): for a caller that goes on using a large result,
    such as the CLI printing the tree of a first migration of many thousands of models,
    where a collector pass over its millions of objects would take longer than the
    printing."""
    from .gcpause import gc_paused

    return gc_paused()


def _with_max_tables(config: Config, max_tables: Optional[int]) -> Config:
    """``config`` with ``max_tables`` (when given) as its max_tables_per_migration."""
    if max_tables is None:
        return config
    if type(max_tables) is not int or max_tables < 1:
        raise ConfigError(f"max_tables must be a whole number of tables, 1 or more, got {max_tables!r:.40}")
    from dataclasses import replace

    return replace(config, max_tables_per_migration=max_tables)


def _draft_sql(config: Config, result) -> list:
    """What a drafted migration would run on the configured database's kind, as `mf db
    sql` shows it once written: on PostgreSQL its steps, each transaction's BEGIN,
    prologue and COMMIT (steps.shown_statements). No connection: makemigrations needs
    no database settings."""
    from . import store
    from .dialects import dialect_for
    from .lint import migration_statements
    from .steps import planned_step, shown_statements

    dialect = dialect_for(config.driver)
    statements: list = []
    for planned in result.files:  # a split migration: each file's statements under its name
        name = os.path.basename(planned.path)
        if len(result.files) > 1:
            statements.append(f"-- {name}")
        atomic = planned.atomic  # not read back from its bytes: a first migration can be large
        migration = store.Migration(store.MigrationFile(int(name.split("_", 1)[0]), name, planned.path),
                                    tuple(planned.operations), atomic, "", False)
        step = planned_step(dialect, migration, migration_statements(dialect, migration, config.online))
        statements.extend(shown_statements(step, dialect, config.statement_lock_timeout, config.statement_timeout))
    return statements


async def carry_over(config: ConfigLike = None, *, notices: Optional[list] = None) -> list:
    """Carry a project in the earlier tool's single-plan format (migrations/plan.initial.json)
    over to numbered migration files, once; returns the names of the files made ([] when
    the project is not in that format). migrate calls it first.

    A database that already holds some of the plans' tables must match them, or nothing
    is converted (DriftError). ``notices`` receives a paragraph saying what was done.
    """
    from . import carryover

    resolved = resolve_config(config)
    conversion = carryover.pending_conversion(resolved.migrations_dir, resolved.max_tables_per_migration)
    if conversion is None:
        return []
    await carryover.check_database(resolved, conversion)
    carryover.write(resolved.migrations_dir, conversion)
    if notices is not None:
        notices.append(carryover.describe(resolved.migrations_dir, conversion, written=True))
    return conversion.names


# ---------------------------------------------------------------- branches and squashing

async def rebase(config: ConfigLike = None, *, files=()):
    """After a merge of two branches: move migrations after the newest, renumbered (their
    bytes kept), and rebuild schema.json by folding every file in order. ``files``: the
    names to move; by default those the configured database has not applied that share
    a number with another file or lie below its newest applied one (without a database
    to ask: of each shared number, the files after the first by name). Two branches that
    changed the same thing raise RebaseConflictError and nothing changes. A
    RebaseResult (``moved`` [(old, new)], ``files``, ``newest``, ``notices``)."""
    from . import rebasing

    resolved = resolve_config(config)
    _require_migrations_dir(resolved)
    return await rebasing.rebase(resolved, files)


def squash(config: ConfigLike = None, *, to: Optional[int] = None, name: Optional[str] = None,
           max_tables: Optional[int] = None):
    """Write one migration equal to the fold of a range (from the first migration no
    squash covers, up to ``to`` or the newest), listing the names it replaces; the
    originals stay until removed. A database that applied all of them counts it as
    applied, one that applied none applies it, one in between applies the rest of the
    originals. Data steps in the range raise SquashError. A squash touching more than
    ``max_tables`` tables (default: the config's max_tables_per_migration) is written
    in parts beside each other, applied in order. A SquashResult (``path``,
    ``replaces``, ``operations``, ``files``, ``split_reason``)."""
    from . import squashing

    resolved = _with_max_tables(resolve_config(config), max_tables)
    _require_migrations_dir(resolved)
    return squashing.squash(resolved, to=to, name=name)


# ---------------------------------------------------------------- looking

async def status(config: ConfigLike = None) -> list:
    """A StatusReport: the list of MigrationStatus (name, applied, applied_at, state,
    duration) for every migration file in numeric order, then one for each ledger row
    whose file is gone; with ``pending``, ``problems`` (records migrate refuses to run
    with: "edited", "missing", "started", "out_of_order"), ``ahead``, ``models_changed``
    (a sentence when models.mp holds changes no migration holds), ``notices`` and
    ``check_code`` (0 all applied and intact, 1 something pending or unmigrated, 2
    integrity problems: what `mf db status --check` exits with)."""
    from . import applier
    from .unmigrated import unmigrated_changes

    resolved = resolve_config(config)
    report = await applier.status(resolved)
    report.models_changed = unmigrated_changes(resolved)
    return report


def migration_names(config: ConfigLike = None) -> list:
    """The migration files' names in numeric order; reads no file and connects nowhere."""
    from . import store

    return [file.name for file in store.list_migration_files(resolve_config(config).migrations_dir)]


def sql(config: ConfigLike, number, *, reverse: bool = False) -> tuple:
    """(name, [statement, ...]) of migration ``number`` on the configured database (with
    ``reverse``, of its undo); no connection is made. ``number``: an int, which only one
    file may have, or a file name (the files of a squash share a number)."""
    from . import applier

    return applier.migration_statements(resolve_config(config), number, reverse=reverse)


def sql_rewrites(config: ConfigLike, number) -> dict:
    """{statement text: [note, ...]} for the statements of ``api.sql(config, number)``
    that rewrite a table under a lock blocking reads and writes ("⏳ rewrites table
    items (...)"); no connection is made."""
    from . import lint

    return lint.sql_rewrite_notes(resolve_config(config), number)


def lint_migrations(config: ConfigLike = None, *, migrations=(), every: bool = False):
    """Check migrations against the lint rules (`mf db lint`): the pending ones (those
    .applied does not list; no database is read), or those numbered in ``migrations``,
    or ``every`` one. A lint.LintReport (``driver``, ``migrations``, ``findings``;
    ``problems``: the findings no migration accepted). A "lint.accept" naming an unknown
    rule raises MigrationFileError."""
    from . import lint

    resolved = resolve_config(config)
    _require_migrations_dir(resolved)
    return lint.lint_project(resolved, numbers=tuple(migrations), every=every)


def lint_rules(config: ConfigLike = None) -> tuple:
    """The lint rules (dialects.risks.Rule) that apply on the configured database."""
    from . import lint
    from .dialects import dialect_for

    return lint.rules_for(dialect_for(resolve_config(config).driver))


async def pending_sql(config: ConfigLike = None, *, to: Optional[int] = None) -> list:
    """[(name, [statement, ...]), ...] for each migration migrate would apply (the dry run);
    changes nothing. A database that cannot be reached is read from .applied when it is
    there; the list's ``offline`` then says why (else it is None)."""
    from . import applier

    return await applier.pending_sql(resolve_config(config), to=to)


async def drift(config: ConfigLike = None, *, strict: bool = False, sql: bool = False):
    """How the live database differs from the schema its applied migrations build: a
    DriftReport (differences, unmanaged tables and types; ``drifted``). ``strict``:
    unmanaged tables count as drift. ``sql``: also the statements that bring the
    database back (report.statements). Changes nothing."""
    from . import drift_check

    return await drift_check.detect(resolve_config(config), strict=strict, with_sql=sql)


async def inspect(config: ConfigLike = None, *, output: Optional[str] = None):
    """An InspectResult (text, notes, tables): models.mp for the tables and enum types
    of the live database (the ledger left out), also written to the file ``output``
    when given. Changes nothing in
    the database."""
    from . import introspect, store

    result = await introspect.inspect(resolve_config(config))
    if output is not None:
        store.atomic_write(os.fspath(output), result.text.encode("utf-8"))
    return result


async def baseline(config: ConfigLike = None, *, name: str = "baseline"):
    """Take over a database made by another tool: write migration 001 (and schema.json,
    and models.mp when there is none) from its catalog, keeping the names of its
    constraints and indexes, and record 001 as applied. A BaselineResult."""
    from . import takeover

    return await takeover.baseline(resolve_config(config), name=name)


# ---------------------------------------------------------------- repairing and starting over

async def resolve(config: ConfigLike, number, *, applied: bool) -> str:
    """Settle a non-transactional migration that a run left half-way: ``applied=True``
    records it as applied, ``False`` forgets it so that the next migrate runs it
    again. ``number``: an int, or a file name to pick one of the files of a number.
    Returns a sentence saying what was done."""
    from . import applier

    return await applier.resolve(resolve_config(config), number, applied)


@dataclass(frozen=True)
class ResetResult:
    dropped: list   # database objects dropped, e.g. ["table lt_invoices", "type userrole"]
    removed: list   # file names removed from the migrations directory
    forgotten: list = field(default_factory=list)  # ledger rows removed (reset without dropping)


async def reset(config: ConfigLike = None, *, drop_database: bool = False,
                expected: Optional[list] = None) -> ResetResult:
    """Start the project's migrations over. With ``drop_database``, first drop the tables
    and enum types the schema owns -- those of the schema the applied migrations build
    that the catalog holds (not a table a migration dropped or renamed long ago whose
    name the user has taken since) -- and the ledger, never with CASCADE; reset_plan
    lists them. ``expected``: that list, as shown to the user; when the database would
    now lose anything else, nothing is dropped (DriftError). Without
    ``drop_database``, empty the ledger (mf_migrations keeps no row; the tables and
    their rows stay), so that the next makemigrations writes a new 001 that the next
    migrate records as applied once the catalog matches it. Then remove the migration
    files, schema.json and .applied. The database comes first: when
    it cannot be reached, nothing is removed. Asks nothing: confirming is the caller's
    business."""
    from . import applier, store

    resolved = resolve_config(config)
    dropped, forgotten = [], []
    if drop_database:
        dropped = await applier.reset_database(resolved, expected)
    else:
        forgotten = await applier.forget_history(resolved)
    return ResetResult(dropped, store.remove_project_files(resolved.migrations_dir), forgotten)


async def reset_plan(config: ConfigLike = None) -> list:
    """What ``reset(drop_database=True)`` would drop now, e.g. ["table lt_invoices",
    "type userrole", "table mf_migrations"]: shown before asking to confirm."""
    from . import applier

    return await applier.reset_plan(resolve_config(config))


# ---------------------------------------------------------------- a fleet of targets

FleetLike = Union[Fleet, str, os.PathLike, None]


async def migrate_all(fleet: FleetLike = None, *, targets=(), tenants=(), concurrency: Optional[int] = None,
                      fail_fast: bool = False, on_result: Optional[Callable] = None) -> list:
    """Migrate every target of the config's ``targets:`` and ``tenants:`` (or those named
    in ``targets``/``tenants``) at once, each by the single-database run with its own
    lock, ledger and transactions; returns a TargetResult per target (``applied``
    names, or ``error``; ``notices`` and ``warnings`` as migrate gives them, each also
    logged with the target's name). A failure stops only its target unless ``fail_fast``.
    ``concurrency``: runs at a time (default: 10, fewer when a PostgreSQL server's
    max_connections is small; each run holds two connections). ``on_result(result,
    done, total)`` hears each target as it finishes."""
    from . import applier

    chosen, resolved_concurrency = await _fleet_targets(fleet, targets, tenants, concurrency)
    for config in {c.migrations_dir: c for c in chosen.values()}.values():
        _require_migrations_dir(config)
        _refuse_pending_carry_over(config)

    async def work(config, result):
        def heard(kind, name, index, total):
            if kind == "applied":
                result.applied.append(name)
        try:
            outcome = await applier.migrate(config, on_event=heard, notices=result.notices)
            result.warnings = list(outcome.warnings)
        finally:
            _log_notices(result, result.name)

    return await _fleet_module().run_all(chosen, work, concurrency=resolved_concurrency, fail_fast=fail_fast,
                                        on_result=on_result)


async def status_all(fleet: FleetLike = None, *, targets=(), tenants=(), concurrency: Optional[int] = None,
                     on_result: Optional[Callable] = None) -> list:
    """status() of every target (or those named): a TargetResult per target whose
    ``records`` are its MigrationStatus lines (and ``notices`` the report's), or whose
    ``error`` says why not."""
    from . import applier

    chosen, resolved_concurrency = await _fleet_targets(fleet, targets, tenants, concurrency)

    async def work(config, result):
        result.records = await applier.status(config)
        result.notices = list(result.records.notices)

    return await _fleet_module().run_all(chosen, work, concurrency=resolved_concurrency, on_result=on_result)


async def rollback_all(fleet: FleetLike = None, *, targets=(), tenants=(), steps: Optional[int] = None,
                       to: Optional[int] = None, dry_run: bool = False, allow_data_loss: bool = False,
                       confirm_data_loss: Optional[Callable] = None, concurrency: Optional[int] = None,
                       fail_fast: bool = False, on_result: Optional[Callable] = None) -> list:
    """rollback() on every target of the config's ``targets:`` and ``tenants:`` (or those
    named), ``steps``/``to`` as there, each with its own lock, ledger and transactions;
    returns a TargetResult per target (``rolled_back`` names, ``losses``, or ``error``;
    ``notices`` as rollback gives them, each also logged with the target's name).

    First every target is read, without changing anything: if any one's undo cannot be
    done (IrreversibleError) or would lose data (DataLossError, unless
    ``allow_data_loss`` or ``confirm_data_loss({name: [loss, ...]})`` returns True), that
    one error names every such target and no target is touched. A target that cannot be
    read fails alone (with ``fail_fast``, before any target is touched). ``dry_run``:
    stop there; each result's ``rolled_back`` and ``sql`` say what would be undone.
    ``concurrency``, ``fail_fast`` and ``on_result`` as for migrate_all."""
    from . import applier

    if steps is not None and to is not None:
        raise ConfigError("rollback takes a number of migrations or a target (--to), not both")
    if steps is not None and steps < 1:
        raise ConfigError(f"rollback: the number of migrations to undo must be 1 or more, not {steps}")
    runner = _fleet_module()
    chosen, resolved_concurrency = await _fleet_targets(fleet, targets, tenants, concurrency)
    for config in {c.migrations_dir: c for c in chosen.values()}.values():
        _require_migrations_dir(config)

    async def check(config, result):
        result.losses = await applier.rollback_losses(config, count=steps, to=to)
        if dry_run:
            result.sql = await applier.rollback_sql(config, count=steps, to=to)
            result.rolled_back = [name for name, _statements in result.sql]

    checks = await runner.run_all(chosen, check, concurrency=resolved_concurrency)
    if not allow_data_loss and confirm_data_loss is not None and runner.refusal(checks, True) is None:
        losses = {c.name: c.losses for c in checks if c.losses and c.error is None}
        allow_data_loss = not losses or bool(confirm_data_loss(losses))
    refused = runner.refusal(checks, allow_data_loss)
    if refused is not None:
        raise refused
    unreadable = {c.name: c.error for c in checks if c.error is not None}
    if dry_run:
        return checks
    if unreadable and fail_fast:
        for result in checks:
            result.finished = result.error is not None
        return checks
    losses = {c.name: c.losses for c in checks}

    async def work(config, result):
        if result.name in unreadable:
            raise unreadable[result.name]
        result.losses = losses[result.name]

        def heard(kind, name, index, total):
            if kind == "rolled_back":
                result.rolled_back.append(name)
        try:
            await applier.rollback(config, count=steps, to=to, allow_data_loss=allow_data_loss, on_event=heard,
                                   notices=result.notices)
        finally:
            _log_notices(result, result.name)

    return await runner.run_all(chosen, work, concurrency=resolved_concurrency, fail_fast=fail_fast,
                                on_result=on_result)


def _log_notices(result, target: Optional[str] = None) -> None:
    """Log a run's notices, the warnings among them as warnings; a fleet's after the target's name."""
    for notice in result.notices:
        log.log(logging.WARNING if notice in result.warnings else logging.INFO, "%s",
                f"{target}: {notice}" if target else notice)


def _fleet_module():
    from . import fleet

    return fleet


async def _fleet_targets(fleet: FleetLike, targets, tenants, concurrency) -> tuple:
    runner = _fleet_module()
    loaded = fleet if isinstance(fleet, Fleet) else load_fleet(os.fspath(fleet) if fleet is not None else None)
    names, schemas = tuple(targets), tuple(tenants)
    expanded = await runner.expand(loaded, runner.hosts_needed(loaded, names, schemas))
    chosen = runner.select(loaded, expanded, names, schemas)
    if concurrency is None:
        concurrency = await runner.default_concurrency(chosen)
    return chosen, concurrency


def _refuse_pending_carry_over(config: Config) -> None:
    from . import carryover

    if carryover.pending_conversion(config.migrations_dir, config.max_tables_per_migration) is not None:
        raise ConfigError(f"{config.migrations_dir} is still in the earlier tool's single-plan format; carry it "
                          "over first with `mf db migrate` on one database, then migrate the fleet")


def _require_migrations_dir(config: Config) -> None:
    if not os.path.isdir(config.migrations_dir):
        raise ConfigError(f"migrations directory not found: {config.migrations_dir} "
                          "(run `mf db makemigrations` first)")

"""Applies migration files to a database (SPEC §4 migrate/status/reset/resolve/sql, §6).

The shape of a run:

1. Survey, without any lock: list the files (two with one number is an error),
   read the ledger and .applied, hash the bytes of every applied file and check
   them against the ledger (§6.5), decide about adoption (§6.2). With nothing to
   do this is all, and it is fast: applied files are hashed, never parsed.
2. Otherwise read and translate every pending file (a malformed one stops the run
   before anything runs), then take the lock. PostgreSQL: a session advisory lock
   held on a dedicated connection for the whole run, polled with
   pg_try_advisory_lock, then the survey again. SQLite: every migration's own
   BEGIN IMMEDIATE transaction is the lock, and the ledger is consulted inside it
   (the row's UNIQUE name), so a migration another process applied meanwhile is
   rolled back, found in the ledger and skipped.
3. Each migration runs in one transaction together with its ledger row. A failing
   statement rolls that migration back and stops the run with a DatabaseError
   naming the migration, the statement and the database's message.
4. .applied is rewritten from the ledger while the lock is held, at the end of the
   run (and after a failure), so it mirrors the ledger; a run that finds it behind
   (a crash between the commit and the write) rebuilds it.

Here: the public coroutines and, per database (_SQLite, _Postgres), the lock, the
transactions, applying a step and keeping .applied in line. The files, their
checksums and the survey's checks are in history.py (no database access); reading
and translating pending files in steps.py; what reset drops in ownership.py.

Nothing here prints or exits: results are returned, problems raised as MfError.
"""
from __future__ import annotations

import os
import random
import time
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Callable, Optional

import anyio

from . import adoption, ledger
from .config import Config
from .drivers import Connection, StatementError, connect
from .errors import DatabaseError, DriftError, LockTimeoutError, MfError, MigrationFileError, ResolveError
from .history import (Checksums, Survey, adoption_decision, check_target, check_unresolved, cut,
                      listed_files, migration_files, number_of, survey_from)
from .ledger import APPLIED, STARTED, LedgerEntry
from .ownership import drop_order, owned_objects
from .steps import Prepared, Step
from .store import load_history, read_applied, write_applied

# pg_try_advisory_lock key: the first 8 bytes of sha256(b"mfcore:migrate") as a signed
# bigint, so mf's lock cannot collide with an application's small integer keys.
ADVISORY_LOCK_KEY = 956832486351254394
LOCK_POLL_MAX = 0.25  # seconds between two pg_try_advisory_lock attempts, at most

EventCallback = Callable[[str, str, int, int], object]


# ================================================================ public functions

@dataclass(frozen=True)
class MigrationStatus:
    """One line of `mf db status`.

    state: "applied"; "pending"; "started" (a non-atomic migration that never
    finished: see resolve); "edited" (applied, but the file changed since);
    "missing" (applied, but the file is gone)."""

    name: str
    applied: bool
    applied_at: Optional[object] = None  # datetime (UTC) when applied
    state: str = "pending"
    duration: Optional[float] = None     # seconds the migration took


async def migrate(config: Config, *, to: Optional[int] = None, fake: bool = False,
                  dry_run: bool = False, on_event: Optional[EventCallback] = None,
                  notices: Optional[list] = None) -> list:
    """Apply every unapplied migration in numeric order; returns the names applied.

    ``to``: stop after the migration with that number. ``fake``: record the
    migrations as applied without running them. ``dry_run``: change nothing and
    return the names that would be applied. ``on_event(kind, name, index, total)`` is
    called with kind "start" before a migration runs and "applied" after it
    committed ("skipped" when another process applied it meanwhile); index counts
    from 1 within the ``total`` migrations of this run. It may be a coroutine
    function. ``notices``, when given, receives sentences the user should read
    (differences found when adopting a database made by the earlier tool).
    """
    files = migration_files(config.migrations_dir)
    check_target(files, to)
    if dry_run:
        survey = await _read_only_survey(config, files)
        return [f.name for f in cut(survey.pending, to)]
    if not _database_exists(config):
        # Read and translate what would run before the SQLite file is created: a
        # malformed migration must leave no trace, not even an empty database file.
        survey = await _read_only_survey(config, files)
        Prepared(config, files).load(cut(survey.pending, to))
    async with await connect(config) as connection:
        database = _database_for(connection, config)
        if notices is not None:
            database.notices = notices
        survey = await database.survey(files)
        if not survey.adopt and not cut(survey.pending, to) and not survey.applied_file_behind:
            return []
        prepared = Prepared(config, files)
        prepared.load(cut(survey.pending, to))
        async with database.exclusive():
            return await _run(database, files, prepared, to, fake, on_event)


async def pending_sql(config: Config, *, to: Optional[int] = None) -> list:
    """[(name, [statement, ...]), ...] for each migration ``migrate`` would apply."""
    files = migration_files(config.migrations_dir)
    check_target(files, to)
    survey = await _read_only_survey(config, files)
    prepared = Prepared(config, files)
    pending = cut(survey.pending, to)
    prepared.load(pending)
    return [(f.name, list(prepared[f.name].statements)) for f in pending]


def migration_statements(config: Config, number: int) -> tuple:
    """(name, [statement, ...]) of migration ``number`` on the configured driver;
    no database needed."""
    files = migration_files(config.migrations_dir)
    file = next((f for f in files if f.number == number), None)
    if file is None:
        raise MigrationFileError(f"no migration numbered {number:03d} in {config.migrations_dir}")
    prepared = Prepared(config, files)
    prepared.load([file])
    return file.name, list(prepared[file.name].statements)


async def status(config: Config) -> list:
    """A MigrationStatus for every migration file, in numeric order, then one for each
    ledger row whose file is gone."""
    files = migration_files(config.migrations_dir)
    entries = None
    if _database_exists(config):
        async with await connect(config) as connection:
            entries = await ledger.read_ledger(connection, detailed=True)
    by_name = {e.name: e for e in entries or ()}
    sums = Checksums()
    records = []
    for file in files:
        entry = by_name.pop(file.name, None)
        if entry is None:
            records.append(MigrationStatus(file.name, False))
        elif entry.state == STARTED:
            records.append(MigrationStatus(file.name, False, entry.applied_at, "started", entry.duration))
        else:
            state = "applied" if sums.of(file) == entry.checksum else "edited"
            records.append(MigrationStatus(file.name, True, entry.applied_at, state, entry.duration))
    for entry in by_name.values():
        records.append(MigrationStatus(entry.name, entry.state == APPLIED, entry.applied_at, "missing",
                                       entry.duration))
    return records


async def resolve(config: Config, number: int, applied: bool) -> str:
    """Settle a non-atomic migration that a run left 'started': ``applied=True`` records
    it as applied (its changes are all in the database), ``False`` forgets it (none
    are, or they were undone), so the next migrate runs it again. Returns a sentence
    saying what was done."""
    files = migration_files(config.migrations_dir)
    file = next((f for f in files if f.number == number), None)
    if not _database_exists(config):
        raise ResolveError(f"the database {config.dsn} does not exist; nothing to resolve")
    async with await connect(config) as connection:
        database = _database_for(connection, config)
        async with database.exclusive():
            async with database.write_transaction():
                entries = await ledger.read_ledger(connection) or []
                matching = [e for e in entries if number_of(e.name) == number]
                entry = next((e for e in matching if e.state == STARTED), None)
                if entry is None:
                    if matching:
                        raise ResolveError(f"{matching[0].name} is applied, not unresolved; nothing to resolve")
                    raise ResolveError(f"migration {number:03d} was never started on this database; "
                                       "nothing to resolve")
                if applied:
                    if file is None or file.name != entry.name:
                        raise ResolveError(f"{entry.name} is not in {config.migrations_dir}; restore the "
                                           "file before recording it as applied")
                    await ledger.mark_applied(connection, entry.name, file.checksum())
                else:
                    await ledger.forget(connection, entry.name)
            await database.sync_applied_file()
    if applied:
        return f"Recorded {entry.name} as applied."
    return f"Recorded {entry.name} as rolled back; the next migrate runs it again."


async def reset_database(config: Config) -> list:
    """Drop the tables and enum types the schema owns, and the ledger: nothing else.

    The schema's objects are every table and enum type named anywhere in the
    migration history (and schema.json). Tables go in reverse dependency order;
    nothing is dropped with CASCADE, so an object mf does not own that depends on
    one of these stops the reset with the database's message and nothing dropped.
    Returns what was dropped, e.g. ["table lt_invoices", "type userrole", ...]."""
    tables, enums = owned_objects(config)
    if not _database_exists(config):
        return []
    async with await connect(config) as connection:
        database = _database_for(connection, config)
        async with database.exclusive():
            return await database.drop_owned(tables, enums)


# ================================================================ looking without a lock

async def _read_only_survey(config: Config, files) -> Survey:
    """The survey without changing anything (dry runs); a missing SQLite file is an
    empty database, not created."""
    if not _database_exists(config):
        applied_file = read_applied(config.migrations_dir)
        sums = Checksums()
        adopt = []
        if applied_file:
            adopt = adoption_decision(config, listed_files(files, applied_file, config.migrations_dir),
                                      set(), set())
        return survey_from(files, None, applied_file, adopt, sums, config.migrations_dir)
    async with await connect(config) as connection:
        return await _database_for(connection, config).survey(files)


def _database_exists(config: Config) -> bool:
    return config.driver != "sqlite" or config.dsn == ":memory:" or os.path.exists(config.dsn)


# ================================================================ a run

async def _run(database, files, prepared: Prepared, to, fake: bool, on_event) -> list:
    """Inside the lock: survey again, adopt, apply, mirror the ledger in .applied."""
    applied = []
    try:
        survey = await database.survey(files)
        if survey.adopt:
            await database.adopt(survey.adopt)
            database.notices.append(
                f"Recorded {len(survey.adopt)} migration(s) listed in .applied as applied: "
                "the database already holds what they create.")
        pending = cut(survey.pending, to)
        prepared.load(pending)
        total = len(pending)
        for index, file in enumerate(pending, 1):
            step = prepared[file.name]
            await _emit(on_event, "start", step.name, index, total)
            if await database.apply(step, fake):
                applied.append(step.name)
                await _emit(on_event, "applied", step.name, index, total)
            else:
                await _emit(on_event, "skipped", step.name, index, total)
    except MfError:
        # Keep .applied in line with what did commit; the original error matters more.
        with suppress(MfError, OSError):
            await database.sync_applied_file()
        raise
    await database.sync_applied_file()
    return applied


async def _emit(on_event, kind, name, index, total) -> None:
    if on_event is not None:
        result = on_event(kind, name, index, total)
        if hasattr(result, "__await__"):
            await result


def _database_for(connection: Connection, config: Config, sums: Optional[Checksums] = None) -> "_Database":
    kind = _SQLite if connection.driver == "sqlite" else _Postgres
    return kind(connection, config, sums)


class _Database:
    """What a run does with one database; subclasses hold what differs by driver."""

    def __init__(self, connection: Connection, config: Config, sums: Optional[Checksums] = None):
        self.connection = connection
        self.config = config
        self.directory = config.migrations_dir
        self.sums = sums or Checksums()
        self.ledger_ready = False  # the ledger table is known to exist
        self.notices: list = []    # things the user should hear of, e.g. adoption warnings

    # ------------------------------------------------------------ locking
    @asynccontextmanager
    async def exclusive(self):
        """Held for a whole run: excludes every other mf run on this database."""
        yield

    @asynccontextmanager
    async def write_transaction(self):
        """A transaction that holds the database's write lock (SQLite) or runs under
        the run's lock (PostgreSQL)."""
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

    async def _begin(self) -> None:  # pragma: no cover - see subclasses
        raise NotImplementedError

    async def _rollback(self) -> None:
        with anyio.CancelScope(shield=True):
            with suppress(StatementError, DatabaseError):
                await self.connection.execute("ROLLBACK")

    # ------------------------------------------------------------ survey
    async def survey(self, files) -> Survey:
        entries = await ledger.read_ledger(self.connection)
        if entries is not None:
            self.ledger_ready = True
        applied_file = read_applied(self.directory)
        adopt = []
        if entries is None and applied_file:
            listed = listed_files(files, applied_file, self.directory)
            tables, types = await self.existing_objects()
            adopt = await self._adoption(listed, tables, types)
        return survey_from(files, entries, applied_file, adopt, self.sums, self.directory)

    async def _adoption(self, listed, existing_tables, existing_types) -> list:
        """§6.2, after a look at the catalog: the listed files to record as applied
        (the database holds what they create), or [] when it holds none of it and they
        are to be applied. Anything in between is drift, reported in full."""
        _history, schema = load_history(self.directory, listed)
        tables = {m.table for m in schema.models.values()}
        types = {e.type_name for e in schema.enums.values()} if self.config.driver == "postgresql" else set()
        if not (tables & existing_tables) and not (types & existing_types):
            return []
        findings = adoption.compare(schema, await adoption.read_catalog(self.connection, tables))
        findings.blocking.extend(f"enum type {name} does not exist in the database"
                                 for name in sorted(types - existing_types))
        if findings.blocking:
            raise DriftError(adoption.report(len(listed), findings))
        for line in adoption.warning_lines(findings):
            if line not in self.notices:
                self.notices.append(line)
        return list(listed)

    async def existing_objects(self) -> tuple:  # pragma: no cover - see subclasses
        raise NotImplementedError

    # ------------------------------------------------------------ writing
    async def adopt(self, files) -> None:
        """Record migrations the earlier tool applied, in one transaction with the
        ledger's creation. Another process may have adopted them first."""
        async with self.write_transaction():
            if await ledger.ledger_exists(self.connection):
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
        started = time.perf_counter()
        await self._begin()
        try:
            if not self.ledger_ready:
                await ledger.ensure_ledger(self.connection)
            if not fake:
                await self._run_statements(step)
            await self._record_and_commit(step, time.perf_counter() - started)
        except _StatementFailed as failed:
            await self._rollback()
            if await self._applied_meanwhile(step):
                return False
            raise self._failure(step, failed, rolled_back=True) from None
        except BaseException:
            await self._rollback()
            raise
        self.ledger_ready = True
        return True

    async def _record_and_commit(self, step: Step, duration: float) -> None:
        try:
            await ledger.record(self.connection, step.name, step.migration.checksum, duration)
        except StatementError as exc:
            raise _StatementFailed(0, 0, "INSERT INTO mf_migrations ...", exc, "recording it in the ledger") \
                from None
        await self._commit(step)

    async def _commit(self, step: Step) -> None:
        try:
            await self.connection.execute("COMMIT")
        except StatementError as exc:
            raise _StatementFailed(0, 0, "COMMIT", exc, "COMMIT") from None

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

    async def _run_statements(self, step: Step) -> None:
        total = len(step.statements)
        for position, statement in enumerate(step.statements, 1):
            try:
                await self.connection.execute(statement)
            except StatementError as exc:
                raise _StatementFailed(position, total, statement, exc) from None

    async def _apply_outside_transaction(self, step: Step, fake: bool) -> bool:  # pragma: no cover
        raise NotImplementedError

    def _failure(self, step: Step, failed: "_StatementFailed", rolled_back: bool) -> DatabaseError:
        shown = failed.statement if len(failed.statement) <= 600 else failed.statement[:600] + " ..."
        if failed.error.is_lock_timeout and self.connection.driver == "postgresql":
            reason = (f"{failed.error.message} (it waited longer than statement_lock_timeout "
                      f"{self.config.statement_lock_timeout} for a lock another session holds; retry when "
                      "that session is done)")
        else:
            reason = failed.error.message
        if rolled_back:
            outcome = "was rolled back; migrations before it stay applied"
        else:
            outcome = (f"runs outside a transaction, so statements before it stayed committed; it is "
                       f"recorded as started: check the database, then run `mf db resolve "
                       f"{step.migration.file.number:03d} --applied` or `--rolled-back`")
        kind = LockTimeoutError if failed.error.is_lock_timeout else DatabaseError
        error = kind(
            f"migration {step.name} failed on {self.config.display_dsn} and {outcome}. "
            f"{failed.label}: {shown} -- the database said: {reason}")
        error.migration = step.name
        error.statement = failed.statement
        error.server_message = failed.error.message
        return error

    async def sync_applied_file(self) -> None:
        """Rewrite .applied from the ledger if they differ (the caller holds the lock)."""
        entries = await ledger.read_ledger(self.connection)
        await self._write_applied_file(entries)

    async def _write_applied_file(self, entries) -> None:
        if entries is None:
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
        except OSError as exc:
            # The ledger holds the truth; a read-only deployment still migrates.
            import warnings

            warnings.warn(f"mf: could not update {os.path.join(self.directory, '.applied')} ({exc}); "
                          "the database's ledger is up to date", RuntimeWarning, stacklevel=2)

    # ------------------------------------------------------------ reset
    drop_failure_note = ""

    async def _drop(self, statement: str) -> None:
        """One DROP of reset; a failure rolls the whole reset back (it runs in one transaction)."""
        try:
            await self.connection.execute(statement)
        except StatementError as exc:
            raise DatabaseError(f"{statement} failed on {self.config.display_dsn}: {exc.message}; "
                                f"nothing was dropped{self.drop_failure_note}") from None

    async def drop_owned(self, tables, enums) -> list:  # pragma: no cover - see subclasses
        raise NotImplementedError


class _StatementFailed(Exception):
    """Statement ``position`` of ``total`` failed (or, with ``label``, the ledger
    row or the COMMIT)."""

    def __init__(self, position: int, total: int, statement: str, error: StatementError,
                 label: Optional[str] = None):
        super().__init__(error.message)
        self.position, self.total, self.statement, self.error = position, total, statement, error
        self.label = label or f"Statement {position} of {total}"


# ---------------------------------------------------------------- SQLite

class _SQLite(_Database):
    """No run-wide lock: each migration's BEGIN IMMEDIATE takes the database's write
    lock (waiting up to lock_timeout for another process), and inside it the ledger
    row's UNIQUE name refuses a migration another process applied meanwhile."""

    async def _begin(self) -> None:
        try:
            await self.connection.execute("BEGIN IMMEDIATE")
        except StatementError as exc:
            if exc.is_lock_timeout:
                raise LockTimeoutError(
                    f"another process kept the SQLite database {self.config.dsn} locked for more than "
                    f"{self.config.lock_timeout:g} s; try again when it is done") from None
            raise DatabaseError(f"cannot start a transaction on {self.config.dsn}: {exc.message}") from None

    async def apply(self, step: Step, fake: bool) -> bool:
        if not step.foreign_keys_off or fake:
            return await super().apply(step, fake)
        # A table rebuild: foreign keys off outside the transaction (they cannot be
        # switched inside one), checked with foreign_key_check before the commit.
        await self.connection.execute("PRAGMA foreign_keys=OFF")
        try:
            return await super().apply(step, fake)
        finally:
            with anyio.CancelScope(shield=True):
                await self.connection.execute("PRAGMA foreign_keys=ON")

    async def _run_statements(self, step: Step) -> None:
        await super()._run_statements(step)
        if step.foreign_keys_off:
            problems = await self.connection.fetch("PRAGMA foreign_key_check")
            if problems:
                table, rowid, parent = problems[0][0], problems[0][1], problems[0][2]
                raise _StatementFailed(
                    len(step.statements), len(step.statements), "PRAGMA foreign_key_check",
                    StatementError(f"{len(problems)} row(s) would break a foreign key, e.g. row {rowid} "
                                   f"of {table} references a missing row of {parent}"))

    async def _apply_outside_transaction(self, step, fake):  # pragma: no cover - never on SQLite
        return await super().apply(step, fake)

    async def sync_applied_file(self) -> None:
        # The write lock orders the writers of .applied: the last one wrote the newest ledger.
        async with self.write_transaction():
            entries = await ledger.read_ledger(self.connection)
            await self._write_applied_file(entries)

    async def existing_objects(self) -> tuple:
        rows = await self.connection.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r[0] for r in rows}, set()

    async def drop_owned(self, tables, enums) -> list:
        existing, _ = await self.existing_objects()
        owned = [t for t in drop_order(tables) if t in existing]
        # An owned table referenced from a table mf does not own: dropping it would
        # break (or, with ON DELETE CASCADE, empty) the user's table. Refuse.
        for other in sorted(existing - set(owned) - {"mf_migrations"}):
            if other.startswith("sqlite_"):
                continue
            references = await self.connection.fetch(
                f"SELECT \"table\" FROM pragma_foreign_key_list({_sqlite_text(other)})")
            used = sorted({r[0] for r in references} & set(owned))
            if used:
                raise DatabaseError(
                    f"cannot drop {', '.join(used)}: table {other}, which mf does not own, references "
                    f"{'it' if len(used) == 1 else 'them'}; drop or change {other} first. Nothing was dropped.")
        dropped = []
        await self.connection.execute("PRAGMA foreign_keys=OFF")
        try:
            async with self.write_transaction():
                for table in owned:
                    await self._drop(f'DROP TABLE "{_ident(table)}"')
                    dropped.append(f"table {table}")
                if "mf_migrations" in existing:
                    await ledger.drop_ledger(self.connection)
                    dropped.append("table mf_migrations")
        finally:
            with anyio.CancelScope(shield=True):
                await self.connection.execute("PRAGMA foreign_keys=ON")
        return dropped


def _ident(name: str) -> str:
    return name.replace('"', '""')


def _sqlite_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"



# ---------------------------------------------------------------- PostgreSQL

class _Postgres(_Database):
    """A session advisory lock on a dedicated connection for the whole run, taken by
    polling pg_try_advisory_lock (a blocking pg_advisory_lock waits inside a
    transaction, which deadlocks with CREATE INDEX CONCURRENTLY); every migration
    transaction sets a local lock_timeout."""

    drop_failure_note = " (mf never drops with CASCADE)"

    def __init__(self, connection: Connection, config: Config, sums: Optional[Checksums] = None):
        super().__init__(connection, config, sums)
        timeout = config.statement_lock_timeout.replace("'", "")
        self._begin_sql = f"BEGIN; SET LOCAL lock_timeout = '{timeout}'"
        self._session_timeout_sql = f"SET lock_timeout = '{timeout}'"

    @asynccontextmanager
    async def exclusive(self):
        holder = await connect(self.config)
        try:
            await self._take_lock(holder)
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True):
                    with suppress(StatementError, DatabaseError):
                        await holder.fetch("SELECT pg_advisory_unlock($1)", (ADVISORY_LOCK_KEY,))
        finally:
            # Closing the session frees the lock in any case.
            with anyio.CancelScope(shield=True):
                await holder.close()

    async def _take_lock(self, holder: Connection) -> None:
        deadline = time.monotonic() + self.config.lock_timeout
        delay = 0.005
        while True:
            rows = await holder.fetch("SELECT pg_try_advisory_lock($1)", (ADVISORY_LOCK_KEY,))
            if rows[0][0]:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeoutError(
                    f"another mf run held the migration lock on {self.config.display_dsn} for more than "
                    f"{self.config.lock_timeout:g} s; try again when it is done (or raise "
                    "database.lock_timeout)")
            await anyio.sleep(min(delay * random.uniform(0.5, 1.5), remaining))
            delay = min(delay * 2, LOCK_POLL_MAX)

    async def _begin(self) -> None:
        await self.connection.execute(self._begin_sql)

    async def _record_and_commit(self, step: Step, duration: float) -> None:
        statement = ledger.record_statement(step.name, step.migration.checksum, duration) + "; COMMIT"
        try:
            await self.connection.execute(statement)
        except StatementError as exc:
            raise _StatementFailed(0, 0, statement, exc, "recording it in the ledger") from None

    async def _apply_outside_transaction(self, step: Step, fake: bool) -> bool:
        """Recorded as started in a transaction of its own, run statement by statement,
        then marked applied. A run that dies in between leaves 'started' behind."""
        connection = self.connection
        started = time.perf_counter()
        async with self.write_transaction():
            if not self.ledger_ready:
                await ledger.ensure_ledger(connection)
            await ledger.record(connection, step.name, step.migration.checksum, 0.0, state=STARTED)
        self.ledger_ready = True
        if not fake:
            await connection.execute(self._session_timeout_sql)
            try:
                await self._run_statements(step)
            except _StatementFailed as failed:
                raise self._failure(step, failed, rolled_back=False) from None
            finally:
                with anyio.CancelScope(shield=True), suppress(StatementError, DatabaseError):
                    await connection.execute("RESET lock_timeout")
        await ledger.mark_applied(connection, step.name, step.migration.checksum, time.perf_counter() - started)
        return True

    async def existing_objects(self) -> tuple:
        rows = await self.connection.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(current_schemas(false))")
        type_rows = await self.connection.fetch(
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE t.typtype = 'e' AND n.nspname = ANY(current_schemas(false))")
        return {r[0] for r in rows}, {r[0] for r in type_rows}

    async def drop_owned(self, tables, enums) -> list:
        connection = self.connection
        names = sorted(tables)
        rows = await connection.fetch(
            "SELECT t, to_regclass(quote_ident(t))::oid FROM unnest($1::text[]) AS t", (names,))
        oids = {r[0]: r[1] for r in rows if r[1] is not None}
        edges = await connection.fetch(
            "SELECT conrelid::oid, confrelid::oid, conname FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid = ANY($1::oid[]) AND confrelid = ANY($1::oid[]) AND conrelid <> confrelid",
            (list(oids.values()),))
        table_of = {oid: name for name, oid in oids.items()}
        references = {name: set() for name in oids}
        constraints = {}
        for source, target, constraint in edges:
            references[table_of[source]].add(table_of[target])
            constraints.setdefault((table_of[source], table_of[target]), []).append(constraint)
        order = drop_order(references)
        type_rows = await connection.fetch(
            "SELECT t FROM unnest($1::text[]) AS t WHERE to_regtype(quote_ident(t)) IS NOT NULL",
            (sorted(enums),))
        dropped = []
        async with self.write_transaction():
            # Constraints inside a cycle of owned tables go first (the only ones that
            # would stop a plain DROP TABLE among mf's own tables).
            position = {name: i for i, name in enumerate(order)}
            for (source, target), names_ in sorted(constraints.items()):
                if position[source] > position[target]:
                    for constraint in names_:
                        await self._drop(f'ALTER TABLE "{_ident(source)}" DROP CONSTRAINT "{_ident(constraint)}"')
            for table in order:
                await self._drop(f'DROP TABLE "{_ident(table)}"')
                dropped.append(f"table {table}")
            for row in type_rows:
                await self._drop(f'DROP TYPE "{_ident(row[0])}"')
                dropped.append(f"type {row[0]}")
            if await ledger.ledger_exists(connection):
                await ledger.drop_ledger(connection)
                dropped.append("table mf_migrations")
        return dropped

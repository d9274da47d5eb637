"""The ledger: table mf_migrations, the database's own record of what was applied.

One row per migration file: its name, the checksum of the file's content when it
was applied (store.checksum; rows written before hold the bytes' checksum, still
accepted), when, how long it took, and its state. The row is written in the same
transaction as the migration, so the ledger is the truth for its database; the
.applied file only mirrors it.

``state`` is 'applied' for every finished migration. A non-atomic migration (one
that must run outside a transaction) is first recorded as 'started' in a
transaction of its own, runs, and is then marked 'applied'; a 'started' row found
later means a run died inside it, and `mf db resolve` must settle it.

A migration made of steps (PostgreSQL: an index built CONCURRENTLY outside any
transaction, then the constraint that takes it over) records how far it got:
'step N' once its first N steps have committed, each update in the transaction
of its step (an outside step's in a short transaction right after it), and
'applied' with the last. A run that stopped in between left 'step N': the next
migrate resumes at step N + 1. A ledger created by an earlier mf, whose CHECK on
``state`` knows only 'started' and 'applied', is widened the first time, in a
transaction under the run-wide lock (ensure_steps).

Rows are kept in the order applied (``id``). Nothing here opens transactions:
callers do, so a row lands in the transaction of its migration. The SQL is each
database's dialect's (dialects/base.py and its subclasses); this module runs it.
"""
from __future__ import annotations

import datetime as _dt
from typing import NamedTuple, Optional

from .dialects import dialect_for
from .dialects.base import LEDGER_TABLE  # noqa: F401 - the ledger's name, for callers
from .drivers import Connection, StatementError

APPLIED = "applied"
STARTED = "started"
STEP_PREFIX = "step "


def steps_done(state: str) -> Optional[int]:
    """N for a migration whose first N steps committed ('step N'); None for any other state."""
    if not state.startswith(STEP_PREFIX):
        return None
    try:
        return int(state[len(STEP_PREFIX):])
    except ValueError:
        return None


def step_state(done: int) -> str:
    return f"{STEP_PREFIX}{done}"


class LedgerEntry(NamedTuple):
    """One row. A NamedTuple: the nothing-to-do path reads a thousand of them."""

    name: str
    checksum: str
    state: str
    applied_at: Optional[_dt.datetime] = None
    duration: Optional[float] = None


def _dialect(connection: Connection):
    return dialect_for(connection.driver)


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _read_time(value) -> Optional[_dt.datetime]:
    if value is None or isinstance(value, _dt.datetime):
        return value
    try:
        return _dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


async def ledger_exists(connection: Connection) -> bool:
    return bool(await connection.fetch(_dialect(connection).ledger_exists_sql()))


async def ensure_ledger(connection: Connection) -> None:
    """Create the ledger table if it is not there (inside the caller's transaction)."""
    await connection.execute(_dialect(connection).ledger_create_sql())


async def read_ledger(connection: Connection, *, detailed: bool = False) -> Optional[list]:
    """Every row in the order applied, or None when the database has no ledger yet.

    Not for use inside a PostgreSQL transaction (a missing table would abort it)."""
    try:
        rows = await connection.fetch(_dialect(connection).ledger_select_sql(detailed))
    except StatementError as exc:
        if exc.is_missing_table:
            return None
        raise
    if detailed:
        return [LedgerEntry(r[0], r[1], r[2], _read_time(r[3]), r[4]) for r in rows]
    return [LedgerEntry(*r) for r in rows]


async def state_of(connection: Connection, name: str) -> Optional[str]:
    """The state of one migration's row ('applied', 'started'), None when it has none."""
    rows = await connection.fetch(_dialect(connection).ledger_state_sql(), (name,))
    return rows[0][0] if rows else None


async def record(connection: Connection, name: str, checksum: str, duration: float = 0.0,
                 state: str = APPLIED, applied_at: Optional[_dt.datetime] = None) -> None:
    dialect = _dialect(connection)
    await connection.execute(dialect.ledger_insert_sql(),
                             (name, checksum, dialect.ledger_time(applied_at or now()), float(duration), state))


def record_statement(dialect, name: str, checksum: str, duration: float = 0.0, state: str = APPLIED) -> str:
    """The INSERT of one row with its values written in (the applier sends it together
    with COMMIT where the driver takes both at once: one round trip instead of two)."""
    return dialect.ledger_insert_sql((name, checksum, now().isoformat(), float(duration), state))


async def mark_applied(connection: Connection, name: str, checksum: str, duration: float = 0.0) -> None:
    """A 'started' row becomes 'applied' (a non-atomic migration finished or was resolved)."""
    dialect = _dialect(connection)
    await connection.execute(dialect.ledger_mark_applied_sql(),
                             (checksum, dialect.ledger_time(now()), float(duration), name))


async def record_progress(connection: Connection, name: str, done: int) -> None:
    """The row of a migration made of steps says its first ``done`` steps committed."""
    await connection.execute(_dialect(connection).ledger_progress_sql(), (step_state(done), name))


async def ensure_steps(connection: Connection) -> bool:
    """Let the ledger's ``state`` take 'step N' (inside the caller's transaction, under
    the run-wide lock); True when it had to be widened."""
    dialect = _dialect(connection)
    if await dialect.ledger_takes_steps(connection):
        return False
    for statement in dialect.ledger_steps_upgrade_sql():
        await connection.execute(statement)
    return True


async def rename(connection: Connection, old: str, new: str) -> None:
    """The row of ``old`` now names ``new`` (the same migration, renumbered)."""
    await connection.execute(_dialect(connection).ledger_rename_sql(), (new, old))


async def forget(connection: Connection, name: str) -> None:
    await connection.execute(_dialect(connection).ledger_delete_sql(), (name,))


async def drop_ledger(connection: Connection) -> None:
    await connection.execute(_dialect(connection).ledger_drop_sql())

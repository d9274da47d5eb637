"""Carrying projects over from the earlier mf's single-plan format.

Older projects keep one ``migrations/plan.initial.json`` (and
``plan.incremental.json``) that the earlier tool overwrote on every run. The first
makemigrations or migrate in such a directory turns them, once, into numbered
files: plan.initial.json -> 001_<name>.json, a non-empty plan.incremental.json ->
the next number. schema.json is kept as the snapshot; when it holds more than the
plans say (the earlier tool overwrote its plans but not its snapshot), one more
numbered file brings the history up to it, so that a fresh database migrated from
the files matches schema.json. The plan files are moved aside to
``migrations/.plans-carried-over/``, not deleted, and ``.applied`` lists the files made
from plans: the earlier tool applied those to its database, so the next migrate adopts
a database that holds them (after comparing its catalog, see adoption.py) and applies
them to an empty one.

A plan whose operations touch more tables than max_tables_per_migration allows in one
transaction becomes several numbered files, as makemigrations splits a migration
(``NNN_<suffix>_part1.json`` ...): each applies, and rolls back, on its own, and
``.applied`` lists every part made from the plans.

The steps (reading, checking the database, writing, telling the user) are called
by the API (api.carry_over, and api.makemigrations, which writes only once the new
migration has passed its checks); nothing here runs on its own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from . import store
from .config import DEFAULT_MAX_TABLES_PER_MIGRATION
from .differ import diff
from .operations import fold, split_operations
from .schema import Schema
from .store import plan_files

ASIDE = ".plans-carried-over"


def needs_carry_over(directory: str) -> bool:
    return bool(plan_files(directory)) and not store.list_migration_files(directory)


@dataclass
class Conversion:
    plans: list          # the plan files' names, e.g. ["plan.initial.json"]
    files: list          # [(file name, operations)] in order
    from_plans: int      # how many of them come from plan files (the rest bring it up to schema.json)
    plans_schema: Schema  # what the plans create: what an existing database should hold
    schema: Schema       # what all the files create

    @property
    def names(self) -> list:
        return [name for name, _operations in self.files]


def convert(directory: str, max_tables: int = DEFAULT_MAX_TABLES_PER_MIGRATION) -> Conversion:
    """What the numbered files would hold; a plan touching more than ``max_tables``
    tables makes several. Reads only; writes nothing."""
    state = Schema()
    planned = []
    for path in plan_files(directory):
        operations = store.read_plan(path, state)
        if not operations:
            continue
        planned.append(operations)
        state = fold(operations, state)
    plans_schema = state
    files = _numbered(planned, max_tables)
    from_plans = len(files)
    snapshot, _reflects = store.read_snapshot(directory)
    if snapshot is not None and snapshot != state:
        catch_up = diff(state, snapshot)
        if catch_up:
            files += _numbered([catch_up], max_tables, len(files) + 1)
            state = fold(catch_up, state)
    return Conversion([os.path.basename(p) for p in plan_files(directory)], files, from_plans,
                      plans_schema, state)


def _numbered(planned, max_tables: int, first: int = 1) -> list:
    """[(file name, operations)] for each list of operations in ``planned``, numbered from
    ``first``: one file each, or consecutive parts (``<suffix>_partK``) for one touching
    more than ``max_tables`` tables, as makemigrations writes them."""
    files: list = []
    for operations in planned:
        parts = split_operations(operations, max_tables)
        suffix = store.suffix_for(operations)
        suffixes = store.part_suffixes(suffix, len(parts)) if len(parts) > 1 else [suffix]
        for part, part_suffix in zip(parts, suffixes):
            files.append((store.file_name(first + len(files), part_suffix), part))
    return files


def pending_conversion(directory: str, max_tables: int = DEFAULT_MAX_TABLES_PER_MIGRATION) -> Optional[Conversion]:
    """The Conversion of a project still in the single-plan format, or None (reads only)."""
    return convert(directory, max_tables) if needs_carry_over(directory) else None


async def check_database(config, conversion: Conversion) -> None:
    """Before converting for migrate: a database that already holds some of what the
    plans create must match them, or nothing is converted (DriftError, every mismatch)."""
    from . import adoption
    from .dialects import dialect_for
    from .drivers import connect, database_exists
    from .errors import DriftError

    if not database_exists(config):
        return
    tables = {m.table for m in conversion.plans_schema.models.values()}
    dialect = dialect_for(config.driver)
    async with await connect(config) as connection:
        existing = await dialect.table_names(connection)
        if "mf_migrations" in existing or not (tables & existing):
            return  # a ledger decides, or a fresh database gets everything applied
        findings = await adoption.compare_with_database(config, connection, dialect, conversion.plans_schema)
    if findings.blocking:
        raise DriftError(adoption.report(conversion.from_plans, findings))


def write(directory: str, conversion: Conversion) -> None:
    """Write the numbered files, schema.json and .applied, and move the plan files aside."""
    names = conversion.names
    for name, operations in conversion.files:
        store.write_migration_bytes(os.path.join(directory, name), store.migration_bytes(operations))
    store.write_snapshot(directory, conversion.schema, names[-1] if names else None)
    # The earlier tool applied its plans to its database: .applied says so, and the
    # next migrate adopts a database that holds them (or applies them to an empty one).
    store.write_applied(directory, names[:conversion.from_plans])
    store.set_plans_aside(directory, ASIDE)


def describe(directory: str, conversion: Conversion, written: bool) -> str:
    """The paragraph telling the user what the carry-over did (or would do)."""
    names = conversion.names
    verb = "Carried" if written else "Would carry"
    made = names[:conversion.from_plans]
    text = (f"{verb} this project over from the earlier single-plan format: {' and '.join(conversion.plans)} "
            f"became {', '.join(made) if made else 'no migration (the plans were empty)'}")
    catch_up = names[len(made):]
    if len(catch_up) == 1:
        text += f", and {catch_up[0]} brings the history up to schema.json, which held more than the plans"
    elif catch_up:
        text += (f", and {', '.join(catch_up)} (one change in parts) bring the history up to schema.json, which "
                 "held more than the plans")
    aside = os.path.join(os.path.basename(directory), ASIDE)
    text += (f". schema.json is kept as the snapshot; .applied lists what the earlier tool applied; "
             f"the plan files {'were' if written else 'would be'} moved to {aside}/. This happens once.")
    return text

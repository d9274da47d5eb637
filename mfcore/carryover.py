"""Carrying projects over from the earlier mf's single-plan format.

Older projects keep one ``migrations/plan.initial.json`` (and
``plan.incremental.json``) that the earlier tool overwrote on every run. The first
makemigrations or migrate in such a directory turns them, once, into numbered
files: plan.initial.json -> 001_<name>.json, a non-empty plan.incremental.json ->
the next number. schema.json is kept as the snapshot; when it holds more than the
plans say (the earlier tool overwrote its plans but not its snapshot), one more
numbered file brings the history up to it, so that a fresh database migrated from
the files matches schema.json. The plan files are moved aside to
``migrations/.plans-carried-over/``, not deleted.
"""
from __future__ import annotations

import os

import orjson

from . import store
from .differ import diff
from .errors import MigrationFileError
from .operations import attach_tables, fold, operation_from_json
from .schema import Schema

PLAN_FILES = ("plan.initial.json", "plan.incremental.json")
ASIDE = ".plans-carried-over"


def plan_files(directory: str) -> list:
    return [os.path.join(directory, name) for name in PLAN_FILES
            if os.path.isfile(os.path.join(directory, name))]


def needs_carry_over(directory: str) -> bool:
    return bool(plan_files(directory)) and not store.list_migration_files(directory)


def _read_plan(path: str, state: Schema) -> list:
    name = os.path.basename(path)
    try:
        with open(path, "rb") as handle:
            doc = orjson.loads(handle.read())
    except orjson.JSONDecodeError as exc:
        raise MigrationFileError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("ops"), list):
        raise MigrationFileError(f"{name}: a plan is an object with an 'ops' list")
    operations = []
    start = state
    for position, op_doc in enumerate(doc["ops"], 1):
        operation = operation_from_json(op_doc, state, f"{name}: operation {position}")
        operations.append(operation)
        state = operation.apply(state)
    completed, _ = attach_tables(operations, start)
    return completed


def convert(directory: str) -> tuple:
    """What each numbered file would hold, [(suffix, operations)] in order, and the
    schema they add up to. Reads only; writes nothing."""
    state = Schema()
    planned = []
    for path in plan_files(directory):
        operations = _read_plan(path, state)
        if not operations:
            continue
        planned.append((store.suffix_for(operations), operations))
        state = fold(operations, state)
    snapshot, _reflects = store.read_snapshot(directory)
    if snapshot is not None and snapshot != state:
        catch_up = diff(state, snapshot)
        if catch_up:
            planned.append((store.suffix_for(catch_up), catch_up))
            state = fold(catch_up, state)
    return planned, state


def carry_over_if_needed(directory: str, notices: list, write: bool = True) -> list:
    """Convert plan files to numbered files once; returns the names written (or that
    would be, when not writing) and adds a paragraph for the user to ``notices``."""
    if not needs_carry_over(directory):
        return []
    planned, state = convert(directory)
    names = [store.file_name(number, suffix) for number, (suffix, _ops) in enumerate(planned, 1)]
    plans = [os.path.basename(p) for p in plan_files(directory)]
    if write:
        for number, (suffix, operations) in enumerate(planned, 1):
            store.write_migration(directory, number, suffix, operations)
        store.write_snapshot(directory, state, names[-1] if names else None)
        aside = os.path.join(directory, ASIDE)
        os.makedirs(aside, exist_ok=True)
        for path in plan_files(directory):
            os.replace(path, os.path.join(aside, os.path.basename(path)))
        store.fsync_directory(directory)
    verb = "Carried" if write else "Would carry"
    notices.append(
        f"{verb} this project over from the earlier single-plan format: "
        f"{', '.join(plans)} became {', '.join(names) or 'no migration (the plans were empty)'}; "
        f"schema.json is kept as the snapshot, and the plan files were moved to "
        f"{os.path.join(os.path.basename(directory), ASIDE)}/. This happens once.")
    return names

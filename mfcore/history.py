"""The migration history on disk against the database's (SPEC §6.2, §6.5), without
touching a database: the migration files, their checksums, and the survey that
says what is applied, what is pending and what is to be adopted, refusing a
history that was edited, renamed, reordered or left unresolved.

The applier reads the ledger and the catalog and hands them here; nothing here
connects, prints or exits.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from .config import Config
from .dialects import dialect_for
from .errors import DriftError, IntegrityError, MigrationFileError, UnresolvedMigrationError
from .ledger import APPLIED, STARTED, LedgerEntry
from .store import MIGRATION_FILE, MigrationFile, checksum, list_migration_files, load_history


# ================================================================ the files

def migration_files(directory: str) -> list:
    try:
        return list_migration_files(directory)
    except MigrationFileError as exc:  # two files with one number
        raise IntegrityError(str(exc)) from None


def check_target(files, to: Optional[int]) -> None:
    if to is not None and not any(f.number == to for f in files):
        raise MigrationFileError(f"--to {to:03d}: there is no migration numbered {to:03d}")


def cut(pending, to: Optional[int]) -> list:
    return [f for f in pending if to is None or f.number <= to]


def number_of(name: str) -> Optional[int]:
    match = MIGRATION_FILE.match(name)
    return int(match.group(1)) if match else None


class Checksums:
    """Checksums of files, each file read at most once per run."""

    def __init__(self):
        self._known: dict = {}

    def of(self, file: MigrationFile) -> Optional[str]:
        known = self._known.get(file.name)
        if known is None:
            data = file.read_bytes_if_present()
            if data is None:
                return None
            known = checksum(data)
            self._known[file.name] = known
        return known

    def remember(self, name: str, value: str) -> None:
        self._known[name] = value



# ================================================================ the survey

@dataclass
class Survey:
    entries: Optional[list]   # the ledger's rows; None when the database has none
    adopt: list               # files .applied lists that the database already has (§6.2)
    pending: list             # files not applied, numeric order
    applied_file: Optional[list]  # what .applied says

    @property
    def applied_names(self) -> list:
        return [e.name for e in self.entries or () if e.state == APPLIED]

    @property
    def applied_file_behind(self) -> bool:
        return self.entries is not None and self.applied_file != self.applied_names


def _check_history(files, entries, sums: Checksums, directory: str) -> None:
    """§6.5: every applied file is there, unchanged; no pending file below the newest
    applied one. All problems are reported together, before anything runs."""
    by_name = {f.name: f for f in files}
    by_number = {f.number: f for f in files}
    recorded = {e.name for e in entries}
    problems = []
    advice = []
    explained = set()
    for entry in entries:
        file = by_name.get(entry.name)
        if file is None:
            other = by_number.get(number_of(entry.name))
            if other is not None and other.name not in recorded and sums.of(other) == entry.checksum:
                problems.append(f"{entry.name} was applied and has since been renamed to {other.name}")
                explained.add(other.name)
            else:
                problems.append(f"{entry.name} was applied but the file is gone")
        elif sums.of(file) != entry.checksum:
            problems.append(f"{entry.name} was edited after it was applied (its checksum differs)")
    if problems:
        advice.append("restore applied migration files exactly as they were (from version control) and put "
                      "further changes in a new migration")
    if entries:
        newest_number, newest_name = max((number_of(e.name) or 0, e.name) for e in entries)
        below = [f.name for f in files
                 if f.number < newest_number and f.name not in recorded and f.name not in explained]
        for name in below:
            problems.append(f"{name} is not applied but is numbered below {newest_name}, the newest "
                            "applied migration")
        if below:
            advice.append(f"renumber {', '.join(below)} to come after {newest_name} (a branch merged late?)")
    if problems:
        raise IntegrityError(f"the migrations in {directory} do not match the database's history: "
                             + "; ".join(problems) + ". Nothing was applied; " + "; ".join(advice) + ".")


def check_unresolved(entries) -> None:
    for entry in entries:
        if entry.state == STARTED:
            number = number_of(entry.name) or 0
            raise UnresolvedMigrationError(
                f"migration {entry.name} runs outside a transaction and a run stopped inside it, so it "
                "may be partly applied. Check the database, then run "
                f"`mf db resolve {number:03d} --applied` if all of it is there, or "
                f"`mf db resolve {number:03d} --rolled-back` if none of it is (undo any part first).")


def survey_from(files, entries, applied_file, adopt, sums, directory) -> Survey:
    effective = entries
    if entries is None:
        effective = [LedgerEntry(f.name, sums.of(f), APPLIED) for f in adopt]
    _check_history(files, effective, sums, directory)
    check_unresolved(effective)
    done = {e.name for e in effective}
    return Survey(entries, adopt, [f for f in files if f.name not in done], applied_file)


def listed_files(files, applied_file, directory) -> list:
    by_name = {f.name: f for f in files}
    missing = [name for name in applied_file if name not in by_name]
    if missing:
        raise IntegrityError(f"{os.path.join(directory, '.applied')} lists {', '.join(missing)}, "
                             f"which {'is' if len(missing) == 1 else 'are'} not in {directory}; restore "
                             "the file(s) or remove the name(s) from .applied")
    return sorted((by_name[name] for name in dict.fromkeys(applied_file)), key=lambda f: f.number)


def _adoption_objects(config: Config, listed) -> tuple:
    """The tables (and enum types, where they are types of their own) the migrations
    .applied lists create."""
    _history, schema = load_history(config.migrations_dir, listed)
    tables = {m.table for m in schema.models.values()}
    types = {e.type_name for e in schema.enums.values()} if dialect_for(config.driver).has_enum_types else set()
    return tables, types


def adoption_decision(config: Config, listed, existing_tables, existing_types) -> list:
    """§6.2: the listed files to record as applied (their objects exist), or [] when the
    database is empty of them and they are to be applied."""
    tables, types = _adoption_objects(config, listed)
    wanted = [("table", t) for t in sorted(tables)] + [("type", t) for t in sorted(types)]
    present = [(kind, name) for kind, name in wanted
               if name in (existing_tables if kind == "table" else existing_types)]
    if len(present) == len(wanted):
        return list(listed)
    if not present:
        return []
    absent = [f"{kind} {name}" for kind, name in wanted if (kind, name) not in present]
    raise DriftError(
        f".applied lists {len(listed)} migration(s) but this database has no mf_migrations ledger and only "
        f"part of what they create: {', '.join(f'{k} {n}' for k, n in present)} exist(s), "
        f"{', '.join(absent)} do(es) not. mf cannot tell which of them ran; bring the database in line "
        "with .applied (or empty it) and run migrate again.")

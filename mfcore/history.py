"""The migration history on disk against the database's (SPEC §6.2, §6.5), without
touching a database: the migration files, their checksums, and the survey that
says what is applied, what is pending and what is to be adopted, refusing a
history that was edited, renamed, reordered or left unresolved.

The applier reads the ledger and the catalog and hands them here; nothing here
connects, prints or exits.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from .config import Config
from .dialects import dialect_for
from .errors import DriftError, IntegrityError, MigrationFileError, UnresolvedMigrationError
from .ledger import APPLIED, STARTED, STEP_PREFIX, LedgerEntry
from .operations import fold
from .schema import Schema
from .store import MIGRATION_FILE, MigrationFile, byte_checksum, file_facts, list_migration_files, load_history


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
    """What the runs need of each file's content -- its checksum, what it replaces --
    each file read at most once per run, and parsed only when that is needed: a file as
    mf wrote it has the checksum of its bytes, which settles the common case."""

    def __init__(self):
        self._data: dict = {}     # name -> bytes
        self._facts: dict = {}    # name -> (content checksum, replaces)
        self._bytes_sums: dict = {}

    def _read(self, file: MigrationFile) -> Optional[bytes]:
        data = self._data.get(file.name)
        if data is None:
            data = file.read_bytes_if_present()
            if data is not None:
                self._data[file.name] = data
        return data

    def _content(self, file: MigrationFile) -> Optional[tuple]:
        facts = self._facts.get(file.name)
        if facts is None:
            data = self._read(file)
            if data is None:
                return None
            facts = self._facts[file.name] = file_facts(data, file.name)
        return facts

    def of(self, file: MigrationFile) -> Optional[str]:
        """The file's content checksum (None when it is gone)."""
        facts = self._content(file)
        return facts[0] if facts is not None else None

    def byte_checksum(self, file: MigrationFile) -> Optional[str]:
        known = self._bytes_sums.get(file.name)
        if known is None:
            data = self._read(file)
            if data is None:
                return None
            known = self._bytes_sums[file.name] = byte_checksum(data)
        return known

    def matches(self, file: MigrationFile, stored: str) -> Optional[bool]:
        """Does a ledger row's checksum belong to this file (its content's, or the bytes'
        own for rows written before checksums were over content)? None when it is gone."""
        own = self.byte_checksum(file)
        if own is None:
            return None
        return own == stored or self.of(file) == stored

    def replaces(self, file: MigrationFile) -> tuple:
        data = self._read(file)
        if data is None or b'"replaces"' not in data:
            return ()
        return self._content(file)[1]


# ================================================================ the ledger against the files

@dataclass
class Reading:
    """How the ledger's rows meet the files on disk."""

    renames: list    # [(ledger name, file name)]: an applied file renamed (found by its content)
    done: set        # file names that count as applied (a squash whose originals all are, too)
    replaced: set    # file names that will not run: a squash runs instead, or its originals did
    gone: list       # ledger names whose file is gone, unexplained
    edited: list     # ledger names whose file was edited since

    def current_name(self, name: str) -> str:
        return dict(self.renames).get(name, name)


def read_history(files, entries, sums: Checksums) -> Reading:
    """Match the ledger's rows with the files: by name, then (a file renamed) by content;
    then a squashed migration's semantics (as Django's): when its originals are all
    applied, or it is, it counts as applied and they do; when none of them is, it runs
    and they do not; in between, the rest of the originals run, and then it counts."""
    by_name = {f.name: f for f in files}
    recorded = {e.name for e in entries}
    renames = _renamed(files, [e for e in entries if e.name not in by_name], recorded, sums)
    renamed = dict(renames)
    # A migration made of steps that a run left partway ('step N') is pending: migrate resumes it.
    done = {renamed.get(e.name, e.name) for e in entries if not e.state.startswith(STEP_PREFIX)}
    edited = [e.name for e in entries if e.name in by_name and sums.matches(by_name[e.name], e.checksum) is False]
    replaced: set = set()
    stands_for: set = set()
    for squash in files:
        originals = sums.replaces(squash)
        if not originals:
            continue
        stands_for.update(originals)
        present = [name for name in originals if name in by_name]
        if squash.name in done or all(name in done for name in originals):
            done.add(squash.name)
            replaced.update(name for name in present if name not in done)
        elif not any(name in done for name in originals):
            replaced.update(present)
        else:
            replaced.add(squash.name)
    gone = [e.name for e in entries if e.name not in by_name and e.name not in renamed and e.name not in stands_for]
    return Reading(renames, done, replaced, gone, edited)


def _renamed(files, orphans, recorded, sums: Checksums) -> list:
    """[(ledger name, file name)] for ledger rows without a file whose content is in a
    file the ledger does not know (same checksum, new name)."""
    if not orphans:
        return []
    by_checksum: dict = {}
    for file in files:
        if file.name not in recorded and not sums.replaces(file):
            by_checksum.setdefault(sums.of(file), file)
            by_checksum.setdefault(sums.byte_checksum(file), file)
    renames = []
    taken = set()
    for entry in orphans:
        file = by_checksum.get(entry.checksum)
        if file is not None and file.name not in taken:
            taken.add(file.name)
            renames.append((entry.name, file.name))
    return renames


# ================================================================ the survey

@dataclass
class Survey:
    entries: Optional[list]   # the ledger's rows; None when the database has none
    adopt: list               # files .applied lists that the database already has (§6.2)
    pending: list             # files not applied, numeric order
    applied_file: Optional[list]  # what .applied says
    renames: list = field(default_factory=list)       # [(ledger name, file name)] to rename in the ledger
    out_of_order: list = field(default_factory=list)  # pending names below the newest applied that commute
    ahead: list = field(default_factory=list)  # applied names newer than every file (see ahead_of)
    adopt_from_catalog: bool = False  # adopt: files whose objects the database holds (empty ledger)

    @property
    def applied_names(self) -> list:
        renamed = dict(self.renames)
        return [renamed.get(e.name, e.name) for e in self.entries or () if e.state == APPLIED]

    @property
    def applied_file_behind(self) -> bool:
        return self.entries is not None and self.applied_file != self.applied_names


def ahead_of(files, gone) -> list:
    """The applied migrations whose file is gone (``gone``, as read_history found them)
    that are newer than every file: the code is older than the database (a replica of
    the previous release restarting while the new one is out). Only when every one of
    them is numbered above the newest file; a gap in the middle of the history is no
    such thing ([])."""
    if not files or not gone:
        return []
    newest = files[-1].number
    return list(gone) if all((number_of(name) or 0) > newest for name in gone) else []


def ahead_notice(ahead, files) -> str:
    """What migrate and status say when the database is ahead of the files (``ahead``:
    the names ahead_of gave)."""
    verb = "was" if len(ahead) == 1 else "were"
    return (f"The database is ahead of these migration files: {', '.join(ahead)} {verb} applied by newer "
            f"code (the files here end at {files[-1].name}); nothing here is left to apply.")


def _check_history(files, reading: Reading, entries, directory: str, ahead=()) -> list:
    """§6.5: every applied file is there, unchanged. A pending file below the newest
    applied one is applied only where that order builds the same schema as the files'
    (two branches' migrations that do not touch the same thing, after `mf db rebase`);
    otherwise it is an error. ``ahead``: applied names newer than every file, which are
    no problem while nothing here is pending (see ahead_of). All problems are reported
    together, before anything runs. Returns the pending files, numeric order."""
    problems = []
    advice = []
    for name in reading.gone:
        if name not in ahead:
            problems.append(f"{name} was applied but the file is gone")
    for name in reading.edited:
        problems.append(f"{name} was edited after it was applied (its content differs; line endings, "
                        "indentation and key order do not count)")
    if problems:
        advice.append("restore applied migration files exactly as they were (from version control) and put "
                      "further changes in a new migration")
    pending = [f for f in files if f.name not in reading.done and f.name not in reading.replaced]
    if ahead and pending:
        names = ", ".join(f.name for f in pending)
        problems.append(f"{names} {'is' if len(pending) == 1 else 'are'} not applied, but the database is ahead of "
                        f"these files ({', '.join(ahead)} applied by newer code)")
        advice.append("migrate with the code that has the newer files")
    applied = [reading.current_name(e.name) for e in entries if e.name not in ahead]
    below = []
    if applied and not (ahead and pending):
        newest_number, newest_name = max((number_of(name) or 0, name) for name in applied)
        below = [f for f in pending if f.number < newest_number]
        refused = out_of_order_refusal(directory, files, reading, below) if below and not problems else None
        if refused is not None:
            names = ", ".join(f.name for f in below)
            problems.append(f"{names} {'is' if len(below) == 1 else 'are'} not applied but numbered below "
                            f"{newest_name}, the newest applied migration, and {refused}")
            advice.append(f"run `mf db rebase {' '.join(f.name for f in below)}` to move "
                          f"{'it' if len(below) == 1 else 'them'} after {newest_name} (a branch merged late?)")
    if problems:
        raise IntegrityError(f"the migrations in {directory} do not match the database's history: "
                             + "; ".join(problems) + ". Nothing was applied; " + "; ".join(advice) + ".")
    return pending


def out_of_order_refusal(directory: str, files, reading: Reading, below) -> Optional[str]:
    """Why pending ``below`` cannot run after the applied migrations numbered above them
    (None when it can): running them now must build the schema the files' order builds,
    and no data step may be among the migrations whose order changes."""
    first = min(f.number for f in below)
    top = max(number_of(name) or 0 for name in reading.done)
    wanted = {f.name for f in below}
    considered = [f for f in files if f.number <= top and f.name not in reading.replaced
                  and (f.name in reading.done or f.name in wanted)]
    history, _schema = load_history(directory, [f for f in files if f.number <= top])
    by_name = {m.name: m for m in history}
    moved = [by_name[f.name] for f in considered if f.number >= first]
    data_steps = [m.name for m in moved if m.has_data_steps]
    if data_steps:
        return f"the order would change around {', '.join(data_steps)}, which hold(s) data steps"
    late = [m for m in moved if m.name in wanted]
    early = [m for m in moved if m.name not in wanted]
    shared = shared_objects(late, early)
    if shared:
        return f"they change what applied migrations after them change too ({', '.join(shared[:3])})"
    files_order = [by_name[f.name] for f in considered]
    database_order = [m for m in files_order if m.name not in wanted] + late
    try:
        if fold_migrations(files_order) == fold_migrations(database_order):
            return None
    except MigrationFileError as exc:
        return f"applying them after it fails ({exc})"
    return "applying them after it builds another schema than the files' order"


def shared_objects(first, second) -> list:
    """What migrations of ``first`` change that those of ``second`` read or change, or
    the other way round: where the order of the two groups could matter."""
    reads_a, writes_a = effects(first)
    reads_b, writes_b = effects(second)
    shared = (writes_a & (reads_b | writes_b)) | (writes_b & reads_a)
    return sorted(" ".join(part for part in key if part) for key in shared)


def effects(migrations) -> tuple:
    """(objects read, objects changed) by the operations of ``migrations``: models,
    fields as ("field", model, name), enums, indexes, foreign keys."""
    reads, writes = set(), set()
    for migration in migrations:
        for op in migration.operations:
            model = getattr(op, "model", None)
            if op.op in ("create_model", "drop_model"):
                writes.add(("model", model))
            elif op.op == "rename_model":
                writes.update({("model", op.old_name), ("model", op.new_name)})
            elif op.op in ("create_enum", "drop_enum", "alter_enum"):
                writes.add(("enum", op.name))
            elif model is not None:
                reads.add(("model", model))
                for f in (getattr(op, "field", None), getattr(op, "old", None), getattr(op, "new", None)):
                    if f is not None:
                        writes.add(("field", model, f.name))
                        reads.update({("model", f.target), ("enum", f.enum)} - {("model", None), ("enum", None)})
                index = getattr(op, "index", None)
                if index is not None:
                    writes.add(("index", index.name))
                if op.op in ("add_fk", "drop_fk"):
                    writes.add(("field", model, op.field_name))
                    reads.add(("model", op.target))
    return reads, writes


def fold_migrations(migrations) -> Schema:
    schema = Schema()
    for migration in migrations:
        schema = fold(migration.operations, schema)
    return schema


def check_unresolved(entries) -> None:
    for entry in entries:
        if entry.state == STARTED:
            number = number_of(entry.name) or 0
            raise UnresolvedMigrationError(
                f"migration {entry.name} runs outside a transaction and a run stopped inside it, so it "
                "may be partly applied. Check the database, then run "
                f"`mf db resolve {number:03d} --applied` if all of it is there, or "
                f"`mf db resolve {number:03d} --rolled-back` if none of it is (undo any part first).")


def survey_from(files, entries, applied_file, adopt, sums, directory, adopt_from_catalog: bool = False) -> Survey:
    effective = entries
    if not entries:  # no ledger, or an empty one: what is adopted counts as applied
        effective = [LedgerEntry(f.name, sums.of(f), APPLIED) for f in adopt]
    reading = read_history(files, effective, sums)
    ahead = ahead_of(files, reading.gone)
    pending = _check_history(files, reading, effective, directory, ahead)
    check_unresolved(effective)
    applied_numbers = [number_of(reading.current_name(e.name)) or 0 for e in effective]
    newest = max(applied_numbers, default=0)
    out_of_order = [f.name for f in pending if f.number < newest]
    return Survey(entries, adopt, pending, applied_file, reading.renames if entries is not None else [],
                  out_of_order, ahead, adopt_from_catalog)


def listed_files(files, applied_file, directory) -> list:
    by_name = {f.name: f for f in files}
    missing = [name for name in applied_file if name not in by_name]
    if missing:
        # Originals removed after a squash: the squashed migration (every part of a split
        # one) stands for them.
        standing: dict = {}
        for f in files:
            for name in f.replaces():
                standing.setdefault(name, []).append(f.name)
        applied_file = [standing_name for name in applied_file for standing_name in standing.get(name, [name])]
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

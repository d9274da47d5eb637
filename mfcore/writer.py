"""makemigrations: models.mp + schema.json -> the next numbered migration file.

In two steps, which api.makemigrations calls: draft_migration works the migration
out and checks it, write_draft writes it (in between, the API carries a single-plan
project over, so that a refused change leaves every file as it was). It never
touches a database. Files are written migration first and schema.json
last; schema.json names the migration it reflects, so a run interrupted between
the two is noticed (schema.json is behind the newest file) and repaired by
folding the files.
"""
from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Optional

from .backfills import apply_backfills, filled_by_hand
from .config import Config
from .differ import diff
from .errors import SchemaFileError, UnsafeChangeError
from .language import chunks
from .language.parser import parse_bytes, read_models_file, read_raw
from .operations import AddColumn, AlterColumn, fold, locked_tables, split_operations
from . import model_cache
from .questioner import BY_HAND, Questioner
from .schema import Schema
from .snapshot import with_sources
from . import store


@dataclass(frozen=True)
class MigrationFileDraft:
    """One file of the migration: its path and operations, and its bytes (``content``),
    made each time they are asked for: a first migration of 20,000 models is a hundred
    megabytes of JSON, and write_draft makes and writes one file at a time."""

    path: str
    operations: list
    atomic: bool = True  # what its "atomic" key says (makemigrations writes atomic migrations)
    doc: Optional[list] = None  # its "doc" key (an empty migration's template of data steps)

    @property
    def content(self) -> bytes:
        return store.migration_bytes(self.operations, self.atomic, doc=self.doc)


@dataclass
class MakeMigrationsResult:
    operations: list
    path: Optional[str] = None          # the file written (or that would be, with dry_run/check); when the
    #                                     migration is split, the first of ``files``
    written: bool = False
    notices: list = field(default_factory=list)  # things mf repaired or converted, to tell the user
    models_read: int = 0    # model declarations read from models.mp in this run
    models_total: int = 0   # model declarations in models.mp (the others were unchanged, see model_cache.py)
    sql: Optional[list] = None  # with dry_run: the lines `mf db sql` will show for its files
    # Every file, in order: one, or several when the operations touch more tables than
    # max_tables_per_migration (``split_reason`` then says so in a sentence).
    files: list = field(default_factory=list)
    split_reason: Optional[str] = None
    # What `mf db lint` finds in the file(s) (lint.Finding), and for each operation the
    # tables it rewrites under ACCESS EXCLUSIVE (dialects.risks.Rewrite): shown, never fatal.
    findings: list = field(default_factory=list)
    rewrites: list = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.operations)

    @property
    def content(self) -> Optional[bytes]:
        """The bytes of the file at ``path`` (made anew at each call)."""
        return self.files[0].content if self.files else None

    @property
    def file_name(self) -> Optional[str]:
        return os.path.basename(self.path) if self.path else None


def current_snapshot(directory: str, files, notices: list, repair: bool, data: Optional[bytes] = None,
                     index_foreign_keys: bool = False) -> tuple:
    """The schema as of the newest migration file, and the schema.json document it
    came from when that can be reused for writing (else None).

    schema.json normally says it. It is derived from the migration files, so when it is
    missing, unreadable (merge-conflict markers, not JSON, not a schema) or behind the
    newest file (an interrupted run, a merge), the files are folded instead and, if
    ``repair``, schema.json is rewritten from them, recording ``index_foreign_keys``.
    ``data``: schema.json's bytes, if read already.
    """
    try:
        snapshot, reflects, document = store.read_snapshot_document(directory, data)
        problem = None
    except SchemaFileError as exc:
        snapshot, reflects, document, problem = None, None, None, str(exc).split(". schema.json is derived")[0]
    if not files:
        if problem is not None:
            raise SchemaFileError(f"{problem}, and there are no migration files to rebuild it from; remove it "
                                  "and run `mf db makemigrations` again")
        return Schema(), None
    newest = files[-1].name
    if snapshot is not None and (reflects == newest or reflects is None):
        # reflects is None: the earlier tool's snapshot, which named no file; it was kept
        # in step with its files, and compat projects rely on it.
        return snapshot, document
    _migrations, folded = store.load_history(directory, files)
    if problem is not None:
        notices.append(f"{problem}; rebuilt schema.json from the migration files up to {newest} "
                       "(it is derived from them).")
    elif snapshot is None:
        notices.append(f"schema.json was missing; rebuilt it from the migration files up to {newest}.")
    else:
        notices.append(f"schema.json reflected {reflects}, not the newest file {newest} "
                       "(an interrupted makemigrations, or a merge); rebuilt it from the migration files.")
    if repair:
        store.write_snapshot(directory, folded, newest, index_foreign_keys=index_foreign_keys)
    return folded, None


def inferred_index_foreign_keys(models: bytes, display: str, migrated: Schema) -> bool:
    """Whether the migrations were made by a project that indexes foreign keys, when
    schema.json, which records it, was missing or unreadable: true when the migrations
    built the index of a foreign key that models.mp leaves to the setting (no db_index),
    which only that setting makes. Without such a key, either answer reads the migrated
    models alike, and the answer is false (README, "Foreign key indexes")."""
    indexed = parse_bytes(models, display, index_foreign_keys=True)
    plain = parse_bytes(models, display)
    for name, model in indexed.models.items():
        built = migrated.models.get(name)
        if built is not None and (set(model.indexes) - set(plain.models[name].indexes)) & set(built.indexes):
            return True
    return False


def check_safety(operations, old: Schema) -> None:
    """Refuse changes that would fail on a table holding rows; say what to do instead."""
    problems = []
    by_hand = filled_by_hand(operations)
    for operation in operations:
        if isinstance(operation, AddColumn) and operation.model in old.models:
            f = operation.field
            if not f.null and not f.has_default and not f.auto_now and not f.auto_now_add \
                    and not f.primary_key and f.db_default is None:
                problems.append(
                    f"cannot add {f.type} '{operation.model}.{f.name}' as NOT NULL without a default: "
                    f"if table '{operation.table}' has rows, they would have no value. Give it a default "
                    f"(default=...) or allow NULL (null=true), then run makemigrations again; or "
                    + _backfill_advice(operation.model, f))
        if isinstance(operation, AlterColumn) and operation.old.null and not operation.new.null \
                and not _fills_nulls(operation.new) and operation.backfill is None \
                and f"{operation.table}.{operation.new.column}" not in by_hand:
            f = operation.new
            problems.append(
                f"cannot make '{operation.model}.{f.name}' NOT NULL without a default: rows of table"
                f" '{operation.table}' may hold NULL there, and the change would fail on them. Give it a"
                f" default (default=...), which fills those rows first, or keep null=true and fill them"
                f" before making it NOT NULL; or " + _backfill_advice(operation.model, f))
    if problems:
        raise UnsafeChangeError("\n".join(problems))


def _accepting_rounding(operations) -> list:
    """The operations with every type change that rounds values marked as accepted; an
    error when none of them rounds (the flag would be silently meaningless)."""
    if not any(isinstance(op, AlterColumn) and op.rounding is not None for op in operations):
        raise UnsafeChangeError("--accept-rounding: no change in this migration rounds values (only a type "
                                "change such as FloatField -> IntegerField, fewer decimal places or "
                                "DateTimeField -> DateField does)")
    return [replace(op, accept_rounding=True) if isinstance(op, AlterColumn) and op.rounding is not None else op
            for op in operations]


def _backfill_advice(model: str, f) -> str:
    """The end of a refusal: the --backfill forms that would do (a unique column cannot
    take one value for every row)."""
    by_hand = (f"fill them yourself in the same migration: --backfill {model}.{f.name}={BY_HAND} writes a run_sql "
               "step to complete before migrating.")
    if f.unique:
        return by_hand
    return f"give the rows a one-off value with --backfill {model}.{f.name}=VALUE, or " + by_hand


def _fills_nulls(f) -> bool:
    """Does the field give a value to rows that hold NULL when it becomes NOT NULL?"""
    return (f.has_default and f.default is not None) or f.auto_now or f.auto_now_add or f.primary_key \
        or f.db_default is not None


@dataclass
class Draft:
    """The next migration, worked out and checked but not yet written (see write_draft)."""
    result: MakeMigrationsResult
    old: Schema                       # the schema the migration starts from
    old_document: Optional[dict]      # schema.json's document for ``old``, when it can be reused
    cached: Optional[object]          # model_cache's Plan when only the edited models were read, or
    #                                   when schema.json's unchanged models were taken as read (verified_plan)
    outline: object
    declarations: list
    index_foreign_keys: bool = False  # the project's setting, recorded in schema.json when true


def draft_migration(config: Config, *, name: Optional[str] = None, empty: bool = False,
                    questioner: Optional[Questioner] = None, carried=None, repair: bool = False,
                    backfills: Optional[dict] = None, accept_rounding: bool = False) -> Draft:
    """Diff models.mp against the snapshot and check the changes; writes nothing but a
    repaired schema.json (when ``repair``). ``carried``: the carryover.Conversion of a
    project still in the earlier single-plan format, whose files the migration follows."""
    directory = config.migrations_dir
    notices: list = []
    display = _display(config.models_path)
    outline = chunks.outline(read_models_file(config.models_path, display_path=display))

    # Most runs of a large project find schema.json as the last run left it and change
    # a few models: those are all that is read (model_cache.py). Anything else is read
    # in full, which also explains every problem in models.mp.
    files = [] if carried is not None else store.list_migration_files(directory)
    snapshot_data = None if carried is not None else store.read_snapshot_data(directory)
    index_fks = store.index_foreign_keys(config.index_foreign_keys, snapshot_data, bool(files) or carried is not None)
    cached = None if carried is not None else _cached_plan(files, outline, snapshot_data, index_fks)
    declarations: list = []
    verified = None
    if cached is not None:
        old, new, old_document = cached.old, cached.new, None
    else:
        new = parse_bytes(outline.data, display, outline=declarations, index_foreign_keys=index_fks)
        if carried is None and files and snapshot_data is not None:
            # No sources to use: the models schema.json holds exactly as models.mp now says
            # them, which after a small edit is nearly all, are taken as read.
            verified = model_cache.verified_plan(outline, declarations, new, snapshot_data, files[-1].name,
                                                 index_fks)
        if verified is not None:
            old, old_document = verified.old, None
        elif carried is not None:
            old, old_document = carried.schema, None
        else:
            recorded = snapshot_data is not None and store.indexes_foreign_keys(snapshot_data)
            old, old_document = current_snapshot(directory, files, notices, repair=repair, data=snapshot_data,
                                                 index_foreign_keys=recorded)
            if notices and config.index_foreign_keys is None and not recorded \
                    and inferred_index_foreign_keys(outline.data, display, old):
                # schema.json was rebuilt and could not say: the migrations do.
                index_fks = True
                new = parse_bytes(outline.data, display, index_foreign_keys=True)
                if repair:
                    store.write_snapshot(directory, old, files[-1].name, index_foreign_keys=True)

    rebuilt = bool(notices)  # current_snapshot rebuilt schema.json from the files
    operations = diff(old, new, questioner, keep_names=True)
    operations = apply_backfills(operations, old, new, backfills, questioner or Questioner())
    if accept_rounding:
        operations = _accepting_rounding(operations)
    check_safety(operations, old)
    if rebuilt and repair and files and not operations and not empty:
        # The rebuilt schema.json is what models.mp says: record its digest, so that
        # migrate and status know without parsing models.mp that nothing is unmigrated,
        # and, when its models are the very ones models.mp gives, its sources.
        snapshot = store.snapshot_bytes(old, files[-1].name, made_from=store.models_digest(outline.data),
                                        index_foreign_keys=index_fks)
        if old == new:
            snapshot = _with_sources(snapshot, old, outline, declarations, index_fks)
        store.write_snapshot_bytes(directory, snapshot)
    number = len(carried.files) + 1 if carried is not None else store.next_number(files)
    models_total = sum(1 for chunk in outline.chunks if chunk.kind == "model") if cached is not None \
        else sum(1 for kind, *_rest in declarations if kind == "model")
    result = MakeMigrationsResult(operations, notices=notices, models_total=models_total,
                                  models_read=cached.models_read if cached is not None else models_total)
    if operations or empty:
        suffix = store.suffix_for(operations, name if name is not None else (None if operations else "empty"))
        _plan_files(result, directory, number, suffix, config.max_tables_per_migration)
    return Draft(result, old, old_document, cached or verified, outline, declarations, index_fks)


def _plan_files(result: MakeMigrationsResult, directory: str, number: int, suffix: str, max_tables: int) -> None:
    """The file, or files: a migration whose operations touch more than ``max_tables``
    tables becomes consecutive numbered files (split_operations), so that no transaction
    takes more locks than a stock PostgreSQL server holds. Each file carries all its
    operations need and applies, and rolls back, on its own."""
    operations = result.operations
    parts = split_operations(operations, max_tables) if operations else [operations]
    suffixes = store.part_suffixes(suffix, len(parts)) if len(parts) > 1 else [suffix]
    for offset, (part, part_suffix) in enumerate(zip(parts, suffixes)):
        result.files.append(MigrationFileDraft(os.path.join(directory, store.file_name(number + offset, part_suffix)),
                                               part, doc=None if part else store.DATA_STEP_TEMPLATE))
    result.path = result.files[0].path
    if len(parts) > 1:
        touched = len(set().union(*map(locked_tables, operations)))
        result.split_reason = (f"split into {len(parts)} migrations: together they touch {touched} tables, more than "
                               f"max_tables_per_migration ({max_tables}) allows in one transaction; each file applies "
                               "and rolls back on its own, in order")


def write_draft(draft: Draft) -> None:
    """Write the drafted migration files, then schema.json with its sources."""
    result = draft.result
    if result.path is None:
        return
    directory = os.path.dirname(result.path)
    store.make_directory(directory)
    # Interrupted, makemigrations writes every file or none. The files are written in
    # order, schema.json last, by a thread of their own (store.OrderedWrites) while the
    # next one is made; schema.json while it is made.
    with store.signals_deferred():
        writes = store.OrderedWrites()
        try:
            with writes:
                for planned in result.files:
                    writes.write(planned.path, planned.content)
                writes.write(store.snapshot_path(directory), _snapshot_after(draft))
        except BaseException:
            # A file that cannot be written: the new ones written before it go, so that
            # schema.json and the files still agree.
            for path in writes.written:
                with suppress(OSError):
                    os.unlink(path)
            raise
    result.written = True


def _snapshot_after(draft: Draft):
    """schema.json's pieces after the drafted migration (an iterator when it is made
    whole, see store.snapshot_pieces)."""
    newest = os.path.basename(draft.result.files[-1].path)
    after = fold(draft.result.operations, draft.old)
    cached = draft.cached
    # schema.json keeps a digest of the models.mp text it was made from, so that migrate and
    # status can tell an edit no migration holds without parsing models.mp.
    made_from = store.models_digest(draft.outline.data)
    if cached is not None:
        snapshot = model_cache.snapshot_after(cached, after, newest, made_from, draft.index_foreign_keys)
        if cached.entries is not None:  # (none when a declaration is not alone on its lines)
            snapshot = with_sources(snapshot, model_cache.sources(cached.context, cached.entries, after))
        return snapshot
    reuse = (draft.old, draft.old_document) if draft.old_document is not None else None
    return _with_sources(store.snapshot_pieces(after, newest, reuse, made_from, draft.index_foreign_keys),
                         after, draft.outline, draft.declarations, draft.index_foreign_keys)


def _with_sources(snapshot, schema: Schema, outline, declarations: list, index_foreign_keys: bool):
    """schema.json's pieces (``snapshot``: see snapshot.with_sources) for ``schema``,
    read in full from models.mp (``outline``, whose ``declarations`` parse() gave),
    ending with what each model was read from, so that the next run, in any clone,
    reads only the models edited since (model_cache.py); as they are when the file
    cannot say (a declaration not alone on its lines)."""
    entries = model_cache.entries_for(outline, declarations)
    if entries is None:
        return snapshot
    return with_sources(snapshot, model_cache.sources(model_cache.context_digest(outline, index_foreign_keys),
                                                      entries, schema))


def _cached_plan(files, outline, data: Optional[bytes], index_foreign_keys: bool):
    """The Plan of a run that reads only the edited models, or None when schema.json
    (``data``) is not current or its sources do not fit it."""
    if not files or data is None:
        return None
    return model_cache.plan(outline, data, files[-1].name, read_raw, index_foreign_keys)


def _display(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return relative if not relative.startswith("..") else path

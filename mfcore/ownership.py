"""What the schema owns, for `mf db reset --drop-db`: the tables and enum types of the
schema that the applied migrations build (their fold), no more. A table a migration
created and a later one dropped or renamed is no longer mf's: a table of that name
now is the user's. The applier intersects this with the catalog; the dialect plans
the drops (the order in which tables can go without CASCADE). No database access.
"""
from __future__ import annotations

from typing import Optional

from .errors import IntegrityError, MigrationFileError
from .history import Checksums, listed_files, read_history
from .schema import Schema
from .store import load_history

_REFUSAL = "cannot tell which tables mf owns, so nothing was dropped"


def applied_files(files, entries: Optional[list], applied_file: Optional[list], directory: str) -> list:
    """The files whose migrations this database holds: the ledger's rows (a renamed
    file found by its content, a squash standing for its originals), or, with no
    ledger, the files .applied lists (the earlier tool's projects); [] when neither
    says anything was applied. A row whose file is gone or was edited since makes the
    schema unknowable: refused."""
    if entries is None:
        if not applied_file:
            return []
        try:
            return listed_files(files, applied_file, directory)
        except IntegrityError as exc:
            raise IntegrityError(f"{_REFUSAL}: {exc}") from None
    reading = read_history(files, entries, Checksums())
    problems = [f"{name} was applied but its file is gone" for name in reading.gone]
    problems += [f"{name} was edited after it was applied" for name in reading.edited]
    if problems:
        raise IntegrityError(f"{_REFUSAL}: " + "; ".join(problems) + " (restore the applied migration files "
                             "exactly as they were, from version control)")
    return [f for f in files if f.name in reading.done]


def owned_objects(directory: str, applied, has_enum_types: bool) -> tuple:
    """({table: tables it references}, enum type names) of the schema the ``applied``
    files build."""
    try:
        _history, schema = load_history(directory, applied)
    except MigrationFileError as exc:
        raise MigrationFileError(f"{_REFUSAL}: {exc}") from None
    return tables_of(schema), ({e.type_name for e in schema.enums.values()} if has_enum_types else set())


def tables_of(schema: Schema) -> dict:
    tables: dict = {}
    for model in schema.models.values():
        refs = tables.setdefault(model.table, set())
        for f in model.fields:
            target = schema.models.get(f.target) if f.target else None
            if target is not None:
                refs.add(target.table)
    return tables

"""`mf db rebase`: after two branches merged, move one branch's migrations after the
other's, renumbered, and rebuild schema.json from the files.

Which files move: those named; by default the ones the configured database has not
applied that share a number with another file or are numbered below the newest it
applied. Without a database to ask (none configured, not reachable, no ledger yet),
the files of a shared number after the first by name move. The moved files keep
their bytes: a database that applied one under its old name finds it by its content
and renames its ledger row (history.read_history).

Before anything is written, the files are folded in their new order: when that
fails, when the moved migrations change what the others after the branch point
change too, or when the result differs from models.mp in what the two branches
changed, the branches conflict (RebaseConflictError) and nothing changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from . import store
from .config import Config
from .differ import diff
from .errors import MfError, MigrationFileError, ModelsError, RebaseConflictError
from .history import effects, shared_objects
from .snapshot import with_sources


@dataclass
class RebaseResult:
    moved: list                 # [(old name, new name)]
    files: int                  # migration files folded into schema.json
    newest: Optional[str]       # the newest file, which schema.json reflects
    notices: list = field(default_factory=list)


async def rebase(config: Config, names=()) -> RebaseResult:
    directory = config.migrations_dir
    files = store.every_migration_file(directory)
    notices: list = []
    if names:
        chosen = _named(files, names)
    else:
        applied = await _applied_names(config, notices)
        chosen = _to_move(files, applied)
    staying = [f for f in files if f not in chosen]
    start = max((f.number for f in staying), default=0) + 1
    moving = [(old, store.renumbered(old, start + position)) for position, old in enumerate(chosen)]
    ordered = staying + [new for _old, new in moving]
    try:
        history, schema = store.load_history(directory, ordered)
    except MfError as exc:
        raise RebaseConflictError(f"cannot rebase: the migrations do not apply in the new order ({exc}); two "
                                  f"branches changed the same thing differently. {_advice()}") from None
    index_foreign_keys = _indexes_foreign_keys(config, bool(ordered), schema)
    read = _check_branches(config, history, moving, staying, schema, notices, index_foreign_keys)
    moved = [(old.name, new.name) for old, new in moving if old.name != new.name]
    for old, new in moving:
        if old.name != new.name:
            store.rename_migration_file(old, new.name)
    newest = ordered[-1].name if ordered else None
    if ordered:
        snapshot = store.snapshot_bytes(schema, newest, made_from=read.made_from if read else None,
                                        index_foreign_keys=index_foreign_keys)
        if read is not None and read.sources is not None:
            snapshot = with_sources(snapshot, read.sources)
        store.write_snapshot_bytes(directory, snapshot)
    return RebaseResult(moved, len(ordered), newest, notices)


class _ModelsRead(NamedTuple):
    """models.mp as the migrations in their new order build all of it: for schema.json."""
    made_from: str              # its digest (store.models_digest)
    sources: Optional[bytes]    # what each model was read from (model_cache.sources), when it can say


def _indexes_foreign_keys(config: Config, has_migrations: bool, schema) -> bool:
    """The project's setting as the config says, or schema.json records it (a merge may
    have left it unreadable), or as the migrations in their new order show it."""
    if config.index_foreign_keys is not None:
        return config.index_foreign_keys
    data = store.read_snapshot_data(config.migrations_dir)
    if data is not None and store.indexes_foreign_keys(data):
        return True
    if not has_migrations or not os.path.exists(config.models_path):
        return False
    from .language.parser import read_models_file
    from .writer import inferred_index_foreign_keys

    try:
        return inferred_index_foreign_keys(read_models_file(config.models_path), config.models_path, schema)
    except ModelsError:
        return False  # _check_branches says what is wrong with models.mp


def _advice() -> str:
    return ("Nothing was changed; settle it by hand (keep one branch's migration, then `mf db makemigrations` "
            "for the rest)")


def _named(files, names) -> list:
    by_name = {f.name: f for f in files}
    chosen = []
    for name in names:
        file = by_name.get(os.path.basename(name))
        if file is None:
            raise MigrationFileError(f"rebase: there is no migration file {os.path.basename(name)} in "
                                     f"{os.path.dirname(files[0].path) if files else 'the migrations directory'}")
        if file not in chosen:
            chosen.append(file)
    return sorted(chosen, key=lambda f: (f.number, f.name))


def _to_move(files, applied: Optional[set]) -> list:
    """The default: with a database's applied names, its unapplied files that share a
    number or lie below its newest; without, the later of each shared number by name.

    A squashed migration (in one file or in parts) and the originals it replaces are one
    line of history, not branches: they never move, and the number they hold is taken,
    so a branch's file beside them moves."""
    squashed = _squash_lines(files)
    taken = {f.number for f in files if f.name in squashed}
    files = [f for f in files if f.name not in squashed]
    counts: dict = {number: 1 for number in taken}
    for file in files:
        counts[file.number] = counts.get(file.number, 0) + 1
    if applied is None:
        seen = set(taken)
        chosen = []
        for file in files:
            if file.number in seen:
                chosen.append(file)
            seen.add(file.number)
        return chosen
    newest = max((f.number for f in files if f.name in applied), default=0)
    newest = max([newest] + [f.number for f in squashed.values() if f.name in applied])
    unapplied = [f for f in files if f.name not in applied]
    chosen = [f for f in unapplied if counts[f.number] > 1 or f.number < newest]
    # Of a shared number none of which is applied, the first by name may stay.
    for number in {f.number for f in chosen}:
        group = [f for f in files if f.number == number]
        if all(f in chosen for f in group) and number > newest and number not in taken:
            chosen.remove(group[0])
    return sorted(chosen, key=lambda f: (f.number, f.name))


def _squash_lines(files) -> dict:
    """{name: file} of the squashed migrations among ``files`` and of the originals they
    replace that are there."""
    by_name = {f.name: f for f in files}
    line: dict = {}
    for file in files:
        replaced = file.replaces()
        if replaced:
            line[file.name] = file
            line.update((name, by_name[name]) for name in replaced if name in by_name)
    return line


async def _applied_names(config: Config, notices: list) -> Optional[set]:
    """The names the configured database's ledger holds; None when there is none to ask."""
    from . import ledger
    from .drivers import connect, database_exists

    try:
        if not database_exists(config):
            notices.append("The configured database does not exist yet; chose by name which file of each "
                           "shared number moves.")
            return None
        async with await connect(config) as connection:
            entries = await ledger.read_ledger(connection)
    except MfError as exc:
        notices.append(f"Could not read the configured database's ledger ({exc}); chose by name which file of "
                       "each shared number moves.")
        return None
    if entries is None:
        notices.append("The configured database has no ledger yet; chose by name which file of each shared "
                       "number moves.")
        return None
    return {entry.name for entry in entries}


def _check_branches(config: Config, history, moving, staying, schema, notices: list,
                    index_foreign_keys: bool) -> Optional[_ModelsRead]:
    """The moved migrations against the others since the first moved one's old number:
    they must not change the same thing, and together they must still build models.mp
    in what they change. Returns what schema.json records of models.mp when the
    migrations build all of it, else None."""
    if not moving:
        return None
    by_name = {m.name: m for m in history}
    first = min(old.number for old, _new in moving)
    moved = [by_name[new.name] for _old, new in moving]
    other = [by_name[f.name] for f in staying if f.number >= first]
    shared = shared_objects(moved, other)
    if shared:
        raise RebaseConflictError(
            f"cannot rebase: {', '.join(m.name for m in moved)} and {', '.join(m.name for m in other)} both "
            f"change {', '.join(shared[:5])} (two branches changed the same thing). {_advice()}")
    if not os.path.exists(config.models_path):
        return None
    from . import model_cache
    from .language import chunks
    from .language.parser import parse_bytes, read_models_file

    outline = chunks.outline(read_models_file(config.models_path))
    declarations: list = []
    built = parse_bytes(outline.data, config.models_path, outline=declarations, index_foreign_keys=index_foreign_keys)
    drift = diff(schema, built)
    touched = {key[1] for key in effects(moved + other)[1] if key[0] in ("model", "field", "enum")}
    differing = sorted({op.model_name or getattr(op, "name", None) for op in drift} & touched)
    if differing:
        raise RebaseConflictError(
            f"cannot rebase: the migrations in their new order build {', '.join(differing)} otherwise than "
            f"{os.path.basename(config.models_path)} says (two branches changed it differently). {_advice()}")
    if drift:
        notices.append(f"{os.path.basename(config.models_path)} has changes no migration holds yet; "
                       "`mf db makemigrations` writes them.")
        return None
    entries = model_cache.entries_for(outline, declarations)
    sources = None
    if entries is not None and built == schema:
        sources = model_cache.sources(model_cache.context_digest(outline, index_foreign_keys), entries, schema)
    return _ModelsRead(store.models_digest(outline.data), sources)

"""`mf db squash`: one migration for a range of them, as Django squashes.

The range runs from the first migration no squash covers yet (001 on a project
never squashed) to ``--to`` (default: the newest). The new file holds the operations
that take the schema before the range to the schema after it (the differ's, checked
to fold to the same schema as the range does), lists the files it stands for under
``"replaces"``, and takes the number of the last of them, beside it (store.py allows
that pair). The originals stay until the user removes them: a database that applied
all of them counts the squash as applied, one that applied none applies the squash,
one in between applies the rest of the originals (history.read_history).

A squash whose operations touch more tables than max_tables_per_migration allows in
one transaction is written in parts, as makemigrations splits a migration
(split_operations): consecutive files ``NNN_<suffix>_part1.json`` .. ``_partK``, all
with the number of the last migration replaced, beside it, each listing the same
``"replaces"`` and its place, ``"part": [index, K]`` (store.py orders files of one
number by it). Each part applies and rolls back on its own; together they stand for
the range as one squash file does: history.read_history reads each part as a squash,
so a database that applied all the originals counts every part as applied, one that
applied none applies the parts in order, one in between applies the rest of the
originals.

Data steps (run_sql, run_python) in the range block the squash: their place among the
schema changes is not kept by a fold, so the files holding them are named and nothing
is written. Squash up to the migration before the first of them instead.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from . import snapshot, store
from .config import Config
from .differ import diff
from .errors import SquashError
from .operations import fold, locked_tables, split_operations
from .questioner import Questioner
from .schema import Schema


@dataclass
class SquashResult:
    path: str              # the file written (split: the first of ``files``)
    replaces: list         # the names it stands for
    operations: list       # all its operations (split: every part's, in order)
    files: list = field(default_factory=list)  # every file written, in order
    split_reason: Optional[str] = None          # a sentence, when the squash is in parts


def squash(config: Config, to: Optional[int] = None, name: Optional[str] = None) -> SquashResult:
    directory = config.migrations_dir
    files = store.list_migration_files(directory)
    history, _schema = store.load_history(directory, files)
    last_squash = max((i for i, m in enumerate(history) if m.replaces), default=-1)
    candidates = history[last_squash + 1:]
    if to is not None:
        if not any(m.file.number == to for m in history):
            raise SquashError(f"--to {to:03d}: there is no migration numbered {to:03d}")
        candidates = [m for m in candidates if m.file.number <= to]
    if len(candidates) < 2:
        where = f" after {history[last_squash].name}" if last_squash >= 0 else ""
        raise SquashError(f"nothing to squash: the range{where} holds {len(candidates)} migration(s); a squash "
                          "needs two or more")
    with_data = [m.name for m in candidates if m.has_data_steps]
    if with_data:
        raise SquashError(f"cannot squash: {', '.join(with_data)} hold(s) data steps (run_sql/run_python), "
                          "whose place among the schema changes a squash would lose; squash up to the migration "
                          "before the first of them (--to). Nothing was written.")
    before = _schema_before(history, candidates[0])
    renames = [m.name for m in candidates for op in m.operations if op.op in ("rename_model", "rename_column")]
    if renames and before.models:
        raise SquashError(f"cannot squash: {', '.join(dict.fromkeys(renames))} rename(s) tables or columns, which "
                          "a squash starting after 001 would turn into drop and add; squash from the first "
                          "migration or up to before the rename. Nothing was written.")
    after = before
    for migration in candidates:
        after = fold(migration.operations, after)
    operations = diff(before, after, Questioner())
    if fold(operations, before) != after:
        raise SquashError("cannot squash: the squashed operations would not build the same schema as "
                          f"{candidates[0].name} to {candidates[-1].name}. Nothing was written.")
    last = candidates[-1].file
    suffix = store.suffix_for((), name if name is not None else
                              f"squashed_{candidates[0].file.number:03d}_{last.number:03d}")
    max_tables = config.max_tables_per_migration
    parts = split_operations(operations, max_tables) if operations else [operations]
    suffixes = store.part_suffixes(suffix, len(parts)) if len(parts) > 1 else [suffix]
    paths = [os.path.join(directory, store.file_name(last.number, part_suffix)) for part_suffix in suffixes]
    taken = [os.path.basename(path) for path in paths if os.path.exists(path)]
    if taken:
        raise SquashError(f"cannot squash: {', '.join(taken)} exist(s); choose another --name")
    replaces = [m.name for m in candidates]
    contents = [store.migration_bytes(part, replaces=replaces,
                                      part=(index, len(parts)) if len(parts) > 1 else None)
                for index, part in enumerate(parts, 1)]
    with store.signals_deferred():  # interrupted, the squash is written whole or not at all
        written = []
        try:
            for path, content in zip(paths, contents):
                store.write_migration_bytes(path, content)
                written.append(path)
        except BaseException:
            for path in written:
                os.unlink(path)
            raise
        if last.name == files[-1].name:
            # The squash is now the newest file (its last part): schema.json says it reflects it.
            store.write_snapshot_bytes(directory, _snapshot_after(store.read_snapshot_data(directory), after,
                                                                  last.name, os.path.basename(paths[-1])))
    reason = None
    if len(parts) > 1:
        touched = len(set().union(*map(locked_tables, operations)))
        reason = (f"split into {len(parts)} files: together they touch {touched} tables, more than "
                  f"max_tables_per_migration ({max_tables}) allows in one transaction; each file applies and "
                  "rolls back on its own, in order")
    return SquashResult(paths[0], replaces, operations, paths, reason)


def _snapshot_after(data: Optional[bytes], after, newest: str, squash_name: str):
    """schema.json once the squash is the newest file. The schema is the one schema.json
    held (``data``, reflecting ``newest``): when the file says just that, but for the
    migration it names, its models digest and sources still describe models.mp and are
    kept (model_cache.py), so that the next makemigrations reads only the models edited
    since. A schema.json edited by hand, or one whose sources' seal is broken, loses them."""
    index_foreign_keys = data is not None and store.indexes_foreign_keys(data)
    made_from = snapshot.made_from(data) if data is not None else None
    written = store.snapshot_bytes(after, squash_name, made_from=made_from, index_foreign_keys=index_foreign_keys)
    if made_from is None:
        return written
    said_before = snapshot.without_sources(data).replace(
        _migration_line(newest), _migration_line(squash_name), 1)
    if said_before != written:
        return store.snapshot_bytes(after, squash_name, index_foreign_keys=index_foreign_keys)
    sources = snapshot.sealed_sources(data)
    return written if sources is None else snapshot.with_sources(written, sources[:-1])


def _migration_line(name: str) -> bytes:
    return b'\n  "migration": ' + snapshot.dumps(name).rstrip(b"\n") + b",\n"


def _schema_before(history, first):
    """The schema before ``first``, folded as the directory is (a squash once)."""
    skipped = store.fold_skips({m.name: m.replaces for m in history})
    schema = Schema()
    for migration in history:
        if migration is first:
            break
        if migration.name not in skipped:
            schema = fold(migration.operations, schema)
    return schema

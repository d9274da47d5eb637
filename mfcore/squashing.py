"""`mf db squash`: one migration for a range of them, as Django squashes.

The range runs from the first migration no squash covers yet (001 on a project
never squashed) to ``--to`` (default: the newest). The new file holds the operations
that take the schema before the range to the schema after it (the differ's, checked
to fold to the same schema as the range does), lists the files it stands for under
``"replaces"``, and takes the number of the last of them, beside it (store.py allows
that pair). The originals stay until the user removes them: a database that applied
all of them counts the squash as applied, one that applied none applies the squash,
one in between applies the rest of the originals (history.read_history).

Data steps (run_sql, run_python) in the range block the squash: their place among the
schema changes is not kept by a fold, so the files holding them are named and nothing
is written. Squash up to the migration before the first of them instead.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from . import store
from .config import Config
from .differ import diff
from .errors import SquashError
from .operations import fold
from .questioner import Questioner
from .schema import Schema


@dataclass
class SquashResult:
    path: str              # the file written
    replaces: list         # the names it stands for
    operations: list


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
    path = os.path.join(directory, store.file_name(last.number, suffix))
    if os.path.exists(path):
        raise SquashError(f"cannot squash: {os.path.basename(path)} exists; choose another --name")
    replaces = [m.name for m in candidates]
    store.write_migration_bytes(path, store.migration_bytes(operations, replaces=replaces))
    if last.name == files[-1].name:
        # The squash is now the newest file: schema.json says it reflects it.
        data = store.read_snapshot_data(directory)
        store.write_snapshot(directory, after, os.path.basename(path),
                             index_foreign_keys=data is not None and store.indexes_foreign_keys(data))
    return SquashResult(path, replaces, operations)


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

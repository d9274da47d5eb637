"""Does models.mp hold changes that no migration file holds (a forgotten makemigrations)?

migrate and status ask this on every run, so the usual answer costs no parsing:
schema.json keeps the digest of the models.mp text it was made from (store.models_digest),
and when models.mp's bytes have that digest and schema.json reflects the newest
migration file, nothing was forgotten. Only when the digests differ (or schema.json
has none: written by an older mf, or rebuilt from the files) is models.mp read and
diffed against the schema of the newest migration, exactly as makemigrations would;
so an edit that changes no model (a comment, blank lines, re-indenting, reordered
declarations) is no change, at the price of that one parse per run until the next
makemigrations records the new digest.

Nothing here writes, connects, prints or exits.
"""
from __future__ import annotations

import os
from typing import Optional

from . import snapshot, store
from .config import Config
from .errors import ConfigError, MfError, ModelsError
from .files import read_file

SHOWN_CHANGES = 3  # changes named in the sentence; the rest are counted


def unmigrated_changes(config: Config, files: Optional[list] = None) -> Optional[str]:
    """A sentence saying what models.mp holds that no migration does, or None when the
    migrations hold all of it (or there is no models.mp to compare: a deployment may ship
    only the migrations). ``files``: the migration files, when the caller listed them."""
    try:
        models = read_file(config.models_path, ConfigError, shown=_shown(config.models_path), missing_ok=True)
    except ConfigError as exc:
        return f"models.mp could not be compared with the migrations ({exc})"
    if models is None:
        return None
    directory = config.migrations_dir
    if files is None:
        files = store.list_migration_files(directory)
    current = store.read_snapshot_data(directory)
    index_foreign_keys = store.index_foreign_keys(config.index_foreign_keys, current, bool(files))
    if current is not None and files and snapshot.reflects(current, files[-1].name) \
            and snapshot.made_from(current) == store.models_digest(models) \
            and snapshot.indexes_foreign_keys(current) == index_foreign_keys:
        return None
    return _compare(config, models, files, current, index_foreign_keys)


def _compare(config: Config, models: bytes, files, current: Optional[bytes],
             index_foreign_keys: bool) -> Optional[str]:
    """The slow path: read models.mp and diff it with the schema of the newest migration."""
    from .differ import diff
    from .language.parser import parse_bytes
    from .questioner import Questioner
    from .writer import current_snapshot, inferred_index_foreign_keys

    shown = _shown(config.models_path)
    try:
        new = parse_bytes(models, shown, index_foreign_keys=index_foreign_keys)
    except ModelsError as exc:
        count = len(exc.problems)
        errors, them = ("error", "it") if count == 1 else ("errors", "them")
        return (f"{shown} differs from what the migrations were made from and does not read ({count} {errors}); "
                f"run `mf db makemigrations` to see {them}")
    try:
        rebuilt: list = []
        old, _document = current_snapshot(config.migrations_dir, files, rebuilt, repair=False, data=current)
        if rebuilt and config.index_foreign_keys is None and not index_foreign_keys \
                and inferred_index_foreign_keys(models, shown, old):
            new = parse_bytes(models, shown, index_foreign_keys=True)
        operations = diff(old, new, Questioner(), keep_names=True)  # as makemigrations diffs
    except MfError as exc:
        return f"{shown} could not be compared with the migrations ({exc})"
    if not operations:
        return None
    named = "; ".join(op.describe() for op in operations[:SHOWN_CHANGES])
    more = f"; and {len(operations) - SHOWN_CHANGES} more" if len(operations) > SHOWN_CHANGES else ""
    return (f"{shown} has changes that no migration holds ({named}{more}); run `mf db makemigrations` to "
            "write them into a migration")


def _shown(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative

"""The public API behind ``mfcore.migrate()`` and ``mfcore.makemigrations()``.

Both take a Config, a path to language_config.yaml, or nothing (found from the
working directory). migrate() runs in the caller's event loop: it never starts
one of its own, so it drops into a FastAPI/Starlette lifespan.
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Union

from .config import Config, config_for, load_config
from .errors import ConfigError

ConfigLike = Union[Config, str, os.PathLike, None]


def resolve_config(config: ConfigLike = None, *, dsn: Optional[str] = None,
                   migrations_dir: Optional[str] = None) -> Config:
    """A Config from whatever the caller gave."""
    if isinstance(config, Config):
        resolved = config
    elif config is not None:
        resolved = load_config(os.fspath(config))
    elif dsn is not None and migrations_dir is not None:
        return config_for(dsn, migrations_dir)
    else:
        resolved = load_config()
    if dsn is not None:
        resolved = resolved.with_database(dsn)
    if migrations_dir is not None:
        from dataclasses import replace

        resolved = replace(resolved, migrations_dir=os.path.abspath(migrations_dir))
    return resolved


async def migrate(config: ConfigLike = None, *, dsn: Optional[str] = None,
                  migrations_dir: Optional[str] = None, to: Optional[int] = None, fake: bool = False,
                  on_event: Optional[Callable] = None, notices: Optional[list] = None) -> list:
    """Apply every unapplied migration; returns the names applied (empty when up to date).

    Safe to call from many processes or tasks at once: each migration is applied
    exactly once, the others wait and return.
    """
    resolved = resolve_config(config, dsn=dsn, migrations_dir=migrations_dir)
    if not os.path.isdir(resolved.migrations_dir):
        raise ConfigError(f"migrations directory not found: {resolved.migrations_dir} "
                          "(run `mf db makemigrations` first)")
    from . import applier
    from .carryover import carry_over_if_needed, check_carry_over_database, needs_carry_over

    if notices is None:
        notices = []
    if needs_carry_over(resolved.migrations_dir):
        # Nothing is converted for a database that cannot be adopted: check it first.
        await check_carry_over_database(resolved)
        carry_over_if_needed(resolved.migrations_dir, notices)
    return await applier.migrate(resolved, to=to, fake=fake, on_event=on_event, notices=notices)


def makemigrations(config: ConfigLike = None, *, name: Optional[str] = None, dry_run: bool = False,
                   check: bool = False, empty: bool = False, questioner=None):
    """Write the next migration file for the changes in models.mp (see MakeMigrationsResult)."""
    from .writer import makemigrations as run

    return run(resolve_config(config), name=name, dry_run=dry_run, check=check, empty=empty,
               questioner=questioner)

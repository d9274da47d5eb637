"""A small change to a large SQLite database: the cost of table rebuilds.

A database of 5,000 generated tables (``MF_BENCH_REBUILD_MODELS`` for another
size, e.g. 20000), made once per session by mf's applier; then, on a copy each
round, a migration that changes about 1% of it (generate.rebuild_change: 50 models
each get a NOT NULL field made nullable, and a CharField widened where there is
one, which SQLite can only do by rebuilding the table; 50 others get a column
added) applied through mf's applier. Beside it, in the same rounds, bare sqlite3
runs the same statements (``mf db sql``'s as a script runs them: comments left
out, so an added column is ALTER TABLE ADD COLUMN where mf may rebuild) with the same
transaction, foreign keys switched off and ``PRAGMA foreign_key_check``:
extra_info has the ratio of the medians.

    pytest benchmarks/test_bench_sqlite_rebuild.py --benchmark-only
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import time
from pathlib import Path

import pytest

from conftest import models_text
from generate import rebuild_change
from mfcore import applier
from mfcore.config import config_for
from mfcore.differ import diff
from mfcore.language.parser import parse
from mfcore.schema import Schema
from mfcore.store import suffix_for, write_migration

MODELS = int(os.environ.get("MF_BENCH_REBUILD_MODELS", "5000"))
CHANGED = max(1, MODELS // 100)


@pytest.fixture(scope="module")
def built(tmp_path_factory, loop):
    """(migrations directory, database with migration 001 applied, migration 002's name)."""
    root = tmp_path_factory.mktemp("rebuild")
    migrations = root / "migrations"
    migrations.mkdir()
    text = models_text(MODELS)
    first = diff(Schema(), parse(text))
    write_migration(str(migrations), 1, suffix_for(first), first)
    database = root / "base.db"
    assert len(loop.run_until_complete(applier.migrate(config_for(str(database), str(migrations))))) == 1
    second = diff(parse(text), parse(rebuild_change(text, CHANGED)))
    write_migration(str(migrations), 2, suffix_for(second), second)
    return migrations, database


def _bare(path: str, statements) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA foreign_keys=OFF")
    connection.execute("BEGIN IMMEDIATE")
    for statement in statements:
        connection.execute(statement)
    connection.execute("INSERT INTO mf_migrations (name, checksum, applied_at, duration, state)"
                       " VALUES ('002', '', '', 0, 'applied')")
    assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    connection.execute("COMMIT")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.close()


def _as_a_script_runs_it(statement: str) -> str:
    """The SQL of a statement of `mf db sql` run as a script: comments left out; a column
    added or dropped by a rebuild on a large schema (comments, then the ALTER TABLE run
    elsewhere) is the ALTER TABLE."""
    return "\n".join(line for line in statement.splitlines() if not line.startswith("--"))


def test_one_percent_change_of_a_large_sqlite_database(benchmark, built, loop, tmp_path):
    migrations, database = built
    name, statements = applier.migration_statements(config_for(str(database), str(migrations)), 2)
    plain = [_as_a_script_runs_it(s) for s in statements if _as_a_script_runs_it(s)]
    rounds = iter(range(100))
    bare_times, mf_times = [], []

    def setup():
        number = next(rounds)
        bare_copy = tmp_path / f"bare{number}.db"
        shutil.copyfile(database, bare_copy)
        started = time.perf_counter()
        _bare(str(bare_copy), plain)
        bare_times.append(time.perf_counter() - started)
        bare_copy.unlink()
        mf_copy = tmp_path / f"mf{number}.db"
        shutil.copyfile(database, mf_copy)
        return (config_for(str(mf_copy), str(migrations)),), {}

    def apply(config):
        started = time.perf_counter()
        applied = loop.run_until_complete(applier.migrate(config))
        mf_times.append(time.perf_counter() - started)
        return applied

    assert benchmark.pedantic(apply, setup=setup, rounds=3, iterations=1) == [name]
    benchmark.extra_info["models"] = MODELS
    benchmark.extra_info["rebuilt_tables"] = sum(s.startswith("CREATE TEMP TABLE") for s in statements)
    benchmark.extra_info["added_or_dropped_columns"] = sum(s.startswith(("-- add column", "-- drop column"))
                                                           for s in statements)
    benchmark.extra_info["mf_median_s"] = round(statistics.median(mf_times), 3)
    benchmark.extra_info["bare_sqlite3_median_s"] = round(statistics.median(bare_times), 3)
    benchmark.extra_info["mf_over_bare_sqlite3"] = round(statistics.median(mf_times) / statistics.median(bare_times), 3)

"""A large project's whole life on SQLite: the first makemigrations and migrate, then
two 1% changes, each made and applied, every command as a process.

MF_BENCH_E2E_MODELS generated models (default 2,000; ``MF_BENCH_SLOW=1`` makes it
20,000, the issue's size). Each migrate is timed beside bare sqlite3 running the same
statements on a database of its own in the same run: ``mf db sql``'s statements as a
script runs them (comments left out), one transaction per file, with its ledger row;
once with SQLite's default page cache, once with the one mf's run sets.
extra_info has each phase's seconds, the bare figures and the ratio of the applying
(mf migrate / bare sqlite3), and the peak memory of each mf process.

    MF_BENCH_SLOW=1 python -m pytest benchmarks/test_bench_sqlite_end_to_end.py --benchmark-only -s
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import SLOW, SUMMARIES, models_text
from generate import change_models
from mfcore import applier
from mfcore.config import config_for
from mfcore.dialects.sqlite import schema_cache_kib

MODELS = int(os.environ.get("MF_BENCH_E2E_MODELS", "20000" if SLOW else "2000"))


def _mf(root: Path, *args: str) -> tuple:
    """(seconds, peak RSS in MB) of one mf command run as a process in ``root``."""
    with open(root / "mf.log", "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "mfcore.cli", "db", *args], cwd=root,
                                   stdout=log, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, (root / "mf.log").read_text()[-2000:]
    return seconds, round(usage.ru_maxrss / 1024)


def _as_a_script_runs_it(statement: str) -> str:
    return "\n".join(line for line in statement.splitlines() if not line.startswith("--"))


def _bare_apply(database: Path, config, numbers, page_cache: bool = False) -> float:
    """Seconds bare sqlite3 takes to run these files' statements, a transaction each;
    ``page_cache``: with the page cache mf's run sets (SQLiteDialect.hold_schema)."""
    scripts = []
    for number in numbers:
        name, statements = applier.migration_statements(config, number)
        scripts.append((name, [s for s in map(_as_a_script_runs_it, statements) if s]))
    connection = sqlite3.connect(database, isolation_level=None)
    if page_cache:
        [(schema_bytes,)] = connection.execute("SELECT coalesce(sum(length(sql)), 0) FROM sqlite_master")
        statement_bytes = sum(len(s) for _name, statements in scripts for s in statements)
        # (never below SQLite's default, 2,000 KiB, as hold_schema never lowers it)
        connection.execute(f"PRAGMA cache_size = -{max(schema_cache_kib(schema_bytes, statement_bytes), 2000)}")
    connection.execute("CREATE TABLE IF NOT EXISTS mf_migrations (name TEXT PRIMARY KEY, checksum TEXT,"
                       " applied_at TEXT, duration REAL, state TEXT)")
    started = time.perf_counter()
    for name, statements in scripts:
        connection.execute("BEGIN IMMEDIATE")
        for statement in statements:
            connection.execute(statement)
        connection.execute("INSERT INTO mf_migrations VALUES (?, '', '', 0, 'applied')", (name,))
        connection.execute("COMMIT")
    seconds = time.perf_counter() - started
    connection.close()
    return seconds


def _numbers(migrations: Path) -> list:
    return sorted(int(p.name.split("_", 1)[0]) for p in migrations.glob("[0-9]*.json"))


def test_large_project_end_to_end_on_sqlite(benchmark, tmp_path):
    root = tmp_path / "app"
    root.mkdir()
    text = models_text(MODELS)
    (root / "models.mp").write_text(text)
    (root / "language_config.yaml").write_text(
        'database:\n  driver: "sqlite"\n  dsn: "./app.db"\nmodels: "models.mp"\nmigrations: "migrations"\n')
    config = config_for(str(root / "unused.db"), str(root / "migrations"))
    versions = [text, change_models(text, 0.01, seed=0)]
    versions.append(change_models(versions[1], 0.01, seed=1))
    figures = {}

    def whole_life():
        applied = []
        for phase, version in enumerate(versions):
            (root / "models.mp").write_text(version)
            figures[f"makemigrations_{phase}_s"], figures[f"makemigrations_{phase}_peak_mb"] = \
                _mf(root, "makemigrations", "--no-input")
            numbers = [n for n in _numbers(root / "migrations") if n not in applied]
            figures[f"bare_apply_{phase}_s"] = _bare_apply(tmp_path / "bare.db", config, numbers)
            figures[f"bare_cached_apply_{phase}_s"] = _bare_apply(tmp_path / "bare_cached.db", config, numbers,
                                                                  page_cache=True)
            figures[f"migrate_{phase}_s"], figures[f"migrate_{phase}_peak_mb"] = _mf(root, "migrate")
            applied += numbers
        return applied

    applied = benchmark.pedantic(whole_life, rounds=1, iterations=1)
    with sqlite3.connect(root / "app.db") as connection:
        ledger = connection.execute("SELECT count(*) FROM mf_migrations WHERE state = 'applied'").fetchone()[0]
    assert ledger == len(applied)
    mf_apply = sum(figures[f"migrate_{p}_s"] for p in range(3))
    bare_apply = sum(figures[f"bare_apply_{p}_s"] for p in range(3))
    bare_cached_apply = sum(figures[f"bare_cached_apply_{p}_s"] for p in range(3))
    total = mf_apply + sum(figures[f"makemigrations_{p}_s"] for p in range(3))
    benchmark.extra_info.update({k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items()})
    benchmark.extra_info.update(models=MODELS, files=len(applied), end_to_end_s=round(total, 2),
                                mf_apply_s=round(mf_apply, 2), bare_apply_s=round(bare_apply, 2),
                                mf_over_bare_apply=round(mf_apply / bare_apply, 3),
                                bare_cached_apply_s=round(bare_cached_apply, 2),
                                mf_over_bare_cached_apply=round(mf_apply / bare_cached_apply, 3))
    SUMMARIES.append(
        f"SQLite end to end, {MODELS} models, {len(applied)} files: {total:.1f} s in all "
        f"(makemigrations {figures['makemigrations_0_s']:.1f} / {figures['makemigrations_1_s']:.1f} / "
        f"{figures['makemigrations_2_s']:.1f} s; migrate {figures['migrate_0_s']:.1f} / "
        f"{figures['migrate_1_s']:.1f} / {figures['migrate_2_s']:.1f} s); bare sqlite3 applying the same "
        f"statements {figures['bare_apply_0_s']:.1f} / {figures['bare_apply_1_s']:.1f} / "
        f"{figures['bare_apply_2_s']:.1f} s; mf/bare {mf_apply / bare_apply:.2f}; with mf's page cache bare "
        f"sqlite3 takes {figures['bare_cached_apply_0_s']:.1f} / {figures['bare_cached_apply_1_s']:.1f} / "
        f"{figures['bare_cached_apply_2_s']:.1f} s, mf/bare {mf_apply / bare_cached_apply:.2f}\n")

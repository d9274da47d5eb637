"""Crash safety (SPEC §6.4): kill -9 a migrating, or rolling back, process at random instants.

Each trial makes a few more migrations pending (each rewrites a table of some
thousand rows, so a kill usually lands inside a statement), starts a process that
applies them, kills it with SIGKILL at a random moment of its run, and checks that
the database holds every migration either fully applied and recorded or not at
all. The next run must then complete the work and leave .applied equal to the
ledger. Rollback is put through the same: each undo with the removal of its ledger
row is all or nothing. The random seed is printed on failure (set MF_CRASH_SEED to
replay).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

import dbutil
from mfcore import applier
from mfcore.config import config_for
from test_concurrency import fill, write_chain

REPO = Path(__file__).resolve().parents[1]
TRIALS = 12            # per database; the first runs uninterrupted: 22 kills in all
PER_TRIAL = 4          # migrations made pending in each trial
ROWS = 30000

# Every migration of one transaction (online: false), whatever its changes: these tests
# hold that such a migration is applied whole or not at all; the steps of online
# migrations have their kill test in test_steps.py.
DRIVER = """
import dataclasses, sys, anyio
from mfcore import applier
from mfcore.config import config_for

config = dataclasses.replace(config_for(sys.argv[1], sys.argv[2]), online=False)

def event(kind, name, index, total):
    print(kind, index, flush=True)

anyio.run(lambda: applier.migrate(config, on_event=event))
print("done", flush=True)
"""

ROLLBACK_DRIVER = DRIVER.replace("applier.migrate(config, on_event=event)",
                                 "applier.rollback(config, count=int(sys.argv[3]), on_event=event)")


class Database:
    def __init__(self, driver: str, dsn: str, session=None):
        self.driver, self.dsn, self.session = driver, dsn, session

    def fetch(self, sql: str) -> list:
        if self.driver == "sqlite":
            connection = sqlite3.connect(self.dsn)
            try:
                return connection.execute(sql).fetchall()
            finally:
                connection.close()
        return self.session.fetch(sql)

    def wait_for_killed_sessions(self) -> None:
        """PostgreSQL notices a dead client when its statement ends; until then its
        transaction is still open. Wait for its backend to go."""
        if self.driver == "sqlite":
            return
        deadline = time.monotonic() + 60
        while self.session.fetchval("SELECT count(*) FROM pg_stat_activity WHERE "
                                    "datname = current_database() AND application_name = 'mf'"):
            assert time.monotonic() < deadline, "a killed client's session never ended"
            time.sleep(0.02)

    def ledger(self) -> list:
        return [r for r in self.fetch("SELECT name, state FROM mf_migrations ORDER BY id")]

    def item_shape(self) -> tuple:
        """(column names, whether n is nullable, n's type), as the database has them."""
        if self.driver == "sqlite":
            info = self.fetch('PRAGMA table_info("item")')
            n = next(r for r in info if r[1] == "n")
            return {r[1] for r in info}, not n[3], "integer"
        info = self.fetch("SELECT column_name, is_nullable, data_type FROM information_schema.columns "
                          "WHERE table_schema = current_schema() AND table_name = 'item'")
        n = next(r for r in info if r[0] == "n")
        return {r[0] for r in info}, n[1] == "YES", n[2]

    def tables(self) -> set:
        if self.driver == "sqlite":
            return {r[0] for r in self.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {r[0] for r in self.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        yield Database("sqlite", str(tmp_path / "app.db"))
        return
    url = request.getfixturevalue("pg_url")
    session = dbutil.PostgresSession(url)
    schema = session.fresh_schema()
    yield Database("postgresql", f"{url}?search_path={schema}", session)
    session.close()


def expected_shape(driver: str, applied: int) -> tuple:
    """The shape of table item after migrations 001..``applied`` (see write_chain)."""
    columns = {"id", "n"} | {f"c{i}" for i in range(1, applied + 1)}
    nullable = applied % 2 == 0
    kind = "integer" if driver == "sqlite" or applied % 2 else "bigint"
    return columns, nullable, kind


def check_consistent(database: Database, names: list, context: str) -> int:
    """Every migration fully applied and recorded, or not at all; returns how many are."""
    recorded = database.ledger()
    applied = len(recorded)
    assert recorded == [(name, "applied") for name in names[:applied]], context
    assert database.item_shape() == expected_shape(database.driver, applied), context
    assert not any(t.startswith("_mf_old_") for t in database.tables()), context
    assert database.fetch("SELECT count(*) FROM item") == [(ROWS,)], context
    return applied


def test_kill_9_at_random_instants_never_leaves_a_migration_half_applied(database, tmp_path):
    seed = int(os.environ.get("MF_CRASH_SEED", time.time_ns() % 1_000_000))
    chance = random.Random(seed)
    staging, migrations = tmp_path / "staging", tmp_path / "migrations"
    names = write_chain(staging, 1 + TRIALS * PER_TRIAL)
    migrations.mkdir()
    shutil.copy(staging / names[0], migrations / names[0])
    config = dataclasses.replace(config_for(database.dsn, str(migrations)), online=False)
    anyio.run(lambda: applier.migrate(config))
    fill(database.dsn, ROWS)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    step_time = None
    interrupted = 0
    outcomes = []  # per trial: migrations of the trial done when the process died

    for trial in range(TRIALS):
        context = f"trial {trial} on {database.driver} (MF_CRASH_SEED={seed})"
        for name in names[1 + trial * PER_TRIAL: 1 + (trial + 1) * PER_TRIAL]:
            shutil.copy(staging / name, migrations / name)
        step_time, killed = run_and_kill([DRIVER, database.dsn, str(migrations)], env, chance, step_time, 1.2)
        interrupted += killed
        database.wait_for_killed_sessions()

        after_kill = check_consistent(database, names, context) - 1 - trial * PER_TRIAL
        listed = json.loads((migrations / ".applied").read_text())["applied"]
        outcomes.append(f"{after_kill}/{PER_TRIAL}" + ("" if len(listed) == after_kill + 1 + trial * PER_TRIAL
                                                       else " (.applied behind)"))
        anyio.run(lambda: applier.migrate(config))  # the next run completes the work
        done = 1 + (trial + 1) * PER_TRIAL
        assert check_consistent(database, names, context) == done
        assert json.loads((migrations / ".applied").read_text()) == {"applied": names[:done]}, context

    print(f"{database.driver}: {interrupted} of {TRIALS} runs killed; per trial:", ", ".join(outcomes))
    assert interrupted >= TRIALS - 3, f"most kills should land inside a run (MF_CRASH_SEED={seed})"
    cut_short = sum(1 for outcome in outcomes if not outcome.startswith(f"{PER_TRIAL}/"))
    assert cut_short >= 2, f"kills should stop runs before their last migration (MF_CRASH_SEED={seed})"


def test_kill_9_during_rollback_never_leaves_a_migration_half_undone(database, tmp_path):
    seed = int(os.environ.get("MF_CRASH_SEED", time.time_ns() % 1_000_000))
    chance = random.Random(seed)
    migrations = tmp_path / "migrations"
    names = write_chain(migrations, 1 + TRIALS * PER_TRIAL)
    config = dataclasses.replace(config_for(database.dsn, str(migrations)), online=False)
    anyio.run(lambda: applier.migrate(config, to=1))
    fill(database.dsn, ROWS)
    anyio.run(lambda: applier.migrate(config))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    step_time = None
    interrupted = 0
    outcomes = []  # per trial: migrations of the trial undone when the process died

    for trial in range(TRIALS):
        context = f"rollback trial {trial} on {database.driver} (MF_CRASH_SEED={seed})"
        before = len(names) - trial * PER_TRIAL
        step_time, killed = run_and_kill([ROLLBACK_DRIVER, database.dsn, str(migrations), str(PER_TRIAL)], env,
                                         chance, step_time, 0.9)
        interrupted += killed
        database.wait_for_killed_sessions()

        undone = before - check_consistent(database, names, context)
        outcomes.append(f"{undone}/{PER_TRIAL}")
        after = before - PER_TRIAL
        anyio.run(lambda: applier.rollback(config, to=after))  # the next run completes the work
        assert check_consistent(database, names, context) == after
        assert json.loads((migrations / ".applied").read_text()) == {"applied": names[:after]}, context

    print(f"{database.driver}: {interrupted} of {TRIALS} rollbacks killed; per trial:", ", ".join(outcomes))
    # The table narrows as columns are undone, so late undos run faster than the first
    # trial's measure: a few more kills than for migrate come after the run ended.
    assert interrupted >= TRIALS - 4, f"most kills should land inside a run (MF_CRASH_SEED={seed})"
    cut_short = sum(1 for outcome in outcomes if not outcome.startswith(f"{PER_TRIAL}/"))
    assert cut_short >= 2, f"kills should stop runs before their last undo (MF_CRASH_SEED={seed})"


def run_and_kill(arguments, env, chance, step_time, reach: float) -> tuple:
    """Run ``python -c <driver> ...``, which prints "start N" before its Nth step, and kill
    it at a random instant; returns (step_time, 1 if it was killed else 0).

    The first call (step_time None) lets the run finish, to learn how long a step takes.
    Later calls wait for a random step to start, then kill at a random moment up to
    ``reach`` steps later (past the last step: the ledger commit, .applied). The delay
    is random on purpose: the claim is "at any instant", so instants are sampled (and
    replayable with the seed); the callers assert that the kills did land inside runs."""
    process = subprocess.Popen([sys.executable, "-c", *arguments], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    killed = 0
    try:
        assert process.stdout.readline().strip() == "start 1", process.communicate()
        started = time.monotonic()
        if step_time is None:
            process.wait(timeout=60)
            step_time = (time.monotonic() - started) / PER_TRIAL
        else:
            target = chance.randint(1, PER_TRIAL)
            line = "start 1"
            while line and line != f"start {target}":
                line = process.stdout.readline().strip()
            time.sleep(chance.uniform(0, step_time * reach))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                killed = 1
            process.wait(timeout=60)
    finally:
        process.stdout.close()
        process.stderr.close()
    return step_time, killed

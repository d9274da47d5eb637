"""Ctrl-C: an interrupted command rolls back what it was doing and exits 130.

`mf db migrate` runs on a terminal (a pseudo-terminal), so it draws its progress
line; once the line shows migration k, the process gets SIGINT. Whatever it was
doing then, it ends with exit 130 after the rollback: every migration is applied
and recorded or not at all, and .applied matches the ledger. The moments are
seeded random draws (set MF_INTERRUPT_SEED to replay).
"""
from __future__ import annotations

import json
import os
import pty
import random
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time

import anyio

from mfcore import applier
from mfcore.config import config_for
from seed import WITH_PHONE
from test_concurrency import fill, write_chain
from test_crash import expected_shape

PENDING = 6     # migrations a run applies (5 or more draw the progress line)
TRIALS = 3
ROWS = 60000    # so that each table rebuild takes a while


def start_on_terminal(cwd, *args):
    leader, follower = pty.openpty()
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, "-m", "mfcore.cli", *args], cwd=cwd, env=env,
                               stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    return process, leader


def read_until(leader, pattern: str, output: bytes = b"", timeout: float = 120) -> tuple:
    """Read the terminal until ``pattern`` shows (True) or the process closed it (False)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern.encode(), output):
        assert time.monotonic() < deadline, f"no {pattern!r} in {output!r}"
        ready, _, _ = select.select([leader], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            return False, output
        if not chunk:
            return False, output
        output += chunk
    return True, output


def read_rest(leader, output: bytes) -> str:
    _found, output = read_until(leader, r"(?!)", output)
    os.close(leader)
    text = output.decode("utf-8", "replace").replace("\r\n", "\n")
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # colour codes aside


def test_ctrl_c_during_sqlite_rebuilds_exits_130_after_the_rollback(project):
    seed = int(os.environ.get("MF_INTERRUPT_SEED", time.time_ns() % 1_000_000))
    chance = random.Random(seed)
    names = write_chain(project.path / "staging", 1 + TRIALS * PENDING)
    project.migrations.mkdir()
    (project.path / "staging" / names[0]).rename(project.migrations / names[0])
    database = str(project.path / "dev.db")
    anyio.run(lambda: applier.migrate(config_for(database, str(project.migrations))))
    fill(database, ROWS)

    for trial in range(TRIALS):
        batch = names[1 + trial * PENDING: 1 + (trial + 1) * PENDING]
        for name in batch:
            (project.path / "staging" / name).rename(project.migrations / name)
        k = chance.randint(1, PENDING)
        context = f"SIGINT at migration {k} of {PENDING} in trial {trial} (MF_INTERRUPT_SEED={seed})"
        process, leader = start_on_terminal(project.path, "db", "migrate")
        shown, output = read_until(leader, rf"\] {k}/{PENDING} ")
        assert shown, (context, output)
        process.send_signal(signal.SIGINT)
        text = read_rest(leader, output)
        process.wait(timeout=60)
        assert process.returncode == 130, (context, process.returncode, text)
        assert "Traceback" not in text, (context, text)
        assert text.endswith("error: interrupted\n"), (context, text)

        connection = sqlite3.connect(database)
        try:
            recorded = [r[0] for r in connection.execute("SELECT name FROM mf_migrations ORDER BY id")]
            columns = {r[1] for r in connection.execute('PRAGMA table_info("item")')}
            n = next(r for r in connection.execute('PRAGMA table_info("item")') if r[1] == "n")
            tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            rows = connection.execute("SELECT count(*) FROM item").fetchone()[0]
        finally:
            connection.close()
        applied = len(recorded)
        assert recorded == names[:applied], context
        assert applied >= 1 + trial * PENDING + k - 1, context  # those before k stay applied
        assert (columns, not n[3], "integer") == expected_shape("sqlite", applied), context
        assert not any(t.startswith("_mf_new_") for t in tables) and rows == ROWS, context
        mirrored = json.loads((project.migrations / ".applied").read_text())["applied"]
        assert mirrored == recorded, (context, len(mirrored), len(recorded), text)

        finished = project.run("db", "migrate")  # the next run does the rest
        assert finished.code == 0, (context, finished)


def test_ctrl_c_at_the_rename_question_ends_on_its_own_line_and_writes_nothing(project):
    project.write_models(WITH_PHONE)
    assert project.run("db", "makemigrations").code == 0
    project.write_models(WITH_PHONE.replace("phone = CharField", "mobile = CharField"))
    before = project.state()
    process, leader = start_on_terminal(project.path, "db", "makemigrations")
    asked, output = read_until(leader, r"\[y/N\] $")
    assert asked, output
    process.send_signal(signal.SIGINT)  # Ctrl-C (the pty is not its controlling terminal)
    text = read_rest(leader, output)
    process.wait(timeout=60)
    assert process.returncode == 130, (process.returncode, text)
    assert text.endswith("(CharField)? [y/N] \nerror: interrupted\n"), text
    assert project.state() == before

"""Shared fixtures: temporary projects, the `mf` command, and copies of compat projects.

Tests drive mf the way a user does: a folder with language_config.yaml and
models.mp, the `mf` command run in it, then a look at the files and the database.

Compat projects (made by the earlier tool) come from tests/fixtures/compat, which
is part of the repository, and, when it is there, from the read-only originals in
../shared/compat (or $MF_COMPAT_DIR): the `compat` fixture runs each test on every
source found (ids [fixtures] and [shared]).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from forkserver import ForkServer

REPO = Path(__file__).resolve().parents[1]

# The `mf` processes the tests start cache their bytecode, as an installed mf does: an
# environment that says not to write it would have every one of them compile mf from
# its source again (about a third of a short command's time).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
COMPAT = Path(__file__).resolve().parent / "fixtures" / "compat"  # always there

# `mf` as the tests run it: a process per command, forked from one that has mf imported
# (tests/forkserver.py); MF_TEST_FRESH_PROCESS=1 starts each as `python -m mfcore.cli`.
MF = ForkServer()


def pytest_sessionfinish(session, exitstatus):
    MF.close()


def _shared_compat():
    """The originals: $MF_COMPAT_DIR, which must exist when set, else ../shared/compat if present."""
    named = os.environ.get("MF_COMPAT_DIR")
    if named:
        if not Path(named).is_dir():
            raise pytest.UsageError(f"MF_COMPAT_DIR={named} is not a directory")
        return Path(named).resolve()
    beside = REPO.parent / "shared" / "compat"
    return beside if beside.is_dir() else None


SHARED_COMPAT = _shared_compat()
# Where compat projects are read from: {"fixtures": ..., "shared": ...}.
COMPAT_SOURCES = {"fixtures": COMPAT, **({"shared": SHARED_COMPAT} if SHARED_COMPAT else {})}

SQLITE_CONFIG = 'database:\n  driver: "sqlite"\n  dsn: "./dev.db"\n'


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __repr__(self):
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


class Project:
    """A project folder on disk, and `mf` run inside it."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def migrations(self) -> Path:
        return self.path / "migrations"

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return target

    def write_models(self, text: str) -> Path:
        return self.write("models.mp", text)

    def run(self, *args: str, env: dict | None = None, input: str | None = None, cwd=None) -> Result:
        full_env = dict(os.environ)
        full_env.pop("MF_DATABASE_URL", None)
        full_env.update(env or {})
        if MF.can_run(full_env):
            return Result(*MF.run(list(args), cwd=cwd or self.path, env=full_env,
                                  input=input if input is not None else "", timeout=120))
        completed = subprocess.run(
            [sys.executable, "-m", "mfcore.cli", *args], cwd=str(cwd or self.path), env=full_env,
            input=input if input is not None else "", capture_output=True, text=True, timeout=120)
        return Result(completed.returncode, completed.stdout, completed.stderr)

    def migration_names(self) -> list[str]:
        if not self.migrations.is_dir():
            return []
        return sorted(p.name for p in self.migrations.iterdir() if p.name[:1].isdigit())

    def state(self) -> dict:
        """Every file under the project with a hash of its bytes: compare before and after."""
        return tree_state(self.path)


def tree_state(root: Path) -> dict:
    found = {}
    for path in sorted(Path(root).rglob("*")):
        # Python's bytecode of a project module that mf imported (a data step's function)
        # is the interpreter's cache, not a file mf wrote.
        if path.is_file() and "__pycache__" not in path.relative_to(root).parts:
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def project(tmp_path) -> Project:
    """An empty SQLite project: language_config.yaml pointing at ./dev.db."""
    root = tmp_path / "app"
    root.mkdir()
    (root / "language_config.yaml").write_text(SQLITE_CONFIG)
    return Project(root)


def copy_compat(name: str, destination: Path, source: Path = COMPAT) -> Project:
    """A writable copy of <source>/<name>; the original is never touched. A database kept
    as SQL text (customers.db.sql, as `sqlite3 customers.db .dump` prints it) becomes
    the SQLite file it describes (customers.db)."""
    origin = source / name
    if not origin.is_dir():
        pytest.fail(f"compat project {origin} is missing")
    target = destination / name
    shutil.copytree(origin, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    for dump in target.rglob("*.db.sql"):
        build_sqlite(dump.with_suffix(""), dump.read_text(encoding="utf-8"))
        dump.unlink()
    return Project(target)


def build_sqlite(path: Path, dump: str) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.executescript(dump)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def pg_url(request):
    """A PostgreSQL database of this test module's own, dropped afterwards (see dbutil)."""
    import dbutil

    with dbutil.temporary_postgres_database("mf_" + request.module.__name__.split(".")[-1]) as url:
        yield url


@pytest.fixture(scope="module")
def pg_session(pg_url):
    import dbutil

    session = dbutil.PostgresSession(pg_url)
    yield session
    session.close()


@pytest.fixture(params=sorted(COMPAT_SOURCES))
def compat(request, tmp_path):
    """compat("onr_demo") -> Project for a fresh writable copy, from each compat source."""
    source = COMPAT_SOURCES[request.param]
    return lambda name: copy_compat(name, tmp_path, source)

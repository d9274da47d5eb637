"""A fleet of N tenant schemas in one PostgreSQL database, as processes: `mf db status
--all` and `mf db migrate --all` with nothing to apply, and `mf db migrate --all` with
one small migration pending (add a column and an index), each beside a shell loop
running `mf db migrate --tenant NAME` once per tenant on the same state. The ratio
loop / fleet and each process's peak RSS go into extra_info.

    python -m pytest benchmarks/test_bench_fleet.py --benchmark-only
    MF_BENCH_TENANTS=1000 python -m pytest benchmarks/test_bench_fleet.py --benchmark-only

The default N (50) takes about a minute on two cores; the shell loops dominate. All
tenants live in one server; test_bench_fleet_servers.py splits them across two.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import dbutil  # noqa: E402
from mfcore.differ import diff  # noqa: E402
from mfcore.language.parser import parse  # noqa: E402
from mfcore.schema import Schema  # noqa: E402
from mfcore.store import suffix_for, write_migration  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TENANTS = int(os.environ.get("MF_BENCH_TENANTS", "50"))
BEFORE = "model Item extends Model {\n    id = AutoField()\n    title = CharField(max_length=40)\n}\n"
AFTER = ("model Item extends Model {\n    id = AutoField()\n    title = CharField(max_length=40)\n"
         "    price = IntegerField(default=0, db_index=true)\n}\n")

figures: dict = {}


def _write(directory: Path, number: int, old: str, new: str) -> str:
    operations = diff(parse(old) if old else Schema(), parse(new))
    return os.path.basename(write_migration(str(directory), number, suffix_for(operations), operations))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """N tenant schemas with migration 001 applied; migration 002 written but pending."""
    with dbutil.temporary_postgres_database("bench_fleet") as url:
        root = tmp_path_factory.mktemp("fleet")
        schemas = [f"tenant_{n:04d}" for n in range(TENANTS)]
        session = dbutil.PostgresSession(url)
        session.execute("".join(f'CREATE SCHEMA "{s}";' for s in schemas))
        session.execute("CREATE TABLE public.tenants (schema_name text)")
        session.execute("INSERT INTO public.tenants SELECT unnest($1::text[])", schemas)
        (root / "migrations").mkdir()
        _write(root / "migrations", 1, "", BEFORE)
        (root / "models.mp").write_text(BEFORE)
        (root / "language_config.yaml").write_text(json.dumps({
            "targets": {"main": {"driver": "postgresql", "dsn": url}},
            "tenants": {"target": "main", "schemas": {"query": "SELECT schema_name FROM public.tenants"}},
        }))
        mf(root, "migrate", "--all")
        second = _write(root / "migrations", 2, BEFORE, AFTER)
        (root / "models.mp").write_text(AFTER)
        mf(root, "migrate", "--all")  # 002 applied everywhere: "nothing to apply"
        yield root, schemas, session, second
        session.loop.run_until_complete(session.connection.close())


def mf(root: Path, *args) -> int:
    """`mf db ARGS` as a process in ``root``; returns its peak RSS in MB."""
    process = subprocess.Popen([sys.executable, "-m", "mfcore.cli", "db", *args], cwd=root,
                               env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    error = process.stderr.read().decode()
    process.stderr.close()
    assert os.waitstatus_to_exitcode(status) == 0, error
    return usage.ru_maxrss // 1024


def shell_loop(root: Path, schemas) -> None:
    """`mf db migrate --tenant NAME` once per tenant, one process after another."""
    command = " ".join(f"{shlex.quote(sys.executable)} -m mfcore.cli db migrate --tenant {s} >/dev/null || exit 1;"
                       for s in schemas)
    subprocess.run(["bash", "-c", command], cwd=root, env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)


def unapply_second(session, schemas, second: str) -> None:
    """Make migration 002 pending again on every tenant (setup, not timed)."""
    session.execute("".join(f'ALTER TABLE "{s}".item DROP COLUMN price; '
                            f"DELETE FROM \"{s}\".mf_migrations WHERE name = '{second}';" for s in schemas))


def _record(benchmark, key: str, rss=None) -> None:
    benchmark.extra_info["tenants"] = TENANTS
    figures[key] = benchmark.stats.stats.median
    if rss is not None:
        benchmark.extra_info["peak_rss_mb"] = rss


def test_status_all_nothing_to_apply(benchmark, fleet):
    root, *_ = fleet
    rss = []
    benchmark.pedantic(lambda: rss.append(mf(root, "status", "--all")), rounds=3, iterations=1)
    _record(benchmark, "status", max(rss))


def test_migrate_all_nothing_to_apply(benchmark, fleet):
    root, *_ = fleet
    rss = []
    benchmark.pedantic(lambda: rss.append(mf(root, "migrate", "--all")), rounds=3, iterations=1)
    _record(benchmark, "idle/fleet", max(rss))


def test_shell_loop_nothing_to_apply(benchmark, fleet):
    root, schemas, *_ = fleet
    benchmark.pedantic(shell_loop, args=(root, schemas), rounds=1, iterations=1)
    _record(benchmark, "idle/loop")
    benchmark.extra_info["loop_over_fleet"] = round(figures["idle/loop"] / figures["idle/fleet"], 1)


def test_migrate_all_one_pending(benchmark, fleet):
    root, schemas, session, second = fleet
    rss = []
    benchmark.pedantic(lambda: rss.append(mf(root, "migrate", "--all")), rounds=2, iterations=1,
                       setup=lambda: unapply_second(session, schemas, second))
    _record(benchmark, "pending/fleet", max(rss))


def test_shell_loop_one_pending(benchmark, fleet):
    root, schemas, session, second = fleet
    benchmark.pedantic(shell_loop, args=(root, schemas), rounds=1, iterations=1,
                       setup=lambda: unapply_second(session, schemas, second))
    _record(benchmark, "pending/loop")
    benchmark.extra_info["loop_over_fleet"] = round(figures["pending/loop"] / figures["pending/fleet"], 1)

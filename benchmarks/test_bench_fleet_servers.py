"""A fleet across two PostgreSQL servers, as processes: N tenant schemas, half on the
main server (port 5432) and half on a second cluster made for the run on port 5433
(`pg_createcluster <version> mfbench --port 5433 --start`, trust auth for local
connections, dropped with `pg_dropcluster --stop` at the end). The same figures as
test_bench_fleet.py: `mf db status --all` and `mf db migrate --all` with nothing to
apply, `mf db migrate --all` with one small migration pending (add a column and an
index), each beside a shell loop running `mf db migrate --tenant NAME` once per
tenant; the ratio loop / fleet and peak RSS go into extra_info and are printed.

    python -m pytest benchmarks/test_bench_fleet_servers.py --benchmark-only -s
    MF_BENCH_TENANTS=1000 python -m pytest benchmarks/test_bench_fleet_servers.py --benchmark-only -s

Making a cluster needs the PostgreSQL server tools and root (or the postgres user),
and a free port 5433. When it cannot be made, the second "server" is a second
database of the main server, and the output says why. The main cluster is never
stopped, reconfigured or written to outside the benchmark's own database.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dbutil  # noqa: E402
from test_bench_fleet import AFTER, BEFORE, _write, mf, shell_loop  # noqa: E402

TENANTS = int(os.environ.get("MF_BENCH_TENANTS", "50"))
CLUSTER, PORT = "mfbench", 5433

figures: dict = {}


def _clusters() -> list:
    """(version, name, port, status) of each cluster pg_lsclusters lists."""
    output = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    return [tuple(line.split()[:4]) for line in output.splitlines() if line.strip()]


def _second_cluster():
    """(url, None) of a new cluster on PORT, or (None, why not)."""
    if shutil.which("pg_createcluster") is None or shutil.which("pg_lsclusters") is None:
        return None, "the PostgreSQL cluster tools (pg_createcluster, pg_lsclusters) are not installed"
    if os.geteuid() != 0:
        return None, "pg_createcluster needs root (or the postgres user) and this runs as another user"
    clusters = _clusters()
    main = next((c for c in clusters if c[2] == "5432"), None)
    if main is None:
        return None, "no cluster of pg_lsclusters listens on 5432, so the version to use is unknown"
    version = main[0]
    for found_version, name, port, _status in clusters:
        if name == CLUSTER and found_version == version:
            # Left behind by a benchmark that was killed: ours to drop.
            subprocess.run(["pg_dropcluster", "--stop", version, CLUSTER], check=True)
        elif port == str(PORT):
            return None, f"port {PORT} is taken by cluster {found_version}/{name}"
    made = subprocess.run(["pg_createcluster", version, CLUSTER, "--port", str(PORT), "--start", "--",
                           "--auth-local=trust", "--auth-host=trust"], capture_output=True, text=True)
    if made.returncode != 0:
        return None, f"pg_createcluster failed: {made.stderr.strip() or made.stdout.strip()}"
    return f"postgresql://postgres@127.0.0.1:{PORT}/postgres", None


def _drop_second_cluster() -> None:
    version = next(c[0] for c in _clusters() if c[1] == CLUSTER)
    subprocess.run(["pg_dropcluster", "--stop", version, CLUSTER], check=True)


@pytest.fixture(scope="module")
def servers():
    """(URL on the main server, URL on the second, a sentence saying what the second is)."""
    with dbutil.temporary_postgres_database("bench_servers_a") as first:
        url, why_not = _second_cluster()
        if url is not None:
            try:
                yield first, url, f"two servers: 127.0.0.1:5432 and a cluster made for the run on {PORT}"
            finally:
                _drop_second_cluster()
            return
        with dbutil.temporary_postgres_database("bench_servers_b") as second:
            yield first, second, f"one server, two databases (no second cluster: {why_not})"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, servers):
    """N tenant schemas, half on each server, with migration 001 and 002 applied."""
    first, second, what = servers
    print(f"\nfleet benchmark on {what}")
    root = tmp_path_factory.mktemp("fleet_servers")
    halves = {"one": (first, range(0, TENANTS // 2)), "two": (second, range(TENANTS // 2, TENANTS))}
    sessions, tenants = {}, []
    for target, (url, numbers) in halves.items():
        session = dbutil.PostgresSession(url)
        schemas = [f"tenant_{n:04d}" for n in numbers]
        session.execute("".join(f'CREATE SCHEMA "{s}";' for s in schemas))
        sessions[target] = (session, schemas)
        tenants += [f"{target}.{s}" for s in schemas]
    (root / "migrations").mkdir()
    _write(root / "migrations", 1, "", BEFORE)
    (root / "models.mp").write_text(BEFORE)
    (root / "language_config.yaml").write_text(json.dumps({
        "targets": {target: {"driver": "postgresql", "dsn": url} for target, (url, _n) in halves.items()},
        "tenants": [{"target": target, "schemas": schemas} for target, (_s, schemas) in sessions.items()],
    }))
    mf(root, "migrate", "--all")
    for session, schemas in sessions.values():  # each half is on its own server, one ledger per tenant
        assert session.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = 'mf_migrations' "
                                "AND schemaname LIKE 'tenant%'") == len(schemas)
    ports = sorted({int(session.fetchval("SHOW port")) for session, _schemas in sessions.values()})
    print(f"tenants per server port {ports}: {[len(schemas) for _session, schemas in sessions.values()]}")
    second_name = _write(root / "migrations", 2, BEFORE, AFTER)
    (root / "models.mp").write_text(AFTER)
    mf(root, "migrate", "--all")  # 002 applied everywhere: "nothing to apply"
    yield root, tenants, sessions, second_name, what
    for session, _schemas in sessions.values():
        session.loop.run_until_complete(session.connection.close())
    _report()


def unapply_second(sessions, second_name: str) -> None:
    """Make migration 002 pending again on every tenant of both servers (setup, not timed)."""
    for session, schemas in sessions.values():
        session.execute("".join(f'ALTER TABLE "{s}".item DROP COLUMN price; '
                                f"DELETE FROM \"{s}\".mf_migrations WHERE name = '{second_name}';"
                                for s in schemas))


def _record(benchmark, key: str, what: str, rss=None) -> None:
    benchmark.extra_info["tenants"] = TENANTS
    benchmark.extra_info["servers"] = what
    figures[key] = benchmark.stats.stats.median
    if rss is not None:
        benchmark.extra_info["peak_rss_mb"] = rss
        figures[key + " rss"] = rss


def _report() -> None:
    """The figures on one screen (run with -s to see them)."""
    lines = [f"{TENANTS} tenants across two servers:"]
    for key, value in figures.items():
        lines.append(f"  {key:<22} {value:8.2f} {'MB' if key.endswith('rss') else 's'}")
    for case in ("idle", "pending"):
        if f"{case}/loop" in figures and f"{case}/fleet" in figures:
            lines.append(f"  {case}: the shell loop takes {figures[f'{case}/loop'] / figures[f'{case}/fleet']:.1f}x "
                         "as long as the fleet run")
    print("\n" + "\n".join(lines))


def test_status_all_nothing_to_apply(benchmark, fleet):
    root, *_rest, what = fleet
    rss = []
    benchmark.pedantic(lambda: rss.append(mf(root, "status", "--all")), rounds=3, iterations=1)
    _record(benchmark, "status", what, max(rss))


def test_migrate_all_nothing_to_apply(benchmark, fleet):
    root, *_rest, what = fleet
    rss = []
    benchmark.pedantic(lambda: rss.append(mf(root, "migrate", "--all")), rounds=3, iterations=1)
    _record(benchmark, "idle/fleet", what, max(rss))


def test_shell_loop_nothing_to_apply(benchmark, fleet):
    root, tenants, *_rest, what = fleet
    benchmark.pedantic(shell_loop, args=(root, tenants), rounds=1, iterations=1)
    _record(benchmark, "idle/loop", what)
    benchmark.extra_info["loop_over_fleet"] = round(figures["idle/loop"] / figures["idle/fleet"], 1)


def test_migrate_all_one_pending(benchmark, fleet):
    root, _tenants, sessions, second_name, what = fleet
    rss = []
    benchmark.pedantic(lambda: rss.append(mf(root, "migrate", "--all")), rounds=2, iterations=1,
                       setup=lambda: unapply_second(sessions, second_name))
    _record(benchmark, "pending/fleet", what, max(rss))


def test_shell_loop_one_pending(benchmark, fleet):
    root, tenants, sessions, second_name, what = fleet
    benchmark.pedantic(shell_loop, args=(root, tenants), rounds=1, iterations=1,
                       setup=lambda: unapply_second(sessions, second_name))
    _record(benchmark, "pending/loop", what)
    benchmark.extra_info["loop_over_fleet"] = round(figures["pending/loop"] / figures["pending/fleet"], 1)

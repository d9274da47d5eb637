"""The longest stall traffic sees while `mf db migrate` changes a busy PostgreSQL table.

For each change kind of tests/changekinds.py (an index, a unique constraint, a foreign
key, a CHECK, NOT NULL, an enum default, a type change, a dropped table): an ``item``
table of MF_BENCH_ONLINE_ROWS rows (default 1,000,000; made with INSERT ... SELECT
generate_series, vacuumed and analyzed) and four clients, each on a connection of its
own, alternating an INSERT into it and a SELECT of one row by primary key with a 10 ms
pause, recording every query's latency. The change is then applied twice, each time to
a fresh copy of the table under the same traffic:

- baseline: the bare driver (asyncpg) running the plain SQL a naive tool runs for the
  change, in one transaction (CREATE INDEX without CONCURRENTLY, ADD CONSTRAINT with its
  validation, SET NOT NULL with its scan, ...);
- mf: `mf db migrate` (the CLI, as a process, in a project whose next migration
  makemigrations wrote for the change).

The figure is the stall: the longest latency of any query that was running while the
change ran. Beside it: the normal latency before (median and 99th percentile over the
warm-up), the ratio mf stall / baseline stall, and a verdict: index, unique, foreign
key, CHECK, NOT NULL and enum-default changes must stay under 50 ms of stall; the type
changes rewrite the table by nature and are listed as rewrites. Figures go into each
benchmark's extra_info and into a table printed at the end and written to
.benchmarks/online_stalls.txt (with the load average: the machine may be shared).

    python -m pytest benchmarks/test_bench_online.py --benchmark-only
    MF_BENCH_ONLINE_ROWS=200000 python -m pytest benchmarks/test_bench_online.py --benchmark-only -k index

The benchmark's own time is the mf migration's wall time; the stall is the figure.
Benchmarks never assert a time: a case over its target is flagged in the table. The
migration itself must succeed (mf's exit code 0), and the change must be in place.
Needs the PostgreSQL test server (tests/dbutil.py), else it is skipped with the reason.
"""
from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import changekinds  # noqa: E402
import dbutil  # noqa: E402
from conftest import SUMMARIES  # noqa: E402

ROWS = int(os.environ.get("MF_BENCH_ONLINE_ROWS", "1000000"))
CLIENTS = 4
PAUSE = 0.010          # seconds each client rests between two queries
WARMUP = 1.5           # seconds of traffic before the change: the normal latency
TAIL = 0.3             # seconds of traffic after it, for queries released at its end
TARGET_MS = 50.0
REPORT = Path(__file__).resolve().parents[1] / ".benchmarks" / "online_stalls.txt"

INSERT = 'INSERT INTO "item" ("account", "title", "code", "qty", "note") VALUES ($1, $2, $3, $4, $5)'
SELECT = 'SELECT "id", "title", "qty" FROM "item" WHERE "id" = $1'


# ---------------------------------------------------------------- traffic

class Traffic:
    """CLIENTS connections in ``schema``, each alternating INSERT and SELECT on item."""

    def __init__(self, url: str, schema: str, label: str):
        self.url, self.schema, self.label = url, schema, label
        self.samples: list = []   # (start, end) of each query, perf_counter seconds
        self.errors: list = []    # (start, end, message)
        self._stop = asyncio.Event()
        self._tasks: list = []
        self._connections: list = []
        self.started = 0.0

    async def start(self) -> None:
        import asyncpg

        for _ in range(CLIENTS):
            self._connections.append(await asyncpg.connect(
                self.url, server_settings={"search_path": self.schema, "application_name": "mf_bench_traffic"}))
        self.started = time.perf_counter()
        self._tasks = [asyncio.ensure_future(self._client(number, connection))
                       for number, connection in enumerate(self._connections)]

    async def _client(self, number: int, connection) -> None:
        sent = 0
        pick = random.Random(number)
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                if sent % 2 == 0:
                    marker = f"{self.label} {number} {sent}"
                    await connection.execute(INSERT, 1 + sent % 100, marker, marker, sent % 1000, marker)
                else:
                    await connection.fetchrow(SELECT, pick.randint(1, ROWS))
            except Exception as exc:  # the traffic keeps going; errors are counted and reported
                self.errors.append((started, time.perf_counter(), f"{type(exc).__name__}: {exc}"))
            self.samples.append((started, time.perf_counter()))
            sent += 1
            await asyncio.sleep(PAUSE)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        for connection in self._connections:
            await connection.close()


# ---------------------------------------------------------------- one trial

@dataclass
class Figures:
    """What the clients saw during one application of a change (milliseconds)."""

    stall_ms: float
    normal_p50_ms: float
    normal_p99_ms: float
    normal_max_ms: float
    duration_s: float
    queries_during: int
    errors_during: int
    first_error: Optional[str]
    load_average: float


@dataclass
class Trial:
    bench: "OnlineBench"
    kind: changekinds.ChangeKind
    side: str                     # "baseline" or "mf"
    schema: str
    traffic: Optional[Traffic] = None
    began: float = 0.0
    ended: float = 0.0
    failure: Optional[str] = None
    load_average: float = field(default_factory=lambda: os.getloadavg()[0])

    async def change(self) -> None:
        """Apply the change (the naive SQL, or `mf db migrate`), noting when it ran."""
        self.began = time.perf_counter()
        try:
            if self.side == "baseline":
                await self._naive()
            else:
                await self._mf()
        finally:
            self.ended = time.perf_counter()

    async def _naive(self) -> None:
        connection = await self.bench.connect(self.schema)
        try:
            async with connection.transaction():
                for statement in self.kind.naive_sql:
                    await connection.execute(statement)
        finally:
            await connection.close()

    async def _mf(self) -> None:
        process = await asyncio.create_subprocess_exec(
            *changekinds.MF, "db", "migrate", cwd=self.bench.project(self.kind),
            env=changekinds.mf_environment({"MF_DATABASE_URL": self.bench.schema_url(self.schema)}),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        if process.returncode != 0 or b"Applied 1 migration(s)" not in out:
            self.failure = (f"mf db migrate exited {process.returncode}: "
                            f"{err.decode().strip() or out.decode().strip()}")

    async def finish(self) -> Figures:
        """Stop the traffic, drop the copy, and say what the clients saw."""
        await asyncio.sleep(TAIL)
        await self.traffic.stop()
        changed = await self.bench.change_in_place(self.kind, self.schema)
        await self.bench.drop(self.schema)
        if self.failure is None and not changed:
            self.failure = f"{self.side}: the change {self.kind.name} is not in place after it ran"
        return self._figures()

    def _figures(self) -> Figures:
        samples = self.traffic.samples
        normal_from = self.traffic.started + WARMUP / 3  # past the connections' first statements
        normal = sorted(end - start for start, end in samples if start >= normal_from and end <= self.began)
        during = [end - start for start, end in samples if start < self.ended and end > self.began]
        errors = [message for start, end, message in self.traffic.errors if start < self.ended and end > self.began]
        return Figures(
            stall_ms=round(1000 * max(during, default=0.0), 1),
            normal_p50_ms=round(1000 * statistics.median(normal), 2) if normal else 0.0,
            normal_p99_ms=round(1000 * normal[int(0.99 * (len(normal) - 1))], 2) if normal else 0.0,
            normal_max_ms=round(1000 * normal[-1], 2) if normal else 0.0,
            duration_s=round(self.ended - self.began, 3),
            queries_during=len(during),
            errors_during=len(errors),
            first_error=errors[0] if errors else None,
            load_average=round(self.load_average, 2),
        )


# ---------------------------------------------------------------- the database and projects

class OnlineBench:
    """One database for the module; a schema per trial, holding a fresh copy of the tables."""

    def __init__(self, url: str, root: Path):
        self.url, self.root = url, root
        self._projects: dict = {}
        self.results: dict = {}  # kind name -> (baseline Figures, mf Figures)
        self.server_version = ""

    def project(self, kind: changekinds.ChangeKind) -> Path:
        if kind.name not in self._projects:
            self._projects[kind.name] = changekinds.make_project(self.root / kind.name, kind)
        return self._projects[kind.name]

    def schema_url(self, schema: str) -> str:
        return f"{self.url}?search_path={schema}"

    async def connect(self, schema: Optional[str] = None):
        import asyncpg

        settings = {"search_path": schema} if schema else {}
        return await asyncpg.connect(self.url, server_settings=settings)

    async def start(self, kind: changekinds.ChangeKind, side: str) -> Trial:
        """A fresh copy of the tables (the migrations before the change applied by mf,
        ROWS rows loaded), its traffic started and warmed up."""
        schema = f"{side}_{kind.name}_{uuid.uuid4().hex[:6]}"
        admin = await self.connect()
        try:
            await admin.execute(f'CREATE SCHEMA "{schema}"')
            self.server_version = await admin.fetchval("SHOW server_version")
        finally:
            await admin.close()
        root = self.project(kind)
        # .applied mirrors the previous copy's ledger; this copy starts empty.
        (root / "migrations" / ".applied").unlink(missing_ok=True)
        await asyncio.to_thread(changekinds.mf, root, "db", "migrate", "--to", str(kind.number - 1),
                                env={"MF_DATABASE_URL": self.schema_url(schema)})
        await self._load(schema)
        trial = Trial(self, kind, side, schema)
        trial.traffic = Traffic(self.url, schema, f"{side} {kind.name}")
        await trial.traffic.start()
        await asyncio.sleep(WARMUP)
        return trial

    async def _load(self, schema: str) -> None:
        connection = await self.connect(schema)
        try:
            # Rows made consistent by construction: no foreign-key trigger per row.
            await connection.execute("SET session_replication_role = replica")
            await connection.execute("""INSERT INTO "account" ("name")
                                        SELECT 'account ' || g FROM generate_series(1, 100) AS g""")
            await connection.execute("""INSERT INTO "item" ("account", "title", "code", "qty", "note", "status")
                                        SELECT 1 + g % 100, 'title ' || g, 'code ' || g, g % 1000, 'note ' || g, 'NEW'
                                        FROM generate_series(1, $1::bigint) AS g""", ROWS)
            await connection.execute("""INSERT INTO "tag" ("item", "label")
                                        SELECT g, 'tag ' || g FROM generate_series(1, least(1000, $1::bigint)) AS g""",
                                     ROWS)
            await connection.execute("RESET session_replication_role")
            for table in ("account", "item", "tag"):
                await connection.execute(f'VACUUM (ANALYZE) "{table}"')
            await connection.execute("CHECKPOINT")  # the load's writes flushed before the clock starts
        finally:
            await connection.close()

    async def change_in_place(self, kind: changekinds.ChangeKind, schema: str) -> bool:
        """Whether the copy shows the change (a check that it ran, not a measure)."""
        connection = await self.connect(schema)
        try:
            return bool(await connection.fetchval(IN_PLACE[kind.name]))
        finally:
            await connection.close()

    async def drop(self, schema: str) -> None:
        admin = await self.connect()
        try:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')  # the benchmark's own copy
        finally:
            await admin.close()


def _column(name: str, condition: str) -> str:
    return (f"SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            f"AND table_name = 'item' AND column_name = '{name}' AND {condition})")


def _constraint(name: str, kind: str, extra: str = "true") -> str:
    return (f"SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'item'::regclass AND conname = '{name}' "
            f"AND contype = '{kind}' AND convalidated AND {extra})")


def _index(name: str, unique: bool) -> str:
    return (f"SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = 'item'::regclass AND indisvalid "
            f"AND indisunique = {str(unique).lower()} AND indexrelid = '{name}'::regclass)")


# How each change shows in the catalog once applied (named as mf and the naive SQL name them).
IN_PLACE = {
    "index": _index("ix_item_title", False),
    "db_index": _index("ix_item_code", False),
    "unique_together": _index("uq_item_account_title", True),
    "make_unique": _constraint("item_code_key", "u"),
    "add_unique_field": _constraint("item_ext_key", "u"),
    "add_fk_default": _constraint("item_owner_fkey", "f", "confdeltype = 'r'"),
    "on_delete": _constraint("item_account_fkey", "f", "confdeltype = 'r'"),
    "check": _constraint("item_qty_not_negative", "c"),
    "not_null": _column("note", "is_nullable = 'NO'"),
    "not_null_default": _column("note", "is_nullable = 'NO'"),
    "enum_default": _column("status", "column_default LIKE '''FRESH''%'"),
    "varchar_narrow": _column("title", "character_maximum_length = 50"),
    "int_bigint": _column("qty", "data_type = 'bigint'"),
    "drop_referencing": "SELECT to_regclass('tag') IS NULL",
}


@pytest.fixture(scope="module")
def online(tmp_path_factory):
    with dbutil.temporary_postgres_database("mf_bench_online") as url:
        bench = OnlineBench(url, tmp_path_factory.mktemp("online"))
        load_before = os.getloadavg()
        yield bench
    if bench.results:
        text = report(bench, load_before, os.getloadavg())
        REPORT.parent.mkdir(exist_ok=True)
        REPORT.write_text(text)
        SUMMARIES.append(text + f"(written to {REPORT})\n")


# ---------------------------------------------------------------- the benchmark

@pytest.mark.parametrize("kind", changekinds.STALL_KINDS, ids=lambda kind: kind.name)
def test_online_stall(benchmark, online, loop, kind):
    """The change under traffic: the baseline first (untimed), then mf (timed)."""
    assert set(IN_PLACE) == {k.name for k in changekinds.STALL_KINDS}
    baseline_trial = loop.run_until_complete(online.start(kind, "baseline"))
    loop.run_until_complete(baseline_trial.change())
    baseline = loop.run_until_complete(baseline_trial.finish())
    assert baseline_trial.failure is None, baseline_trial.failure
    trials = []

    def setup():
        trials.append(loop.run_until_complete(online.start(kind, "mf")))
        return (trials[-1],), {}

    benchmark.pedantic(lambda trial: loop.run_until_complete(trial.change()), setup=setup, rounds=1, iterations=1)
    measured = loop.run_until_complete(trials[-1].finish())
    assert trials[-1].failure is None, trials[-1].failure

    online.results[kind.name] = (baseline, measured)
    info = benchmark.extra_info
    info.update(rows=ROWS, clients=CLIENTS, group=kind.group, change=kind.title,
                mf_stall_ms=measured.stall_ms, baseline_stall_ms=baseline.stall_ms,
                mf_over_baseline=_ratio(measured, baseline), verdict=verdict(kind, measured),
                normal_p50_ms=measured.normal_p50_ms, normal_p99_ms=measured.normal_p99_ms,
                normal_max_ms=measured.normal_max_ms, baseline_normal_p99_ms=baseline.normal_p99_ms,
                mf_duration_s=measured.duration_s, baseline_duration_s=baseline.duration_s,
                client_errors_mf=measured.errors_during, client_errors_baseline=baseline.errors_during,
                load_average=measured.load_average)


def _ratio(measured: Figures, baseline: Figures) -> Optional[float]:
    return round(measured.stall_ms / baseline.stall_ms, 2) if baseline.stall_ms else None


def verdict(kind: changekinds.ChangeKind, measured: Figures) -> str:
    if kind.group == "online":
        return f"OVER {TARGET_MS:g} ms" if measured.stall_ms > TARGET_MS else "ok"
    return "rewrite" if kind.group == "rewrite" else "-"


def report(bench: OnlineBench, load_before, load_after) -> str:
    """The table of every case run, and what remains over the target."""
    header = (f"{'case':<18} {'group':<8} {'normal p50/p99/max ms':>21} {'baseline stall ms':>17} "
              f"{'mf stall ms':>11} {'mf/base':>7} {'mf s':>6} {'load':>5}  verdict")
    lines = [f"Longest stall of {CLIENTS} clients (INSERT/SELECT, {PAUSE * 1000:g} ms pause) on a {ROWS:,}-row "
             f"table, PostgreSQL {bench.server_version}; target under {TARGET_MS:g} ms for the online group.",
             f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} at the start, "
             f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} at the end, on {os.cpu_count()} CPUs.",
             "", header, "-" * len(header)]
    over, rewrites, errors = [], [], []
    for kind in changekinds.STALL_KINDS:
        if kind.name not in bench.results:
            continue
        baseline, measured = bench.results[kind.name]
        ratio = _ratio(measured, baseline)
        said = verdict(kind, measured)
        lines.append(f"{kind.name:<18} {kind.group:<8} "
                     f"{f'{measured.normal_p50_ms:.1f}/{measured.normal_p99_ms:.1f}/{measured.normal_max_ms:.1f}':>21} "
                     f"{baseline.stall_ms:>17.1f} {measured.stall_ms:>11.1f} "
                     f"{'-' if ratio is None else f'{ratio:.2f}':>7} {measured.duration_s:>6.2f} "
                     f"{measured.load_average:>5.2f}  {said}")
        if said.startswith("OVER"):
            over.append(f"{kind.name} ({measured.stall_ms:.0f} ms)")
        if kind.group == "rewrite":
            rewrites.append(f"{kind.name} ({kind.title}: {measured.stall_ms:.0f} ms)")
        for side, figures in (("baseline", baseline), ("mf", measured)):
            if figures.errors_during:
                errors.append(f"{kind.name}/{side}: {figures.errors_during} client error(s), "
                              f"first: {figures.first_error}")
    lines += ["", "A stall near the normal max (the longest latency before the change) is the machine's noise "
              "(mf's own process starting on the same CPUs included), not a lock.",
              f"over the {TARGET_MS:g} ms target: {', '.join(over) or 'none'}",
              f"rewrites that remain: {', '.join(rewrites) or 'none measured'}"]
    lines += [f"client errors: {line}" for line in errors]
    return "\n".join(lines) + "\n"

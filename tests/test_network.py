"""A network that stalls or cuts between mf and PostgreSQL (SPEC §6.4).

A TCP proxy in front of the server forwards every byte until a chosen moment --
after the k-th piece of data a client sent through it -- then either stalls (stops
forwarding both ways and keeps every socket open, as a partitioned network or a
hung middlebox does: the server hears nothing more, not even a close) or cuts
(closes every connection and refuses new ones). Whatever the moment, migrate ends
with exit 3 (DatabaseError through the API) within its timeouts, every migration
is applied and recorded or not at all, and the server frees the migration lock on
its own: the next run, without the proxy, applies the rest.

The moments are seeded random draws over the pieces a whole run sends (set
MF_NETWORK_SEED to replay).
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import anyio
import pytest

import dbutil
from mfcore import applier
from mfcore.config import config_for
from mfcore.dialects.postgresql import ADVISORY_LOCK_KEY
from mfcore.errors import DatabaseError
from test_concurrency import write_chain
from test_crash import expected_shape

MIGRATIONS = 4
TRIALS = 3          # per action (stall, cut)
COMMAND_TIMEOUT = 2  # seconds: database.command_timeout and connect_timeout of the runs under test


class Proxy:
    """A TCP proxy to the PostgreSQL server, on an event loop in a thread of its own.

    ``arm(k, action)``: once clients have sent k pieces of data through it (each read
    from a client socket counts one), forward that piece, then ``"stall"`` or
    ``"cut"``. ``pieces`` counts what clients sent so far."""

    def __init__(self, upstream: tuple):
        self.upstream = upstream
        self.pieces = 0
        self.trigger = None       # (k, action) or None
        self.state = "forwarding"  # then "stalled" or "cut"
        self.sockets: list = []
        self.sent: list = []       # (connection number, data) of every piece clients sent
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _serve(self, ready) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def _call(self, function):
        done = threading.Event()
        result = []

        def run():
            result.append(function())
            done.set()
        self.loop.call_soon_threadsafe(run)
        assert done.wait(10)
        return result[0]

    def arm(self, k, action: str = "stall") -> None:
        def reset():
            self.close_all()
            self.pieces, self.state, self.sent = 0, "forwarding", []
            self.trigger = (k, action) if k is not None else None
        self._call(reset)

    def arm_next(self, action: str) -> None:
        """From the loop's callers' thread: act after the next piece a client sends."""
        def set_trigger():
            self.trigger = (self.pieces + 1, action)
        self._call(set_trigger)

    def close_all(self) -> None:
        for writer in self.sockets:
            writer.transport.abort()
        self.sockets.clear()

    def stop(self) -> None:
        self._call(self.close_all)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _client(self, reader, writer) -> None:
        if self.state == "cut":
            writer.transport.abort()
            return
        self.sockets.append(writer)
        self.connections += 1
        number = self.connections
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.sockets.append(upstream_writer)
        await asyncio.gather(self._pipe(reader, upstream_writer, sender=number),
                             self._pipe(upstream_reader, writer), return_exceptions=True)

    async def _pipe(self, reader, writer, sender: int = 0) -> None:
        """Forward reader to writer; ``sender``: the number of the client connection whose
        data this is (counted as pieces), 0 for the server's answers."""
        while True:
            data = await reader.read(65536)
            if self.state == "stalled":
                # Nothing gets through any more, and no close either: the other side
                # never hears of this one again.
                await asyncio.Event().wait()
            if not data:
                writer.transport.abort()
                return
            writer.write(data)
            if sender:
                self.pieces += 1
                self.sent.append((sender, data))
                if self.trigger is not None and self.pieces == self.trigger[0]:
                    self._act(self.trigger[1])
            if self.state == "cut":
                return

    def _act(self, action: str) -> None:
        if action == "cut":
            self.state = "cut"
            self.close_all()
        else:
            self.state = "stalled"


@pytest.fixture
def proxy():
    found = Proxy(("127.0.0.1", urlsplit(dbutil.POSTGRES_URL).port or 5432))
    yield found
    found.stop()


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


def write_config(path: Path) -> None:
    # online: false: each migration one transaction, which a stall or a cut leaves applied
    # whole or not at all (the steps of online migrations are resumed: test_steps.py).
    path.write_text('database:\n  driver: "postgresql"\n  dsn: "${APP_DSN}"\n'
                    f"  connect_timeout: {COMMAND_TIMEOUT}\n  command_timeout: {COMMAND_TIMEOUT}\n"
                    "  lock_timeout: 30\n  online: false\nmigrations: \"migrations\"\n")


def wait_for_lock_free(session, context: str) -> None:
    """The server frees the migration lock of a vanished run on its own: wait for that
    event (bounded; the failure names the run)."""
    deadline = time.monotonic() + 60
    # The lock, and any lock a migration's statements take (a session stalled half-way
    # through a read may keep reading its tables: that blocks no migration).
    while session.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'mf' "
            "AND a.datname = current_database() "
            "AND ((l.locktype = 'advisory' AND ((l.classid::bigint << 32) | l.objid::bigint) = $1) "
            "OR (l.locktype = 'relation' AND l.mode <> 'AccessShareLock'))", ADVISORY_LOCK_KEY):
        if time.monotonic() >= deadline:
            sessions = session.fetch("SELECT pid, state, wait_event, left(query, 80) FROM pg_stat_activity "
                                     "WHERE application_name = 'mf' AND datname = current_database()")
            raise AssertionError(f"{context}: the server kept the vanished run's lock or transaction; mf's "
                                 f"sessions: {[tuple(row) for row in sessions]}")
        time.sleep(0.05)


def applied_count(session, names: list, context: str) -> int:
    """How many migrations are applied; each one fully (its columns) and recorded, or not at all."""
    if not session.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                            "AND tablename = 'mf_migrations'"):
        assert not session.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"), context
        return 0
    recorded = [tuple(r) for r in session.fetch("SELECT name, state FROM mf_migrations ORDER BY id")]
    assert recorded == [(name, "applied") for name in names[:len(recorded)]], context
    if recorded:
        rows = session.fetch("SELECT column_name, is_nullable, data_type FROM information_schema.columns "
                             "WHERE table_schema = current_schema() AND table_name = 'item'")
        n = next(r for r in rows if r[0] == "n")
        assert ({r[0] for r in rows}, n[1] == "YES", n[2]) == expected_shape("postgresql", len(recorded)), context
    else:
        assert not session.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                                    "AND tablename = 'item'"), context
    return len(recorded)


def test_a_stall_or_a_cut_at_random_moments_ends_with_exit_3_and_frees_the_lock(project, proxy, pg_url,
                                                                                pg_session):
    seed = int(os.environ.get("MF_NETWORK_SEED", time.time_ns() % 1_000_000))
    chance = random.Random(seed)
    names = write_chain(project.migrations, MIGRATIONS)
    write_config(project.path / "language_config.yaml")

    # One undisturbed run: how many pieces of data a whole run sends.
    pg_session.fresh_schema()
    proxy.arm(None)
    done = project.run("db", "migrate", env={"APP_DSN": through(pg_url, proxy.port) +
                                             f"?search_path={pg_session.schema}"})
    assert done.code == 0, done
    whole_run = proxy.pieces
    assert whole_run > 10, whole_run

    outcomes = []
    for action in ("stall", "cut"):
        for k in chance.sample(range(1, whole_run + 1), TRIALS):
            context = f"{action} after piece {k} of {whole_run} (MF_NETWORK_SEED={seed})"
            # Closing what the last trial's stall left open first: a session stalled
            # half-way through reading the ledger keeps reading it, and the schema's
            # DROP would wait for it.
            proxy.arm(k, action)
            schema = pg_session.fresh_schema()
            (project.migrations / ".applied").unlink(missing_ok=True)
            result = project.run("db", "migrate", env={"APP_DSN": through(pg_url, proxy.port) +
                                                       f"?search_path={schema}"})
            # The run ends (project.run's timeout guards against a hang): exit 3 with one
            # sentence and no traceback, or exit 0 when the moment fell after its work
            # (the goodbye of the last connection).
            assert result.code in (0, 3), (context, result)
            assert "Traceback" not in result.err, (context, result)
            if result.code == 3:
                assert result.err.startswith("error: ") and result.err.count("\n") == 1, (context, result)
            wait_for_lock_free(pg_session, context)
            applied = applied_count(pg_session, names, context)
            if result.code == 0:
                assert applied == MIGRATIONS, context
            outcomes.append(result.code)

            # Without the proxy, the next run takes the lock at once and applies the rest.
            direct = project.run("db", "migrate", env={"APP_DSN": f"{pg_url}?search_path={schema}"})
            assert direct.code == 0, (context, direct)
            assert applied_count(pg_session, names, context) == MIGRATIONS
    print(f"exit codes (MF_NETWORK_SEED={seed}):", outcomes)
    assert outcomes.count(3) >= TRIALS, outcomes  # most moments fall inside the work


def test_a_stalled_statement_raises_database_error_through_the_api(proxy, pg_url, pg_session, tmp_path):
    """Stalled right after the first migration's statements went out: the API raises
    DatabaseError naming the timeout, and that migration is not applied."""
    names = write_chain(tmp_path / "migrations", 2)
    schema = pg_session.fresh_schema()
    config = config_for(through(pg_url, proxy.port) + f"?search_path={schema}", str(tmp_path / "migrations"))
    config = dataclasses.replace(config, command_timeout=1.0, connect_timeout=1.0)

    events = []

    def event(kind, name, index, total):
        if kind == "start" and index == 1:
            # The next piece is migration 001's transaction: let it through, then stall.
            proxy.arm_next("stall")
        events.append(kind)

    proxy.arm(None)
    with pytest.raises(DatabaseError, match="did not answer within 1 s"):
        anyio.run(lambda: applier.migrate(config, on_event=event))
    assert events == ["start"]
    wait_for_lock_free(pg_session, "stalled in migration 001")
    assert applied_count(pg_session, names, "stalled in migration 001") == 0


def last_message_kinds(data: bytes) -> list:
    """The kinds (first bytes) of the frontend messages in ``data``, in order."""
    kinds, at = [], 0
    while at + 5 <= len(data):
        kinds.append(data[at:at + 1])
        at += 1 + int.from_bytes(data[at + 1:at + 5], "big")
    return kinds


def test_once_the_lock_is_held_its_session_is_sent_only_whole_exchanges(proxy, pg_url, pg_session, tmp_path):
    """What mf sends on the migration lock's connection after asking for the lock ends
    in Sync, a simple query or goodbye: whatever piece a stalled network cuts it at, the
    server is never left waiting half-way through a statement (where no timeout and no
    lease ends its session) while holding the lock. Checked on a run that waits for a
    lock long enough to ask the lock's session who holds it."""
    write_chain(tmp_path / "migrations", 2)
    schema = pg_session.fresh_schema()
    direct = config_for(f"{pg_url}?search_path={schema}", str(tmp_path / "migrations"))
    anyio.run(lambda: applier.migrate(direct, to=1))
    blocker = pg_session.fetchval("SELECT pg_backend_pid()")
    pg_session.execute("BEGIN")
    pg_session.execute("LOCK TABLE item IN ACCESS SHARE MODE")  # migration 002's ALTER TABLE waits for it
    config = dataclasses.replace(
        config_for(through(pg_url, proxy.port) + f"?search_path={schema}", str(tmp_path / "migrations")),
        statement_lock_timeout="1s", lock_retries=0)
    proxy.arm(None)
    try:
        with pytest.raises(DatabaseError) as refused:
            anyio.run(lambda: applier.migrate(config))
    finally:
        pg_session.execute("ROLLBACK")
    assert f"pid {blocker}" in str(refused.value)  # the lock's session was asked who blocks

    holder = next(number for number, data in proxy.sent if b"pg_try_advisory_lock" in data)
    pieces = [data for number, data in proxy.sent if number == holder]
    asked = next(i for i, data in enumerate(pieces) if b"pg_try_advisory_lock" in data)
    after_asking = pieces[asked + 1:]
    assert len(after_asking) >= 4, after_asking  # the lock, earlier runs, who blocks, the unlock
    unfinished = [data[:60] for data in after_asking if last_message_kinds(data)[-1] not in (b"S", b"Q", b"X")]
    assert unfinished == []

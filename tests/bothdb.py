"""A project's database on SQLite or PostgreSQL, for tests that run `mf` on both.

``database`` (a fixture: import it into the test module) gives a Database: the
environment that points mf at it (MF_DATABASE_URL, so copies of the project elsewhere
reach the same database), a query function, and a snapshot of its catalog and
ledger to compare before and after.
"""
from __future__ import annotations

import sqlite3

import pytest

import dbutil


class Database:
    def __init__(self, kind: str, env: dict, query, tables_sql: str, columns_sql: str):
        self.kind, self.env, self.query = kind, env, query
        self.tables_sql, self.columns_sql = tables_sql, columns_sql

    def tables(self) -> list:
        return [r[0] for r in self.query(self.tables_sql)]

    def columns(self, table: str) -> list:
        return [r[0] for r in self.query(self.columns_sql, table)]

    def ledger(self) -> list:
        if "mf_migrations" not in self.tables():
            return []
        return [r[0] for r in self.query("SELECT name FROM mf_migrations ORDER BY id")]

    def snapshot(self) -> dict:
        """Every table with its columns and row count, and the ledger's rows."""
        found = {table: (self.columns(table), self.query(f'SELECT count(*) FROM "{table}"')[0][0])
                 for table in self.tables()}
        if "mf_migrations" in found:
            found["ledger rows"] = self.query("SELECT name, checksum, state FROM mf_migrations ORDER BY id")
        return found


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, project) -> Database:
    if request.param == "sqlite":
        path = project.path / "dev.db"

        def query(sql, *args):
            if not path.exists():
                return []
            connection = sqlite3.connect(path)
            try:
                with connection:
                    return [tuple(r) for r in connection.execute(sql.replace("$1", "?"), args)]
            finally:
                connection.close()
        return Database("sqlite", {"MF_DATABASE_URL": f"sqlite:///{path}"}, query,
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                        "ORDER BY 1", "SELECT name FROM pragma_table_info($1) ORDER BY 1")

    url = request.getfixturevalue("pg_url")
    session = dbutil.PostgresSession(url)
    request.addfinalizer(session.close)
    schema = session.fresh_schema()
    scoped = url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"

    def query(sql, *args):
        session.execute(f"SET search_path TO {schema}")
        return [tuple(r) for r in session.fetch(sql, *args)]
    return Database("postgresql", {"MF_DATABASE_URL": scoped}, query,
                    f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' ORDER BY 1",
                    f"SELECT column_name FROM information_schema.columns WHERE table_schema = '{schema}' "
                    "AND table_name = $1 ORDER BY 1")

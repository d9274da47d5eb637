"""Rollback over random histories, through the real applier, on both databases.

For a random chain of schemas (the generators of test_dialect_sql), each step's
diff written as a migration file: migrating all, then rolling back to zero,
leaves only the ledger; rolling back k migrations leaves exactly the catalog a
straight migrate to that point makes; migrating again gives the catalog of a
straight migrate to the end. A few examples run by default (CI); set
MF_ROLLBACK_EXAMPLES for more.
"""
from __future__ import annotations

import os
import sqlite3
import tempfile

import anyio
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import dbutil
from mfcore import applier
from mfcore.config import config_for
from mfcore.differ import diff
from mfcore.errors import MfError
from mfcore.language.parser import parse
from mfcore.schema import Schema
from mfcore.store import suffix_for, write_migration
from test_dialect_postgresql import catalog as postgres_catalog
from test_dialect_sql import KEYS, changed_specs, models_text, schema_specs
from test_dialect_sqlite import sqlite_catalog

EXAMPLES = int(os.environ.get("MF_ROLLBACK_EXAMPLES", "12"))


@st.composite
def histories(draw):
    """models.mp texts, one per migration: a schema, then one or two changes of it."""
    spec = draw(schema_specs(KEYS))
    texts = [models_text(spec)]
    for _ in range(draw(st.integers(1, 2))):
        spec = draw(changed_specs(spec, KEYS))
        texts.append(models_text(spec))
    return texts


def write_history(directory: str, texts) -> int:
    """One migration file per text (the differ's operations); how many were written."""
    old = Schema()
    number = 0
    for text in texts:
        new = parse(text)
        try:
            operations = diff(old, new)
        except MfError:  # a change the differ refuses (it asks for a default, say)
            assume(False)
        if operations:
            number += 1
            write_migration(directory, number, suffix_for(operations), operations)
        old = new
    assume(number >= 2)
    return number


def check_history(dsn: str, directory: str, count: int, k: int, read_catalog) -> None:
    config = config_for(dsn, directory)
    at = {}
    for level in range(1, count + 1):
        anyio.run(lambda: applier.migrate(config, to=level))
        at[level] = read_catalog()
    full = at[count]
    anyio.run(lambda: applier.rollback(config, to=0, allow_data_loss=True))
    assert read_catalog() == read_catalog.empty
    assert anyio.run(lambda: applier.status(config)) and not any(
        s.applied for s in anyio.run(lambda: applier.status(config)))
    anyio.run(lambda: applier.migrate(config))
    assert read_catalog() == full
    undone = anyio.run(lambda: applier.rollback(config, count=k, allow_data_loss=True))
    assert len(undone) == k
    assert read_catalog() == (at[count - k] if count > k else read_catalog.empty)
    anyio.run(lambda: applier.migrate(config))
    assert read_catalog() == full


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts=histories(), data=st.data())
def test_rollback_on_sqlite_returns_to_each_point_of_a_random_history(texts, data):
    with tempfile.TemporaryDirectory() as directory:
        migrations = os.path.join(directory, "migrations")
        os.mkdir(migrations)
        count = write_history(migrations, texts)
        k = data.draw(st.integers(1, count))
        path = os.path.join(directory, "app.db")

        def read_catalog():
            connection = sqlite3.connect(path)
            try:
                return sqlite_catalog(connection)
            finally:
                connection.close()
        read_catalog.empty = {}
        check_history(path, migrations, count, k, read_catalog)


@pytest.fixture(scope="module")
def session():
    with dbutil.temporary_postgres_database("mf_rollback_history") as url:
        connection = dbutil.PostgresSession(url)
        try:
            yield connection
        finally:
            connection.close()


@settings(max_examples=max(EXAMPLES * 2 // 3, 1), deadline=None, suppress_health_check=list(HealthCheck))
@given(texts=histories(), data=st.data())
def test_rollback_on_postgresql_returns_to_each_point_of_a_random_history(session, texts, data):
    with tempfile.TemporaryDirectory() as migrations:
        count = write_history(migrations, texts)
        k = data.draw(st.integers(1, count))
        schema = session.fresh_schema()

        def read_catalog():
            session.execute(f'SET search_path TO "{schema}"')
            return postgres_catalog(session)
        read_catalog.empty = {"tables": {}, "enums": {}}
        try:
            check_history(f"{session.url}?search_path={schema}", migrations, count, k, read_catalog)
        finally:
            session.drop_schema()

"""The fold check: a database migrated step by step equals one made from the last models.mp.

    history = Stepwise(database)                    # a project folder and an empty database
    history.step(models_v1)                         # makemigrations (API) + migrate (applier)
    history.insert_rows()                           # one row in every table
    history.step(models_v2, model_renames={"Old": "New"}, field_renames={("New", "a"): "b"})
    fresh = Stepwise(other_database); fresh.step(models_v2)
    assert catalog(history.database) == catalog(fresh.database)

``catalog`` reads everything a name can collide on, names included. PostgreSQL:
tables, columns (type, nullability, default), constraints with their names and
definitions, indexes with their names and definitions, sequences, enum types.
SQLite: sqlite_master's SQL, whitespace normalised. Column position is left out on
both: moving a field in models.mp is no change to migrate (schema.py), so a column
added later sits last in the stepwise table whatever its place in models.mp.
"""
from __future__ import annotations

import functools
import re
import sqlite3
import uuid
from pathlib import Path
from typing import Optional

import anyio

from mfcore.api import makemigrations, migrate
from mfcore.config import config_for
from mfcore.language.parser import parse
from mfcore.questioner import AnswerQuestioner


def run(function, *args, **kwargs):
    return anyio.run(functools.partial(function, *args, **kwargs))


class Database:
    """An empty database: a SQLite file, or a schema of its own in a PostgreSQL database."""

    def __init__(self, driver: str, dsn: str, session=None, schema: Optional[str] = None):
        self.driver, self.dsn, self.session, self.schema = driver, dsn, session, schema

    @classmethod
    def sqlite(cls, path: Path) -> "Database":
        return cls("sqlite", str(path))

    @classmethod
    def postgresql(cls, url: str, session) -> "Database":
        schema = f"o_{uuid.uuid4().hex[:10]}"
        session.execute(f'CREATE SCHEMA "{schema}"')
        return cls("postgresql", f"{url}?search_path={schema}", session, schema)

    def drop(self) -> None:
        if self.session is not None:
            self.session.execute(f'DROP SCHEMA "{self.schema}" CASCADE')  # test cleanup only
            self.schema_changed()

    def schema_changed(self) -> None:
        """asyncpg caches statements and types by their text: forget them after a migration."""
        if self.session is not None:
            self.session.loop.run_until_complete(self.session.connection.reload_schema_state())

    def fetch(self, sql: str, *args) -> list:
        if self.driver == "sqlite":
            connection = sqlite3.connect(self.dsn, isolation_level=None)
            try:
                return connection.execute(sql, args).fetchall()
            finally:
                connection.close()
        self.session.execute(f'SET search_path TO "{self.schema}"')
        return self.session.fetch(sql, *args)

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def insert(self, table: str, values: dict, key: str) -> object:
        """Insert one row; the value of its primary key column."""
        columns = ", ".join(self.quote(c) for c in values)
        marks = ", ".join("?" if self.driver == "sqlite" else f"${i}" for i in range(1, len(values) + 1))
        sql = f"INSERT INTO {self.quote(table)} ({columns}) VALUES ({marks}) RETURNING {self.quote(key)}"
        if not values:
            sql = f"INSERT INTO {self.quote(table)} DEFAULT VALUES RETURNING {self.quote(key)}"
        return self.fetch(sql, *values.values())[0][0]


class Stepwise:
    """A project whose models.mp goes through versions, migrated after each."""

    def __init__(self, database: Database, root: Path):
        self.database = database
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.config = config_for(database.dsn, str(root / "migrations"), models_path=str(root / "models.mp"))
        self.schema = None

    def make(self, models: str, model_renames=None, field_renames=None):
        """Write models.mp and run makemigrations, answering the rename questions as given."""
        (self.root / "models.mp").write_text(models)
        return makemigrations(self.config, questioner=AnswerQuestioner(field_renames, model_renames))

    def step(self, models: str, model_renames=None, field_renames=None):
        result = self.make(models, model_renames, field_renames)
        run(migrate, self.config)
        self.database.schema_changed()
        self.schema = parse(models)
        return result

    def insert_rows(self, tag: int) -> dict:
        """One row in every table; {model: (key, {field: value})} of what was written."""
        written = {}
        for name in sorted(self.schema.models):
            model = self.schema.models[name]
            values = {}
            for f in model.fields:
                if f.primary_key:
                    continue
                value = sample_value(f, tag, written, self.schema)
                if value is not None:
                    values[f.name] = value
            key = model.primary_key
            row_key = self.database.insert(model.table, {model.column_of(n): v for n, v in values.items()},
                                           key.column)
            written[name] = (row_key, values)
        return written

    def row(self, model_name: str, key) -> Optional[dict]:
        """The row with this primary key, by field name, or None."""
        model = self.schema.models[model_name]
        q = self.database.quote
        columns = ", ".join(q(f.column) for f in model.fields)
        mark = "?" if self.database.driver == "sqlite" else "$1"
        found = self.database.fetch(f"SELECT {columns} FROM {q(model.table)}"
                                    f" WHERE {q(model.primary_key.column)} = {mark}", key)
        if not found:
            return None
        return {f.name: normal(v) for f, v in zip(model.fields, found[0])}


def sample_value(f, tag: int, written: dict, schema):
    """A value for a field: distinct per tag (unique columns), a key of a row written
    just before for a foreign key, None where the field may be left to its default."""
    if f.target is not None:
        target = written.get(f.target)
        return target[0] if target is not None else None
    if f.type in ("IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField"):
        return 100 + tag
    if f.type == "CharField":
        return f"v{tag}"
    if f.type == "TextField":
        return f"text {tag}"
    if f.type == "BooleanField":
        return tag % 2 == 0
    if f.type == "EnumField":
        values = schema.enums[f.enum].values
        return values[tag % len(values)]
    return None


def normal(value):
    if isinstance(value, bool):
        return int(value)
    return value


# ---------------------------------------------------------------- catalogs

_SPACE = re.compile(r"\s+")
_AROUND = re.compile(r"\s*([(),])\s*")


def squeeze(sql: str) -> str:
    return _AROUND.sub(r"\1", _SPACE.sub(" ", sql.strip()))


def catalog(database: Database) -> dict:
    if database.driver == "sqlite":
        return _sqlite_catalog(database)
    return _postgresql_catalog(database)


def _split_definitions(body: str) -> list:
    """The comma-separated parts of a CREATE TABLE body, outside parentheses and quotes."""
    parts, depth, current, quote = [], 0, [], None
    for ch in body:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def _sqlite_catalog(database: Database) -> dict:
    found = {}
    for kind, name, table, sql in database.fetch(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"
            " WHERE name NOT LIKE 'sqlite_%' AND tbl_name != 'mf_migrations'"):
        text = squeeze(sql or "")
        if kind == "table":
            head, _, body = text.partition("(")
            # Column position is not compared (see the module docstring): the parts sorted.
            text = (head, tuple(sorted(_split_definitions(body[:-1]))))
        found[(kind, name)] = (table, text)
    return found


def _postgresql_catalog(database: Database) -> dict:
    schema = database.schema

    def rows(sql):
        return sorted(tuple(str(v).replace(f'"{schema}".', "").replace(f"{schema}.", "") for v in r)
                      for r in database.fetch(sql, schema))

    return {
        "tables": rows("SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                       " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v') AND c.relname != 'mf_migrations'"),
        "columns": rows("SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
                        " coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity"
                        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                        " WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped"
                        " AND c.relname != 'mf_migrations'"),
        "constraints": rows("SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)"
                            " FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
                            " JOIN pg_namespace n ON n.oid = c.relnamespace"
                            " WHERE n.nspname = $1 AND c.relname != 'mf_migrations'"),
        "indexes": rows("SELECT tablename, indexname, indexdef FROM pg_indexes"
                        " WHERE schemaname = $1 AND tablename != 'mf_migrations'"),
        "sequences": rows("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                          " WHERE n.nspname = $1 AND c.relkind = 'S' AND c.relname NOT LIKE 'mf_migrations%'"),
        "types": rows("SELECT t.typname, t.typtype, coalesce(string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder), '')"
                      " FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
                      " LEFT JOIN pg_enum e ON e.enumtypid = t.oid"
                      " WHERE n.nspname = $1 AND t.typtype = 'e' GROUP BY t.typname, t.typtype"),
    }


def differences(stepwise: dict, fresh: dict) -> list:
    """Readable differences between two catalogs (empty when equal)."""
    lines = []
    for key in sorted(set(stepwise) | set(fresh), key=str):
        a, b = stepwise.get(key), fresh.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            lines += [f"{key}: stepwise only {r}" for r in a if r not in b]
            lines += [f"{key}: fresh only {r}" for r in b if r not in a]
        else:
            lines.append(f"{key}: stepwise {a!r} != fresh {b!r}")
    return lines

"""Before mf records migrations as applied to a database it did not migrate itself
(SPEC §6.2, and projects carried over from the earlier single-plan format), it reads
the database's own catalog and compares it with what those migrations create.

Mismatches that make the database unusable as the migrations describe it stop the
adoption, each named with its table and column: a table that is missing, a foreign
key that points to a table that does not exist or to another table than the models
say, an enum column whose default its own values reject (the earlier tool stored
'OrderStatus.PENDING'). Lesser differences (a column the database lacks or has in
addition) are reported as warnings and the adoption goes on: those are the kind a
following migration or a manual fix settles, and the rows are never touched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .schema import Schema


@dataclass
class TableInfo:
    columns: dict = field(default_factory=dict)       # column -> default as SQL text, or None
    foreign_keys: list = field(default_factory=list)  # (column, referenced table, referenced column)


@dataclass
class Findings:
    blocking: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


async def read_catalog(connection, tables) -> dict:
    """TableInfo for each of ``tables`` that exists, read from the database's catalog."""
    if connection.driver == "sqlite":
        return await _read_sqlite(connection, tables)
    return await _read_postgres(connection, tables)


async def _read_sqlite(connection, tables) -> dict:
    existing = {r[0] for r in await connection.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")}
    found = {}
    for table in sorted(set(tables) & existing):
        quoted = "'" + table.replace("'", "''") + "'"
        info = TableInfo()
        for row in await connection.fetch(f"SELECT name, dflt_value FROM pragma_table_xinfo({quoted})"):
            info.columns[row[0]] = row[1]
        for row in await connection.fetch(f'SELECT "from", "table", "to" FROM pragma_foreign_key_list({quoted})'):
            info.foreign_keys.append((row[0], row[1], row[2]))
        found[table] = info
    return found


async def _read_postgres(connection, tables) -> dict:
    names = sorted(tables)
    rows = await connection.fetch(
        "SELECT c.table_name, c.column_name, c.column_default FROM information_schema.columns c "
        "WHERE c.table_schema = ANY(current_schemas(false)) AND c.table_name = ANY($1::text[])", (names,))
    found: dict = {}
    for table, column, default in rows:
        found.setdefault(table, TableInfo()).columns[column] = default
    keys = await connection.fetch(
        "SELECT src.relname, a.attname, dst.relname, b.attname FROM pg_constraint k "
        "JOIN pg_class src ON src.oid = k.conrelid JOIN pg_class dst ON dst.oid = k.confrelid "
        "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] "
        "JOIN pg_attribute b ON b.attrelid = k.confrelid AND b.attnum = k.confkey[1] "
        "WHERE k.contype = 'f' AND src.relname = ANY($1::text[])", (names,))
    for table, column, target, target_column in keys:
        if table in found:
            found[table].foreign_keys.append((column, target, target_column))
    return found


def default_text(sql):
    """The string inside a default as a catalog shows it ('ADMIN', 'ADMIN'::userrole), or None."""
    if sql is None:
        return None
    text = str(sql).strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if not text.startswith("'"):
        return None
    end = 1
    value = []
    while end < len(text):
        if text[end] == "'":
            if end + 1 < len(text) and text[end + 1] == "'":
                value.append("'")
                end += 2
                continue
            return "".join(value)
        value.append(text[end])
        end += 1
    return None


def compare(schema: Schema, catalog: dict) -> Findings:
    """What in the database disagrees with ``schema`` (the schema the migrations build)."""
    findings = Findings()
    tables = {model.table: model for model in schema.models.values()}
    for table, model in sorted(tables.items()):
        info = catalog.get(table)
        if info is None:
            findings.blocking.append(f"table {table} (model {model.name}) does not exist in the database")
            continue
        keys = {column: (target, target_column) for column, target, target_column in info.foreign_keys}
        for f in model.fields:
            where = f"{table}.{f.column}"
            if f.column not in info.columns:
                findings.warnings.append(f"column {where} is in the migrations but not in the database")
                continue
            if f.target is not None:
                target = schema.models.get(f.target)
                expected = target.table if target is not None else None
                actual = keys.get(f.column)
                if actual is not None and actual[0] not in catalog and actual[0] != expected:
                    findings.blocking.append(
                        f"column {where} references table {actual[0]}, which does not exist "
                        f"(model {f.target}'s table is {expected})")
                elif actual is not None and actual[0] != expected:
                    findings.blocking.append(
                        f"column {where} references table {actual[0]}, but model {f.target}'s table is {expected}")
            if f.enum is not None and f.enum in schema.enums:
                stored = default_text(info.columns[f.column])
                values = schema.enums[f.enum].values
                if stored is not None and stored not in values:
                    findings.blocking.append(
                        f"column {where} defaults to '{stored}', which its own enum {f.enum} rejects "
                        f"(values: {', '.join(values)})")
        known = {f.column for f in model.fields}
        for column in sorted(set(info.columns) - known):
            findings.warnings.append(f"column {table}.{column} is in the database but not in the migrations")
    return findings


def report(migration_count: int, findings: Findings) -> str:
    """The DriftError message: every blocking mismatch on a line of its own."""
    lines = [f"this database has no mf_migrations ledger, and it does not match what the "
             f"{migration_count} migration(s) to adopt create, so mf will not record them as applied:"]
    lines += [f"  - {item}" for item in findings.blocking]
    lines += [f"  - (also) {item}" for item in findings.warnings]
    lines.append("Nothing was changed. Fix these in the database, or point mf at a fresh database "
                 "(it will then apply every migration), and run migrate again.")
    return "\n".join(lines)


def warning_lines(findings: Findings) -> list:
    if not findings.warnings:
        return []
    return ["Adopted a database made by the earlier tool; it differs from the migrations in ways "
            "mf leaves to you:"] + [f"  - {item}" for item in findings.warnings]

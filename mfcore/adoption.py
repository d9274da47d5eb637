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

from .dialects.catalog import Catalog
from .schema import Schema


@dataclass
class Findings:
    blocking: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


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


def compare(schema: Schema, catalog: Catalog) -> Findings:
    """What in the database disagrees with ``schema`` (the schema the migrations build);
    ``catalog`` holds the tables of the schema that exist (the dialect's read_catalog)."""
    findings = Findings()
    tables = {model.table: model for model in schema.models.values()}
    for table, model in sorted(tables.items()):
        info = catalog.tables.get(table)
        if info is None:
            findings.blocking.append(f"table {table} (model {model.name}) does not exist in the database")
            continue
        keys = {key.columns[0]: (key.target, key.target_columns[0]) for key in info.foreign_keys}
        for f in model.fields:
            where = f"{table}.{f.column}"
            if f.column not in info.columns:
                findings.warnings.append(f"column {where} is in the migrations but not in the database")
                continue
            if f.target is not None:
                target = schema.models.get(f.target)
                expected = target.table if target is not None else None
                actual = keys.get(f.column)
                if actual is not None and actual[0] not in catalog.tables and actual[0] != expected:
                    findings.blocking.append(
                        f"column {where} references table {actual[0]}, which does not exist "
                        f"(model {f.target}'s table is {expected})")
                elif actual is not None and actual[0] != expected:
                    findings.blocking.append(
                        f"column {where} references table {actual[0]}, but model {f.target}'s table is {expected}")
            if f.enum is not None and f.enum in schema.enums:
                stored = default_text(info.columns[f.column].default)
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

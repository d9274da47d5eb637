"""Before mf records migrations as applied to a database it did not migrate itself
(SPEC §6.2, projects carried over from the earlier single-plan format, and a database
whose ledger was emptied), it compares the database with what those migrations
create: the same comparison as ``mf db drift`` (drift_check.py), the live catalog
against the catalog mf's own SQL gives the schema the migrations fold into, so a
mismatch reads as it does there.

Mismatches that make the database unusable as the migrations describe it stop the
adoption, each on its drift line (Difference.breaks): a table or enum type that is
missing, a foreign key that points to another table than the models say, an enum
column whose default its own values reject (the earlier tool stored
'OrderStatus.PENDING'). Lesser differences (a column the database lacks or has in
addition, a type spelt otherwise) are reported as warnings and the adoption goes
on: those are the kind a following migration or a manual fix settles, and the rows
are never touched. Tables and types no migration creates are not looked at.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .schema import Schema


@dataclass
class Findings:
    blocking: list = field(default_factory=list)   # drift lines that stop the adoption
    warnings: list = field(default_factory=list)   # drift lines reported, adoption goes on


async def compare_with_database(config, connection, dialect, schema: Schema) -> Findings:
    """What in the database on ``connection`` disagrees with ``schema`` (the schema the
    migrations to adopt build), as drift lines. Only the schema's tables and types are
    read; ``config`` opens the connection the expected catalog is built on."""
    from .drift_check import compare_catalogs, expected_catalog

    tables = {model.table for model in schema.models.values()}
    actual = await dialect.read_catalog(connection, tables)
    expected = await expected_catalog(config, dialect, schema)
    differences, _unmanaged = compare_catalogs(dialect, actual, expected, owned_tables=tables)
    findings = Findings()
    for difference in differences:
        (findings.blocking if difference.breaks else findings.warnings).append(difference.describe())
    return findings


def report(migration_count: int, findings: Findings) -> str:
    """The DriftError message: every blocking mismatch on a line of its own."""
    lines = [f"this database has no mf_migrations ledger, and it does not match what the "
             f"{migration_count} migration(s) to adopt create, so mf will not record them as applied:"]
    lines += [f"  {item}" for item in findings.blocking]
    lines += [f"  {item} (also)" for item in findings.warnings]
    lines.append("Nothing was changed. Fix these in the database, or point mf at a fresh database "
                 "(it will then apply every migration), and run migrate again.")
    return "\n".join(lines)


def warning_lines(findings: Findings) -> list:
    if not findings.warnings:
        return []
    return ["Adopted a database made by the earlier tool; it differs from the migrations in ways "
            "mf leaves to you:"] + [f"  {item}" for item in findings.warnings]

"""The API is the only door: every `mf db` command is a function of mfcore.api first,
and the CLI reaches mf through nothing else."""
from __future__ import annotations

import ast
import json
import sqlite3
from pathlib import Path

import anyio
import pytest

import mfcore
from mfcore import api
from mfcore.errors import DriftError, MigrationFileError, ResolveError
from seed import SEED, WITH_PHONE

CLI = Path(mfcore.__file__).with_name("cli.py")


def sqlite_tables(path: Path) -> set:
    with sqlite3.connect(path) as connection:
        return {r[0] for r in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}


def test_a_project_from_first_migration_to_reset_through_the_api_alone(project):
    config = api.resolve_config(project.path / "language_config.yaml")
    project.write_models(SEED)
    assert mfcore.makemigrations(config).file_name == "001_enum_invoicestatus_enum_userrole.json"
    project.write_models(WITH_PHONE)
    assert mfcore.makemigrations(config).file_name == "002_add_phone.json"

    pending = anyio.run(lambda: mfcore.pending_sql(config, to=1))
    assert [name for name, _sql in pending] == ["001_enum_invoicestatus_enum_userrole.json"]
    assert not (project.path / "dev.db").exists()  # a dry run creates nothing
    name, statements = mfcore.sql(config, 2)
    assert name == "002_add_phone.json" and any('"phone"' in s for s in statements)
    with pytest.raises(MigrationFileError, match="no migration numbered 007"):
        mfcore.sql(config, 7)

    assert anyio.run(lambda: mfcore.migrate(config, to=1)) == ["001_enum_invoicestatus_enum_userrole.json"]
    records = anyio.run(lambda: mfcore.status(config))
    assert [(r.name, r.applied, r.state) for r in records] == [
        ("001_enum_invoicestatus_enum_userrole.json", True, "applied"), ("002_add_phone.json", False, "pending")]
    assert anyio.run(lambda: mfcore.migrate(config)) == ["002_add_phone.json"]
    with pytest.raises(ResolveError, match="002_add_phone.json is applied, not unresolved"):
        anyio.run(lambda: mfcore.resolve(config, 2, applied=True))

    result = anyio.run(lambda: mfcore.reset(config, drop_database=True))
    assert "table lt_invoices" in result.dropped and "table lt_customers" in result.dropped
    assert sorted(result.removed) == [".applied", "001_enum_invoicestatus_enum_userrole.json",
                                      "002_add_phone.json", "schema.json"]
    assert project.migration_names() == [] and sorted(p.name for p in project.migrations.iterdir()) == []
    assert sqlite_tables(project.path / "dev.db") == set()


def test_reset_without_dropping_keeps_the_database(project):
    config = api.resolve_config(project.path / "language_config.yaml")
    project.write_models(SEED)
    mfcore.makemigrations(config)
    anyio.run(lambda: mfcore.migrate(config))

    result = anyio.run(lambda: mfcore.reset(config))
    assert result.dropped == [] and "schema.json" in result.removed
    assert {"lt_customers", "lt_invoices", "mf_migrations"} <= sqlite_tables(project.path / "dev.db")
    # Nothing left to remove: a second reset removes nothing and does not fail.
    assert anyio.run(lambda: mfcore.reset(config)).removed == []


def test_carry_over_is_a_step_of_its_own_and_happens_once(compat):
    app = compat("customer_app")
    config = api.resolve_config(app.path / "language_config.yaml")
    notices: list = []

    assert anyio.run(lambda: mfcore.carry_over(config, notices=notices)) == ["001_create_user.json"]
    assert len(notices) == 1 and notices[0].startswith("Carried this project over")
    assert app.migration_names() == ["001_create_user.json"]
    assert json.loads((app.migrations / ".applied").read_text()) == {"applied": ["001_create_user.json"]}
    assert (app.migrations / ".plans-carried-over" / "plan.initial.json").is_file()
    assert "mf_migrations" not in sqlite_tables(app.path / "customers.db")  # carrying over applies nothing

    assert anyio.run(lambda: mfcore.carry_over(config, notices=notices)) == []
    assert len(notices) == 1
    assert anyio.run(lambda: mfcore.migrate(config)) == []  # the database has the table: adopted
    assert "mf_migrations" in sqlite_tables(app.path / "customers.db")


def test_carry_over_converts_nothing_for_a_database_it_cannot_adopt(compat):
    demo = compat("orm_demo")
    config = api.resolve_config(demo.path / "language_config.yaml", dsn="sqlite:///" + str(demo.path / "demo.db"))
    before = demo.state()

    with pytest.raises(DriftError, match=r"\[~\] foreign key orders.user: -> user\(id\)"):
        anyio.run(lambda: mfcore.carry_over(config))
    assert demo.state() == before


def test_the_cli_reaches_mf_only_through_the_api():
    imported = set()
    for node in ast.walk(ast.parse(CLI.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            imported |= {node.module} if node.module else {alias.name for alias in node.names}
    assert imported <= {"api", "errors", "__version__"}, imported

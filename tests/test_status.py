"""What status, migrate and `await migrate()` say about the state of a project, on both
databases: `mf db status --check` in every state (0 applied and intact, 1 pending or
models.mp changed without a migration, 2 integrity problems), models.mp edits that no
migration holds, and a database that is ahead of older code."""
from __future__ import annotations

import json
import logging
import shutil

import anyio
import pytest

import mfcore
from bothdb import database  # noqa: F401 - the fixture
from mfcore import api
from seed import SEED, WITH_DISCOUNT, WITH_PHONE

WITH_NOTE = WITH_DISCOUNT.replace("    is_active = BooleanField(default=true)\n",
                                  "    is_active = BooleanField(default=true)\n    note = TextField(null=true)\n")
WITH_SKU = WITH_NOTE.replace("    status = EnumField(InvoiceStatus, default=InvoiceStatus.DRAFT)\n",
                             "    status = EnumField(InvoiceStatus, default=InvoiceStatus.DRAFT)\n"
                             "    sku = CharField(30, null=true)\n")
WITH_SEEN = WITH_SKU.replace("    note = TextField(null=true)\n",
                             "    note = TextField(null=true)\n    seen_at = DateTimeField(null=true)\n")
HISTORY = [SEED, WITH_PHONE, WITH_DISCOUNT, WITH_NOTE, WITH_SKU, WITH_SEEN]  # 001 .. 006


def grow(project, *texts):
    for text in texts:
        project.write_models(text)
        made = project.run("db", "makemigrations")
        assert made.code == 0, made


def check(project, env):
    result = project.run("db", "status", "--check", env=env)
    document = json.loads(project.run("db", "status", "--check", "--json", env=env).out)
    return result, document


# ---------------------------------------------------------------- status --check, state by state

def test_status_check_exits_0_only_when_all_is_applied_and_intact(project, database):
    env = database.env
    grow(project, SEED, WITH_PHONE)
    pending, document = check(project, env)
    assert pending.code == 1, pending
    assert "2 pending." in pending.out and "Up to date." not in pending.out
    assert document["check"] == 1 and len(document["pending"]) == 2 and document["up_to_date"] is False

    assert project.run("db", "migrate", env=env).code == 0
    clean, document = check(project, env)
    assert (clean.code, clean.out.splitlines()[-1]) == (0, "Up to date."), clean
    assert document == dict(document, check=0, pending=[], problems=[], ahead=[], models_changed=None,
                            notices=[], up_to_date=True)
    # Without --check, status reports and exits 0 whatever it found.
    grow(project, WITH_DISCOUNT)
    assert project.run("db", "status", env=env).code == 0
    assert check(project, env)[0].code == 1


def test_an_edited_applied_file_is_exit_2_and_never_up_to_date(project, database):
    env = database.env
    grow(project, SEED, WITH_PHONE)
    assert project.run("db", "migrate", env=env).code == 0
    edited = project.migrations / "002_add_phone.json"
    edited.write_text(edited.read_text().replace('"max_length": 20', '"max_length": 21'))
    result, document = check(project, env)
    assert result.code == 2, result
    assert "⚠ the file was edited after it was applied" in result.out
    assert "Up to date." not in result.out and "refuses to run" in result.out
    assert document["check"] == 2 and document["problems"] == [
        "002_add_phone.json: the file was edited after it was applied"]
    assert project.run("db", "migrate", env=env).code == 2  # what status --check predicted


def test_a_missing_file_in_the_middle_is_exit_2(project, database):
    env = database.env
    grow(project, SEED, WITH_PHONE, WITH_DISCOUNT)
    assert project.run("db", "migrate", env=env).code == 0
    (project.migrations / "002_add_phone.json").unlink()
    result, document = check(project, env)
    assert result.code == 2 and "⚠ the file is missing" in result.out and "Up to date." not in result.out
    assert [m["state"] for m in document["migrations"]] == ["applied", "applied", "missing"]


def test_a_pending_file_below_the_newest_applied_that_cannot_run_there_is_exit_2(project, database):
    env = database.env
    grow(project, SEED, WITH_PHONE, WITH_PHONE.replace("max_length=20", "max_length=30"))
    assert project.run("db", "migrate", env=env).code == 0
    # As if 002 came from a branch merged after 003 (which changes the same field) was applied.
    database.query("DELETE FROM mf_migrations WHERE name = '002_add_phone.json'")
    result, document = check(project, env)
    assert result.code == 2, result
    assert ("[ ] 002_add_phone.json  ⚠ not applied, numbered below the newest applied migration, and it cannot "
            "run there") in result.out
    assert document["pending"] == [] and [m["state"] for m in document["migrations"]][1] == "out_of_order"
    assert project.run("db", "migrate", env=env).code == 2


def test_an_unresolved_non_atomic_migration_is_exit_2(project, database):
    env = database.env
    grow(project, SEED)
    assert project.run("db", "migrate", env=env).code == 0
    database.query("UPDATE mf_migrations SET state = 'started'")
    result, document = check(project, env)
    assert result.code == 2 and "mf db resolve" in result.out, result
    assert document["check"] == 2


# ---------------------------------------------------------------- models.mp changed, no migration

def test_forgotten_makemigrations_is_reported_by_migrate_and_status(project, database):
    env = database.env
    grow(project, SEED)
    assert project.run("db", "migrate", env=env).code == 0
    project.write_models(WITH_PHONE)  # ... and no makemigrations
    migrate = project.run("db", "migrate", env=env)
    assert migrate.code == 0, migrate
    assert "No unapplied migrations." in migrate.out
    assert "⚠ models.mp has changes that no migration holds (Add field phone to Customer" in migrate.out
    assert "run `mf db makemigrations`" in migrate.out
    as_json = json.loads(project.run("db", "migrate", "--json", env=env).out)
    assert as_json["applied"] == [] and as_json["models_changed"].startswith("models.mp has changes")
    assert as_json["warnings"] == [as_json["models_changed"] + "."]

    result, document = check(project, env)
    assert result.code == 1, result
    assert "Up to date." not in result.out and "⚠ models.mp has changes that no migration holds" in result.out
    assert document["pending"] == [] and document["models_changed"].startswith("models.mp has changes")

    grow(project, WITH_PHONE)  # the migration is written: pending now, and models.mp agrees
    result, document = check(project, env)
    assert result.code == 1 and document["models_changed"] is None and len(document["pending"]) == 1


def test_edits_that_change_no_model_are_not_reported(project, database):
    env = database.env
    grow(project, SEED)
    assert project.run("db", "migrate", env=env).code == 0
    customer, _rest = SEED.split("model Invoice", 1)
    cosmetic = ("// the shop's models\n\n" + "model Invoice" + _rest.replace("    ", "\t") + "\n\n"
                + customer.replace("CharField(120)", "CharField(max_length=120)   # full name"))
    project.write_models(cosmetic)
    migrate = project.run("db", "migrate", env=env)
    assert (migrate.code, migrate.out) == (0, "No unapplied migrations.\n"), migrate
    assert check(project, env)[0].code == 0


def test_migrate_api_warns_through_logging_and_returns_the_notice(project, database, caplog, monkeypatch):
    monkeypatch.setenv("MF_DATABASE_URL", database.env["MF_DATABASE_URL"])
    config = api.resolve_config(project.path / "language_config.yaml")
    project.write_models(SEED)
    mfcore.makemigrations(config)
    with caplog.at_level(logging.INFO, logger="mfcore"):
        applied = anyio.run(lambda: mfcore.migrate(config))
    assert applied == ["001_enum_invoicestatus_enum_userrole.json"] and applied.models_changed is None
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "mfcore"] == [
        ("INFO", "applied 001_enum_invoicestatus_enum_userrole.json")]

    caplog.clear()
    project.write_models(WITH_PHONE)
    with caplog.at_level(logging.INFO, logger="mfcore"):
        result = anyio.run(lambda: mfcore.migrate(config))
    assert result == [] and "models.mp has changes that no migration holds (Add field phone" in result.models_changed
    assert result.notices == [result.models_changed + "."] == result.warnings
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "mfcore"]
    assert [(r.name, r.getMessage()) for r in warnings] == [("mfcore", result.models_changed + ".")]


def test_agreeing_digests_are_decided_without_parsing(project, monkeypatch):
    """schema.json records the digest of the models.mp it was made from; while models.mp
    has that digest, nothing parses it (the no-op migrate stays fast)."""
    import hashlib

    from mfcore.language import parser
    from mfcore.unmigrated import unmigrated_changes

    grow(project, SEED)
    snapshot = json.loads((project.migrations / "schema.json").read_text())
    assert snapshot["made_from"] == "sha256:" + hashlib.sha256(SEED.encode()).hexdigest()
    config = api.resolve_config(project.path / "language_config.yaml")

    def refuse(*_args, **_kwargs):
        raise AssertionError("models.mp was parsed")
    monkeypatch.setattr(parser, "parse_bytes", refuse)
    assert unmigrated_changes(config) is None
    project.write_models(SEED + "\n")  # another digest: now it must parse to tell
    with pytest.raises(AssertionError, match="was parsed"):
        unmigrated_changes(config)


def test_a_snapshot_without_the_digest_stays_valid(project, database):
    """schema.json written by an earlier mf has no "made_from": everything reads it, and
    the models are compared by reading models.mp."""
    env = database.env
    grow(project, SEED)
    path = project.migrations / "schema.json"
    document = json.loads(path.read_text())
    del document["made_from"]
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    migrate = project.run("db", "migrate", env=env)
    assert migrate.code == 0 and "⚠" not in migrate.out, migrate
    assert check(project, env)[0].code == 0
    project.write_models(WITH_PHONE)
    assert check(project, env)[0].code == 1
    grow(project, WITH_PHONE)  # the next makemigrations records the digest again
    assert "made_from" in json.loads(path.read_text())


def test_a_models_file_that_does_not_read_is_reported_not_fatal(project, database):
    env = database.env
    grow(project, SEED)
    project.write_models(SEED.replace("CharField(120)", "Charfield(120)"))
    migrate = project.run("db", "migrate", env=env)
    assert migrate.code == 0, migrate
    assert "Applied 1 migration(s)" in migrate.out
    assert "models.mp differs from what the migrations were made from and does not read (1 error)" in migrate.out
    assert check(project, env)[0].code == 1


# ---------------------------------------------------------------- the database ahead of older code

@pytest.fixture
def ahead(project, database, tmp_path):
    """An older copy of the project (files end at 005) and a database at 006, applied
    from the newer project."""
    grow(project, *HISTORY[:5])
    older = tmp_path / "older"
    shutil.copytree(project.path, older)
    grow(project, HISTORY[5])
    migrated = project.run("db", "migrate", env=database.env)
    assert migrated.code == 0 and "006_add_seen_at.json" in migrated.out, migrated
    return type(project)(older)


def test_older_code_beside_a_newer_database_applies_nothing_and_says_so(ahead, database):
    before = database.snapshot()
    assert [name[:3] for name in database.ledger()] == ["001", "002", "003", "004", "005", "006"]
    files_before = ahead.state()

    result = ahead.run("db", "migrate", env=database.env)
    assert result.code == 0, result
    assert "No unapplied migrations." in result.out
    assert ("⚠ The database is ahead of these migration files: 006_add_seen_at.json was applied by newer "
            "code (the files here end at 005_add_sku.json); nothing here is left to apply.") in result.out
    assert database.snapshot() == before
    assert {k: v for k, v in ahead.state().items() if not k.endswith(".applied")} == \
        {k: v for k, v in files_before.items() if not k.endswith(".applied")}

    status, document = check(ahead, database.env)
    assert status.code == 0, status
    assert "[X] 006_add_seen_at.json" in status.out and "the database is ahead of these files" in status.out
    assert "Up to date." not in status.out
    assert document["ahead"] == ["006_add_seen_at.json"] and document["problems"] == []
    assert [n[:40] for n in document["notices"]] == ["The database is ahead of these migration"]

    undo = ahead.run("db", "rollback", env=database.env)
    assert undo.code == 2 and "the database is ahead of the migration files" in undo.err, undo
    assert database.snapshot() == before


def test_await_migrate_in_a_startup_hook_of_older_code_returns(ahead, database, caplog, monkeypatch):
    monkeypatch.setenv("MF_DATABASE_URL", database.env["MF_DATABASE_URL"])
    before = database.snapshot()
    with caplog.at_level(logging.WARNING, logger="mfcore"):
        result = anyio.run(lambda: mfcore.migrate(config=ahead.path / "language_config.yaml"))
    assert result == [] and result.ahead == ["006_add_seen_at.json"]
    assert any(n.startswith("The database is ahead") for n in result.notices)
    assert [r.getMessage() for r in caplog.records if r.name == "mfcore"] == result.warnings == [result.notices[-1]]
    assert database.snapshot() == before


def test_a_gap_in_the_middle_of_the_history_stays_an_integrity_error(ahead, database):
    before = database.snapshot()
    (ahead.migrations / "003_add_discount_cents.json").unlink()
    result = ahead.run("db", "migrate", env=database.env)
    assert result.code == 2, result
    assert "003_add_discount_cents.json was applied but the file is gone" in result.err
    assert database.snapshot() == before
    status, document = check(ahead, database.env)
    assert status.code == 2 and document["ahead"] == []
    assert sorted(m["state"] for m in document["migrations"] if m["state"] != "applied") == ["missing", "missing"]


def test_two_files_with_one_number_are_exit_2(project, database):
    env = database.env
    grow(project, SEED, WITH_PHONE)
    assert project.run("db", "migrate", env=env).code == 0
    (project.migrations / "002_other_branch.json").write_bytes((project.migrations / "002_add_phone.json").read_bytes())
    result, document = check(project, env)
    assert result.code == 2 and "two migration files have the number 002" in result.err, result
    assert document["error"]["kind"] == "IntegrityError"

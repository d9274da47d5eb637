"""`mf db makemigrations` from the user's side: a project folder, the command, the files."""
from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import orjson
import pytest

from mfcore.operations import fold
from mfcore.schema import Schema
from mfcore.snapshot import schema_from_json
from mfcore.store import load_history

from seed import SEED, WITH_DISCOUNT, WITH_PHONE  # noqa: E402


def assert_history_folds_to_snapshot(project):
    """The invariant: folding every file over an empty schema gives exactly schema.json."""
    _migrations, folded = load_history(str(project.migrations))
    snapshot = orjson.loads((project.migrations / "schema.json").read_bytes())
    assert folded == schema_from_json(snapshot)
    from mfcore.snapshot import without_sources
    from mfcore.store import snapshot_bytes

    assert snapshot_bytes(folded, snapshot["migration"], made_from=snapshot.get("made_from"),
                          index_foreign_keys=snapshot.get("index_foreign_keys", False)) \
        == without_sources((project.migrations / "schema.json").read_bytes())


def run_on_terminal(project, *args, answers=b"", env=None):
    """Run mf with a pseudo-terminal as stdin/stdout, as a person at a shell would."""
    leader, follower = pty.openpty()
    env = {**os.environ, **(env or {})}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, "-m", "mfcore.cli", *args], cwd=project.path, env=env,
                               stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    if answers:
        os.write(leader, answers)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=60)
    os.close(leader)
    text = output.decode("utf-8", "replace").replace("\r\n", "\n")
    return process.returncode, re.sub(r"\x1b\[[0-9;]*m", "", text)  # colour codes aside


def test_the_seed_scenario(project):
    project.write_models(SEED)
    first = project.run("db", "makemigrations")
    assert first.code == 0, first
    assert "Migrations generated: migrations/001_enum_invoicestatus_enum_userrole.json" in first.out
    assert "✓" not in first.out  # no marks off a terminal

    project.write_models(WITH_PHONE)
    second = project.run("db", "makemigrations")
    assert second.out.strip().endswith("Migrations generated: migrations/002_add_phone.json"), second
    assert "Add field phone to Customer" in second.out

    project.write_models(WITH_DISCOUNT)
    third = project.run("db", "makemigrations")
    assert "migrations/003_add_discount_cents.json" in third.out

    before = project.state()
    again = project.run("db", "makemigrations")
    assert (again.code, again.out) == (0, "No changes detected.\n")
    assert project.state() == before
    assert project.migration_names() == ["001_enum_invoicestatus_enum_userrole.json", "002_add_phone.json",
                                         "003_add_discount_cents.json"]
    assert_history_folds_to_snapshot(project)


def test_files_are_canonical_json_with_sorted_keys(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    raw = (project.migrations / "001_enum_invoicestatus_enum_userrole.json").read_bytes()
    document = orjson.loads(raw)
    assert document["format"] == 1
    assert raw == orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    assert [op["op"] for op in document["ops"]] == ["create_enum", "create_enum", "create_model", "create_model"]
    snapshot = orjson.loads((project.migrations / "schema.json").read_bytes())
    assert snapshot["format"] == 1 and snapshot["migration"] == "001_enum_invoicestatus_enum_userrole.json"


def test_a_schema_json_of_many_models_is_the_one_a_whole_dump_makes(project):
    """Over 500 models, makemigrations writes schema.json while it makes it, a few hundred
    models at a time: the file is still the canonical dump of the folded history, and
    its sources, sealed piece by piece, serve the next run."""
    from pathlib import Path

    from mfcore.snapshot import sealed_sources

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from generate import generate_models

    project.write_models(generate_models(1200))
    assert project.run("db", "makemigrations").code == 0
    assert_history_folds_to_snapshot(project)
    assert sealed_sources((project.migrations / "schema.json").read_bytes()) is not None
    again = project.run("-v", "db", "makemigrations", "--check")
    assert again.code == 0 and "Read 0 of 1200 models" in again.out, again


def test_marks_and_colour_only_on_a_terminal(project):
    project.write_models(SEED)
    code, output = run_on_terminal(project, "db", "makemigrations")
    assert code == 0
    assert "✓ Migrations generated: migrations/001_enum_invoicestatus_enum_userrole.json" in output


def test_check_exits_1_when_a_migration_is_needed_and_writes_nothing(project):
    project.write_models(SEED)
    before = project.state()
    result = project.run("db", "makemigrations", "--check")
    assert result.code == 1
    assert "001_enum_invoicestatus_enum_userrole.json would be generated" in result.out
    assert project.state() == before
    project.run("db", "makemigrations")
    assert project.run("db", "makemigrations", "--check").code == 0


def test_dry_run_prints_the_sql_for_the_configured_database_and_writes_nothing(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    project.write_models(WITH_PHONE)
    before = project.state()
    result = project.run("db", "makemigrations", "--dry-run")
    assert result.code == 0, result
    heading = "Would write migrations/002_add_phone.json, which runs on sqlite:\n"
    assert heading in result.out
    printed = result.out.split(heading, 1)[1].strip().splitlines()
    # SQLite: the rebuild that a large schema gets, as comments, then the ALTER TABLE.
    assert printed[0].startswith("-- add column phone to lt_customers")
    assert all(line.startswith("--") for line in printed[:-1])
    assert printed[-1] == 'ALTER TABLE "lt_customers" ADD COLUMN "phone" VARCHAR(20);'
    assert project.state() == before

    # PostgreSQL's SQL for a PostgreSQL project, without connecting (nothing listens
    # there, and the password's variable is not even set).
    project.write("language_config.yaml", 'database:\n  driver: "postgresql"\n'
                                          '  dsn: "postgresql://app:${UNSET_PASSWORD}@127.0.0.1:1/app"\n')
    before = project.state()
    on_postgres = project.run("db", "makemigrations", "--dry-run")
    assert on_postgres.code == 0, on_postgres
    statements = on_postgres.out.split("which runs on postgresql:\n", 1)[1].strip().splitlines()
    assert statements and all(s.endswith(";") for s in statements), on_postgres.out
    assert any(s.startswith('ALTER TABLE "lt_customers" ADD COLUMN "phone" varchar') for s in statements), statements
    assert '"ops"' not in on_postgres.out  # the SQL, not the file's JSON

    as_json = project.run("db", "makemigrations", "--dry-run", "--json")
    assert as_json.code == 0, as_json
    doc = json.loads(as_json.out)
    assert doc["sql"] == [s.rstrip(";") for s in statements]
    assert doc["changes"][0]["op"] == "add_column" and doc["written"] is False
    assert project.state() == before


def test_dry_run_on_postgresql_prints_what_mf_db_sql_will_print_steps_and_all(project):
    """An index on a table that exists is built CONCURRENTLY in a step of its own: the dry
    run shows the steps, each transaction's BEGIN, prologue and COMMIT, line for line as
    `mf db sql` shows the file once written (no database is reached for either)."""
    project.write("language_config.yaml", 'database:\n  driver: "postgresql"\n'
                                          '  dsn: "postgresql://app:${UNSET_PASSWORD}@127.0.0.1:1/app"\n'
                                          "  statement_timeout: 30s\n")
    item = "model Item extends Model {{\n    id = AutoField()\n    name = CharField(max_length=50{})\n{}}}\n"
    project.write_models(item.format("", ""))
    assert project.run("db", "makemigrations", "--name", "init").code == 0
    project.write_models(item.format(", db_index=true", "    size = IntegerField(null=true)\n"))
    before = project.state()
    dry = project.run("db", "makemigrations", "--dry-run")
    assert dry.code == 0, dry
    printed = dry.out.split("Would write migrations/002_", 1)[1].split("\n", 1)[1].splitlines()
    assert printed == [
        "-- step 1 of 2: in a transaction",
        "BEGIN;",
        "SET LOCAL lock_timeout = '1s';",
        "SET LOCAL statement_timeout = '30s';",
        'ALTER TABLE "item" ADD COLUMN "size" integer;',
        "COMMIT;",
        "-- step 2 of 2: outside a transaction",
        'CREATE INDEX CONCURRENTLY "ix_item_name" ON "item" ("name");',
    ]
    as_json = json.loads(project.run("db", "makemigrations", "--dry-run", "--json").out)
    assert project.state() == before
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "sql", "2").out.splitlines()[1:] == printed
    assert json.loads(project.run("db", "sql", "2", "--json").out)["sql"] == as_json["sql"]


def test_name_overrides_the_suffix_and_long_names_are_cut_at_a_boundary(project):
    project.write_models(SEED)
    project.run("db", "makemigrations", "--name", "initial")
    assert project.migration_names() == ["001_initial.json"]
    project.write_models(WITH_PHONE)
    long_name = "_".join(["word"] * 20)
    project.run("db", "makemigrations", "--name", long_name)
    name = project.migration_names()[1]
    suffix = name[len("002_"):-len(".json")]
    assert len(suffix) <= 60 and suffix.endswith("word") and long_name.startswith(suffix)


def test_empty_writes_an_empty_migration(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    result = project.run("db", "makemigrations", "--empty")
    assert result.code == 0 and "002_empty.json" in result.out
    assert orjson.loads((project.migrations / "002_empty.json").read_bytes())["ops"] == []


def test_numbers_grow_numerically_past_999(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    first = project.migrations / "001_enum_invoicestatus_enum_userrole.json"
    first.rename(project.migrations / "999_enum_invoicestatus_enum_userrole.json")
    snapshot = orjson.loads((project.migrations / "schema.json").read_bytes())
    snapshot["migration"] = "999_enum_invoicestatus_enum_userrole.json"
    (project.migrations / "schema.json").write_bytes(orjson.dumps(snapshot))
    project.write_models(WITH_PHONE)
    assert "1000_add_phone.json" in project.run("db", "makemigrations").out
    project.write_models(WITH_DISCOUNT)
    assert "1001_add_discount_cents.json" in project.run("db", "makemigrations").out


def test_not_null_column_without_default_is_refused_with_advice(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    project.write_models(SEED.replace("    name = CharField(120)\n", "    name = CharField(120)\n    vat = CharField(20)\n"))
    before = project.state()
    result = project.run("db", "makemigrations")
    assert result.code == 2
    assert "cannot add CharField 'Customer.vat' as NOT NULL without a default" in result.err
    assert "null=true" in result.err and "default" in result.err
    assert "Traceback" not in result.err
    assert project.state() == before


def test_destructive_operations_are_marked(project):
    project.write_models(WITH_PHONE)
    project.run("db", "makemigrations")
    project.write_models(SEED)
    result = project.run("db", "makemigrations")
    assert "⚠ Drop field phone from Customer" in result.out
    assert "002_drop_phone.json" in result.out


def test_a_bad_models_file_is_reported_and_nothing_is_written(project):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    project.write_models(WITH_PHONE.replace("phone = CharField(max_length=20, null=true)", "phone = Charfield(20)"))
    before = project.state()
    result = project.run("db", "makemigrations")
    assert result.code == 2
    assert result.err.startswith(
        "models.mp:12:13: error: unknown field type 'Charfield' — did you mean 'CharField'?\n")
    assert "    phone = Charfield(20)\n" in result.err and "^" in result.err
    assert project.state() == before


@pytest.mark.parametrize("corrupt", [
    b"{not json",
    b'{"format": 1, "models": []}',
    b'{\n<<<<<<< HEAD\n  "format": 1,\n=======\n  "format": 1,\n>>>>>>> other\n}\n',
], ids=["not-json", "not-a-schema", "conflict-markers"])
def test_a_corrupt_schema_json_is_rebuilt_from_the_migration_files(project, corrupt):
    project.write_models(SEED)
    project.run("db", "makemigrations")
    good = (project.migrations / "schema.json").read_bytes()
    (project.migrations / "schema.json").write_bytes(corrupt)

    result = project.run("db", "makemigrations")
    assert result.code == 0, result
    assert "rebuilt schema.json from the migration files" in result.out
    assert "No changes detected." in result.out
    assert (project.migrations / "schema.json").read_bytes() == good

    (project.migrations / "schema.json").write_bytes(corrupt)
    project.write_models(WITH_PHONE)
    result = project.run("db", "makemigrations")
    assert result.code == 0 and "002_add_phone.json" in result.out, result


def test_a_corrupt_schema_json_with_no_files_to_rebuild_from_is_reported(project):
    project.write_models(SEED)
    project.migrations.mkdir()
    (project.migrations / "schema.json").write_text("{not json")
    before = project.state()
    result = project.run("db", "makemigrations")
    assert result.code == 2 and "schema.json: not valid JSON" in result.err
    assert "no migration files to rebuild it from" in result.err
    assert project.state() == before


def test_reset_does_not_need_schema_json_and_removes_a_conflicted_one(project):
    """What reset drops comes from the applied migration files, not from schema.json."""
    project.write_models(SEED)
    project.run("db", "makemigrations")
    assert project.run("db", "migrate").code == 0
    (project.migrations / "schema.json").write_text("<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> b\n")
    result = project.run("db", "reset", "--drop-db", "--yes")
    assert result.code == 0, result
    assert "table lt_customers" in result.out and "table lt_invoices" in result.out
    assert not (project.migrations / "schema.json").exists() and project.migration_names() == []


def test_an_interrupted_run_is_detected_and_repaired(project):
    """A crash after the migration file but before schema.json: the next run notices."""
    project.write_models(SEED)
    project.run("db", "makemigrations")
    old_snapshot = (project.migrations / "schema.json").read_bytes()
    project.write_models(WITH_PHONE)
    project.run("db", "makemigrations")
    (project.migrations / "schema.json").write_bytes(old_snapshot)  # as if the process died here

    result = project.run("db", "makemigrations")
    assert result.code == 0
    assert "schema.json reflected 001_enum_invoicestatus_enum_userrole.json, not the newest file 002_add_phone.json" in result.out
    assert "No changes detected." in result.out
    assert project.migration_names() == ["001_enum_invoicestatus_enum_userrole.json", "002_add_phone.json"]
    assert_history_folds_to_snapshot(project)


def test_rename_question_on_a_terminal_and_no_guess_elsewhere(project):
    project.write_models(WITH_PHONE)
    project.run("db", "makemigrations")
    project.write_models(WITH_PHONE.replace("phone = CharField", "mobile = CharField"))

    off_terminal = project.run("db", "makemigrations", "--dry-run")
    assert "Add field mobile" in off_terminal.out and "⚠ Drop field phone" in off_terminal.out

    code, output = run_on_terminal(project, "db", "makemigrations", answers=b"y\n")
    assert code == 0
    assert "Did you rename Customer.phone to Customer.mobile (CharField)? [y/N]" in output
    assert project.migration_names()[-1] == "002_rename_phone_mobile.json"
    assert_history_folds_to_snapshot(project)


def test_output_into_a_closed_pipe_ends_quietly_after_the_files_are_written(project):
    """`mf db makemigrations | head -1`: the reader goes away; mf writes its files and
    ends as a tool killed by SIGPIPE does (exit 141), without a traceback."""
    project.write_models(SEED)
    env = dict(os.environ, PYTHONUNBUFFERED="")
    process = subprocess.Popen([sys.executable, "-m", "mfcore.cli", "db", "makemigrations"], cwd=project.path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
    assert project.migration_names() == ["001_enum_invoicestatus_enum_userrole.json"]


def test_json_output_is_one_document(project):
    project.write_models(SEED)
    result = project.run("db", "makemigrations", "--json")
    document = json.loads(result.out)
    assert document["written"] is True
    assert document["file"] == "migrations/001_enum_invoicestatus_enum_userrole.json"
    assert [c["op"] for c in document["changes"]][:2] == ["create_enum", "create_enum"]
    assert document["models_read"] == document["models_total"] == 2
    project.write_models(WITH_PHONE)
    document = json.loads(project.run("db", "makemigrations", "--json").out)
    assert document["file"] == "migrations/002_add_phone.json"
    assert (document["models_read"], document["models_total"]) == (1, 2)


def test_config_is_found_from_a_subfolder_and_paths_are_relative_to_it(project):
    project.write("language_config.yaml", 'database:\n  driver: sqlite\n  dsn: "./dev.db"\n'
                  'models: "schema/app.mp"\nmigrations: "db/migrations"\nother_tool: {keep: me}\n')
    project.write("schema/app.mp", SEED)
    (project.path / "src" / "deep").mkdir(parents=True)
    result = project.run("db", "makemigrations", cwd=project.path / "src" / "deep")
    assert result.code == 0, result
    assert (project.path / "db" / "migrations" / "001_enum_invoicestatus_enum_userrole.json").is_file()


def test_explicit_config_path(project, tmp_path):
    project.write_models(SEED)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = project.run("db", "makemigrations", "--config", str(project.path / "language_config.yaml"),
                         cwd=elsewhere)
    assert result.code == 0 and (project.migrations / "schema.json").is_file()


def test_missing_or_bad_config_is_a_usage_error(project, tmp_path):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    result = project.run("db", "makemigrations", cwd=lonely)
    assert result.code == 2 and "no language_config.yaml found" in result.err

    project.write("language_config.yaml", "database: [unclosed\n")
    project.write_models(SEED)
    before = project.state()
    broken = project.run("db", "makemigrations")
    assert broken.code == 2 and "language_config.yaml:" in broken.err and "not valid YAML" in broken.err
    assert project.state() == before


def test_verbose_shows_a_traceback(project):
    project.write("language_config.yaml", "database: {driver: oracle, dsn: x}\n")
    project.write_models(SEED)
    quiet = project.run("db", "makemigrations")
    assert quiet.code == 2 and "unknown database driver 'oracle'" in quiet.err and "Traceback" not in quiet.err
    loud = project.run("db", "makemigrations", "-v")
    assert "Traceback" in loud.err


def test_the_compat_project_onr_demo_is_up_to_date_and_grows_to_004(compat):
    demo = compat("onr_demo")
    before = demo.state()
    result = demo.run("db", "makemigrations")
    assert (result.code, result.out) == (0, "No changes detected.\n"), result
    assert demo.state() == before

    models = (demo.path / "models.mp").read_text()
    demo.write_models(models.replace("    text = TextField(null=true)\n",
                                     "    text = TextField(null=true)\n    paid_at = DateTimeField(null=true)\n"))
    grown = demo.run("db", "makemigrations")
    assert grown.code == 0 and "migrations/004_add_paid_at.json" in grown.out, grown
    _migrations, folded = load_history(str(demo.migrations))
    assert folded.models["Invoice"].field("paid_at").null


def test_api_makemigrations_without_a_database(project):
    import mfcore

    project.write_models(SEED)
    result = mfcore.makemigrations(str(project.path / "language_config.yaml"))
    assert result.written and result.file_name == "001_enum_invoicestatus_enum_userrole.json"
    assert fold(result.operations, Schema()) == mfcore.parse(SEED, index_foreign_keys=True)  # a new project


@pytest.mark.parametrize("args,code", [(["--help"], 0), (["--version"], 0), (["db", "nonsense"], 2)])
def test_help_version_and_usage_errors(project, args, code):
    result = project.run(*args)
    assert result.code == code
    if args == ["--version"]:
        assert result.out.startswith("mf ")


def test_a_missing_models_file_is_a_usage_error(project):
    before = project.state()
    result = project.run("db", "makemigrations")
    assert result.code == 2
    assert "models file not found: models.mp" in result.err and "`models:`" in result.err
    assert project.state() == before

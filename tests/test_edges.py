"""Bad input at the edges: each refused in one line (or one models error), with the
right exit code, and nothing changed."""
from __future__ import annotations

import json
import re

import pytest

from seed import SEED, WITH_PHONE


@pytest.mark.parametrize("document,message", [
    ({}, "no 'enums' and no 'models' key"),
    ({"format": 1, "enums": {}}, "no 'models' key"),
    ({"models": {}}, "no 'enums' key"),
])
def test_a_schema_json_without_a_snapshots_keys_is_named_and_rebuilt(project, document, message):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    good = (project.migrations / "schema.json").read_bytes()
    (project.migrations / "schema.json").write_text(json.dumps(document))
    result = project.run("db", "makemigrations")
    assert result.code == 0 and "schema.json: not a schema snapshot: " + message in result.out, result
    assert "rebuilt schema.json from the migration files" in result.out
    assert (project.migrations / "schema.json").read_bytes() == good


@pytest.mark.parametrize("declaration,message", [
    ("IntegerField(default=99999999999999999999999)",
     "default 99999999999999999999999 is out of range for IntegerField (-2147483648 to 2147483647)"),
    ("SmallIntegerField(default=-40000)", "default -40000 is out of range for SmallIntegerField"),
    ("BigIntegerField(default=9223372036854775808)", "out of range for BigIntegerField"),
    ("FloatField(default=1" + "0" * 400 + ".5)", "default is too large for FloatField"),
    ("DecimalField(20, 2, default=1" + "0" * 400 + ")", "default is too large for DecimalField"),
])
def test_defaults_out_of_range_are_models_errors(project, declaration, message):
    project.write_models(f"model A extends Model {{\n    x = {declaration}\n}}\n")
    before = project.state()
    for env in ({}, {"MF_PURE_PYTHON": "1"}):
        result = project.run("db", "makemigrations", env=env)
        assert result.code == 2, result
        assert "models.mp:2:" in result.err and message in result.err, result
        assert "Traceback" not in result.err
        assert project.state() == before


def test_the_largest_defaults_that_fit_are_kept(project):
    project.write_models("model A extends Model {\n    x = BigIntegerField(default=9223372036854775807)\n"
                         "    y = SmallIntegerField(default=-32768)\n}\n")
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "makemigrations", "--check").code == 0  # no phantom change
    assert project.run("db", "migrate").code == 0


def make_special(path, kind):
    """Turn ``path`` into a special file of ``kind``."""
    import os

    if path.exists() or path.is_symlink():
        if path.is_dir() and not path.is_symlink():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dev-urandom":
        path.symlink_to("/dev/urandom")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink-loop":
        path.symlink_to(path.name)
    elif kind == "huge":
        with open(path, "wb") as handle:
            handle.truncate(300 * 1024 * 1024)  # sparse: nothing is written to disk


KINDS = {"dev-zero": "is a character device, not a regular file",
         "dev-urandom": "is a character device, not a regular file",
         "fifo": "is a FIFO (named pipe), not a regular file",
         "directory": "is a directory, not a regular file",
         "symlink-loop": "cannot open it (a symbolic link loop)",
         "huge": "more than the 268435456 bytes mf reads"}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_special_models_file_is_refused_in_one_line(project, kind):
    make_special(project.path / "models.mp", kind)
    before = project.state() if kind != "huge" else None
    result = project.run("db", "makemigrations")
    assert result.code == 2, result
    assert result.err.startswith("error: models.mp: is " if kind != "symlink-loop" else "error: models.mp: ")
    assert KINDS[kind] in result.err and result.err.count("\n") == 1, result
    if before is not None:
        assert project.state() == before


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_special_migration_file_is_refused_in_one_line(project, kind):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    make_special(project.migrations / "002_extra.json", kind)
    for command in (("db", "migrate"), ("db", "makemigrations"), ("db", "sql", "2")):
        result = project.run(*command)
        assert result.code == 2, (command, result)
        assert result.err.startswith("error: 002_extra.json: ") and KINDS[kind] in result.err, (command, result)
        assert result.err.count("\n") == 1, result
    assert not (project.path / "dev.db").exists()


@pytest.mark.parametrize("kind,message", [
    ("symlink-loop", "cannot list it (a symbolic link loop)"),
    ("dev-zero", "is not a directory"),
    ("fifo", "is not a directory"),
])
def test_a_migrations_directory_that_is_no_directory_is_refused(project, kind, message):
    project.write_models(SEED)
    make_special(project.migrations, kind)
    for command in (("db", "makemigrations"), ("db", "status")):
        result = project.run(*command)
        assert result.code == 2, (command, result)
        assert result.err.count("\n") == 1 and "Traceback" not in result.err, result
        assert "migrations" in result.err and message in result.err, result


def test_special_schema_json_and_applied_are_refused(project):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    make_special(project.migrations / "schema.json", "fifo")
    result = project.run("db", "makemigrations")
    assert result.code == 2 and "schema.json: is a FIFO (named pipe), not a regular file" in result.err, result
    make_special(project.migrations / "schema.json", "directory")
    make_special(project.migrations / ".applied", "dev-zero")
    result = project.run("db", "migrate")
    assert result.code == 2 and ".applied: is a character device" in result.err, result


def test_symlink_loops_where_schema_json_or_applied_should_be(project):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    make_special(project.migrations / "schema.json", "symlink-loop")
    before = project.state()
    result = project.run("db", "makemigrations")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert "schema.json: cannot open it (a symbolic link loop)" in result.err, result
    assert project.state() == before
    (project.migrations / "schema.json").unlink()
    make_special(project.migrations / ".applied", "symlink-loop")
    result = project.run("db", "migrate")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert ".applied: cannot open it (a symbolic link loop)" in result.err, result
    assert not (project.path / "dev.db").exists()


def run_unprivileged(project, *args):
    """mf without the right to read and write whatever it likes. Tests run as root here,
    for whom a mode of 000 stops nothing: the process runs without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (dropped from its bounding set by setpriv), so the modes bind it
    as they bind any user."""
    import os
    import shutil
    import subprocess
    import sys

    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file modes cannot deny root anything")
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    env = dict(os.environ)
    env.pop("MF_DATABASE_URL", None)
    completed = subprocess.run(prefix + [sys.executable, "-m", "mfcore.cli", *args], cwd=project.path, env=env,
                               capture_output=True, text=True, timeout=120)
    return completed.returncode, completed.stdout, completed.stderr


@pytest.mark.parametrize("where, command", [
    ("models.mp", ("db", "makemigrations")),
    ("migrations/001_create_customer.json", ("db", "migrate")),
    ("migrations/schema.json", ("db", "makemigrations")),
    ("migrations/.applied", ("db", "migrate")),
])
def test_an_unreadable_file_is_refused_in_one_line(project, where, command):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    first = project.migration_names()[0]
    where = where.replace("001_create_customer.json", first)
    if where.endswith(".applied"):
        assert project.run("db", "migrate").code == 0
    project.write_models(WITH_PHONE)
    (project.path / where).chmod(0)
    before = project.state()
    code, out, err = run_unprivileged(project, *command)
    assert code == 2, (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{where.split('/')[-1]}: cannot open it (permission denied)" in err, err
    (project.path / where).chmod(0o644)
    assert project.state() == before


def test_an_unreadable_migrations_directory_is_refused_in_one_line(project):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    project.migrations.chmod(0)
    try:
        for command in (("db", "makemigrations"), ("db", "migrate"), ("db", "status")):
            code, out, err = run_unprivileged(project, *command)
            assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (command, code, out, err)
            assert "migrations: cannot list it (permission denied)" in err, (command, err)
    finally:
        project.migrations.chmod(0o755)
    assert not (project.path / "dev.db").exists()


def test_a_read_only_migrations_directory(project):
    """makemigrations cannot write its file: one line naming the directory, nothing
    written. migrate still migrates (a read-only deployment): the ledger is the truth,
    and that .applied could not follow is one line of warning."""
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    project.write_models(WITH_PHONE)
    project.migrations.chmod(0o555)
    try:
        before = project.state()
        code, out, err = run_unprivileged(project, "db", "makemigrations")
        assert code == 2 and err.count("\n") == 1, (code, out, err)
        assert err.startswith("error: ") and err.rstrip().endswith("migrations: cannot write to it (permission denied)")
        assert project.state() == before
        code, out, err = run_unprivileged(project, "db", "migrate")
        assert code == 0, (code, out, err)
        assert err.count("\n") == 1 and "RuntimeWarning" not in err and "Traceback" not in err, err
        assert err.startswith("warning: could not update ") and ".applied: " in err, err
        assert "the database's ledger is up to date" in err
        assert sorted(p.name for p in project.migrations.iterdir()) == sorted(
            path.split("/")[-1] for path in before if path.startswith("migrations/"))
    finally:
        project.migrations.chmod(0o755)
    assert project.run("db", "migrate").out.endswith("No unapplied migrations.\n")
    assert (project.migrations / ".applied").exists()


def test_a_missing_migrations_directory_in_a_read_only_project(project):
    project.write_models(SEED)
    project.path.chmod(0o555)
    try:
        code, out, err = run_unprivileged(project, "db", "makemigrations")
    finally:
        project.path.chmod(0o755)
    assert code == 2 and err.count("\n") == 1, (code, out, err)
    assert err.rstrip().endswith("migrations: cannot create it (permission denied)"), err
    assert not project.migrations.exists()


# mf with its first fsync (the migration file's temporary file, written and not yet
# renamed) sending the process a signal: the moment a Ctrl-C, kill or kill -9 is
# most likely to land, made certain.
SIGNALLED = """
import os, signal, sys
# Ctrl-C raises KeyboardInterrupt here even when the suite was started in the background
# (a shell starts background commands with SIGINT ignored, which Python would keep).
signal.signal(signal.SIGINT, signal.default_int_handler)
fsync = os.fsync
def signalled(fd):
    os.fsync = fsync
    os.kill(os.getpid(), signal.{signal})
    fsync(fd)
os.fsync = signalled
from mfcore.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_signalled(project, signal_name):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", SIGNALLED.format(signal=signal_name), "db", "makemigrations"],
                          cwd=project.path, capture_output=True, text=True, timeout=120)


def temporaries(project) -> list:
    return sorted(p.name for p in project.migrations.iterdir() if p.name.startswith(".mf-"))


@pytest.mark.parametrize("signal_name, code", [("SIGINT", 130), ("SIGTERM", -15), ("SIGHUP", -1)])
def test_an_interrupted_makemigrations_finishes_its_files_and_leaves_no_temporary_file(project, signal_name,
                                                                                      code):
    """The signal waits until the migration file and schema.json are both in place
    (never one without the other), then ends mf as it would have."""
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    project.write_models(WITH_PHONE)
    completed = run_signalled(project, signal_name)
    assert completed.returncode == code, completed
    assert "Traceback" not in completed.stderr
    assert temporaries(project) == []
    assert len(project.migration_names()) == 2
    assert project.run("db", "makemigrations", "--check").code == 0  # schema.json came with it


def test_leftovers_of_a_killed_makemigrations_are_removed_by_the_next(project):
    import os

    project.write_models(SEED)
    completed = run_signalled(project, "SIGKILL")
    assert completed.returncode == -9
    [leftover] = temporaries(project)
    assert project.migration_names() == []
    # a temporary file of a process still running (this one) is not touched
    running = project.migrations / f".mf-{os.getpid()}-0123456789ab.tmp"
    running.write_bytes(b"being written")
    check = project.run("db", "makemigrations", "--check")
    assert check.code == 1 and leftover in temporaries(project)  # --check writes and removes nothing
    result = project.run("db", "makemigrations")
    assert result.code == 0, result
    assert temporaries(project) == [running.name]
    assert len(project.migration_names()) == 1


# ---------------------------------------------------------------- database errors

def test_a_file_that_is_not_sqlite_is_a_database_error(project):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    (project.path / "dev.db").write_bytes(b"this is not a database" * 300)
    before = project.state()
    for command in (("db", "migrate"), ("db", "status"), ("db", "migrate", "--dry-run"),
                    ("db", "resolve", "1", "--applied"), ("db", "reset", "--drop-db", "--yes")):
        result = project.run(*command)
        assert result.code == 3, (command, result)
        assert result.err == f"error: cannot use the SQLite database {project.path / 'dev.db'}: file is not a database\n"
        assert project.state() == before


def test_a_foreign_key_mismatch_during_a_rebuild_is_a_database_error(project):
    """A user's table whose key points at a column that is not unique: SQLite's check
    after the rebuild says "foreign key mismatch"; exit 3, rolled back, one line."""
    import sqlite3

    project.write_models('model A extends Model {\n    code = CharField(10)\n    table = "a"\n}\n')
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate").code == 0
    with sqlite3.connect(project.path / "dev.db") as connection:
        connection.executescript("INSERT INTO a (code) VALUES ('x'); CREATE TABLE child (c TEXT REFERENCES a(code));"
                                 "INSERT INTO child VALUES ('x');")
    project.write_models('model A extends Model {\n    code = CharField(10, null=true)\n    table = "a"\n}\n')
    assert project.run("db", "makemigrations").code == 0
    before = project.state()
    result = project.run("db", "migrate")
    assert result.code == 3 and result.err.count("\n") == 1 and "Traceback" not in result.err, result
    assert 'foreign key mismatch - "child" referencing "a"' in result.err and "rolled back" in result.err
    assert project.state() == before
    with sqlite3.connect(project.path / "dev.db") as connection:
        assert connection.execute("SELECT name FROM mf_migrations").fetchall() == [("001_create_a.json",)]
        assert "NOT NULL" in connection.execute("SELECT sql FROM sqlite_master WHERE name = 'a'").fetchone()[0]


def test_a_ledger_that_cannot_be_read_is_a_database_error(project):
    import sqlite3

    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    with sqlite3.connect(project.path / "dev.db") as connection:
        connection.execute("CREATE TABLE mf_migrations (something_else text)")
    for command in (("db", "migrate"),):
        result = project.run(*command)
        assert result.code == 3, (command, result)
        assert "has no column named" in result.err or "no such column" in result.err, result
        assert "Traceback" not in result.err
        assert result.err.count("\n") == 1


@pytest.fixture
def pg_env(pg_session, pg_url):
    schema = pg_session.fresh_schema()
    return {"MF_DATABASE_URL": pg_url + ("&" if "?" in pg_url else "?") + f"options=-csearch_path%3D{schema}"}, schema


def test_postgresql_errors_say_each_thing_once(project, pg_session, pg_env):
    env, schema = pg_env
    project.write_models('model A extends Model {\n    code = CharField(10)\n    table = "a"\n}\n')
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", env=env).code == 0
    pg_session.execute(f'INSERT INTO "{schema}".a (code) VALUES ($1), ($1)', "x")
    project.write_models('model A extends Model {\n    code = CharField(10, unique=true)\n    table = "a"\n}\n')
    assert project.run("db", "makemigrations").code == 0
    result = project.run("db", "migrate", env=env)
    assert result.code == 3, result
    assert result.err.count("Key (code)=(x) is duplicated") == 1, result
    assert "DETAIL" not in result.err and result.err.count("\n") == 1
    said = result.err.index("could not create unique index")
    assert said < result.err.index("Statement 1 of"), result  # the reason before the statement


def test_a_postgresql_hint_is_said_once(project, pg_session, pg_env):
    env, schema = pg_env
    project.write_models('model A extends Model {\n    code = CharField(10)\n    table = "a"\n}\n')
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", env=env).code == 0
    (project.migrations / "002_fill.json").write_text(json.dumps(
        {"format": 1, "ops": [{"op": "run_sql", "sql": "UPDATE a SET code = cod", "reverse_sql": ""}]}))
    result = project.run("db", "migrate", env=env)
    assert result.code == 3 and result.err.count("\n") == 1, result
    assert 'column "cod" does not exist' in result.err
    assert result.err.count("Perhaps you meant") == 1 and result.err.lower().count("hint") == 1, result


def test_an_enum_value_still_in_use_is_the_message_not_a_do_block(project, pg_session, pg_env):
    env, schema = pg_env
    models = 'enum Mood { HAPPY, SAD }\nmodel A extends Model {\n    mood = EnumField(Mood)\n    table = "a"\n}\n'
    project.write_models(models)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate", env=env).code == 0
    pg_session.execute(f"INSERT INTO \"{schema}\".a (mood) VALUES ('SAD')")
    project.write_models(models.replace(", SAD", ""))
    assert project.run("db", "makemigrations", "--no-input").code == 0
    result = project.run("db", "migrate", env=env)
    assert result.code == 3, result
    assert "cannot remove 'SAD' from enum Mood: rows of table a still use it" in result.err
    assert result.err.count("cannot remove") == 1 and "$mf$" not in result.err and "RAISE" not in result.err


def test_a_failed_sqlite_rebuild_names_the_users_table(project):
    import sqlite3

    project.write_models('model Basket extends Model {\n    color = CharField(10)\n    table = "basket_line"\n}\n')
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate").code == 0
    with sqlite3.connect(project.path / "dev.db") as connection:
        connection.execute("INSERT INTO basket_line (color) VALUES ('red'), ('red')")
    project.write_models('model Basket extends Model {\n    color = CharField(10, unique=true)\n'
                         '    table = "basket_line"\n}\n')
    assert project.run("db", "makemigrations", "--no-input").code == 0
    assert "_mf_old_basket_line" in project.run("db", "sql", "2").out  # the change is a rebuild
    result = project.run("db", "migrate")
    assert result.code == 3, result
    reason = result.err.split("Statement")[0]
    assert "UNIQUE constraint failed: basket_line.color" in reason and "_mf_old_" not in reason, result


# ---------------------------------------------------------------- the CLI a user expects

def test_mf_migrate_points_at_mf_db_migrate(project):
    result = project.run("migrate")
    assert result.code == 2 and result.out == ""
    assert result.err == ("mf: error: unknown command 'migrate': the migration commands live under db; "
                          "run `mf db migrate`\n")


def test_global_options_before_or_after_the_command(project):
    project.write_models(SEED)
    config = project.path / "language_config.yaml"
    elsewhere = project.path / "sub"
    elsewhere.mkdir()
    assert project.run("--config", str(config), "db", "makemigrations", cwd=elsewhere).code == 0
    for args in (("--json", "--config", str(config), "db", "status"), ("db", "--json", "status", "--config", str(config)),
                 ("db", "status", "--json", "--config", str(config))):
        result = project.run(*args, cwd=elsewhere)
        assert result.code == 0, (args, result)
        assert json.loads(result.out)["migrations"][0]["name"].startswith("001_"), args


@pytest.mark.parametrize("args, message", [
    (("db", "sql"), "mf db sql: the following arguments are required: NNN"),
    (("migrate",), "mf: unknown command 'migrate': the migration commands live under db; run `mf db migrate`"),
    (("db", "status", "--bogus"), "mf: unrecognized arguments: --bogus"),
    (("db", "rollback", "0"), "mf db rollback: argument N: expected a whole number of at least 1, got '0'"),
])
def test_usage_errors_are_json_with_json(project, args, message):
    before = project.state()
    for where in ("before", "after"):
        full = ("--json", *args) if where == "before" else (*args, "--json")
        result = project.run(*full)
        assert result.code == 2 and result.err == "", (full, result)
        assert json.loads(result.out) == {"error": {"kind": "UsageError", "message": message, "file": None,
                                                    "line": None, "column": None}}, full
    plain = project.run(*args)
    assert plain.code == 2 and plain.out == "" and "Traceback" not in plain.err
    prog, text = message.split(": ", 1)
    assert plain.err.splitlines()[-1] == f"{prog}: error: {text}", plain
    assert project.state() == before


def test_help_shows_examples_environment_and_exit_codes_once(project):
    top = project.run("--help")
    assert top.code == 0 and top.err == ""
    commands = top.out.split("\ncommands:\n", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"^    (\w+)", commands, re.M) == ["db", "completion"]  # each command listed once
    for part in ("examples:", "environment:", "MF_DATABASE_URL", "NO_COLOR", "exit codes:", "130 interrupted"):
        assert part in top.out, part
    sql = project.run("db", "sql", "--help").out
    assert "NNN            the migration's number" in sql
    assert "makemigrations" not in sql.split("--verbose", 1)[1].split("\n  --", 1)[0]  # -v's help is general


def test_mf_db_alone_prints_the_db_help(project):
    result = project.run("db")
    assert result.code == 0 and result.out.startswith("usage: mf db ")
    assert "makemigrations" in result.out and "exit codes:" in result.out


def test_json_errors_are_json_on_stdout(project):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    (project.migrations / "002_bad.json").write_text('{"format": 1, "ops": [{"op": ["add_column"]}]}')
    result = project.run("--json", "db", "migrate")
    assert result.code == 2 and result.err == ""
    assert json.loads(result.out) == {"error": {
        "kind": "MigrationFileError", "message": "002_bad.json: ops[0].op must be a string, got ['add_column']",
        "file": None, "line": None, "column": None}}
    project.write_models("model A extends Model {\n    a = IntegerFiel()\n}\n")
    result = project.run("db", "makemigrations", "--json")
    error = json.loads(result.out)["error"]
    assert result.code == 2 and result.err == ""
    assert (error["kind"], error["file"], error["line"], error["column"]) == ("ModelsError", "models.mp", 2, 9)
    assert error["message"].startswith("unknown field type 'IntegerFiel'")


def test_makemigrations_from_the_cli_needs_no_database_password(project):
    project.write("language_config.yaml",
                  'database:\n  driver: postgresql\n  dsn: "postgresql://app:${DB_PASSWORD_NOT_SET}@db/app"\n')
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    result = project.run("db", "migrate")
    assert result.code == 2 and "DB_PASSWORD_NOT_SET is not set" in result.err


@pytest.mark.parametrize("config", ["models: models.mp\n", "database:\n  driver: sqlite\n",
                                    'targets:\n  north: {driver: sqlite, dsn: "north.db"}\n'])
def test_makemigrations_needs_no_database_section(project, config):
    """Writing migrations needs no database: a config without database.dsn (a fleet of
    targets:, or a repository that only writes migrations) makes them; the commands that
    connect to `database:` say what is missing (exit 2) and change nothing."""
    project.write("language_config.yaml", config)
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "sql", "1").code == 0
    before = project.state()
    for command in (("db", "migrate"), ("db", "status"), ("db", "reset"), ("db", "rollback"),
                    ("db", "migrate", "--dry-run")):
        result = project.run(*command)
        assert result.code == 2 and result.err.count("\n") == 1, (command, result)
        assert result.err.endswith("language_config.yaml: database.dsn is missing\n"), (command, result)
        assert project.state() == before, command
    if "targets" in config:
        migrated = project.run("db", "migrate", "--all")
        assert migrated.code == 0 and "north  applied 1" in migrated.out, migrated


def test_shell_completion(project):
    import subprocess

    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    bash = project.run("completion", "bash")
    assert bash.code == 0 and "complete -F _mf mf" in bash.out and "makemigrations" in bash.out
    assert "--drop-db" in bash.out and "completion numbers" in bash.out
    assert subprocess.run(["bash", "-n"], input=bash.out, text=True).returncode == 0
    assert project.run("completion", "numbers").out == "001\n"
    fish = project.run("completion", "fish")
    assert fish.code == 0 and "__fish_seen_subcommand_from migrate' -l to" in fish.out
    zsh = project.run("completion", "zsh")
    assert zsh.code == 0 and zsh.out.startswith("#compdef mf")


def test_bash_completion_offers_commands_options_and_migration_numbers(project, tmp_path):
    """The script run by bash itself, with `mf` on the PATH: what Tab offers."""
    import os
    import subprocess
    import sys

    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    project.write_models(WITH_PHONE)
    assert project.run("db", "makemigrations").code == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mf").write_text(f"#!/bin/sh\nexec {sys.executable} -m mfcore.cli \"$@\"\n")
    (bin_dir / "mf").chmod(0o755)
    from conftest import REPO

    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))

    def offered(*words, cwd=project.path) -> list:
        script = ('eval "$(mf completion bash)"; COMP_WORDS=(' + " ".join(f"'{w}'" for w in words)
                  + f"); COMP_CWORD={len(words) - 1}; _mf; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0 and done.stderr == "", done
        return sorted(filter(None, done.stdout.split("\n")))

    assert "db" in offered("mf", "") and "completion" in offered("mf", "")
    assert offered("mf", "db", "mi") == ["migrate"]
    assert offered("mf", "db", "sql", "") == ["001", "002"]
    assert offered("mf", "db", "resolve", "00") == ["001", "002"]
    assert offered("mf", "db", "migrate", "--to", "") == ["001", "002"]
    assert offered("mf", "db", "squash", "--to", "00") == ["001", "002"]
    assert offered("mf", "--json", "db", "sql", "") == ["001", "002"]
    assert offered("mf", "--config", "language_config.yaml", "db", "migrate", "--to", "") == ["001", "002"]
    assert offered("mf", "-v", "db", "st") == ["status"]
    assert "--drop-db" in offered("mf", "db", "reset", "--")
    assert offered("mf", "completion", "") == ["bash", "fish", "zsh"]
    # From another folder, the numbers are those of the project --config names.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(project.path / "language_config.yaml")
    assert offered("mf", "--config", config, "db", "sql", "", cwd=elsewhere) == ["001", "002"]
    assert offered("mf", f"--config={config}", "db", "sql", "", cwd=elsewhere) == ["001", "002"]
    assert offered("mf", "db", "sql", "", cwd=elsewhere) == []
    # A squash beside the originals it replaces shares the number of the last: offered once.
    assert project.run("db", "squash", "--to", "002").code == 0, project.run("db", "status").err
    assert len(project.migration_names()) == 3
    assert offered("mf", "db", "sql", "") == ["001", "002"]


def test_several_refused_fields_are_each_an_error(project):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    project.write_models(SEED.replace("    name = CharField(120)\n",
                                      "    name = CharField(120)\n    a = IntegerField()\n    b = TextField()\n"))
    before = project.state()
    result = project.run("db", "makemigrations")
    assert result.code == 2, result
    lines = result.err.splitlines()
    assert len(lines) == 2 and all(line.startswith("error: cannot add ") for line in lines), result
    assert "if table 'lt_customers' has rows, they would have no value" in lines[0]
    assert project.state() == before


def test_status_times_are_local_to_the_second_with_the_offset(project):
    import re

    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    assert project.run("db", "migrate").code == 0
    result = project.run("db", "status", env={"TZ": "Asia/Kolkata"})
    assert re.search(r"\(applied \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+05:30\)", result.out), result


def test_connection_errors_say_where_the_url_came_from(project):
    project.write_models(SEED)
    assert project.run("db", "makemigrations").code == 0
    result = project.run("db", "status", env={"MF_DATABASE_URL": "postgresql://app:pw@127.0.0.1:1/shop"})
    assert result.code == 3
    assert result.err.startswith("error: cannot connect to postgresql://app:***@127.0.0.1:1/shop "
                                 "(from MF_DATABASE_URL): "), result
    project.write("language_config.yaml", "database:\n  driver: postgresql\n  dsn: postgresql://app@127.0.0.1:1/shop\n")
    result = project.run("db", "status")
    assert result.code == 3
    assert f"(from database.dsn in {project.path / 'language_config.yaml'}): " in result.err, result


def test_the_progress_line_is_cleared_before_an_error(project):
    import sqlite3

    from test_makemigrations import run_on_terminal

    for number in range(1, 7):
        fields = "".join(f"    f{i} = IntegerField(null=true)\n" for i in range(1, number))
        project.write_models(f'model A extends Model {{\n{fields}    table = "a"\n}}\n')
        assert project.run("db", "makemigrations").code == 0
    with sqlite3.connect(project.path / "dev.db") as connection:
        connection.execute("CREATE TABLE a (id integer)")  # in the way of 001
    code, text = run_on_terminal(project, "db", "migrate")
    assert code == 3, text
    # The progress line, then blanks over it and a carriage return, then the error.
    assert "1/6" in text
    assert re.search(r"\r {80}\rerror: migration 001_", text), repr(text)

"""Every command's --json document against the README's "JSON documents" tables.

The README is read, not copied: each `### `mf db ... --json`` table lists the keys of a
document with their types. Each command runs in a temporary project, and its output
must have exactly the documented keys (an undocumented key fails, a documented one
missing fails), each of the documented type; and every documented key must show up in
some run, so no table can list a key that mf no longer prints (the SQLite run prints all
but the few only PostgreSQL prints, POSTGRESQL_ONLY, which the PostgreSQL run must print).
"""
from __future__ import annotations

import datetime
import json
import re
import sqlite3
from pathlib import Path

import pytest

from mfcore.operations.codec import operation_from_json, operation_to_json
from seed import SEED, WITH_DISCOUNT, WITH_PHONE

README = Path(__file__).resolve().parents[1] / "README.md"


# ---------------------------------------------------------------- the README's tables

def documented() -> dict:
    """{document name: {key path: (type, optional)}} from README's "## JSON documents"."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## JSON documents\n")
    section = text[start + 1:text.index("\n## ", start + 1)]
    documents: dict = {}
    current = None
    for line in section.splitlines():
        heading = re.fullmatch(r"### (?:`([^`]+)`|(\w+))", line)
        if heading:
            current = documents.setdefault(heading.group(1) or heading.group(2), {})
            continue
        row = re.fullmatch(r"\| `([^`]+)` \| (.+?) \| .+ \|", line)
        if row and current is not None:
            kind = row.group(2)
            optional = ", only " in kind
            current[row.group(1)] = (kind.split(", only ")[0], optional)
    return documents


DOCUMENTS = documented()


class Checker:
    """Checks documents against DOCUMENTS and remembers which keys it saw."""

    def __init__(self):
        self.seen: set = set()

    def check(self, name: str, document) -> None:
        assert name in DOCUMENTS, f"README documents no {name!r}"
        self._object(name, "", document, "")

    def _object(self, name: str, prefix: str, value, where: str) -> None:
        spec = DOCUMENTS[name]
        assert isinstance(value, dict), f"{name}: {where or 'the document'} is not an object: {value!r:.80}"
        children = {path[len(prefix):]: entry for path, entry in spec.items()
                    if path.startswith(prefix) and "." not in path[len(prefix):]
                    and "[]" not in path[len(prefix):]}
        for key, (kind, optional) in children.items():
            if key not in value:
                assert optional, f"{name}: documented key {prefix + key} is missing from {value!r:.300}"
                continue
            self.seen.add((name, prefix + key))
            self._value(name, prefix + key, kind, value[key])
        extra = sorted(set(value) - set(children))
        if prefix.endswith("[].") and spec.get(prefix[:-3], ("",))[0] == "list of operations":
            operation = {key: item for key, item in value.items() if key not in children}
            decoded = operation_from_json(operation, f"{name} {prefix[:-1]}")
            assert operation_to_json(decoded) == operation, f"{name}: {prefix[:-1]} is not an operation"
            return
        assert not extra, f"{name}: undocumented key(s) {', '.join(prefix + key for key in extra)}"

    def _value(self, name: str, path: str, kind: str, value) -> None:
        if kind.endswith(" or null"):
            if value is None:
                return
            kind = kind[:-len(" or null")]
        reference = re.fullmatch(r"`([^`]+)` document", kind)
        if reference:
            self._object(reference.group(1), "", value, path)
            return
        if kind.startswith("list of "):
            assert isinstance(value, list), f"{name}: {path} is not a list: {value!r:.80}"
            item_kind = kind[len("list of "):]
            for item in value:
                self._item(name, path, item_kind, item)
            return
        self._scalar(name, path, kind, value)

    def _item(self, name: str, path: str, kind: str, item) -> None:
        alias = re.fullmatch(r"objects as `([^`]+)\[\]`(?: of `([^`]+)`)?", kind)
        if alias:
            self._object(alias.group(2) or name, alias.group(1) + "[].", item, path)
        elif kind in ("objects", "operations"):
            self._object(name, path + "[].", item, path)
        elif kind == "lists of objects":
            assert isinstance(item, list), f"{name}: an item of {path} is not a list: {item!r:.80}"
            for inner in item:
                self._object(name, path + "[][].", inner, path)
        else:
            self._scalar(name, path, {"strings": "string", "integers": "integer"}[kind], item)

    def _scalar(self, name: str, path: str, kind: str, value) -> None:
        if kind == "object":
            self._object(name, path + ".", value, path)
            return
        ok = {"string": lambda v: isinstance(v, str),
              "integer": lambda v: type(v) is int,
              "number": lambda v: type(v) in (int, float),
              "boolean": lambda v: type(v) is bool,
              "time": _is_time}[kind](value)
        assert ok, f"{name}: {path} should be {kind}, got {value!r:.80}"


def _is_time(value) -> bool:
    try:
        return isinstance(value, str) and datetime.datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


# The checker's own check: a document with a key too many, or one too few, fails.
def test_the_checker_refuses_an_undocumented_key_and_a_missing_one():
    checker = Checker()
    good = {"rolled_back": ["001_x.json"], "fake": False, "notices": []}
    checker.check("mf db rollback --json", good)
    with pytest.raises(AssertionError, match="undocumented key"):
        checker.check("mf db rollback --json", {**good, "surprise": 1})
    with pytest.raises(AssertionError, match="documented key fake is missing"):
        checker.check("mf db rollback --json", {"rolled_back": []})
    with pytest.raises(AssertionError, match="should be boolean"):
        checker.check("mf db rollback --json", {**good, "fake": "no"})
    with pytest.raises(AssertionError, match="undocumented key"):
        checker.check("mf db status --json", {**STATUS_SAMPLE, "migrations": [
            {**STATUS_SAMPLE["migrations"][0], "extra": 1}]})
    with pytest.raises(AssertionError, match="should be time"):
        checker.check("mf db status --json", {**STATUS_SAMPLE, "migrations": [
            {**STATUS_SAMPLE["migrations"][0], "applied_at": "yesterday"}]})
    made = {"changes": [], "file": None, "files": [], "split": None, "written": False, "notices": [],
            "models_read": 0, "models_total": 0, "lint": [], "rewrites": [[]]}
    checker.check("mf db makemigrations --json", made)
    rewrite = {"table": "items", "column": "code", "why": "varchar(20) -> varchar(10)"}
    checker.check("mf db makemigrations --json", {**made, "rewrites": [[rewrite]]})
    with pytest.raises(AssertionError, match="is not a list"):
        checker.check("mf db makemigrations --json", {**made, "rewrites": [rewrite]})
    with pytest.raises(AssertionError, match="undocumented key"):
        checker.check("mf db makemigrations --json", {**made, "rewrites": [[{**rewrite, "rule": "x"}]]})


STATUS_SAMPLE = {"migrations": [{"name": "001_x.json", "applied": True, "applied_at": "2026-11-25 20:31:02+00:00",
                                 "state": "applied", "duration": 0.1}],
                 "pending": [], "problems": [], "ahead": [], "models_changed": None, "notices": [],
                 "up_to_date": True, "check": 0}


def test_every_command_with_json_is_documented():
    """Each command whose parser takes --json has a table (or, for completion, a sentence)."""
    from mfcore.cli import DB_COMMANDS

    names = " ".join(DOCUMENTS)
    for command in DB_COMMANDS:
        assert f"mf db {command} " in names + " ", f"mf db {command} --json has no table in README"
    assert "Errors" in DOCUMENTS


# ---------------------------------------------------------------- running the commands

def run_json(project, checker, name, *args, code=0, env=None):
    result = project.run(*args, "--json", env=env)
    assert result.code == code, result
    document = json.loads(result.out)
    checker.check(name, document)
    return document


def ledger(project) -> sqlite3.Connection:
    return sqlite3.connect(project.path / "dev.db")


def test_every_document_on_sqlite_matches_the_readme(project, tmp_path):
    from conftest import Project, SQLITE_CONFIG

    checker = Checker()
    mm = "mf db makemigrations --json"
    project.write_models(SEED)
    run_json(project, checker, mm, "db", "makemigrations", "--dry-run")
    run_json(project, checker, mm, "db", "makemigrations")
    run_json(project, checker, mm, "db", "makemigrations", "--check")
    run_json(project, checker, "mf db migrate --dry-run --json", "db", "migrate", "--dry-run")
    run_json(project, checker, "mf db migrate --json", "db", "migrate")
    project.write_models(WITH_PHONE)
    run_json(project, checker, mm, "db", "makemigrations", "--check", code=1)
    run_json(project, checker, mm, "db", "makemigrations")
    first, second = project.migration_names()
    run_json(project, checker, "mf db migrate --json", "db", "migrate")
    project.write_models(WITH_DISCOUNT)  # models.mp changed, no migration holds it
    run_json(project, checker, "mf db migrate --json", "db", "migrate")
    status = run_json(project, checker, "mf db status --json", "db", "status", "--check", code=1)
    assert status["models_changed"] and status["migrations"][0]["applied_at"]
    project.write_models(WITH_PHONE)
    run_json(project, checker, "mf db status --json", "db", "status", "--drift")
    run_json(project, checker, "mf db sql NNN --json", "db", "sql", "002")
    run_json(project, checker, "mf db sql NNN --json", "db", "sql", "002", "--reverse")

    # back and forth
    plan = run_json(project, checker, "mf db migrate --dry-run --json", "db", "migrate", "--dry-run", "--to", "001")
    assert plan["rollback"]
    run_json(project, checker, "mf db rollback --dry-run --json", "db", "rollback", "--dry-run")
    assert run_json(project, checker, "mf db rollback --json", "db", "rollback")["rolled_back"] == [second]
    run_json(project, checker, "mf db migrate --json", "db", "migrate")
    assert run_json(project, checker, "mf db migrate --json", "db", "migrate", "--to", "001")["rolled_back"]
    run_json(project, checker, "mf db rollback --json", "db", "rollback", "--fake")
    run_json(project, checker, "mf db migrate --json", "db", "migrate", "--fake")
    run_json(project, checker, "mf db rollback --json", "db", "rollback", "--fake")
    run_json(project, checker, "mf db migrate --json", "db", "migrate")

    # drift: a column and a table made by hand, and a migration left half-way
    with ledger(project) as connection:
        connection.execute("ALTER TABLE lt_customers ADD COLUMN nickname TEXT")
        connection.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, data TEXT)")
    drift = run_json(project, checker, "mf db drift --json", "db", "drift", code=1)
    assert drift["differences"] and drift["unmanaged"]
    assert run_json(project, checker, "mf db drift --json", "db", "drift", "--sql", code=1)["sql"]
    run_json(project, checker, "mf db drift --json", "db", "drift", "--strict", code=1)
    with ledger(project) as connection:
        connection.execute("UPDATE mf_migrations SET state = 'started' WHERE name = ?", (second,))
    assert run_json(project, checker, "mf db drift --json", "db", "drift", code=1)["partly_applied"]
    run_json(project, checker, "mf db status --json", "db", "status", "--drift")
    resolved = run_json(project, checker, "mf db resolve NNN --json", "db", "resolve", "002", "--applied")
    assert resolved["resolved"] == 2 and resolved["applied"] is True

    squash = run_json(project, checker, "mf db squash --json", "db", "squash")
    assert squash["replaces"] == [first, second] and squash["operations"]
    run_json(project, checker, "mf db status --json", "db", "status")

    # errors: a models error (every problem), a bad setting, an unreachable database
    project.write_models(SEED.replace("CharField(120)", "CharField(120").replace("BooleanField(", "Nope("))
    error = run_json(project, checker, "Errors", "db", "makemigrations", code=2)
    assert error["error"]["kind"] == "ModelsError" and error["error"]["line"] and error["error"]["problems"]
    project.write_models(WITH_PHONE)
    error = run_json(project, checker, "Errors", "db", "migrate", code=3,
                     env={"MF_DATABASE_URL": "postgresql://app:hunter2@127.0.0.1:1/shop"})
    assert error["error"]["kind"] == "DatabaseError" and "hunter2" not in json.dumps(error)
    error = run_json(project, checker, "Errors", "db", "sql", "009", code=2)
    assert run_json(project, checker, "Errors", "db", "sql", code=2)["error"]["kind"] == "UsageError"
    refused = run_json(project, checker, "Errors", "db", "reset", "--drop-db", code=2)
    assert refused["would_drop"] and refused["error"]["kind"] == "UsageError"

    reset = run_json(project, checker, "mf db reset --json", "db", "reset", "--drop-db", "--yes")
    assert reset["dropped"] and reset["removed"]
    other = Project(tmp_path / "other")
    other.path.mkdir()
    other.write("language_config.yaml", SQLITE_CONFIG)
    other.write_models(SEED)
    other.run("db", "makemigrations")
    other.run("db", "migrate")
    assert run_json(other, checker, "mf db reset --json", "db", "reset")["forgotten"]

    _inspect_and_baseline(tmp_path / "taken", checker)
    _rebase(tmp_path / "branches", checker)
    _lint(tmp_path / "linted", checker)
    _fleet(tmp_path / "fleet", checker)

    missing = sorted(f"{name}: {path}" for name, spec in DOCUMENTS.items() for path in spec
                     if (name, path) not in checker.seen and (name, path) not in POSTGRESQL_ONLY)
    assert not missing, "documented keys that no run printed:\n" + "\n".join(missing)


# Keys only a PostgreSQL project prints (SQLite rewrites no table under a lock that
# blocks traffic, and never cuts a migration into steps): the PostgreSQL run must print each.
POSTGRESQL_ONLY = {
    ("mf db makemigrations --json", "rewrites[][].table"),
    ("mf db makemigrations --json", "rewrites[][].column"),
    ("mf db makemigrations --json", "rewrites[][].why"),
    ("mf db sql NNN --json", "rewrites[].statement"),
    ("mf db sql NNN --json", "rewrites[].note"),
    ("mf db status --json", "migrations[].steps_done"),
    ("mf db status --json", "migrations[].steps"),
}


def test_the_keys_only_postgresql_prints_are_documented():
    for name, path in POSTGRESQL_ONLY:
        assert path in DOCUMENTS.get(name, {}), f"README documents no {name}: {path}"


def _inspect_and_baseline(root: Path, checker) -> None:
    from conftest import Project, SQLITE_CONFIG

    taken = Project(root)
    root.mkdir()
    taken.write("language_config.yaml", SQLITE_CONFIG)
    with sqlite3.connect(root / "dev.db") as connection:
        connection.executescript(
            "CREATE TABLE team (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE);"
            "CREATE TABLE member (id INTEGER PRIMARY KEY, team_id INTEGER REFERENCES team(id),"
            " score REAL DEFAULT (random()), shape POINT);")
    inspected = run_json(taken, checker, "mf db inspect --json", "db", "inspect")
    assert inspected["tables"] == 2 and inspected["notes"]
    run_json(taken, checker, "mf db inspect --json", "db", "inspect", "-o", "inspected.mp")
    baseline = run_json(taken, checker, "mf db baseline --json", "db", "baseline")
    assert baseline["models_written"] is True and baseline["tables"] == 2


def _rebase(root: Path, checker) -> None:
    """Two branches each wrote a 002: rebase moves one after the other."""
    from conftest import Project, SQLITE_CONFIG

    branches = Project(root)
    root.mkdir()
    branches.write("language_config.yaml", SQLITE_CONFIG)
    branches.write_models(SEED)
    branches.run("db", "makemigrations")
    branches.write_models(WITH_PHONE)
    branches.run("db", "makemigrations", "--name", "add_phone")
    branches.write_models(WITH_DISCOUNT)
    branches.run("db", "makemigrations", "--name", "add_discount")
    third = branches.migrations / branches.migration_names()[2]
    third.rename(branches.migrations / third.name.replace("003_", "002_"))
    rebased = run_json(branches, checker, "mf db rebase --json", "db", "rebase")
    assert rebased["moved"] and rebased["schema"] and rebased["notices"]


def _lint(root: Path, checker) -> None:
    """A migration that drops a column of an existing table: a finding, until its file accepts the rule."""
    from conftest import Project, SQLITE_CONFIG

    linted = Project(root)
    root.mkdir()
    linted.write("language_config.yaml", SQLITE_CONFIG)
    linted.write_models(WITH_PHONE)
    linted.run("db", "makemigrations")
    clean = run_json(linted, checker, "mf db lint --json", "db", "lint")
    assert clean["driver"] == "sqlite" and clean["migrations"] and clean["findings"] == []
    assert (clean["problems"], clean["accepted"]) == (0, 0)
    linted.write_models(SEED)  # phone is dropped
    made = run_json(linted, checker, "mf db makemigrations --json", "db", "makemigrations")
    assert [finding["rule"] for finding in made["lint"]] == ["ban-drop-column"]
    assert made["rewrites"] == [[]]  # SQLite: nothing is marked ⏳
    first, second = linted.migration_names()
    found = run_json(linted, checker, "mf db lint --json", "db", "lint", code=1)
    assert found["migrations"] == [first, second] and found["problems"] == 1
    finding = found["findings"][0]
    assert (finding["rule"], finding["migration"], finding["op"], finding["accepted"]) == \
        ("ban-drop-column", second, "drop_column", False)
    assert finding["operation"] == 0 and finding["statement"] is None and finding["sql"] is None
    assert run_json(linted, checker, "mf db lint --json", "db", "lint", "001")["migrations"] == [first]

    path = linted.migrations / second
    content = json.loads(path.read_text())
    path.write_text(json.dumps({**content, "lint": {"accept": ["ban-drop-colum"]}}))
    error = run_json(linted, checker, "Errors", "db", "lint", code=2)
    assert error["error"]["kind"] == "MigrationFileError" and "ban-drop-column" in error["error"]["message"]
    path.write_text(json.dumps({**content, "lint": {"accept": ["ban-drop-column"]}}))
    accepted = run_json(linted, checker, "mf db lint --json", "db", "lint", "--all")
    assert (accepted["problems"], accepted["accepted"]) == (0, 1) and accepted["findings"][0]["accepted"]
    assert run_json(linted, checker, "Errors", "db", "lint", "009", code=2)["error"]["kind"] == "MigrationFileError"

    rules = run_json(linted, checker, "mf db lint --rules --json", "db", "lint", "--rules")["rules"]
    assert [rule["name"] for rule in rules] == [
        "ban-drop-column", "ban-drop-table", "renaming-column", "renaming-table", "transaction-nesting"]


def _fleet(root: Path, checker) -> None:
    from conftest import Project

    fleet = Project(root)
    root.mkdir()
    fleet.write("language_config.yaml", json.dumps({
        "database": {"driver": "sqlite", "dsn": "dev.db"},
        "targets": {name: {"driver": "sqlite", "dsn": str(root / f"{name}.db")} for name in ("north", "south")}}))
    fleet.write_models(SEED)
    fleet.run("db", "makemigrations")
    fleet.write_models(WITH_PHONE)
    fleet.run("db", "makemigrations")
    migrated = run_json(fleet, checker, "mf db migrate --all --json", "db", "migrate", "--all")
    assert all(target["applied"] for target in migrated["targets"])
    run_json(fleet, checker, "mf db status --all --json", "db", "status", "--all")
    preview = run_json(fleet, checker, "mf db rollback --all --json", "db", "rollback", "--all", "--dry-run")
    assert all(target["sql"] for target in preview["targets"])
    run_json(fleet, checker, "mf db rollback --all --json", "db", "rollback", "--all")
    with sqlite3.connect(root / "south.db") as connection:  # the next migrate fails there
        connection.execute("ALTER TABLE lt_customers ADD COLUMN phone TEXT")
    failed = run_json(fleet, checker, "mf db migrate --all --json", "db", "migrate", "--all", code=3)
    assert [target["failed"] for target in failed["targets"]] == [False, True]


def test_documents_on_postgresql_match_the_readme(project, pg_url, pg_session):
    checker = Checker()
    env = {"MF_DATABASE_URL": f"{pg_url}?search_path={pg_session.fresh_schema()}"}
    project.write_models(SEED)
    run_json(project, checker, "mf db makemigrations --json", "db", "makemigrations", "--dry-run", env=env)
    run_json(project, checker, "mf db makemigrations --json", "db", "makemigrations", env=env)
    project.write_models(WITH_PHONE)
    run_json(project, checker, "mf db makemigrations --json", "db", "makemigrations", env=env)
    run_json(project, checker, "mf db migrate --dry-run --json", "db", "migrate", "--dry-run", env=env)
    run_json(project, checker, "mf db migrate --json", "db", "migrate", env=env)
    status = run_json(project, checker, "mf db status --json", "db", "status", "--drift", env=env)
    assert all(record["applied_at"] for record in status["migrations"])
    pg_session.execute("ALTER TABLE lt_customers ADD COLUMN nickname text")
    assert run_json(project, checker, "mf db drift --json", "db", "drift", "--sql", env=env, code=1)["differences"]
    pg_session.execute("ALTER TABLE lt_customers DROP COLUMN nickname")
    run_json(project, checker, "mf db migrate --dry-run --json", "db", "migrate", "--dry-run", "--to", "001", env=env)
    run_json(project, checker, "mf db rollback --dry-run --json", "db", "rollback", "--dry-run", env=env)
    run_json(project, checker, "mf db rollback --json", "db", "rollback", env=env)
    run_json(project, checker, "mf db inspect --json", "db", "inspect", env=env)
    run_json(project, checker, "mf db sql NNN --json", "db", "sql", "002", env=env)
    _lint_rewrites_and_steps(project, checker, pg_session, env)
    refused = run_json(project, checker, "Errors", "db", "reset", "--drop-db", env=env, code=2)
    assert refused["would_drop"]
    run_json(project, checker, "mf db reset --json", "db", "reset", "--drop-db", "--yes", env=env)
    missing = sorted(f"{name}: {path}" for name, path in POSTGRESQL_ONLY if (name, path) not in checker.seen)
    assert not missing, "documented keys that the PostgreSQL run did not print:\n" + "\n".join(missing)


def _lint_rewrites_and_steps(project, checker, session, env) -> None:
    """On PostgreSQL: a hand-written index found by lint, a type change that rewrites a
    table (⏳), and a migration made of steps that a failed index build leaves partly applied."""
    pending = run_json(project, checker, "mf db lint --json", "db", "lint", env=env)
    assert pending["driver"] == "postgresql" and pending["migrations"] and pending["problems"] == 0
    run_json(project, checker, "mf db migrate --json", "db", "migrate", env=env)
    assert run_json(project, checker, "mf db lint --json", "db", "lint", env=env)["migrations"] == []
    rules = run_json(project, checker, "mf db lint --rules --json", "db", "lint", "--rules", env=env)["rules"]
    assert "require-concurrent-index-creation" in [rule["name"] for rule in rules]
    assert [rule["name"] for rule in rules if rule["accepted"]] == ["require-timeout-settings"]

    assert project.run("db", "makemigrations", "--empty", "--name", "hand_index", env=env).code == 0
    hand = project.migrations / project.migration_names()[-1]
    hand.write_text(json.dumps({**json.loads(hand.read_text()), "ops": [
        {"op": "run_sql", "sql": "CREATE INDEX ix_phone ON lt_customers (phone)",
         "reverse_sql": "DROP INDEX ix_phone"}]}))
    found = run_json(project, checker, "mf db lint --json", "db", "lint", env=env, code=1)
    finding = found["findings"][0]
    assert (finding["rule"], finding["migration"], finding["operation"], finding["op"]) == \
        ("require-concurrent-index-creation", hand.name, 0, "run_sql")
    assert finding["statement"] and finding["sql"] == "CREATE INDEX ix_phone ON lt_customers (phone)"
    assert found["migrations"] == [hand.name] and (found["problems"], found["accepted"]) == (1, 0)
    hand_sql = run_json(project, checker, "mf db sql NNN --json", "db", "sql", hand.name[:3], env=env)["sql"]
    assert hand_sql[finding["statement"] - 1].rstrip(";") == finding["sql"]  # numbered as `mf db sql` shows
    run_json(project, checker, "mf db migrate --json", "db", "migrate", env=env)

    narrow = WITH_PHONE.replace("phone = CharField(max_length=20", "phone = CharField(max_length=10")
    project.write_models(narrow)
    made = run_json(project, checker, "mf db makemigrations --json", "db", "makemigrations", env=env)
    assert [[rewrite["table"] for rewrite in rewrites] for rewrites in made["rewrites"]] == [["lt_customers"]]
    assert "changing-column-type" in [finding["rule"] for finding in made["lint"]]
    shown = run_json(project, checker, "mf db sql NNN --json", "db", "sql", Path(made["file"]).name, env=env)
    assert [rewrite["statement"] for rewrite in shown["rewrites"]] and "⏳" in shown["rewrites"][0]["note"]
    assert 'ALTER COLUMN "phone" TYPE' in shown["sql"][shown["rewrites"][0]["statement"] - 1]
    assert made["rewrites"][0][0]["column"] == "phone"
    run_json(project, checker, "mf db migrate --json", "db", "migrate", env=env)

    # a unique name over duplicate names: step 1 (the new column) commits, step 2 (the
    # unique index, built concurrently) fails; migrate resumes there once the names differ
    session.execute("INSERT INTO lt_customers (email, name) VALUES ('a@example.com', 'same'), "
                    "('b@example.com', 'same')")
    nickname = "    nickname = CharField(max_length=20, null=true)\n"
    project.write_models(narrow.replace("name = CharField(120)", "name = CharField(120, unique=true)")
                         .replace('    table = "lt_customers"', nickname + '    table = "lt_customers"'))
    steps = run_json(project, checker, "mf db makemigrations --json", "db", "makemigrations", env=env)["file"]
    failed = run_json(project, checker, "Errors", "db", "migrate", env=env, code=3)
    assert failed["error"]["kind"] == "DatabaseError"
    status = run_json(project, checker, "mf db status --json", "db", "status", env=env)
    partial = status["migrations"][-1]
    assert (partial["state"], partial["steps_done"], partial["steps"]) == ("partial", 1, 3)
    assert Path(steps).name == partial["name"] and status["pending"] == [partial["name"]]
    refused = run_json(project, checker, "Errors", "db", "rollback", env=env, code=2)
    assert "partly applied" in refused["error"]["message"]
    session.execute("UPDATE lt_customers SET name = email")
    resumed = run_json(project, checker, "mf db migrate --json", "db", "migrate", env=env)
    assert resumed["applied"] == [partial["name"]] and any("resumed at step 2" in n for n in resumed["notices"])
    done = run_json(project, checker, "mf db status --json", "db", "status", env=env)["migrations"][-1]
    assert done["state"] == "applied" and "steps_done" not in done and "steps" not in done

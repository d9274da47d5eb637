"""Working as a team: checksums over content, renamed files, `mf db rebase` after a git
merge, schema.json rebuilt, `mf db squash` -- from the user's side, on both databases."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

import dbutil
from conftest import Project
from foldcheck import Database, catalog, differences
from mfcore import store

BASE = """\
enum Role { ADMIN, USER }

model Customer extends Model {
    email = CharField(255, unique=true)
    name = CharField(120)
    role = EnumField(Role, default=Role.USER)
}

model Order extends Model {
    customer = ForeignKey(Customer)
    total = IntegerField(default=0)
}
"""

NICKNAME = BASE.replace("    name = CharField(120)\n", "    name = CharField(120)\n    nickname = CharField(40, null=true)\n")
TAG = BASE + "\nmodel Tag extends Model {\n    label = CharField(30)\n}\n"


# ---------------------------------------------------------------- databases

@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request, tmp_path):
    """make(name) -> (Database, the MF_DATABASE_URL that points mf at it)."""
    made = []
    if request.param == "sqlite":
        def make(name):
            path = tmp_path / f"{name}.db"
            return Database.sqlite(path), f"sqlite:///{path}"
        yield make
        return
    url = request.getfixturevalue("pg_url")
    session = dbutil.PostgresSession(url)

    def make(name):
        database = Database.postgresql(url, session)
        made.append(database)
        return database, database.dsn
    yield make
    for database in made:
        database.drop()
    session.close()


def ledger(database: Database) -> list:
    return [row[0] for row in database.fetch('SELECT name FROM mf_migrations ORDER BY id')]


def same_catalog(first: Database, second: Database) -> None:
    first.schema_changed()
    second.schema_changed()
    assert differences(catalog(first), catalog(second)) == []


def mf(project: Project, url: str, *args):
    return project.run(*args, env={"MF_DATABASE_URL": url})


# ---------------------------------------------------------------- checksums over content

def _applied_project(project: Project, databases):
    database, url = databases("main")
    project.write_models(BASE)
    assert project.run("db", "makemigrations").code == 0
    project.write_models(NICKNAME)
    assert project.run("db", "makemigrations").code == 0
    assert mf(project, url, "db", "migrate").code == 0
    return database, url, sorted(project.migrations.glob("0*.json"))


def test_crlf_and_reindented_copies_of_applied_files_pass_integrity(project, databases):
    database, url, paths = _applied_project(project, databases)
    first, second = paths
    first.write_bytes(first.read_bytes().replace(b"\n", b"\r\n"))
    document = json.loads(second.read_bytes())
    second.write_text(json.dumps(dict(reversed(list(document.items()))), indent=4), encoding="utf-8")
    project.write_models(TAG.replace("    name = CharField(120)\n",
                                     "    name = CharField(120)\n    nickname = CharField(40, null=true)\n"))
    assert project.run("db", "makemigrations").code == 0

    result = mf(project, url, "db", "migrate")
    assert result.code == 0, result
    assert "003_create_tag.json" in result.out
    status = json.loads(mf(project, url, "db", "status", "--json").out)
    assert [m["state"] for m in status["migrations"]] == ["applied"] * 3


def test_an_edited_value_in_an_applied_file_fails_integrity(project, databases):
    database, url, paths = _applied_project(project, databases)
    edited = paths[1].read_text().replace('"max_length": 40', '"max_length": 41')
    assert edited != paths[1].read_text()
    paths[1].write_text(edited)
    before = project.state()

    result = mf(project, url, "db", "migrate")
    assert result.code == 2
    assert f"{paths[1].name} was edited after it was applied" in result.err
    assert project.state() == before


def test_a_ledger_with_byte_checksums_still_passes(project, databases):
    """Rows written when checksums were over the bytes keep matching, also for a file
    laid out by hand (whose bytes' and content's checksums differ)."""
    database, url, paths = _applied_project(project, databases)
    hand_laid = paths[1]
    hand_laid.write_text(json.dumps(json.loads(hand_laid.read_bytes()), indent=3), encoding="utf-8")
    one, two = ("?", "?") if database.driver == "sqlite" else ("$1", "$2")
    for path in paths:
        old = hashlib.sha256(path.read_bytes()).hexdigest()
        database.fetch(f"UPDATE mf_migrations SET checksum = {one} WHERE name = {two} RETURNING name", old, path.name)
    stored = database.fetch(f"SELECT checksum FROM mf_migrations WHERE name = {one}", hand_laid.name)[0][0]
    assert stored == hashlib.sha256(hand_laid.read_bytes()).hexdigest()

    result = mf(project, url, "db", "migrate")
    assert result.code == 0 and "No unapplied migrations." in result.out, result
    hand_laid.write_text(hand_laid.read_text().replace('"max_length": 40', '"max_length": 41'))
    assert mf(project, url, "db", "migrate").code == 2


# ---------------------------------------------------------------- two branches, with git

def git(root: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-c", "user.name=mf test", "-c", "user.email=test@localhost",
                           "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
                          cwd=root, capture_output=True, text=True)


def test_two_branches_merged_with_git_rebase_and_both_databases_reach_one_catalog(project, databases):
    """Two developers' clones, each with its database; B's branch is merged into A's."""
    db_a, url_a = databases("branch_a")
    db_b, url_b = databases("branch_b")
    fresh, url_fresh = databases("fresh")
    ours = project
    root = ours.path
    (root / ".gitignore").write_text("*.db\nmigrations/.applied\n")
    assert git(root, "init", "-q").returncode == 0
    ours.write_models(BASE)
    assert ours.run("db", "makemigrations").code == 0
    git(root, "add", "-A")
    assert git(root, "commit", "-qm", "base").returncode == 0
    assert git(root.parent, "clone", "-q", str(root), "theirs").returncode == 0
    theirs = Project(root.parent / "theirs")

    git(root, "checkout", "-qb", "a")
    ours.write_models(NICKNAME)
    assert ours.run("db", "makemigrations").code == 0
    git(root, "add", "-A")
    git(root, "commit", "-qm", "nickname")
    assert mf(ours, url_a, "db", "migrate").code == 0             # a database that applied A's 002

    git(theirs.path, "checkout", "-qb", "b")
    theirs.write_models(TAG)
    assert theirs.run("db", "makemigrations").code == 0
    git(theirs.path, "add", "-A")
    git(theirs.path, "commit", "-qm", "tag")
    assert mf(theirs, url_b, "db", "migrate").code == 0           # one that applied B's 002
    assert ledger(db_a) == ["001_enum_role_create_customer.json", "002_add_nickname.json"]
    assert ledger(db_b) == ["001_enum_role_create_customer.json", "002_create_tag.json"]

    git(root, "fetch", "-q", str(theirs.path), "b")
    merged = git(root, "merge", "FETCH_HEAD", "-m", "merge b")
    assert merged.returncode != 0 and "migrations/schema.json" in merged.stdout, merged
    assert b"<<<<<<<" in (ours.migrations / "schema.json").read_bytes()
    assert "nickname" in (root / "models.mp").read_text() and "Tag" in (root / "models.mp").read_text()

    # Before the rebase, migrate names the problem and the command that solves it.
    stuck = mf(ours, url_a, "db", "migrate")
    assert stuck.code == 2 and "`mf db rebase`" in stuck.err, stuck

    rebased = mf(ours, url_a, "db", "rebase")
    assert rebased.code == 0, rebased
    assert "Moved 002_create_tag.json to 003_create_tag.json" in rebased.out
    assert sorted(p.name for p in ours.migrations.glob("0*.json")) == [
        "001_enum_role_create_customer.json", "002_add_nickname.json", "003_create_tag.json"]
    # The rebuilt schema.json says what each model was read from: nothing is read again.
    made = ours.run("db", "makemigrations", "-v")
    assert made.code == 0 and "No changes detected." in made.out, made
    assert "Read 0 of 3 models" in made.out, made
    git(root, "add", "-A")
    assert git(root, "commit", "-qm", "merge b").returncode == 0
    assert git(theirs.path, "pull", "-q", "--no-rebase", str(root), "a").returncode == 0

    migrated_a = mf(ours, url_a, "db", "migrate")
    assert migrated_a.code == 0 and "003_create_tag.json" in migrated_a.out, migrated_a
    migrated_b = mf(theirs, url_b, "db", "migrate")
    assert migrated_b.code == 0, migrated_b
    assert "002_create_tag.json was applied here and is now 003_create_tag.json" in migrated_b.out
    assert "002_add_nickname.json" in migrated_b.out
    assert mf(theirs, url_fresh, "db", "migrate").code == 0

    same_catalog(db_a, db_b)
    same_catalog(db_a, fresh)
    assert sorted(ledger(db_b)) == sorted(ledger(db_a)) == sorted(ledger(fresh))
    for side, url in ((ours, url_a), (theirs, url_b)):
        again = mf(side, url, "db", "migrate")
        assert again.code == 0 and "No unapplied migrations." in again.out, again
        # Nothing forgotten: the rebased schema.json records the merged models.mp's digest.
        assert mf(side, url, "db", "status", "--check").code == 0
    recorded = json.loads((ours.migrations / "schema.json").read_text())["made_from"]
    assert recorded == "sha256:" + hashlib.sha256((root / "models.mp").read_bytes()).hexdigest()


def test_two_files_with_one_number_advise_rebase(project):
    project.write_models(BASE)
    project.run("db", "makemigrations")
    (project.migrations / "001_other_branch.json").write_text('{"format": 1, "ops": []}\n')
    before = project.state()
    for command in (("db", "migrate"), ("db", "makemigrations")):
        result = project.run(*command)
        assert result.code == 2 and "run `mf db rebase`" in result.err, result
        assert "renumber one of them" not in result.err
    assert project.state() == before


def test_rebase_of_branches_that_changed_the_same_field_is_a_conflict_and_changes_nothing(project):
    project.write_models(BASE)
    project.run("db", "makemigrations")
    project.write_models(BASE.replace("CharField(120)", "CharField(200)"))
    project.run("db", "makemigrations")
    ours = next(project.migrations.glob("002_*.json"))
    theirs_models = BASE.replace("CharField(120)", "CharField(300)")
    theirs = json.loads(ours.read_text().replace('"max_length": 200', '"max_length": 300'))
    (project.migrations / "002_name_300.json").write_text(json.dumps(theirs, indent=2, sort_keys=True) + "\n")
    project.write_models(theirs_models)
    before = project.state()

    result = project.run("db", "rebase")
    assert result.code == 2, result
    assert "cannot rebase" in result.err and "Customer name" in result.err
    assert "Nothing was changed" in result.err
    assert project.state() == before


def test_rebase_names_the_files_to_move_and_refuses_an_unknown_one(project):
    project.write_models(BASE)
    project.run("db", "makemigrations")
    project.write_models(NICKNAME)
    project.run("db", "makemigrations")
    before = project.state()
    unknown = project.run("db", "rebase", "009_nothing.json")
    assert unknown.code == 2 and "no migration file 009_nothing.json" in unknown.err
    assert project.state() == before

    # Moving the newest after the newest leaves it; schema.json is rebuilt all the same.
    (project.migrations / "schema.json").write_text("{}")
    done = project.run("--json", "db", "rebase")
    assert done.code == 0, done
    assert json.loads(done.out)["moved"] == [] and json.loads(done.out)["schema"] == "002_add_nickname.json"
    assert project.run("db", "makemigrations").out.strip() == "No changes detected."


# ---------------------------------------------------------------- squash

VERSIONS = [BASE, NICKNAME,
            NICKNAME + "\nmodel Tag extends Model {\n    label = CharField(30)\n}\n",
            NICKNAME.replace("total = IntegerField(default=0)", "total = IntegerField(default=0)\n    note = TextField(null=true)")
            + "\nmodel Tag extends Model {\n    label = CharField(30)\n    indexes = [Index(label)]\n}\n"]


def test_squash_round_trip_at_zero_in_between_and_at_the_squash_point(project, databases):
    at_zero, url_zero = databases("zero")
    between, url_between = databases("between")
    at_point, url_point = databases("point")
    for number, models in enumerate(VERSIONS[:3], 1):
        project.write_models(models)
        assert project.run("db", "makemigrations").code == 0
        if number == 1:
            assert mf(project, url_between, "db", "migrate").code == 0
    assert mf(project, url_point, "db", "migrate").code == 0
    originals = sorted(p.name for p in project.migrations.glob("0*.json"))
    project.write_models(VERSIONS[3])
    assert project.run("db", "makemigrations").code == 0

    squashed = project.run("db", "squash", "--to", "003")
    assert squashed.code == 0, squashed
    path = project.migrations / "003_squashed_001_003.json"
    document = json.loads(path.read_text())
    assert document["replaces"] == originals

    # The squashed file's operations are the fold of the range.
    import mfcore
    from mfcore import store
    from mfcore.operations import fold
    from mfcore.schema import Schema
    _migrations, range_schema = store.load_history(str(project.migrations),
                                                   [f for f in store.list_migration_files(str(project.migrations))
                                                    if f.name in originals])
    squash_file = store.MigrationFile(3, path.name, str(path))
    assert fold(store.read_migration(squash_file, Schema()).operations, Schema()) == range_schema
    assert range_schema == mfcore.parse(VERSIONS[2], index_foreign_keys=True)  # a new project's setting

    for url in (url_zero, url_between, url_point):
        result = mf(project, url, "db", "migrate")
        assert result.code == 0, result
    fourth = next(p.name for p in project.migrations.glob("004_*.json"))
    assert ledger(at_zero) == [path.name, fourth]
    assert ledger(between) == originals + [fourth]
    assert ledger(at_point) == originals + [fourth]
    same_catalog(at_zero, between)
    same_catalog(at_zero, at_point)

    # Once every database is past them, the originals go; nothing changes for any database.
    for name in originals:
        (project.migrations / name).unlink()
    for url in (url_zero, url_between, url_point):
        result = mf(project, url, "db", "migrate")
        assert result.code == 0 and "No unapplied migrations." in result.out, result
        status = json.loads(mf(project, url, "db", "status", "--json").out)
        assert all(m["state"] in ("applied", "replaced") for m in status["migrations"]), status
    assert project.run("db", "makemigrations").out.strip() == "No changes detected."
    fresh, url_fresh = databases("fresh")
    assert mf(project, url_fresh, "db", "migrate").code == 0
    same_catalog(at_zero, fresh)


def test_a_squash_of_the_newest_keeps_what_schema_json_says_models_mp_was_read_from(project):
    for models in VERSIONS[:3]:
        project.write_models(models)
        assert project.run("db", "makemigrations").code == 0
    before = json.loads((project.migrations / "schema.json").read_bytes())

    assert project.run("db", "squash").code == 0
    after = json.loads((project.migrations / "schema.json").read_bytes())
    assert after["migration"] == "003_squashed_001_003.json"
    assert after["made_from"] == before["made_from"]
    assert after["sources"]["models"] == before["sources"]["models"]
    # The next run reads no model: the sources still describe models.mp, sealed anew.
    made = project.run("db", "makemigrations", "-v")
    assert made.code == 0 and made.out.endswith("No changes detected.\n"), made
    assert f"Read 0 of {len(before['models'])} models" in made.out, made


def test_a_squash_over_a_hand_edited_schema_json_keeps_no_sources(project):
    for models in VERSIONS[:3]:
        project.write_models(models)
        assert project.run("db", "makemigrations").code == 0
    path = project.migrations / "schema.json"
    path.write_bytes(path.read_bytes().replace(b'"format": 1', b'"format":  1', 1))  # same JSON, other bytes

    assert project.run("db", "squash").code == 0
    after = json.loads(path.read_bytes())
    assert "sources" not in after and "made_from" not in after
    made = project.run("db", "makemigrations", "-v")
    assert made.code == 0 and made.out.endswith("No changes detected.\n"), made
    assert "Read 0 of" not in made.out, made


def test_squash_refuses_a_range_with_data_steps_naming_them(project):
    for models in VERSIONS[:2]:
        project.write_models(models)
        project.run("db", "makemigrations")
    second = next(project.migrations.glob("002_*.json"))
    document = json.loads(second.read_text())
    document["ops"].append({"op": "run_sql", "sql": "UPDATE customer SET nickname = name", "reverse_sql": ""})
    second.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    before = project.state()
    result = project.run("db", "squash")
    assert result.code == 2, result
    assert f"{second.name} hold(s) data steps" in result.err
    assert project.state() == before


def _squash_ranges(project, databases):
    """Migrations 001-004 of VERSIONS, and three databases: one that applied none of them,
    one 001 only, one 001-003; returns (databases, the names of 001-003, 004's name)."""
    made = {name: databases(name) for name in ("zero", "between", "point")}
    for number, models in enumerate(VERSIONS[:3], 1):
        project.write_models(models)
        assert project.run("db", "makemigrations").code == 0
        if number == 1:
            assert mf(project, made["between"][1], "db", "migrate").code == 0
    assert mf(project, made["point"][1], "db", "migrate").code == 0
    originals = sorted(p.name for p in project.migrations.glob("0*.json"))
    project.write_models(VERSIONS[3])
    assert project.run("db", "makemigrations").code == 0
    fourth = next(p.name for p in project.migrations.glob("004_*.json"))
    return made, originals, fourth


def _ops(path: Path) -> list:
    return json.loads(path.read_text())["ops"]


def test_a_squash_over_the_table_limit_is_written_in_parts_that_stand_for_the_range(project, databases, tmp_path):
    made, originals, fourth = _squash_ranges(project, databases)
    whole = Project(tmp_path / "whole")
    shutil.copytree(project.path, whole.path, ignore=shutil.ignore_patterns("*.db"))

    squashed = project.run("--json", "db", "squash", "--to", "003", "--max-tables", "2")
    assert squashed.code == 0, squashed
    document = json.loads(squashed.out)
    parts = [Path(shown).name for shown in document["files"]]
    assert len(parts) >= 2 and document["file"] == document["files"][0]
    assert parts == [f"003_squashed_001_003_part{n}.json" for n in range(1, len(parts) + 1)]
    assert "max_tables_per_migration (2)" in document["split"]
    assert whole.run("db", "squash", "--to", "003").code == 0
    [unsplit] = whole.migrations.glob("003_squashed_*.json")
    # The parts, one after another, are the squash; each lists the range and its place in the squash.
    assert [op for name in parts for op in _ops(project.migrations / name)] == _ops(unsplit)
    assert document["operations"] == _ops(unsplit)
    for index, name in enumerate(parts, 1):
        part = json.loads((project.migrations / name).read_text())
        assert part["replaces"] == originals and part["part"] == [index, len(parts)]
        touched = {op["table"] for op in part["ops"] if "table" in op}
        assert len(touched) <= 2, name
    listed = [f.name for f in store.list_migration_files(str(project.migrations))]
    assert listed == originals + parts + [fourth]

    # Each database goes on from where it is: the empty one applies the parts, in order;
    # the others apply the rest of the originals, and count every part as applied.
    for _database, url in made.values():
        result = mf(project, url, "db", "migrate")
        assert result.code == 0, result
    assert ledger(made["zero"][0]) == parts + [fourth]
    assert ledger(made["between"][0]) == originals + [fourth]
    assert ledger(made["point"][0]) == originals + [fourth]
    same_catalog(made["zero"][0], made["between"][0])
    same_catalog(made["zero"][0], made["point"][0])
    for label in ("between", "point"):
        states = {m["name"]: m["state"] for m in json.loads(mf(project, made[label][1], "db", "status", "--json").out)
                  ["migrations"]}
        assert all(states[name] == "applied" for name in originals + parts + [fourth]), states
    assert "No drift" in mf(project, made["zero"][1], "db", "drift").out

    # The parts roll back one by one, newest first, and apply again.
    zero, url = made["zero"]
    before = catalog(zero)
    undone = json.loads(mf(project, url, "--json", "db", "rollback", "3").out)["rolled_back"]
    assert undone == [fourth, parts[-1], parts[-2]]
    assert ledger(zero) == parts[:-2]
    assert mf(project, url, "db", "rollback", "--to", "0").code == 0
    assert ledger(zero) == []
    empty, _url = databases("empty")
    same_catalog(zero, empty)
    assert mf(project, url, "db", "migrate").code == 0
    assert ledger(zero) == parts + [fourth]
    zero.schema_changed()
    assert differences(catalog(zero), before) == []

    # A database that applied the originals and undoes the last of them is in between
    # again: the parts stay out, and the original runs.
    point, url = made["point"]
    assert json.loads(mf(project, url, "--json", "db", "rollback", "--to", "002").out)["rolled_back"] == \
        [fourth, originals[-1]]
    states = {m["name"]: m["state"] for m in json.loads(mf(project, url, "db", "status", "--json").out)["migrations"]}
    assert [states[name] for name in parts] == ["replaced"] * len(parts) and states[originals[-1]] == "pending"
    assert json.loads(mf(project, url, "--json", "db", "migrate").out)["applied"] == [originals[-1], fourth]

    # Without the originals, nothing changes for any database, and a new one applies the parts.
    for name in originals:
        (project.migrations / name).unlink()
    for _database, url in made.values():
        result = mf(project, url, "db", "migrate")
        assert result.code == 0 and "No unapplied migrations." in result.out, result
    assert project.run("db", "makemigrations").out.strip() == "No changes detected."
    fresh, url_fresh = databases("fresh")
    assert mf(project, url_fresh, "db", "migrate").code == 0
    assert ledger(fresh) == parts + [fourth]
    same_catalog(made["point"][0], fresh)


def _squashed_in_parts(project) -> list:
    """Migrations 001-003 of VERSIONS, squashed one table to a file: the parts' paths."""
    for models in VERSIONS[:3]:
        project.write_models(models)
        assert project.run("db", "makemigrations").code == 0
    squashed = project.run("--json", "db", "squash", "--max-tables", "1")
    assert squashed.code == 0, squashed
    return [project.path / shown for shown in json.loads(squashed.out)["files"]]


def test_the_parts_of_a_split_squash_are_checked_where_they_are_read(project):
    parts = _squashed_in_parts(project)
    assert len(parts) >= 3
    # schema.json names the last part: nothing to make.
    assert json.loads((project.migrations / "schema.json").read_text())["migration"] == parts[-1].name
    assert project.run("db", "makemigrations").out.strip() == "No changes detected."

    kept = parts[1].read_bytes()
    parts[1].unlink()
    before = project.state()
    result = project.run("db", "migrate")
    assert result.code == 2, result
    assert f"is split into {len(parts)} files and part(s) 2 of it are missing" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert project.state() == before
    parts[1].write_bytes(kept)

    document = json.loads(parts[0].read_text())
    for wrong in ([0, len(parts)], [1], "1/3", [2, 1]):
        parts[0].write_text(json.dumps(dict(document, part=wrong)))
        result = project.run("db", "migrate")
        assert result.code == 2 and "'part' must be [index, count]" in result.err, result
    parts[0].write_text(json.dumps({key: value for key, value in document.items() if key != "replaces"}))
    result = project.run("db", "migrate")
    assert result.code == 2 and "'part' belongs to a squashed migration" in result.err, result
    parts[0].write_text(json.dumps(document))

    # The originals removed (every database migrated past them), and one part left alone.
    for path in project.migrations.glob("0*.json"):
        if path != parts[0]:
            path.unlink()
    before = project.state()
    for command in (("db", "migrate"), ("db", "status"), ("db", "makemigrations")):
        result = project.run(*command)
        assert result.code == 2, result
        missing = ", ".join(map(str, range(2, len(parts) + 1)))
        assert f"is split into {len(parts)} files and part(s) {missing} of it are missing" in result.err, result
        assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert project.state() == before


def test_a_replaces_key_is_checked_where_the_file_is_read(project):
    project.write_models(BASE)
    project.run("db", "makemigrations")
    path = next(project.migrations.glob("001_*.json"))
    document = json.loads(path.read_text())
    document["replaces"] = ["009_later.json"]
    path.write_text(json.dumps(document))
    before = project.state()
    result = project.run("db", "migrate")
    assert result.code == 2 and "'replaces' must list migrations" in result.err, result
    assert project.state() == before


def test_completion_knows_rebase_and_squash(project):
    script = project.run("completion", "bash")
    assert script.code == 0
    commands = next(line for line in script.out.splitlines() if "makemigrations migrate" in line)
    assert " rebase " in commands and " squash" in commands
    assert 'squash) opts="--config --help --json --max-tables --name --to --verbose"' in script.out
    fish = project.run("completion", "fish").out
    assert "__fish_seen_subcommand_from migrate squash rollback' -l to" in fish


def _two_branches_side_by_side(project, ours_models, theirs_models):
    """001 from BASE, then 002 from each branch (ours from models, theirs written as its
    own makemigrations would), models.mp set to ``merged``."""
    project.write_models(BASE)
    project.run("db", "makemigrations")
    snapshot = (project.migrations / "schema.json").read_bytes()
    project.write_models(theirs_models)
    assert project.run("db", "makemigrations", "--name", "theirs").code == 0
    theirs = next(project.migrations.glob("002_theirs.json"))
    moved_aside = theirs.read_bytes()
    theirs.unlink()
    (project.migrations / "schema.json").write_bytes(snapshot)
    project.write_models(ours_models)
    assert project.run("db", "makemigrations", "--name", "ours").code == 0
    (project.migrations / "002_theirs.json").write_bytes(moved_aside)


def test_rebase_without_a_database_moves_the_later_file_by_name_and_says_so(project):
    _two_branches_side_by_side(project, NICKNAME, TAG)
    project.write_models(NICKNAME + TAG[len(BASE):])
    result = project.run("db", "rebase")
    assert result.code == 0, result
    assert "does not exist yet; chose by name" in result.out
    assert "Moved 002_theirs.json to 003_theirs.json" in result.out
    assert not (project.path / "dev.db").exists()
    assert project.run("db", "makemigrations").out.strip() == "No changes detected."


def test_rebase_that_no_longer_builds_models_mp_is_a_conflict(project):
    """Theirs adds Customer.age as an integer; the merge resolved models.mp to text."""
    age = BASE.replace("    name = CharField(120)\n", "    name = CharField(120)\n    age = IntegerField(null=true)\n")
    _two_branches_side_by_side(project, NICKNAME, age)
    project.write_models(NICKNAME.replace("    nickname", "    age = TextField(null=true)\n    nickname"))
    before = project.state()
    result = project.run("db", "rebase")
    assert result.code == 2, result
    assert "build Customer otherwise than models.mp says" in result.err
    assert project.state() == before


def test_a_pending_file_below_the_newest_with_a_data_step_is_refused(project):
    _two_branches_side_by_side(project, NICKNAME, TAG)
    project.write_models(NICKNAME + TAG[len(BASE):])
    (project.migrations / "002_theirs.json").rename(project.migrations / "003_theirs.json")
    ours = project.migrations / "002_ours.json"
    hidden = ours.read_bytes()
    ours.unlink()
    assert project.run("db", "migrate").code == 0   # this database applied theirs; ours comes in below it
    document = json.loads(hidden)
    document["ops"].append({"op": "run_sql", "sql": "UPDATE customer SET nickname = name", "reverse_sql": ""})
    ours.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    before = project.state()
    result = project.run("db", "migrate")
    assert result.code == 2, result
    assert "002_ours.json, which hold(s) data steps" in result.err
    assert "`mf db rebase 002_ours.json`" in result.err
    assert project.state() == before

    # Without the data step the two commute, and ours runs after theirs, with a line saying so.
    ours.write_bytes(hidden)
    result = project.run("db", "migrate")
    assert result.code == 0 and "002_ours.json runs after migrations numbered above it" in result.out, result


def test_rebase_keeps_a_squash_and_its_originals_and_moves_the_branch_beside_them(project, databases):
    """A squash (here in parts) keeps the number of the last migration it replaces and
    sits beside it: that is one line of history, not two branches. Rebase moves only the
    other branch's file of that number, and both an old database and a fresh one end
    with the same catalog."""
    originals_db, originals_url = databases("originals")
    fresh_db, fresh_url = databases("fresh")
    _two_branches_side_by_side(project, NICKNAME, TAG)  # 001, 002_ours, 002_theirs
    theirs = (project.migrations / "002_theirs.json").read_bytes()
    (project.migrations / "002_theirs.json").unlink()
    assert mf(project, originals_url, "db", "migrate").code == 0  # 001 and 002_ours
    squashed = project.run("db", "squash", "--max-tables", "1")
    assert squashed.code == 0, squashed
    assert len(list(project.migrations.glob("002_*_part*.json"))) >= 2
    (project.migrations / "002_theirs.json").write_bytes(theirs)  # the merged branch
    project.write_models(NICKNAME + TAG[len(BASE):])
    before = sorted(p.name for p in project.migrations.glob("0*.json"))

    rebased = mf(project, originals_url, "db", "rebase")
    assert rebased.code == 0, rebased
    assert "Moved 002_theirs.json to 003_theirs.json" in rebased.out
    assert sorted(p.name for p in project.migrations.glob("0*.json")) == \
        sorted(set(before) - {"002_theirs.json"} | {"003_theirs.json"})
    assert project.run("db", "makemigrations").out.strip() == "No changes detected."
    for url in (originals_url, fresh_url):
        migrated = mf(project, url, "db", "migrate")
        assert migrated.code == 0, migrated
    assert ledger(originals_db)[-1] == "003_theirs.json"
    same_catalog(originals_db, fresh_db)

    unmoved = project.state()
    again = project.run("db", "rebase")  # no database: chosen by name, and nothing is left to move
    assert again.code == 0 and "No migration to move." in again.out, again
    assert {k: v for k, v in project.state().items() if k != "migrations/schema.json"} == \
        {k: v for k, v in unmoved.items() if k != "migrations/schema.json"}


def test_sql_lint_and_resolve_take_a_file_name_where_a_number_has_several_files(project, tmp_path):
    """The parts of a squash share its number with each other and with the last original:
    a number that several files have is refused, naming them; a file name picks one."""
    parts = _squashed_in_parts(project)
    number = parts[0].name[:3]
    sharing = sorted(p.name for p in project.migrations.glob(f"{number}_*.json"))
    assert len(sharing) == len(parts) + 1  # the original and the parts

    before = project.state()
    refused = project.run("db", "sql", number)
    assert refused.code == 2, refused
    assert refused.err == (f"error: {len(sharing)} migration files have the number {number} ({', '.join(sharing)}); "
                           "name the one you mean by its file name\n")
    assert project.state() == before

    second = parts[1]
    shown = project.run("--json", "db", "sql", second.name)
    assert shown.code == 0, shown
    document = json.loads(shown.out)
    assert document["name"] == second.name
    created = {op["table"] for op in _ops(second) if op["op"] == "create_model"}
    assert created and all(any(f'CREATE TABLE "{table}"' in line for line in document["sql"]) for table in created)
    first_tables = {op["table"] for op in _ops(parts[0]) if op["op"] == "create_model"}
    assert not any(f'CREATE TABLE "{table}"' in line for table in first_tables for line in document["sql"])
    missing = project.run("db", "sql", f"{number}_no_such_file.json")
    assert missing.code == 2 and "no migration file" in missing.err, missing

    linted = project.run("--json", "db", "lint", second.name)
    assert linted.code in (0, 1), linted
    assert json.loads(linted.out)["migrations"] == [second.name]

    # resolve looks in the ledger for the file named, not the first of its number.
    database = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert mf(project, database, "db", "migrate").code == 0
    settled = mf(project, database, "db", "resolve", second.name, "--applied")
    assert settled.code == 2 and f"{second.name} is applied, not unresolved" in settled.err, settled

"""Mutated migration files, schema.json and .applied: every one is refused in one line
with exit 2 (or, when the mutation is harmless, accepted), never a traceback, never a
file written, a statement run or an injected table created.

The project: the seed scenario with 001 applied to an SQLite database and 002 pending.
A mutation changes one value of one document: its type, its nesting, SQL in its place,
or the key gone. ``MF_FUZZ_EXAMPLES`` raises the number of examples (CI runs a few
dozen per document in seconds).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SQLITE_CONFIG, tree_state
from mfcore import cli
from seed import SEED, WITH_PHONE

EXAMPLES = int(os.environ.get("MF_FUZZ_EXAMPLES", "40"))
INJECTION = '255)); CREATE TABLE pwned (secret text); --'
COMMANDS = (["db", "sql", "2"], ["db", "migrate"], ["db", "status"], ["db", "makemigrations", "--check"])


def run(root, *args):
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.chdir(cwd)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "app"
    root.mkdir()
    (root / "language_config.yaml").write_text(SQLITE_CONFIG)
    (root / "models.mp").write_text(SEED)
    assert run(root, "db", "makemigrations")[0] == 0
    assert run(root, "db", "migrate")[0] == 0
    (root / "models.mp").write_text(WITH_PHONE)
    assert run(root, "db", "makemigrations")[0] == 0
    return root


def paths(doc, prefix=()):
    """Every (path, value) in a JSON document, containers included."""
    yield prefix, doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from paths(value, prefix + (index,))


def kind(value) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}[type(value)]


REPLACEMENTS = {
    "int": 7, "float": 1e308 * 10 if False else 2.5, "str": INJECTION, "bool": True, "null": None,
    "list": ["a", ["b"]], "dict": {"op": ["x"]}, "big": 10 ** 30, "nested": [[[[[["deep"]]]]]],
}


def mutated(doc, path, how):
    """(document, strict): ``strict`` when the mutation gives a value the slot cannot hold."""
    copy = json.loads(json.dumps(doc))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    old = parent[key]
    if how == "delete":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
        return copy, False
    if how == "sql":
        new = INJECTION
    elif how == "wrap":
        new = [old]
    else:
        new = REPLACEMENTS[how]
    parent[key] = new
    in_default = "default" in path
    strict = old is not None and not in_default and kind(old) != kind(new) \
        and not (how == "big" and kind(old) == "int")
    return copy, strict


DOCUMENTS = ["migrations/002_add_phone.json", "migrations/001_enum_invoicestatus_enum_userrole.json",
             "migrations/schema.json", "migrations/.applied"]


@st.composite
def mutations(draw, template):
    name = draw(st.sampled_from(DOCUMENTS))
    doc = json.loads((template / name).read_text())
    candidates = [p for p, _ in paths(doc) if p]
    path = draw(st.sampled_from(candidates))
    how = draw(st.sampled_from(["delete", "sql", "wrap", *REPLACEMENTS]))
    return name, path, how


def tables(root):
    with sqlite3.connect(root / "dev.db") as connection:
        return sorted(connection.execute("SELECT name, sql FROM sqlite_master"))


def ledger(root):
    with sqlite3.connect(root / "dev.db") as connection:
        return connection.execute("SELECT * FROM mf_migrations").fetchall()


def check_mutation(template, work, name, path, how):
    root = work / "app"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(template, root)
    doc = json.loads((root / name).read_text())
    new, strict = mutated(doc, path, how)
    (root / name).write_text(json.dumps(new))
    for command in COMMANDS:
        before_files, before_tables, before_ledger = tree_state(root), tables(root), ledger(root)
        code, out, err = run(root, *command)
        where = f"{name} {list(path)} {how} -> {command}: {code} {out!r} {err!r}"
        assert "Traceback" not in err, where
        assert code in (0, 1, 2, 3), where
        if code in (2, 3):
            assert err.count("\n") == 1 and err.startswith("error: "), where
            assert tree_state(root) == before_files, where
            assert tables(root) == before_tables and ledger(root) == before_ledger, where
        if strict and command[1] in ("sql", "migrate") and name.endswith("002_add_phone.json"):
            # refused where the file is read, not by the database after it ran
            assert code == 2, f"accepted a value of the wrong type: {where}"
        assert "pwned" not in {t[0] for t in tables(root)}, where


def test_fuzz_migration_files_schema_and_applied(template, tmp_path):
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.data())
    def check(data):
        name, path, how = data.draw(mutations(template))
        check_mutation(template, tmp_path, name, path, how)
    check()


@pytest.mark.parametrize("key", ["max_length", "max_digits", "decimal_places"])
def test_sql_in_a_number_slot_is_refused_where_the_file_is_read(template, tmp_path, key):
    root = tmp_path / "app"
    shutil.copytree(template, root)
    target = root / "migrations" / "002_add_phone.json"
    doc = json.loads(target.read_text())
    doc["ops"][0]["field_def"][key] = INJECTION
    doc["ops"][0]["field_def"]["type"] = "DecimalField" if key != "max_length" else "CharField"
    target.write_text(json.dumps(doc))
    before = tree_state(root)
    for command in (["db", "migrate"], ["db", "sql", "2"]):
        code, out, err = run(root, *command)
        assert code == 2, (out, err)
        assert err.startswith(f"error: 002_add_phone.json: ops[0].field_def.{key} must be")
        assert err.count("\n") == 1
    assert tree_state(root) == before
    assert "pwned" not in {t[0] for t in tables(root)}


def leaves(doc):
    """The path of every string, number and boolean in a JSON document."""
    return [path for path, value in paths(doc) if path and not isinstance(value, (dict, list))]


@pytest.mark.parametrize("name", ["migrations/002_add_phone.json", "migrations/.applied", "migrations/schema.json"])
def test_sql_in_every_string_and_number_slot(template, tmp_path, name):
    """Not a sample: SQL put in each value of the document in turn. A slot that takes
    no text refuses it where the file is read (exit 2, one line); one that takes text
    (a name) carries it quoted, so whatever happens, no injected statement runs."""
    doc = json.loads((template / name).read_text())
    slots = leaves(doc)
    assert slots
    for path in slots:
        check_mutation(template, tmp_path, name, path, "sql")

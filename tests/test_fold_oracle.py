"""The fold oracle: histories of models.mp, migrated step by step with rows in every
table, must give the database that the last version gives alone, name for name.

Hypothesis draws histories of up to four versions. Each version changes a few
things at once, among them what makes names collide: model renames (with and
without a table change, with the fields reordered), field renames, column-order
changes, db_column and table changes, swaps of tables and of db_columns, names
taken by a new object in the step that frees them, indexes moving between models.
Renames are answered as the history intends (AnswerQuestioner). After every step a
row goes into every table; at the end every row of a model that survived is still
there with the values of the fields that survived, and the catalog (foldcheck.py)
equals that of a database made from the last models.mp alone.

MF_ORACLE_EXAMPLES sets the number of histories per database (default 60, kept
small for CI's two cores; MF_ORACLE_EXAMPLES=500 for a long local run).
"""
from __future__ import annotations

import copy
import os
import re
import uuid

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from foldcheck import Database, Stepwise, catalog, differences

EXAMPLES = int(os.environ.get("MF_ORACLE_EXAMPLES", "40"))

MODEL_NAMES = ["Alpha", "Beta", "Gamma", "Delta"]
TABLES = ["t1", "t2", "t3"]
FIELD_NAMES = ["a", "b", "c", "d"]
COLUMNS = ["c1", "c2", "a", "b"]
INDEX_NAMES = ["ix1", "ix2"]
KINDS = ["IntegerField", "CharField", "TextField", "BooleanField", "EnumField", "ForeignKey", "PositiveIntegerField"]


# ---------------------------------------------------------------- a history, as data

def _default_table(name):
    return name.lower()


class State:
    """The models of one version: lists of dicts with lineage ids (``lid``) that survive renames."""

    def __init__(self):
        self.models = []
        self.next_lid = 0

    def lid(self):
        self.next_lid += 1
        return self.next_lid

    def by_lid(self, lid):
        return next((m for m in self.models if m["lid"] == lid), None)

    def table(self, model):
        return model["table"] or _default_table(model["name"])

    def render(self) -> str:
        lines = ["enum Mood { HAPPY, SAD }"]
        for model in self.models:
            body = []
            for f in model["fields"]:
                args = []
                if f["kind"] == "CharField":
                    args.append(str(f["length"]))
                elif f["kind"] == "EnumField":
                    args.append("Mood")
                elif f["kind"] == "ForeignKey":
                    args.append(self.by_lid(f["target"])["name"])
                if f["default"]:
                    args.append("default=" + {"IntegerField": "7", "CharField": '"d"', "TextField": '"d"',
                                              "BooleanField": "true", "EnumField": "Mood.SAD",
                                              "PositiveIntegerField": "7"}[f["kind"]])
                if f["null"] or f["kind"] == "ForeignKey":
                    args.append("null=true")
                if f["unique"]:
                    args.append("unique=true")
                if f["db_index"]:
                    args.append("db_index=true")
                if f["column"]:
                    args.append(f'db_column="{f["column"]}"')
                body.append(f"    {f['name']} = {f['kind']}({', '.join(args)})")
            if model["indexes"]:
                listed = ", ".join(f'Index({field}, name="{name}")' for name, field in model["indexes"])
                body.append(f"    indexes = [{listed}]")
            # A check names its field's column as it is now; a dropped field's check goes with it.
            columns = {f["lid"]: _column(f) for f in model["fields"]}
            checks = [(lid, named) for lid, named in model.get("checks", ()) if lid in columns]
            if checks:
                listed = ", ".join(
                    f'Check("\\"{columns[lid]}\\" IS NULL OR \\"{columns[lid]}\\" IS NOT NULL"'
                    + (f', name="ck_f{lid}")' if named else ")") for lid, named in checks)
                body.append(f"    checks = [{listed}]")
            if model["table"]:
                body.append(f'    table = "{model["table"]}"')
            lines.append(f"model {model['name']} extends Model {{\n" + "\n".join(body) + "\n}")
        return "\n".join(lines) + "\n"


def _column(f):
    return f["column"] or f["name"]


class Step:
    """One edit of models.mp: what it froze (renamed things change nothing else) and the renames."""

    def __init__(self, state):
        self.start_models = {m["name"] for m in state.models}
        self.start_fields = {m["lid"]: {f["name"] for f in m["fields"]} for m in state.models}
        self.frozen_models, self.frozen_fields = set(), set()
        self.touched = set()  # models changed in this step: not renamed in it too
        self.dropped_tables = set()  # a new model there would be the dropped one renamed (differ.py)
        self.model_renames, self.field_renames = {}, {}
        self.log = []


def _free_models(state, step):
    return [m for m in state.models if m["lid"] not in step.frozen_models]


def _new_field(draw, state, model, step):
    names = [n for n in FIELD_NAMES if all(f["name"] != n for f in model["fields"])
             and n not in step.start_fields.get(model["lid"], ())
             and all(_column(f) != n for f in model["fields"])]
    if not names:
        return None
    kind = draw(st.sampled_from(KINDS))
    others = [m for m in state.models if m is not model]
    if kind == "ForeignKey" and not others:
        kind = "IntegerField"
    f = {"lid": state.lid(), "name": draw(st.sampled_from(names)), "kind": kind, "length": 20,
         "null": True, "default": False, "unique": False, "db_index": False, "column": None, "target": None}
    if kind == "ForeignKey":
        f["target"] = draw(st.sampled_from(others))["lid"]
    else:
        f["null"] = draw(st.booleans())
        f["default"] = not f["null"] or draw(st.booleans())
        f["unique"] = kind in ("IntegerField", "CharField") and not f["default"] and draw(st.integers(0, 3)) == 0
        f["db_index"] = not f["unique"] and draw(st.integers(0, 3)) == 0
    return f


def _add_model(draw, state, step):
    names = [n for n in MODEL_NAMES if all(m["name"] != n for m in state.models) and n not in step.start_models
             and all(state.table(m) != _default_table(n) for m in state.models)
             and _default_table(n) not in step.dropped_tables]
    if not names:
        return
    model = {"lid": state.lid(), "name": draw(st.sampled_from(names)), "table": None, "fields": [], "indexes": []}
    free_tables = [t for t in TABLES if all(state.table(m) != t for m in state.models)
                   and t not in step.dropped_tables]
    if free_tables and draw(st.booleans()):
        model["table"] = draw(st.sampled_from(free_tables))
    for _ in range(draw(st.integers(1, 2))):
        f = _new_field(draw, state, model, step)
        if f is not None:
            model["fields"].append(f)
    state.models.append(model)
    step.frozen_models.add(model["lid"])  # new: nothing to migrate inside it
    step.log.append(f"add model {model['name']}")


def _drop_model(draw, state, step):
    candidates = _free_models(state, step)
    if not candidates:
        return
    model = draw(st.sampled_from(candidates))
    pointing = [(m, f) for m in state.models if m is not model for f in m["fields"] if f["target"] == model["lid"]]
    if any(m["lid"] in step.frozen_models or len(m["fields"]) < 2 for m, _f in pointing):
        return
    for m, f in pointing:
        m["fields"].remove(f)
        step.touched.add(m["lid"])
    state.models.remove(model)
    step.dropped_tables.add(state.table(model))
    step.log.append(f"drop model {model['name']}")


def _rename_model(draw, state, step):
    candidates = [m for m in _free_models(state, step) if not any(
        f["lid"] in step.frozen_fields for f in m["fields"]) and m["lid"] not in step.touched]
    names = [n for n in MODEL_NAMES if all(m["name"] != n for m in state.models) and n not in step.start_models]
    if not candidates or not names:
        return
    model = draw(st.sampled_from(candidates))
    new_name = draw(st.sampled_from(names))
    if model["table"] is None and (any(state.table(m) == _default_table(new_name) for m in state.models)
                                   or _default_table(new_name) in step.dropped_tables):
        return
    if model["table"] is None and draw(st.booleans()):
        model["table"] = state.table(model)  # keeps its table: a class rename only
    old_name = model["name"]
    model["name"] = new_name
    if draw(st.booleans()):
        model["fields"] = draw(st.permutations(model["fields"]))
    step.model_renames[old_name] = new_name
    step.frozen_models.add(model["lid"])
    step.log.append(f"rename model {old_name} -> {new_name}")


def _set_table(draw, state, step):
    candidates = [m for m in _free_models(state, step)]
    if not candidates:
        return
    model = draw(st.sampled_from(candidates))
    choices = [t for t in TABLES if all(state.table(m) != t for m in state.models)]
    if model["table"] is not None and all(state.table(m) != _default_table(model["name"]) for m in state.models
                                          if m is not model):
        choices.append(None)
    if not choices:
        return
    model["table"] = draw(st.sampled_from(choices))
    step.touched.add(model["lid"])
    step.log.append(f"table of {model['name']} -> {model['table']}")


def _swap_tables(draw, state, step):
    candidates = _free_models(state, step)
    if len(candidates) < 2:
        return
    first, second = draw(st.lists(st.sampled_from(candidates), min_size=2, max_size=2, unique_by=id))
    first["table"], second["table"] = state.table(second), state.table(first)
    step.touched.update((first["lid"], second["lid"]))
    step.log.append(f"swap tables of {first['name']} and {second['name']}")


def _field_edit(draw, state, step, edit):
    candidates = [m for m in _free_models(state, step) if m["fields"]]
    if not candidates:
        return
    model = draw(st.sampled_from(candidates))
    step.touched.add(model["lid"])
    fields = [f for f in model["fields"] if f["lid"] not in step.frozen_fields]
    columns = {_column(f) for f in model["fields"]}
    if edit == "add":
        f = _new_field(draw, state, model, step)
        if f is not None:
            model["fields"].insert(draw(st.integers(0, len(model["fields"]))), f)
            step.log.append(f"add field {model['name']}.{f['name']}")
        return
    if edit == "reorder":
        model["fields"] = draw(st.permutations(model["fields"]))
        step.log.append(f"reorder {model['name']}")
        return
    if not fields:
        return
    f = draw(st.sampled_from(fields))
    if edit == "drop" and len(model["fields"]) > 1:
        model["fields"].remove(f)
        model["indexes"] = [i for i in model["indexes"] if i[1] != f["name"]]
        step.log.append(f"drop field {model['name']}.{f['name']}")
    elif edit == "rename":
        names = [n for n in FIELD_NAMES if all(g["name"] != n for g in model["fields"])
                 and n not in step.start_fields.get(model["lid"], ()) and (f["column"] or n not in columns)]
        if names:
            old = f["name"]
            f["name"] = draw(st.sampled_from(names))
            model["indexes"] = [(i, f["name"] if field == old else field) for i, field in model["indexes"]]
            step.field_renames[(model["lid"], old)] = f["name"]
            step.frozen_fields.add(f["lid"])
            step.log.append(f"rename field {model['name']}.{old} -> {f['name']}")
    elif edit == "column":
        choices = [c for c in COLUMNS if c not in columns] + ([None] if f["name"] not in columns - {_column(f)} else [])
        if choices:
            f["column"] = draw(st.sampled_from(choices))
            step.frozen_fields.add(f["lid"])
            step.log.append(f"db_column of {model['name']}.{f['name']} -> {f['column']}")
    elif edit == "swap_columns" and len(fields) >= 2:
        other = draw(st.sampled_from([g for g in fields if g is not f]))
        f["column"], other["column"] = _column(other), _column(f)
        step.frozen_fields.update((f["lid"], other["lid"]))
        step.log.append(f"swap columns of {model['name']}.{f['name']} and {other['name']}")
    elif edit == "null" and f["kind"] != "ForeignKey":
        f["null"] = not f["null"]
        if not f["null"]:
            f["default"] = True
        f["unique"] = f["unique"] and not f["default"]
        step.frozen_fields.add(f["lid"])
        step.log.append(f"null of {model['name']}.{f['name']} -> {f['null']}")
    elif edit == "widen" and f["kind"] == "CharField" and f["length"] == 20:
        f["length"] = 40
        step.frozen_fields.add(f["lid"])
        step.log.append(f"widen {model['name']}.{f['name']}")
    elif edit == "check":
        checks = model.setdefault("checks", [])
        present = [c for c in checks if c[0] == f["lid"]]
        if present:
            checks.remove(present[0])
        else:
            checks.append((f["lid"], draw(st.booleans())))
        step.log.append(f"check of {model['name']}.{f['name']} -> {not present}")
    elif edit == "db_index" and not f["unique"]:
        f["db_index"] = not f["db_index"]
        step.log.append(f"db_index of {model['name']}.{f['name']} -> {f['db_index']}")
    elif edit == "index":
        used = {i for m in state.models for i, _f in m["indexes"]}
        free = [i for i in INDEX_NAMES if i not in used]
        if free:
            name = draw(st.sampled_from(free))
            model["indexes"].append((name, f["name"]))
            step.log.append(f"index {name} on {model['name']}.{f['name']}")
    elif edit == "move_index":
        owners = [(m, i) for m in candidates for i in m["indexes"]]
        if owners:
            source, index = draw(st.sampled_from(owners))
            source["indexes"].remove(index)
            step.touched.add(source["lid"])
            step.log.append(f"index {index[0]} leaves {source['name']}")
            if model is not source:
                model["indexes"].append((index[0], f["name"]))
                step.log.append(f"index {index[0]} goes to {model['name']}.{f['name']}")


EDITS = ["add_model", "drop_model", "rename_model", "set_table", "swap_tables", "add", "drop", "rename",
         "reorder", "column", "swap_columns", "null", "widen", "db_index", "index", "move_index", "check"]


@st.composite
def histories(draw, max_versions=4):
    """[(models.mp text, model renames, field renames by model name, log)], the first version first."""
    state = State()
    versions = []
    for number in range(draw(st.integers(2, max_versions))):
        step = Step(state)
        if number == 0:
            for _ in range(draw(st.integers(1, 3))):
                _add_model(draw, state, step)
        else:
            for edit in draw(st.lists(st.sampled_from(EDITS), min_size=1, max_size=4)):
                if edit == "add_model":
                    _add_model(draw, state, step)
                elif edit == "drop_model":
                    _drop_model(draw, state, step)
                elif edit == "rename_model":
                    _rename_model(draw, state, step)
                elif edit == "set_table":
                    _set_table(draw, state, step)
                elif edit == "swap_tables":
                    _swap_tables(draw, state, step)
                else:
                    _field_edit(draw, state, step, edit)
        if not state.models:
            _add_model(draw, state, step)
        names = {m["lid"]: m["name"] for m in state.models}
        field_renames = {(names[lid], old): new for (lid, old), new in step.field_renames.items() if lid in names}
        lineage = {m["name"]: (m["lid"], {f["name"]: f["lid"] for f in m["fields"]}) for m in state.models}
        versions.append((state.render(), dict(step.model_renames), field_renames, lineage, step.log))
        state = copy.deepcopy(state)
    return versions


# ---------------------------------------------------------------- the check

def check_history(versions, make_database, tmp_root):
    stepwise = Stepwise(make_database(), tmp_root / f"s_{uuid.uuid4().hex[:8]}")
    written = []  # (model lineage, key, {field lineage: value})
    for number, (text, model_renames, field_renames, lineage, log) in enumerate(versions):
        for entry in log if number else ():
            event(re.sub(r"\b(?:[A-Z]\w*|ix\d)\b(?:\.\w+)?|->.*", "", entry).split(" of ")[0].strip())
        try:
            stepwise.step(text, model_renames, field_renames)
        except Exception as exc:
            raise AssertionError(f"version {number + 1} ({'; '.join(log)}) failed: {exc}\n{text}") from exc
        for model_name, (key, values) in stepwise.insert_rows(number + 1).items():
            model_lid, field_lids = lineage[model_name]
            written.append((model_lid, key, {field_lids[n]: v for n, v in values.items()}))

    final = versions[-1][3]
    for model_name, (model_lid, field_lids) in final.items():
        names = {lid: name for name, lid in field_lids.items()}
        for lid, key, values in written:
            if lid != model_lid:
                continue
            row = stepwise.row(model_name, key)
            assert row is not None, f"row {key} of {model_name} is gone"
            kept = {names[f]: v for f, v in values.items() if f in names}
            assert {n: row[n] for n in kept} == {n: _normal(v) for n, v in kept.items()}, (model_name, key)

    fresh = Stepwise(make_database(), tmp_root / f"f_{uuid.uuid4().hex[:8]}")
    fresh.step(versions[-1][0])
    assert differences(catalog(stepwise.database), catalog(fresh.database)) == [], versions[-1][0]


def _normal(value):
    return int(value) if isinstance(value, bool) else value


ORACLE_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("MF_ORACLE_EXAMPLES"),
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                  HealthCheck.data_too_large, HealthCheck.filter_too_much])


@ORACLE_SETTINGS
@given(versions=histories())
def test_sqlite_stepwise_equals_fresh(versions, tmp_path_factory):
    root = tmp_path_factory.mktemp("oracle")
    counter = iter(range(1000))
    check_history(versions, lambda: Database.sqlite(root / f"db{next(counter)}.sqlite"), root)


@ORACLE_SETTINGS
@given(versions=histories())
def test_postgresql_stepwise_equals_fresh(versions, pg_url, pg_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("oracle")
    made = []

    def make():
        made.append(Database.postgresql(pg_url, pg_session))
        return made[-1]

    try:
        check_history(versions, make, root)
    finally:
        for database in made:
            database.drop()

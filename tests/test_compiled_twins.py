"""The compiled core's hot loops against the pure-Python path.

The reader and the per-field loop of validation are compared through parse() in
test_parser_differential.py; here, the loop that loads a snapshot's fields (a twin
in _parser.pyx), validation's statement split (hotloops.py and its compilation)
and the differ's model comparison (Python only).
"""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mfcore
from mfcore.schema import Field
from mfcore.snapshot import dump_schema, new_form_fields

try:
    from mfcore import _parser
    from mfcore.language import _hotloops
except ImportError:  # pragma: no cover - a build without a compiler
    _parser = _hotloops = None
    if os.environ.get("CI", "").lower() == "true":
        raise

needs_compiled = pytest.mark.skipif(_parser is None, reason="the compiled core is not built here")

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=False),
                    st.text(max_size=5))
field_docs = st.dictionaries(
    st.sampled_from(["name", "type", "column", "null", "unique", "primary_key", "default", "max_length",
                     "max_digits", "decimal_places", "auto_now", "auto_now_add", "enum", "to", "on_delete",
                     "fk_name", "key_name", "deferrable", "params", "kwargs", "other"]),
    scalars, max_size=8)


@needs_compiled
@settings(max_examples=400)
@given(st.lists(st.one_of(field_docs, scalars), max_size=6))
def test_snapshot_field_loading_matches_its_twin(docs):
    assert _parser.new_form_fields(docs, Field) == new_form_fields(docs, Field)


@needs_compiled
def test_both_paths_load_the_example_snapshot_alike():
    from conftest import REPO

    schema = mfcore.parse((REPO / "examples" / "shop" / "models.mp").read_text())
    import orjson

    document = orjson.loads(dump_schema(schema))
    for model in document["models"].values():
        assert _parser.new_form_fields(model["fields"], Field) == new_form_fields(model["fields"], Field)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_changed_models_names_exactly_the_models_that_differ(data):
    from mfcore.differ import changed_models

    from strategies import schema_texts

    old = mfcore.parse(data.draw(schema_texts()))
    new = mfcore.parse(data.draw(schema_texts()))
    expected = sorted(name for name in new.models if name in old.models and old.models[name] != new.models[name])
    assert changed_models(old.models, new.models) == expected
    assert changed_models(new.models, new.models) == []


@needs_compiled
def test_the_compiled_loops_are_hotloops_py_compiled():
    from mfcore.language import hotloops

    assert _hotloops.__file__.endswith((".so", ".pyd")) and hotloops.__file__.endswith(".py")
    for name in ("split_statements", "build_fields"):
        python, compiled = getattr(hotloops, name), getattr(_hotloops, name)
        assert type(python).__name__ == "function" and type(compiled).__name__ == "cython_function_or_method"
        assert compiled.__doc__ == python.__doc__  # the same source text


@needs_compiled
@settings(max_examples=200, deadline=None)
@given(st.data())
def test_statement_splitting_matches_its_twin(data):
    from mfcore.language.hotloops import split_statements
    from mfcore.language.parser import read_raw
    from mfcore.language.raw import Call, RawModel

    from strategies import schema_texts

    for decl in read_raw(data.draw(schema_texts()), compiled=False):
        if type(decl) is RawModel:
            assert _hotloops.split_statements(decl.statements, Call) == split_statements(decl.statements, Call)
    options = (("indexes", (1, 1), Call("Index", (1, 9), ()), (1, 9)), ("table", (2, 1), "t", (2, 9)),
               ("x", (3, 1), Call("CharField", (3, 5), ()), (3, 5)))
    assert _hotloops.split_statements(options, Call) == split_statements(options, Call)
    assert split_statements(options, Call) == ([options[2]], [options[0], options[1]])


def test_a_snapshot_loader_compiled_for_fewer_field_slots_is_not_used(monkeypatch):
    """An editable install whose compiled module predates a new Field slot: the
    Python loop reads snapshots instead of fields that are too short."""
    from mfcore import snapshot

    def stale(raw_fields, field_class):
        return tuple(tuple.__new__(field_class, (doc["name"], doc["type"], doc["name"])) for doc in raw_fields)

    monkeypatch.setattr(snapshot, "twin", lambda function: stale)
    assert snapshot._fitting_twin() is snapshot.new_form_fields
    fitting = lambda raw_fields, field_class: snapshot.new_form_fields(raw_fields, field_class)  # noqa: E731
    monkeypatch.setattr(snapshot, "twin", lambda function: fitting)
    assert snapshot._fitting_twin() is fitting

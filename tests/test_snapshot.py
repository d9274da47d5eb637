"""schema.json: canonical bytes, the new form, and the earlier tool's form (SPEC §3)."""
from __future__ import annotations

import orjson
import pytest

import mfcore
from mfcore import SchemaFileError
from mfcore.snapshot import dump_schema, schema_from_json
from mfcore.store import load_schema

from conftest import COMPAT


@pytest.mark.parametrize("project", ["onr_demo", "orm_demo", "customer_app"])
def test_earlier_snapshots_read_as_the_schema_their_models_give(project):
    from_file = load_schema(str(COMPAT / project / "migrations" / "schema.json"))
    from_models = mfcore.parse((COMPAT / project / "models.mp").read_text())
    assert from_file == from_models
    assert dump_schema(from_file) == dump_schema(from_models)


def test_earlier_enum_defaults_become_member_values():
    schema = load_schema(str(COMPAT / "onr_demo" / "migrations" / "schema.json"))
    role = schema.models["Customer"].field("role")
    assert (role.enum, role.default) == ("UserRole", "ADMIN")


def test_dump_is_canonical_and_reads_back():
    schema = mfcore.parse((COMPAT / "onr_demo" / "models.mp").read_text())
    data = dump_schema(schema)
    document = orjson.loads(data)
    assert document["format"] == 1
    assert data == orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    assert schema_from_json(document) == schema
    assert document["relations"] == [{"field": "customer", "from": "Invoice", "kind": "fk",
                                      "on_delete": "CASCADE", "to": "Customer"}]


def test_api_load_and_dump(tmp_path):
    schema = mfcore.parse("model A extends Model { n = IntegerField(default=3) }")
    path = tmp_path / "schema.json"
    path.write_bytes(mfcore.dump_schema(schema))
    assert mfcore.load_schema(str(path)) == schema


@pytest.mark.parametrize("content,message", [
    (b"[1, 2]", "not a schema"),
    (b"{\"format\": 7, \"enums\": {}, \"models\": {}}", "format 7 is newer"),
    (b"{\"enums\": {}, \"models\": {\"A\": {\"fields\": {}}}}", "model 'A' needs 'table' and 'fields'"),
    (b"{\"enums\": {}, \"models\": {\"A\": {\"table\": \"a\", \"fields\": {\"x\": {\"name\": \"x\", "
     b"\"type\": \"Charfield\", \"params\": [], \"kwargs\": {}}}}}}", "unknown field type 'Charfield'"),
    (b"not json", "not valid JSON"),
])
def test_malformed_snapshots_are_reported(tmp_path, content, message):
    path = tmp_path / "schema.json"
    path.write_bytes(content)
    with pytest.raises(SchemaFileError) as caught:
        load_schema(str(path))
    assert message in str(caught.value)


# ---------------------------------------------------------------- the shortcut for ordinary fields

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mfcore.snapshot import check_field_doc, check_field_doc_fully  # noqa: E402

_values = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70),
                    st.floats(allow_nan=False), st.text(max_size=4), st.sampled_from(["CASCADE", "SET_NULL", ""]),
                    st.lists(st.integers(), max_size=2))
_keys = st.sampled_from(["name", "type", "column", "null", "unique", "primary_key", "auto_now", "max_length",
                         "enum", "to", "on_delete", "default", "max_digits", "db_default", "other"])
_types = st.sampled_from(["CharField", "IntegerField", "EnumField", "DecimalField", "ForeignKey", "BooleanField"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=7), _types, st.text(min_size=1, max_size=3))
def test_the_shortcut_for_ordinary_field_definitions_passes_only_what_the_full_check_passes(doc, kind, name):
    doc = {"name": name, "type": kind, **doc} if "name" not in doc else doc
    try:
        check_field_doc_fully(doc, "f")
    except SchemaFileError as full:
        with pytest.raises(SchemaFileError) as shortcut:
            check_field_doc(doc, "f")
        assert str(shortcut.value) == str(full)
    else:
        check_field_doc(doc, "f")


def test_an_ordinary_field_definition_takes_the_shortcut():
    from mfcore.snapshot import _plainly_valid

    assert _plainly_valid({"name": "title", "type": "CharField", "column": "title", "max_length": 200,
                           "null": True, "default": ""})
    assert not _plainly_valid({"name": "title", "type": "CharField"})  # the full check says why


# ---------------------------------------------------------------- the shortcut for models laid out as written

from mfcore import snapshot as schema_file  # noqa: E402


def _strictly(schema):
    """A schema's models with each value's type: 1 and True, or 5 and 5.0, are equal
    in Python but not in a file."""
    return {name: (model, [[(type(value), value) for value in f] for f in model.fields])
            for name, model in schema.models.items()}


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_models_laid_out_as_written_are_read_as_the_full_check_reads_them(data):
    """schema_from_layout takes a model whose bytes are model_bytes() of a model read
    from models.mp as that model, unchecked: it returns a schema only when the full
    reading passes and gives the same one, whatever one model of the file says."""
    from strategies import schema_texts

    read = mfcore.parse(data.draw(schema_texts()), index_foreign_keys=data.draw(st.booleans()))
    document = schema_file.schema_to_json(read)
    document["migration"] = "0001_initial.json"
    names = sorted(document["models"])
    if data.draw(st.booleans()):  # a hand edit of one field definition
        model = document["models"][data.draw(st.sampled_from(names))]
        field = model["fields"][data.draw(st.integers(0, len(model["fields"]) - 1))]
        key, value = data.draw(_keys), data.draw(_values)
        if data.draw(st.booleans()):
            field[key] = value
        else:
            field.pop(key, None)
    try:
        snapshot = schema_file.dumps(document)
    except TypeError:
        return  # a value no JSON file holds (an integer beyond 64 bits)
    spans, relations_span = schema_file.layout(snapshot)
    taken = {name: read.models[name] for name in names if data.draw(st.booleans())
             and snapshot[spans[name][0]:spans[name][1]] == schema_file.model_bytes(read.models[name])}
    try:
        full = schema_from_json(orjson.loads(snapshot))
    except SchemaFileError:
        full = None
    shortcut = schema_file.schema_from_layout(snapshot, spans, relations_span, taken)
    if full is None:
        assert shortcut is None
    elif shortcut is not None:
        assert _strictly(shortcut) == _strictly(full) and shortcut.enums == full.enums
    if snapshot == schema_file.dumps({**schema_file.schema_to_json(read), "migration": "0001_initial.json"}):
        # Untouched, every model is taken as read, and the result is the very schema.
        every = {name: read.models[name] for name in names}
        assert all(snapshot[spans[n][0]:spans[n][1]] == schema_file.model_bytes(read.models[n]) for n in names)
        assert _strictly(schema_file.schema_from_layout(snapshot, spans, relations_span, every)) == \
            _strictly(full) == _strictly(read)


def test_a_model_laid_out_otherwise_is_read_in_full():
    read = mfcore.parse("model A extends Model {\n    title = CharField(max_length=20)\n}\n")
    snapshot = schema_file.dumps({**schema_file.schema_to_json(read), "migration": "0001_x.json"})
    spans, relations_span = schema_file.layout(snapshot)
    edited = snapshot.replace(b'"null": true', b'"null": 1') if b'"null"' in snapshot else \
        snapshot.replace(b'"max_length": 20', b'"max_length": 20.0')
    assert edited != snapshot
    spans, relations_span = schema_file.layout(edited)
    assert edited[spans["A"][0]:spans["A"][1]] != schema_file.model_bytes(read.models["A"])
    assert schema_file.schema_from_layout(edited, spans, relations_span, {}) is None  # the full check refuses


# ---------------------------------------------------------------- sources

SOURCES = b'{\n    "context": "c",\n    "format": 1,\n    "mf": "0",\n    "models": {}'


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_sources_are_sealed_by_every_byte_before_their_digest(data):
    """with_sources ends the file with the sources; they read back only while no byte
    before the digest changed, and the file without them is the one dumps() writes."""
    from strategies import schema_texts

    read = mfcore.parse(data.draw(schema_texts()))
    body = schema_file.dumps({**schema_file.schema_to_json(read), "migration": "0001_initial.json"})
    sealed = b"".join(schema_file.with_sources(body, SOURCES))

    assert orjson.loads(sealed)["sources"]["models"] == {}
    assert schema_file.sealed_sources(sealed) == SOURCES + b"}"
    assert schema_file.without_sources(sealed) == body
    assert schema_file.layout(sealed) == schema_file.layout(body)
    assert schema_file.sealed_sources(body) is None
    digest_at = sealed.rindex(b'"sha1": "') + len(b'"sha1": "')
    position = data.draw(st.integers(0, digest_at - 1))
    changed = sealed[:position] + bytes([sealed[position] ^ 1]) + sealed[position + 1:]
    assert schema_file.sealed_sources(changed) is None


_KEYS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
_JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1) | st.text(max_size=5),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
                            max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_KEYS, _JSON_VALUES, max_size=4), st.dictionaries(_KEYS, _JSON_VALUES, max_size=12),
       st.integers(1, 5))
def test_a_document_made_in_pieces_is_the_one_dumps_makes(others, models, per_piece):
    """dumps_pieces makes schema.json's models a few at a time; joined, the pieces are
    dumps()'s bytes, whatever the keys (sorted by code point, escaped, before or after
    "models") and values."""
    document = {**others, "models": models}
    pieces = list(schema_file.dumps_pieces(document, "models", per_piece))
    assert b"".join(pieces) == schema_file.dumps(document)
    if len(models) > per_piece:
        assert len(pieces) > 2 + len(models) // per_piece  # made in pieces, not whole


def test_sources_seal_a_snapshot_made_in_pieces_as_they_come():
    """makemigrations writes a large schema.json while it is made: with_sources seals
    the pieces of dumps_pieces one by one, to the bytes it gives for the whole file."""
    text = "".join(f"model M{n} extends Model {{ n = IntegerField() }}\n" for n in range(7))
    document = {**schema_file.schema_to_json(mfcore.parse(text)), "migration": "0001_initial.json"}
    streamed = schema_file.with_sources(schema_file.dumps_pieces(document, "models", 2), SOURCES)
    assert not isinstance(streamed, list)
    assert b"".join(streamed) == b"".join(schema_file.with_sources(schema_file.dumps(document), SOURCES))


def test_sources_follow_a_rewrite_given_in_pieces():
    """rewrite() gives pieces of the old file; the sources seal them as written."""
    read = mfcore.parse("model A extends Model { n = IntegerField() }\nmodel B extends Model { a = ForeignKey(A) }\n")
    body = schema_file.dumps({**schema_file.schema_to_json(read), "migration": "0001_initial.json"})
    spans, relations_span = schema_file.layout(body)
    pieces = schema_file.rewrite(body, {"A": spans["A"]}, relations_span, read, {"B"}, "0002_next.json")
    assert b"".join(pieces) == body.replace(b"0001_initial.json", b"0002_next.json")
    sealed = b"".join(schema_file.with_sources(pieces, SOURCES))
    assert schema_file.sealed_sources(sealed) == SOURCES + b"}"
    assert schema_file.without_sources(sealed) == b"".join(pieces)

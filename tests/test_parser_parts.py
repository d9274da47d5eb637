"""A large models file is read in parts (parser.PART_SIZE), each built into its models
before the next is read, so that its whole raw tree is never in memory: the schema,
the outline and every error are those of reading the file whole, on both readers."""
from __future__ import annotations

import gc
import importlib.util
import os
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfcore.errors import ModelsError
from mfcore.language import chunks, parser
from mfcore.language.lark_reader import read as lark_read

from strategies import schema_texts
from test_parser_differential import canon

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("MF_PARTS_EXAMPLES", "60"))
READERS = ["python"] + (["compiled"] if parser._compiled is not None else [])


@contextmanager
def part_size(size: int):
    saved = parser.PART_SIZE
    parser.PART_SIZE = size
    try:
        yield
    finally:
        parser.PART_SIZE = saved


def outcome(text: str, reader: str, size: int):
    """parse()'s schema and outline, or its problems, with parts of ``size`` characters."""
    outline: list = []
    with part_size(size):
        try:
            schema = parser.parse(text, compiled=reader == "compiled", outline=outline)
        except ModelsError as error:
            return ("errors", [(p.line, p.column, p.message) for p in error.problems])
    return ("schema", canon(schema), outline)


def read_in_parts(text: str, reader: str):
    """What reading in parts of one declaration each gives, without the whole reading
    that parse() falls back on (None: it would fall back)."""
    cut = chunks.parts(text, 1)
    return parser._read_in_parts(text, cut, reader == "compiled", False)


WHOLE = 1 << 40


@pytest.mark.parametrize("reader", READERS)
@settings(max_examples=EXAMPLES, deadline=None)
@given(text=schema_texts(max_models=6))
def test_a_file_read_in_parts_is_the_file_read_whole(reader, text):
    whole = outcome(text, reader, WHOLE)
    assert outcome(text, reader, 1) == whole
    if whole[0] == "schema" and len(chunks.parts(text, 1)) > 1:
        assert read_in_parts(text, reader) is not None, "a valid file was not read in parts"


# Files whose parts are not in the order they are needed in, or not cut where their
# kind says: each reads, in parts, as it reads whole.
UNUSUAL = {
    "an enum declared after its use": (
        "model A extends Model {\n  role = EnumField(Role)\n}\nenum Role { ADMIN, STAFF }\n"),
    "a base declared after the model that extends it": (
        "model Child extends Base {\n  name = CharField(10)\n}\n"
        "model Base extends Model {\n  made = DateTimeField(auto_now_add=true)\n  abstract = true\n}\n"),
    "a chain of bases in reverse": (
        "model C extends B {\n  c = IntegerField()\n}\n"
        "model B extends A {\n  b = IntegerField()\n  abstract = true\n}\n"
        "model A extends Model {\n  a = IntegerField()\n  abstract = true\n}\n"),
    "a header comment": "// the shop\n\n// models\nmodel A extends Model {\n  a = IntegerField()\n}\n",
    "two declarations on one line": (
        "enum E { X } model A extends Model {\n  e = EnumField(E)\n}\nmodel B extends Model { }\n"),
    "a model after an enum on one line": (
        "model B extends Model { }\nenum E { X } model A extends Model {\n  e = EnumField(E)\n}\n"),
    "a declaration that does not start its line": (
        "model A extends Model {\n  a = IntegerField()\n}\n  model B extends Model {\n  b = IntegerField()\n}\n"),
    "CRLF line ends": "model A extends Model {\r\n  a = IntegerField()\r\n}\r\nenum E { X }\r\n",
    "a foreign key to a later model": (
        "model A extends Model {\n  b = ForeignKey(B, on_delete=CASCADE)\n}\nmodel B extends Model { }\n"),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("text", UNUSUAL.values(), ids=UNUSUAL.keys())
def test_unusual_files_read_in_parts_as_they_read_whole(reader, text):
    whole = outcome(text, reader, WHOLE)
    assert whole[0] == "schema"
    assert outcome(text, reader, 1) == whole


VALID = "".join(f"model M{i} extends Model {{\n  name = CharField(20)\n  n = IntegerField(default={i})\n}}\n"
                for i in range(6))

# Files with problems in a later part: the problems are those of the whole file, in
# its order, with the positions of fields (which reading in parts does not keep).
WRONG = {
    "a syntax error": VALID + "model Bad extends Model {\n  n = IntegerField(\n}\n",
    "a field problem": VALID + "model Bad extends Model {\n  s = CharField(3, default=\"long\")\n}\n",
    "a model declared twice": VALID + "model M2 extends Model {\n  a = IntegerField()\n}\n",
    "an enum declared after a model of its name": VALID + "enum M3 { X }\n",
    "a model declared after an enum of its name": "enum E { X }\n" + VALID + "model E extends Model { }\n",
    "a foreign key to nothing": VALID + "model Bad extends Model {\n  c = ForeignKey(Nowhere, on_delete=CASCADE)\n}\n",
    "an unknown base": VALID + "model Bad extends Nothing {\n  a = IntegerField()\n}\n",
    "circular bases": VALID + ("model X extends Y {\n  abstract = true\n}\n"
                               "model Y extends X {\n  abstract = true\n}\n"),
    "an unknown enum": VALID + "model Bad extends Model {\n  e = EnumField(Nothing)\n}\n",
    "two tables of one name": VALID + "model Bad extends Model {\n  table = \"m1\"\n}\n",
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("text", WRONG.values(), ids=WRONG.keys())
def test_problems_found_in_parts_are_those_of_the_whole_file(reader, text):
    whole = outcome(text, reader, WHOLE)
    assert whole[0] == "errors" and whole[1]
    assert outcome(text, reader, 1) == whole
    assert read_in_parts(text, reader) is None


@pytest.mark.parametrize("reader", READERS)
def test_a_part_is_read_with_the_positions_it_has_in_the_file(reader):
    text = "// header\n" + VALID
    for part in chunks.parts(text, 1):
        if part.start == part.end:
            continue
        got = parser.read_raw(text[part.start:part.end], compiled=reader == "compiled", first_line=part.line)
        expected = [d for d in lark_read(text) if part.line <= d.pos[0] < part.line + text.count(
            "\n", part.start, part.end)]
        assert canon(got) == canon(expected)


def test_parts_are_runs_of_whole_declarations_of_one_kind_in_file_order():
    text = "// header\nmodel A extends Model { }\nmodel B extends Model { }\nenum E { X }\nenum F { Y }\n" \
           "model C extends Model { }\n"
    cut = chunks.parts(text, 1 << 20)
    assert [(p.kind, text[p.start:p.end].split("\n", 1)[0], p.line) for p in cut] == [
        ("model", "// header", 1), ("enum", "enum E { X }", 4), ("model", "model C extends Model { }", 6)]
    one_each = chunks.parts(text, 1)
    assert [(p.kind, p.line) for p in one_each] == [
        ("model", 1), ("model", 2), ("model", 3), ("enum", 4), ("model", 6)]


@settings(max_examples=EXAMPLES, deadline=None)
@given(text=schema_texts(max_models=6), size=st.sampled_from([1, 40, 200, 1 << 20]))
def test_parts_cover_the_text_and_start_where_declarations_do(text, size):
    cut = chunks.parts(text, size)
    assert "".join(text[p.start:p.end] for p in cut) == text
    for part in cut:
        assert part.line == text.count("\n", 0, part.start) + 1
        head = text[part.start:part.end]
        if part.kind == "enum":
            assert head.startswith("enum ")
        else:
            assert part.start == 0 or head.startswith("model ")


def _generated_models(n_models: int) -> str:
    spec = importlib.util.spec_from_file_location("mf_bench_generate", REPO / "benchmarks" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_models(n_models)


def _transient_memory_of_parse(text: str, size: int) -> int:
    """The most memory parse() held beyond what its schema keeps."""
    parser.parse(text)  # what the first parse of a process makes once is not counted
    with part_size(size):
        tracemalloc.start()
        try:
            schema = parser.parse(text)
            kept, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert schema.models
    return peak - kept


def test_a_large_file_is_never_in_memory_whole_as_a_raw_tree():
    text = _generated_models(300)
    assert len(text) > 16 * 8192
    whole, in_parts = _transient_memory_of_parse(text, WHOLE), _transient_memory_of_parse(text, 8192)
    # What is left is the builder's record of each model, kept for the checks across models.
    assert in_parts < whole / 2, (in_parts, whole)


def test_a_field_declared_alike_in_two_models_is_one_object():
    schema = parser.parse("model A extends Model {\n  name = CharField(20)\n  n = IntegerField()\n}\n"
                          "model B extends Model {\n  name = CharField(20)\n  n = IntegerField(default=1)\n}\n")
    a, b = schema.models["A"].field("name"), schema.models["B"].field("name")
    assert a is b
    assert schema.models["A"].field("n") != schema.models["B"].field("n")


@pytest.mark.parametrize("size", [WHOLE, 8192], ids=["whole", "in parts"])
def test_reading_leaves_nothing_for_the_collector(size):
    """makemigrations pauses the cyclic collector: what parse() made must all be freed
    by reference counting, or a large project pays a pass over every model it built
    when the collector comes back."""
    text = _generated_models(40)
    parser.parse(text)  # what the first parse of a process makes once is not counted
    gc.collect()
    gc.disable()
    try:
        with part_size(size):
            schema = parser.parse(text)
        assert len(schema.models) == 40
        del schema
        assert gc.collect() == 0
    finally:
        gc.enable()

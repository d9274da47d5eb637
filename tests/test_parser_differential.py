"""The compiled reader (mfcore._parser) against the Lark reader, text by text.

For every text both readers must agree: the same raw tree, compared strictly
(Name is not str, a list is not a tuple, 1 is not 1.0 nor True), or both reject it;
and parse() must give the same Schema or the same errors on both paths. The texts:
every models.mp of the compat projects and examples, generated schemas, texts drawn
from the grammar (by hand and by hypothesis.extra.lark), hand-picked corner cases of
Lark's contextual lexer, and mutations of valid texts (characters and tokens deleted,
inserted, swapped), which are mostly invalid.

Without a built mfcore._parser these tests skip, except under CI=true where that is
a failure: CI must test the compiled path.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfcore.errors import ModelsError
from mfcore.language import parser as parser_module
from mfcore.language.lark_reader import SyntaxProblem
from mfcore.language.lark_reader import read as lark_read
from mfcore.language.raw import Call, ListValue, Name, ObjectValue, RawEnum, RawModel, TupleValue
from mfcore.schema import Check, Enum, Field, Index, Model, Schema

from conftest import COMPAT_SOURCES

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"


def _load_compiled():
    try:
        from mfcore import _parser
        from mfcore.language import _hotloops
    except ImportError:
        return None, None
    return _parser, _hotloops


compiled, compiled_loops = _load_compiled()
IMPLEMENTATION = parser_module.implementation()  # before compiled_path() may install it


@pytest.fixture(scope="module", autouse=True)
def compiled_path():
    """The compiled reader, also installed as parse()'s reader (with the compiled
    hot loops of validation) when MF_PURE_PYTHON hid them."""
    if compiled is None:
        if IN_CI:
            pytest.fail("CI=true but the compiled core is not built: the compiled reader must be tested in CI "
                        "(pip install -e . with Cython and a C compiler)")
        pytest.skip("the compiled core is not built (no Cython or C compiler at install time)")
    hidden = parser_module._compiled is None
    if hidden:
        parser_module._compiled, parser_module._compiled_loops = compiled, compiled_loops
    yield compiled
    if hidden:
        parser_module._compiled = parser_module._compiled_loops = None


def _generator():
    spec = importlib.util.spec_from_file_location("mf_bench_generate", REPO / "benchmarks" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _generator()

# -- comparing ------------------------------------------------------------------------


def canon(value):
    """value as nested plain data that keeps every type: equal canons, identical values."""
    kind = type(value)
    if kind in (str, int, float, Decimal, bool, type(None)):
        return (kind.__name__, repr(value))
    if kind in (tuple, list):
        return (kind.__name__, [canon(v) for v in value])
    if kind in (RawEnum, RawModel, Field, Index, Check):
        return (kind.__name__, [(name, canon(getattr(value, name))) for name in kind._fields])
    if kind is Name:
        return ("Name", canon(value.text))
    if kind is Call:
        return ("Call", canon(value.name), canon(value.pos), canon(value.args))
    if kind in (ListValue, TupleValue, ObjectValue):
        return (kind.__name__, canon(value.items))
    if kind in (Schema, Model, Enum):
        return (kind.__name__, [(f.name, canon(getattr(value, f.name))) for f in dataclasses.fields(value)])
    if kind is dict:
        return ("dict", [(canon(k), canon(v)) for k, v in value.items()])
    raise TypeError(f"unexpected {kind.__name__} in a raw tree or schema: {value!r}")


def outcome_of_parse(text: str, use_compiled: bool):
    try:
        return ("schema", canon(parser_module.parse(text, compiled=use_compiled)))
    except ModelsError as error:
        return ("errors", [(p.line, p.column, p.message) for p in error.problems])


def check_same(text: str) -> bool:
    """Both readers agree on text (tree, schema or errors); True if the grammar accepts it."""
    try:
        expected = lark_read(text)
    except SyntaxProblem:
        expected = None
    try:
        got = compiled.read(text)
    except ValueError:  # ReadError, or a number Python will not read (see parser.read_raw)
        got = None
    if expected is None:
        assert got is None, f"the compiled reader accepts text Lark rejects: {text!r}"
    else:
        assert got is not None, f"the compiled reader rejects text Lark accepts: {text!r}"
        assert canon(got) == canon(expected), f"raw trees differ for {text!r}"
    assert outcome_of_parse(text, True) == outcome_of_parse(text, False), f"parse() differs for {text!r}"
    return expected is not None


# -- fixed texts ----------------------------------------------------------------------


def _compat_models() -> list:
    """(source, path) of every models file of the compat projects, from each source."""
    return [(source, path) for source, root in sorted(COMPAT_SOURCES.items())
            for path in sorted(root.rglob("*.mp"))]


def _project_models() -> list:
    files = [path for _source, path in _compat_models()] + sorted((REPO / "examples").rglob("*.mp"))
    assert files
    return files


def _model_id(path: Path) -> str:
    source = next((name for name, root in COMPAT_SOURCES.items() if root in path.parents), None)
    shown = str(path.relative_to(path.parents[2]))
    return f"{source}:{shown}" if source else shown


@pytest.mark.parametrize("path", _project_models(), ids=_model_id)
def test_project_models_files(path):
    text = path.read_text(encoding="utf-8")
    assert check_same(text)
    assert check_same(text.replace("\n", "\r\n"))


@pytest.mark.parametrize("n_models, seed", [(1, 0), (5, 1), (30, 2), (120, 3)])
def test_generated_schemas(n_models, seed):
    text = generate.generate_models(n_models, seed=seed)
    assert check_same(text)
    assert check_same(generate.change_models(text, 0.2, seed))
    assert outcome_of_parse(text, True)[0] == "schema"


CORNER_CASES = [
    "",
    "\n\n;;\n",
    "#c\n//c",
    "enum A {X}",
    # keywords where Lark's contextual lexer does and does not see them
    "enumFoo{A}",
    "enum_x{A}",
    "modelX extendsModel {}",
    "model A extends_B {}",
    "enum A {X}enumB{Y}",
    "enum A {X}\nenumB{Y}",
    "enum A {X} models extends B {}",
    "enum A {X};model B extends C {}",
    "model X extends Model { model = CharField(1)\n enum = X()\n extends=Y() }",
    "model X extends Model {\n model = X()\n}",
    "model X extends Model {\n enum = X(); extends = Y()\n}",
    "model X extends Model { true = X() }",
    "model X extends Model {\n null = X()\n false = Y() }",
    "model X extends Model { a = F(null=1) }",
    "model X extends Model { a = F(null, null = null) }",
    "model X extends Model { a = F(true=1) }",
    "model X extends Model { a = F(enum=1, model=2, extends=3) }",
    "model X extends Model { a = Foo.true }",
    "model X extends Model { a = Foo.null.enum }",
    "model X extends Model { a = enum.model }",
    "enum true { null, false, model }",
    "enum enum { enum }",
    "model null extends true {}",
    "model model extends extends {}",
    "model X extends Model { a = trueish; b = nullx; c = F(nullx=1) }",
    # values
    "model X extends Model { a = [true, (false,), null, [], ()] }",
    "model X extends Model { a = F(\n1,\n\n) ; b = 2}",
    "model X extends Model { a = (1) }",
    "model X extends Model { a = (,) }",
    "model X extends Model { a = F(,) }",
    "model X extends Model { a = [,] }",
    "model X extends Model { a = F(a)(b) }",
    "model X extends Model { a = Foo.bar(1) }",
    "model X extends Model { a = F(b=c=d) }",
    "model X extends Model { a = F(a.b=1) }",
    "model X extends Model { a = [F(\n)] }",
    "model X extends Model { a = F(b=[x . y.z, (1,), \n(\n)]) }",
    "model X extends Model { a = 1. }",
    "model X extends Model { a = 1.5.3 }",
    "model X extends Model { a = -1.5; b = -0; c = -0.0; d = 007; e = 1.000 }",
    "model X extends Model { a = 0x1 }",
    "model X extends Model { a = - 1 }",
    "model X extends Model { a = F(99999999999999999999, -99999999999999999999, 123456789012345678,"
    " 999999999999999999, 1000000000000000000) }",
    # object literals (a JSONField's default)
    'model X extends Model { a = F(default={}) }',
    'model X extends Model { a = F(default={"a": 1, "b": [true, {"c": null}],}) }',
    'model X extends Model { a = F(default={\n"a"\n:\n1\n}) }',
    'model X extends Model { a = {"a": 1} }',
    'model X extends Model { a = {\n} }',
    'model X extends Model { a = F({a: 1}) }',
    'model X extends Model { a = F({"a" 1}) }',
    'model X extends Model { a = F({"a": 1 "b": 2}) }',
    'model X extends Model { a = F({,}) }',
    'model X extends Model { a = F({"a": }) }',
    'model X extends Model { a = F({"a": 1}}) }',
    'model X extends Model { a = F(x:1) }',
    'model X extends Model { a = F(default={"é\\"": "😀"}) }',
    "model X extends Model { a = " + '{"k":' * 60 + "1" + "}" * 60 + " }",
    # checks and positive integers
    'model X extends Model { n = PositiveIntegerField(default=0)\n checks = [Check("\\"n\\" >= 0", name="c"),\n'
    ' Check("n < 10"),] }',
    'model X extends Model { n = PositiveSmallIntegerField(); checks = [Check(\n"n > 0"\n)] }',
    'model X extends Model { checks = [Check("a\\"b", "c")] }',
    'model X extends Model { checks = Check("n > 0") }',
    "model X extends Model { checks = [Check('n > 0')] }",
    # strings and escapes
    'model X extends Model { a = "x\\q\\"\\\\" }',
    'model X extends Model { a = "\\\\\\"x\\n" }',
    'model X extends Model { a = "\\\n" }',
    'model X extends Model { a = "a\rb" }',
    'model X extends Model { a = "unterminated\n" }',
    'model X extends Model { a = "\\' + '"',
    'enum A { X = "a" = "b" }',
    'enum A { X = "1", Y = "\\"" }',
    # separators
    "enum A {X Y}",
    "enum A {,,X,,\n,Y,}",
    "enum A {X;Y}",
    "enum A {;X}",
    "enum A {X,;}",
    "model X extends Model {,a=1}",
    "model X extends Model {a=1,}",
    "model X extends Model {;;a=1;;}",
    "model X extends Model {a=1 b=2}",
    "enum A{X}enum B{Y}model C extends D{}",
    "model X extends Model { a = 1 }\r\n\r\nenum B {\r\n A\r\n}",
    "model X extends Model { a = [1\n,2]\n}",
    "model X extends Model { a = F(\n// c\n 1 # c\n) }",
    "model X extends Model { a = 1\x0b }",
    "model X extends Model { a = 1\f\t\r }",
    "model X extends Model { a = 1 } /",
    "model X extends Model { a = F(1)) }",
    "model X extends Model { a = F((1) }",
    "model X extends Model { a = F(1]) }",
    "model X extends Model { a = F(1) ]\n b = 2 }",
    # positions count characters, not bytes
    'model X extends Model { a = "é" ; b = 1 }  // é\nenum C { D = "€", E }',
    'model Ü extends Model {}',
    'model X extends Model { a = "😀 \u2028 \x00" ; b = [1,\n 2] }\n# 😀\nenum C{D}',
    'model X extends Model { a = "中文"; b = F("ü", c = "\\\\ü") }',
    "\ufeffmodel X extends Model {}",
    # deep nesting
    "model X extends Model { a = " + "[" * 60 + "]" * 60 + " }",
    "model X extends Model { a = " + "F(" * 60 + ")" * 60 + " }",
]


@pytest.mark.parametrize("text", CORNER_CASES)
def test_corner_cases(text):
    check_same(text)


@pytest.mark.parametrize("literal", ["1234567890123456.78", "-0.10", "99999999999999999999999999.123456789012",
                                     "0.1", "7"])
def test_decimal_defaults_keep_every_digit_on_both_readers(literal):
    text = f"model P extends Model {{\n    d = DecimalField(40, 12, default={literal})\n    f = FloatField(default={literal})\n}}\n"
    assert check_same(text)
    for use_compiled in (True, False):
        fields = parser_module.parse(text, compiled=use_compiled).models["P"].fields
        assert fields[1].default == Decimal(literal) and type(fields[1].default) is Decimal
        assert fields[2].default == float(literal) and type(fields[2].default) is float


def test_the_grammar_needs_no_other_lexer_modes():
    """Each LALR state of models.lark lexes words one of the ways _parser.pyx's _Mode knows.

    Lark's contextual lexer lexes a word with the word terminals its parser state
    accepts. If a grammar change brings a new combination, the compiled reader needs
    a new mode (and the context that selects it) before it can agree with Lark.
    """
    from mfcore.language.lark_reader import _parser as lark_parser

    try:
        contextual = lark_parser().parser.lexer.lexer
        per_state = [{t.name for t in lexer.terminals} for lexer in contextual.lexers.values()]
    except AttributeError as missing:  # pragma: no cover - Lark's internals moved
        pytest.skip(f"this Lark keeps its contextual lexer elsewhere ({missing})")
    words = {"NAME", "ENUM", "MODEL", "EXTENDS", "TRUE", "FALSE", "NULL"}
    modes = {frozenset(names & words) for names in per_state}
    assert modes == {
        frozenset(),                                       # no word can come next
        frozenset({"NAME"}),                               # M_PLAIN
        frozenset({"NAME", "TRUE", "FALSE", "NULL"}),      # M_VALUE
        frozenset({"NAME", "ENUM", "MODEL", "EXTENDS"}),   # M_SEP
        frozenset({"ENUM", "MODEL"}),                      # M_DECL
        frozenset({"EXTENDS"}),                            # M_EXTENDS
    }


def test_rejected_text_is_explained_by_lark():
    text = "model X extends Model {\n    a = CharField(12\n}\n"
    with pytest.raises(ModelsError) as compiled_error:
        parser_module.parse(text, compiled=True)
    with pytest.raises(ModelsError) as lark_error:
        parser_module.parse(text, compiled=False)
    assert str(compiled_error.value) == str(lark_error.value)


def test_the_compiled_reader_is_used():
    expected = "python" if os.environ.get("MF_PURE_PYTHON", "") not in ("", "0") else "compiled"
    assert IMPLEMENTATION == expected


def test_not_a_str():
    with pytest.raises(TypeError):
        compiled.read(b"enum A {X}")


# -- texts drawn from the grammar -----------------------------------------------------

# Names that probe the keywords: exact, as prefixes, and plain.
NAMES = ["a", "X", "_", "f1", "Customer", "CharField", "max_length", "enum", "model", "extends",
         "true", "false", "null", "enumX", "model_", "extendsY", "trueish", "null0", "falsey"]
INLINE_SPACE = st.sampled_from(["", " ", " ", " ", "  ", "\t", "\f", "\r"])
COMMENTS = st.sampled_from(["// note", "# é note", "//", "#", "// 😀 ü"])


@st.composite
def gap(draw, newlines=False):
    """White space between two tokens; with newlines, also comments and line breaks."""
    space = draw(INLINE_SPACE)
    if newlines and draw(st.integers(0, 5)) == 0:
        comment = draw(st.one_of(st.just(""), COMMENTS))
        space += comment + draw(st.sampled_from(["\n", "\r\n"])) + draw(INLINE_SPACE)
    return space


@st.composite
def names(draw):
    return draw(st.sampled_from(NAMES))


@st.composite
def strings(draw):
    body = draw(st.lists(st.sampled_from(["a", "Z", " ", "é", "€", "😀", "\\\"", "\\\\", "\\n", "\\", "'", "\r"]),
                         max_size=5))
    text = "".join(body)
    if text.endswith("\\") and not text.endswith("\\\\"):
        text += "x"
    return f'"{text}"'


# Numbers at the edges: the compiled reader's fast path (18 digits), Python's limit on
# reading integers (4,300 digits), floats past the largest double, negative zero, and
# spellings the grammar does not have (exponents, a leading '+', a bare point).
EXTREME_NUMBERS = [
    "0", "-0", "0.0", "-0.0", "00", "-00.000", "1.0", "0.5000000000000000000000000001",
    "9" * 18, "-" + "9" * 18, "9" * 19, "-" + "9" * 19, "1" + "0" * 18, "-1" + "0" * 18,
    str(2 ** 63), str(-2 ** 63), str(2 ** 63 - 1), str(2 ** 64), "1" + "0" * 308 + ".0",
    "9" * 309 + ".9", "-" + "9" * 400 + ".0", "0." + "0" * 400 + "1", "4.9" + "0" * 320,
    "1" * 4299, "1" * 4300, "1" * 4301, "-" + "1" * 4300, "1" * 5000 + ".5",
    "1e309", "1E5", "1.5e-3", "-1e-400", "+1", "1.", ".5", "-.5", "- 1", "--1", "0x10", "1_000",
]


@st.composite
def numbers(draw):
    if draw(st.integers(0, 3)):
        return draw(st.from_regex(r"\A-?[0-9]{1,3}(\.[0-9]{1,3})?\Z"))
    return draw(st.sampled_from(EXTREME_NUMBERS))


@st.composite
def values(draw, depth=0, inside=False):
    g = lambda: draw(gap(newlines=inside))  # noqa: E731
    kinds = ["name", "string", "number", "word", "dotted", "call"] + (["list", "tuple", "object"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "name":
        return draw(names())
    if kind == "string":
        return draw(strings())
    if kind == "number":
        # now and then more digits than a double holds (both readers keep them all),
        # or an extreme number
        return draw(st.one_of(numbers(), st.from_regex(r"\A-?[0-9]{10,24}\.[0-9]{2,12}\Z")))
    if kind == "word":
        return draw(st.sampled_from(["true", "false", "null"]))
    if kind == "dotted":
        parts = draw(st.lists(names(), min_size=2, max_size=3))
        return (g() + "." + g()).join(parts)
    if kind == "call":
        items = draw(st.lists(arguments(depth + 1), max_size=3))
        return draw(names()) + g() + "(" + g() + _joined(draw, items) + g() + ")"
    if kind == "object":
        # now and then a key that is not a string, or a pair without its ':'
        pairs = [draw(st.one_of(strings(), names())) + g() + draw(st.sampled_from([":", ":", ":", ":", "=", ""]))
                 + g() + draw(values(depth + 1, inside=True))
                 for _ in range(draw(st.integers(0, 3)))]
        return "{" + g() + _joined(draw, pairs) + g() + "}"
    items = draw(st.lists(values(depth + 1, inside=True), max_size=3))
    opener, closer = ("[", "]") if kind == "list" else ("(", ")")
    return opener + g() + _joined(draw, items) + g() + closer


def _joined(draw, items):
    inside_gap = lambda: draw(gap(newlines=True))  # noqa: E731
    text = ""
    for number, item in enumerate(items):
        if number:
            text += inside_gap() + "," + inside_gap()
        text += item
    if items and draw(st.booleans()):
        text += inside_gap() + ","
    return text


@st.composite
def arguments(draw, depth):
    value = draw(values(depth, inside=True))
    if draw(st.booleans()):
        key = draw(st.sampled_from(NAMES + ["null", "null"]))
        return key + draw(gap(newlines=True)) + "=" + draw(gap(newlines=True)) + value
    return value


@st.composite
def separators(draw, choices=("\n", ";"), minimum=1):
    """Statement or member separators; now and then one the grammar does not allow there."""
    count = draw(st.integers(minimum, 3))
    wrong = [c for c in ("\n", ";", ",") if c not in choices]
    return "".join(draw(gap(newlines=True))
                   + draw(st.sampled_from(choices if draw(st.integers(0, 15)) else wrong)) + draw(gap())
                   for _ in range(count))


@st.composite
def enum_decls(draw):
    g = lambda: draw(gap())  # noqa: E731
    members = []
    for _ in range(draw(st.integers(0, 4))):
        member = draw(names())
        if draw(st.booleans()):
            member += g() + "=" + g() + draw(strings())
        members.append(member)
    body = draw(separators(("\n", ","), minimum=0))
    for member in members:
        body += member + draw(separators(("\n", ","), minimum=1))
    if members and draw(st.booleans()):
        body = body[: len(body) - len(body.lstrip())] + body.rstrip(" \t\f\r\n,")
    return "enum" + g() + draw(names()) + g() + "{" + g() + body + g() + "}"


@st.composite
def model_decls(draw):
    g = lambda: draw(gap())  # noqa: E731
    head = "model" + draw(st.sampled_from([" ", "  ", "\t"])) + draw(names()) + " extends " + draw(names())
    body = draw(separators(minimum=0))
    for _ in range(draw(st.integers(0, 4))):
        body += draw(names()) + g() + "=" + g() + draw(values()) + draw(separators())
    if draw(st.booleans()):
        body += draw(names()) + g() + "=" + g() + draw(values())
    return head + g() + "{" + g() + body + g() + "}"


@st.composite
def grammar_texts(draw):
    text = draw(separators(minimum=0))
    for _ in range(draw(st.integers(0, 3))):
        text += draw(st.one_of(enum_decls(), model_decls())) + draw(separators(minimum=0))
    return text


HYPOTHESIS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                         HealthCheck.filter_too_much])


@settings(max_examples=450, **HYPOTHESIS)
@given(grammar_texts())
def test_texts_from_the_grammar(text):
    check_same(text)


def _lark_grammar_texts():
    from hypothesis.extra.lark import from_lark
    from lark import Lark

    from mfcore.language.lark_reader import GRAMMAR_PATH

    return from_lark(Lark.open(GRAMMAR_PATH, parser="lalr"), explicit={
        "NAME": st.sampled_from(NAMES),
        "STRING": strings(),
        "COMMENT": COMMENTS.map(lambda c: c + "\n"),
        "WHITESPACE": st.sampled_from([" ", "\t", "  ", "\r"]),
        "_NL": st.sampled_from(["\n", "\r\n"]),
    }, alphabet=st.characters(codec="ascii"))


@settings(max_examples=150, **HYPOTHESIS)
@given(st.data())
def test_texts_from_hypothesis_lark(data):
    check_same(data.draw(_lark_grammar_texts()))


# -- mutations of valid texts ---------------------------------------------------------

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|-?[0-9]+(?:\.[0-9]+)?|//[^\n]*|#[^\n]*'
                    r"|[ \t\r\f]+|\n|.", re.S)
INSERTED = list('{}()[],;=."\\\n\r\t #/-0_aZé€😀') + [
    "enum", "model", "extends", "true", "false", "null", "//", "\r\n", "-", "1.5", '"s"', "\x0b"]


def _base_texts():
    texts = [generate.generate_models(2, fields_per_model=6, seed=seed) for seed in range(3)]
    # The same text from both sources counts once.
    texts += list(dict.fromkeys(path.read_text(encoding="utf-8") for _source, path in _compat_models()))
    texts += [t for t in CORNER_CASES if t and len(t) < 200]
    return texts


BASE_TEXTS = _base_texts()


@st.composite
def mutated_texts(draw):
    text = draw(st.one_of(grammar_texts(), st.sampled_from(BASE_TEXTS)))
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            text = _mutate_characters(draw, text)
        else:
            text = _mutate_tokens(draw, text)
    return text


def _mutate_characters(draw, text):
    at = draw(st.integers(0, len(text)))
    action = draw(st.sampled_from(["delete", "insert", "swap", "replace"]))
    if action == "insert" or not text:
        return text[:at] + draw(st.sampled_from(INSERTED)) + text[at:]
    at = min(at, len(text) - 1)
    if action == "delete":
        return text[:at] + text[at + 1:]
    if action == "replace":
        return text[:at] + draw(st.sampled_from(INSERTED)) + text[at + 1:]
    if at + 1 < len(text):
        return text[:at] + text[at + 1] + text[at] + text[at + 2:]
    return text


def _mutate_tokens(draw, text):
    tokens = _TOKEN.findall(text)
    if not tokens:
        return draw(st.sampled_from(INSERTED))
    at = draw(st.integers(0, len(tokens) - 1))
    action = draw(st.sampled_from(["delete", "duplicate", "swap", "replace", "move"]))
    if action == "delete":
        del tokens[at]
    elif action == "duplicate":
        tokens.insert(at, tokens[at])
    elif action == "swap" and at + 1 < len(tokens):
        tokens[at], tokens[at + 1] = tokens[at + 1], tokens[at]
    elif action == "replace":
        tokens[at] = draw(st.sampled_from(tokens + INSERTED))
    elif action == "move":
        token = tokens.pop(at)
        tokens.insert(draw(st.integers(0, len(tokens))), token)
    return "".join(tokens)


@settings(max_examples=500, **HYPOTHESIS)
@given(mutated_texts())
def test_mutated_texts(text):
    check_same(text)


# -- the limits: nesting depth and numbers --------------------------------------------

NESTING_LIMIT = 100  # docs/language.md


@st.composite
def deep_values(draw):
    """A value nested about NESTING_LIMIT deep, each level a list, tuple, call or
    object, now and then with a sibling beside it or a syntax error at the bottom."""
    levels = draw(st.integers(NESTING_LIMIT - 3, NESTING_LIMIT + 2))
    kinds = draw(st.lists(st.sampled_from(["list", "tuple", "call", "object"]), min_size=levels,
                          max_size=levels))
    text = draw(st.sampled_from(["1", "x", "[]", "()", "F()", "{}", '"s"', "1 2", "", "[", "F(1,)"]))
    for kind in reversed(kinds):
        sibling = draw(st.sampled_from(["", "", "", "1, ", "[1], "]))
        if kind == "list":
            text = f"[{sibling}{text}]"
        elif kind == "tuple":
            text = f"({sibling}{text},)"
        elif kind == "call":
            text = f"F({sibling}{text})"
        else:
            text = '{"k": ' + text + "}"
    return text


@settings(max_examples=60, **HYPOTHESIS)
@given(deep_values(), st.sampled_from([("x = ", ""), ("j = JSONField(default=", ")"),
                                       ("indexes = [Index(", ")]")]))
def test_nesting_at_the_limit(value, wrapper):
    """Both readers refuse the same texts, at the same place with the same message, and
    accept the same; a value nested NESTING_LIMIT deep is accepted (if it is well formed)."""
    text = "model A extends Model {\n  " + wrapper[0] + value + wrapper[1] + "\n}\n"
    accepted = check_same(text)
    outcome = outcome_of_parse(text, True)
    deepest = _value_depth(text)
    if deepest > NESTING_LIMIT:
        assert not accepted
        assert outcome[0] == "errors" and "nested too deeply" in outcome[1][0][2], outcome
        line, column = outcome[1][0][:2]
        assert text.split("\n")[line - 1][column - 1] in "([{"
    elif outcome[0] == "errors":
        assert "nested too deeply" not in outcome[1][0][2]


def _value_depth(text: str) -> int:
    """How deep brackets nest inside the model body (strings aside: these have no brackets)."""
    deepest = depth = 0
    for char in text[text.index("{") + 1:]:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


@pytest.mark.parametrize("levels", [NESTING_LIMIT, NESTING_LIMIT + 1, 490, 499, 5000])
@pytest.mark.parametrize("brackets", [("[", "]"), ("F(", ")"), ('{"k": ', "}"), ("(", ",)")])
def test_one_nesting_limit_on_both_readers(levels, brackets):
    opener, closer = brackets
    text = "model A extends Model {\n  x = " + opener * levels + "1" + closer * levels + "\n}\n"
    accepted = check_same(text)
    assert accepted == (levels <= NESTING_LIMIT)
    if not accepted:
        errors = outcome_of_parse(text, True)[1]
        # the bracket that opens the level past the limit (in "F(", the '(')
        column = len("  x = ") + len(opener) * NESTING_LIMIT + 1 + opener.startswith("F")
        assert errors == [(2, column, "nested too deeply: lists, tuples, calls and objects nest at most 100"
                                      " levels inside one another")]


@settings(max_examples=80, **HYPOTHESIS)
@given(st.lists(numbers(), min_size=1, max_size=3), st.sampled_from(["F({})", "[{}]", "{}", "F(default={})"]))
def test_numbers_at_the_edges(numbers_drawn, shape):
    text = "model A extends Model {\n  x = " + shape.format(", ".join(numbers_drawn)) + "\n}\n"
    check_same(text)


@pytest.mark.parametrize("number", EXTREME_NUMBERS)
def test_each_extreme_number(number):
    check_same(f"model A extends Model {{\n  x = F({number})\n  y = IntegerField(default={number})\n"
               f"  z = FloatField(default={number})\n}}\n")

"""The reference reader: models.lark through Lark's LALR parser into the raw tree.

It is the pure-Python path, and the one that explains syntax errors: the compiled
reader hands any text it rejects to this one for the message.
"""
from __future__ import annotations

import functools
import os

from lark import Lark, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from .raw import Call, ListValue, Name, ObjectValue, RawEnum, RawModel, TupleValue, number, unescape

GRAMMAR_PATH = os.path.join(os.path.dirname(__file__), "models.lark")

_OPENERS = {"LPAR", "LSQB"}
_CLOSERS = {"RPAR", "RSQB"}

# How deep values may nest: lists, tuples, calls and objects inside one another. The
# compiled reader has the same limit (MAX_NESTING in _parser.pyx) and hands deeper
# text to this reader, so both refuse it with this reader's message and place.
MAX_NESTING = 100
NESTING_MESSAGE = (f"nested too deeply: lists, tuples, calls and objects nest at most {MAX_NESTING}"
                   " levels inside one another")


class _DropNewlinesInBrackets:
    """Post-lexer: a newline inside (...) or [...] is white space, not a separator.
    It also refuses values nested more than MAX_NESTING deep."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        # For each open bracket, whether it opens a value (a model's or an enum's body
        # is a '{' after a name, and does not count).
        opened: list = []
        nesting = 0
        previous = None
        for token in stream:
            kind = token.type
            if kind in _OPENERS or kind == "LBRACE":
                if kind != "LBRACE":
                    depth += 1
                value = kind != "LBRACE" or previous != "NAME"
                opened.append(value)
                nesting += value
                if nesting > MAX_NESTING:
                    raise SyntaxProblem(NESTING_MESSAGE, token.line, token.column)
            elif kind in _CLOSERS or kind == "RBRACE":
                if kind != "RBRACE":
                    depth = max(depth - 1, 0)
                if opened:
                    nesting -= opened.pop()
            elif kind == "_NL" and depth:
                continue
            previous = kind
            yield token


@v_args(inline=True)
class _ToRaw(Transformer):
    # Values travel as (value, pos) pairs until they are placed in a statement,
    # an argument or a list item, which all keep the position.
    def __init__(self, first_line: int = 1):
        super().__init__()
        self.line_offset = first_line - 1

    def _pos(self, token) -> tuple:
        """(line, column) of a token or a rule's meta, in the whole file."""
        return (token.line + self.line_offset, token.column)

    def start(self, *declarations):
        return list(declarations)

    def enum_decl(self, _keyword, name, *members):
        return RawEnum(str(name), self._pos(name), tuple(members))

    def enum_member(self, key, value=None):
        return (str(key), None if value is None else unescape(value[1:-1]), self._pos(key))

    def model_decl(self, _keyword, name, _extends, base, *statements):
        return RawModel(str(name), self._pos(name), str(base), self._pos(base), tuple(statements))

    def field_name(self, token):
        return token

    def statement(self, name, value):
        return (str(name), self._pos(name), value[0], value[1])

    def string(self, token):
        return (unescape(token[1:-1]), self._pos(token))

    def number(self, token):
        try:
            return (number(str(token)), self._pos(token))
        except ValueError:  # Python refuses integers of more than 4,300 digits
            raise SyntaxProblem(f"number {str(token)[:12]}... has too many digits", *self._pos(token)) from None

    @v_args(meta=True)
    def true(self, meta, *_):
        return (True, self._pos(meta))

    @v_args(meta=True)
    def false(self, meta, *_):
        return (False, self._pos(meta))

    @v_args(meta=True)
    def null(self, meta, *_):
        return (None, self._pos(meta))

    def dotted(self, *names):
        return (Name(".".join(str(n) for n in names)), self._pos(names[0]))

    def call(self, name, *arguments):
        args = tuple(a for a in arguments if a is not None)
        return (Call(str(name), self._pos(name), args), self._pos(name))

    def keyword_argument(self, key, value):
        return (str(key), value[0], self._pos(key))

    def positional_argument(self, value):
        return (None, value[0], value[1])

    # With meta=True Lark passes the children as one list, not inlined.
    @v_args(meta=True)
    def list(self, meta, items):
        return (ListValue(tuple(i for i in items if i is not None)), self._pos(meta))

    @v_args(meta=True)
    def tuple(self, meta, items):
        return (TupleValue(tuple(i for i in items if i is not None)), self._pos(meta))

    @v_args(meta=True)
    def object(self, meta, items):
        return (ObjectValue(tuple(i for i in items if i is not None)), self._pos(meta))

    def pair(self, key, value):
        return (unescape(key[1:-1]), value[0], self._pos(key))


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark.open(
        GRAMMAR_PATH,
        parser="lalr",
        postlex=_DropNewlinesInBrackets(),
        propagate_positions=True,
        maybe_placeholders=True,
    )


class SyntaxProblem(Exception):
    """A syntax error found by Lark, in the language's own words."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "_NL": "a newline",
    "SEMICOLON": "';'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "EQUAL": "'='",
    "DOT": "'.'",
    "ENUM": "'enum'",
    "MODEL": "'model'",
    "EXTENDS": "'extends'",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "NULL": "'null'",
    "$END": "the end of the file",
}


def _describe_token(token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "_NL":
        return "a newline"
    return f"'{token}'"


def _expected(names) -> str:
    words = sorted({_TERMINAL_WORDS.get(n, n.lower()) for n in names})
    # A value can start many ways; name the family instead of listing every token.
    if {"a string", "a number", "a name"} <= set(words) and "'['" in words:
        words = ["a value"] + [w for w in words if w not in {
            "a string", "a number", "a name", "'['", "'('", "'{'", "'true'", "'false'", "'null'"}]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def read(text: str, first_line: int = 1) -> list:
    """Parse models.mp text into the raw tree; raise SyntaxProblem on bad syntax.
    ``first_line``: the line the text starts on, when it is a part of a file cut at a
    line's start (the tree's positions are then the file's; a SyntaxProblem's are the
    part's)."""
    parser = _parser()
    try:
        tree = parser.parse(text)
    except UnexpectedToken as exc:
        token = exc.token
        if token.type == "$END":
            line, column = _end_position(text)
        else:
            line, column = exc.line, exc.column
        raise SyntaxProblem(
            f"unexpected {_describe_token(token)}; expected {_expected(exc.accepts or exc.expected)}",
            line, column) from None
    except UnexpectedCharacters as exc:
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        if char == '"':
            message = "unterminated string (a string ends with '\"' on the same line)"
        else:
            message = f"unexpected character {char!r}"
        raise SyntaxProblem(message, exc.line, exc.column) from None
    except UnexpectedInput as exc:  # pragma: no cover - other Lark input errors
        raise SyntaxProblem(str(exc).splitlines()[0], exc.line, exc.column) from None
    try:
        return _ToRaw(first_line).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, SyntaxProblem):
            raise exc.orig_exc from None
        raise


def _end_position(text: str) -> tuple:
    lines = text.split("\n")
    return (len(lines), len(lines[-1]) + 1)

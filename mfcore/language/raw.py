"""The raw declaration tree that both readers of models.mp produce.

The Lark reader (lark_reader.py) and the compiled reader (mfcore/_parser.pyx) turn
text into exactly this tree; validate.py turns the tree into a Schema. Keeping the
two readers down to syntax means every rule about meaning is written once.

Shapes (positions are ``(line, column)``, both 1-based, of the first character):

    RawEnum(name, pos, members)         members: tuple of (key, value | None, pos)
    RawModel(name, pos, base, base_pos, statements)
                                        statements: tuple of (name, pos, value, value_pos)

Values are Python ``str`` (unescaped), ``int``, ``decimal.Decimal`` (a number with a
decimal point, exact as written: fields.py makes a float of it where the type is one), ``True``, ``False``,
``None``, or one of the small classes below. Lists and tuples of the language are
``ListValue`` and ``TupleValue`` (items: tuple of (value, pos)) so that they never
compare equal to each other; an object literal is ``ObjectValue`` (items: tuple of
(key, value, pos), in the order written, the position being the key's).
"""
from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple


class RawEnum(NamedTuple):
    name: str
    pos: tuple
    members: tuple


class RawModel(NamedTuple):
    name: str
    pos: tuple
    base: str
    base_pos: tuple
    statements: tuple


class _Value:
    __slots__ = ()

    def __eq__(self, other):
        return type(other) is type(self) and self._key() == other._key()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((type(self).__name__, self._key()))

    def __repr__(self):
        return f"{type(self).__name__}{self._key()!r}"


class Name(_Value):
    """A bare or dotted name: ``Customer``, ``CASCADE``, ``UserRole.ADMIN``."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def _key(self):
        return (self.text,)


class Call(_Value):
    """``Type(arg, key=value)``; args is a tuple of (keyword | None, value, pos)."""

    __slots__ = ("name", "pos", "args")

    def __init__(self, name, pos, args):
        self.name = name
        self.pos = pos
        self.args = args

    def _key(self):
        return (self.name, self.pos, self.args)


class ListValue(_Value):
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items

    def _key(self):
        return (self.items,)


class TupleValue(_Value):
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items

    def _key(self):
        return (self.items,)


class ObjectValue(_Value):
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items

    def _key(self):
        return (self.items,)


def unescape(body: str) -> str:
    """The text of a string literal without its quotes: ``\\"`` and ``\\\\`` are escapes;
    any other backslash stays as written."""
    if "\\" not in body:
        return body
    out = []
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch == "\\" and i + 1 < n and body[i + 1] in '"\\':
            out.append(body[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def number(text: str):
    return Decimal(text) if "." in text else int(text)

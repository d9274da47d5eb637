"""A models file cut at its top-level declarations, without reading them.

makemigrations uses the pieces to recognise the models that have not changed since
its last run (see model_cache.py). The file is cut only where a line starts with
``model NAME`` or ``enum NAME``: in a valid file such a line always starts a
declaration (inside a body, ``model`` or ``enum`` at the start of a line can only
be a field name, followed by ``=``, and strings and comments end at the line's
end). So every piece is a run of whole declarations, usually exactly one; what
precedes the first cut (a header comment) is a piece of its own, the prologue.

The cut works on bytes, so the pieces that are not read again are never decoded.
parse() cuts a large file's text the same way (parts()), to read it part by part.
"""
from __future__ import annotations

import re
from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"
_HEADER = re.compile(rb"\n(model|enum)[ \t\f]+([A-Za-z_][A-Za-z0-9_]*)")


class Chunk(NamedTuple):
    kind: str    # "model" or "enum", as the line starts
    name: str    # the name after the keyword
    start: int   # byte offsets in Outline.data: data[start:end] is the piece
    end: int


class Outline(NamedTuple):
    data: bytes       # the file's bytes, without a byte-order mark
    prologue_end: int
    chunks: list      # Chunk, in file order

    def text_of(self, chunk: Chunk) -> bytes:
        return self.data[chunk.start:chunk.end]

    def lines(self) -> list:
        """The 1-based line on which each chunk starts."""
        found = []
        line = 1
        position = 0
        data = self.data
        for chunk in self.chunks:
            line += data.count(b"\n", position, chunk.start)
            position = chunk.start
            found.append(line)
        return found


def outline(data: bytes) -> Outline:
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    # A newline in front lets a declaration on the first line be found like the others;
    # in the padded bytes a match starts at that newline, which is the keyword's offset
    # in the unpadded ones.
    found = [(match.start(), match.group(1).decode(), match.group(2).decode())
             for match in _HEADER.finditer(b"\n" + data)]
    ends = [start for start, _kind, _name in found[1:]] + [len(data)]
    chunks = [Chunk(kind, name, start, end) for (start, kind, name), end in zip(found, ends)]
    return Outline(data, found[0][0] if found else len(data), chunks)


class Part(NamedTuple):
    kind: str    # "enum": enum declarations only, as their lines start; "model": the others
    start: int   # text[start:end] is the part
    end: int
    line: int    # the line it starts on


def parts(text: str, size: int) -> list:
    """The text cut where outline() would cut its bytes, into parts of about ``size``
    characters (more when one declaration is longer), in file order: each enum
    declaration that starts a line, with those that follow it on its lines, is an
    "enum" part; the rest is cut into "model" parts, each run of whole declarations
    starting where a model does (what precedes the first declaration too).

    Only the cuts are looked for (str.find, not a pattern over every line): at 20,000
    models the file is cut into about 20 parts, and the enums are a handful."""
    end = len(text)
    kinds = {0: "model"}  # where a part starts: its kind
    at = _header(text, "enum", 0)
    while at < end:
        kinds[at] = "enum"
        after = min(_header(text, "enum", at + 1), _header(text, "model", at + 1))
        kinds.setdefault(after, "model")
        at = _header(text, "enum", after)
    at = 0
    while True:
        at = _header(text, "model", at + size)
        if at >= end:
            break
        kinds.setdefault(at, "model")
    starts = sorted(kinds)
    cut = []
    line = 1
    for start, stop in zip(starts, starts[1:] + [end]):
        if start >= end and cut:
            break
        if cut and cut[-1].kind == kinds[start] == "enum":  # a run of enums is one part
            cut[-1] = cut[-1]._replace(end=stop)
        else:
            cut.append(Part(kinds[start], start, stop, line))
        line += text.count("\n", start, stop)
    return cut


def _header(text: str, keyword: str, start: int) -> int:
    """Where the first line at or after ``start`` that starts a declaration of
    ``keyword`` ("model" or "enum") begins; len(text) when there is none."""
    end = len(text)
    if start == 0 and _declares(text, keyword, 0):
        return 0
    at = text.find("\n" + keyword, max(start - 1, 0))
    while at >= 0:
        if _declares(text, keyword, at + 1):
            return at + 1
        at = text.find("\n" + keyword, at + 1)
    return end


def _declares(text: str, keyword: str, at: int) -> bool:
    """Whether text[at:] starts with ``keyword``, blanks and a name, as a declaration does."""
    if not text.startswith(keyword, at):
        return False
    at += len(keyword)
    blank = at
    while at < len(text) and text[at] in " \t\f":
        at += 1
    return at > blank and at < len(text) and (text[at].isascii() and (text[at].isalpha() or text[at] == "_"))

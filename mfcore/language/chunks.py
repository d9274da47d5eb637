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


_TEXT_HEADER = re.compile(r"\n(model|enum)[ \t\f]+[A-Za-z_]")


class Part(NamedTuple):
    kind: str    # "enum": enum declarations only, as their lines start; "model": the others
    start: int   # text[start:end] is the part
    end: int
    line: int    # the line it starts on


def parts(text: str, size: int) -> list:
    """The text cut as outline() cuts bytes, into parts of about ``size`` characters
    (more when one declaration is longer): runs of whole declarations of one kind,
    in file order. What precedes the first cut is a "model" part."""
    found = [(match.start(), match.group(1)) for match in _TEXT_HEADER.finditer("\n" + text)]
    if not found or found[0][0] > 0:
        found.insert(0, (0, "model"))
    found.append((len(text), None))
    cut = []
    start, kind = found[0]
    line = 1
    for at, next_kind in found[1:]:  # the last, at the text's end, ends the last part
        if next_kind == kind and at - start < size:
            continue
        cut.append(Part(kind, start, at, line))
        line += text.count("\n", start, at)
        start, kind = at, next_kind
    return cut

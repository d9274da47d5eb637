"""Hand-written SQL split into statements: at a semicolon only where it ends one, never
inside a quoted string or identifier, a comment, a PostgreSQL dollar-quoted body or an
SQLite trigger's BEGIN ... END. The dialects say which of those their database has."""
from __future__ import annotations

import re

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_TRIGGER = re.compile(r"\s*CREATE\s+(?:TEMP(?:ORARY)?\s+)?TRIGGER\b", re.IGNORECASE)
_ENDS_BLOCK = re.compile(r"\bEND\s*$", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9_$]")


def split_statements(sql: str, *, dollar_quotes: bool = False, trigger_blocks: bool = False) -> list[str]:
    """The statements of ``sql``, each without its closing semicolon; pieces holding
    only blanks and comments are dropped."""
    statements: list[str] = []
    start = position = 0
    length = len(sql)
    meaningful = False  # the current piece has more than blanks and comments
    while position < length:
        char = sql[position]
        if char in "'\"`":
            position = _after_quoted(sql, position, char, _escapes(sql, position, dollar_quotes))
            meaningful = True
        elif sql.startswith("--", position):
            end = sql.find("\n", position)
            position = length if end < 0 else end + 1
        elif sql.startswith("/*", position):
            end = sql.find("*/", position + 2)
            position = length if end < 0 else end + 2
        elif char == "$" and dollar_quotes and (position == 0 or not _WORD.match(sql[position - 1])):
            tag = _DOLLAR_TAG.match(sql, position)
            if tag is None:
                position += 1
            else:
                end = sql.find(tag.group(), tag.end())
                position = length if end < 0 else end + len(tag.group())
            meaningful = True
        elif char == ";":
            piece = sql[start:position]
            if trigger_blocks and _TRIGGER.match(piece) and not _ENDS_BLOCK.search(_without_comments(piece)):
                position += 1  # a statement inside the trigger's body
                continue
            if meaningful:
                statements.append(piece.strip())
            start = position = position + 1
            meaningful = False
        else:
            if not char.isspace():
                meaningful = True
            position += 1
    if meaningful:
        statements.append(sql[start:].strip())
    return statements


def _escapes(sql: str, position: int, dollar_quotes: bool) -> bool:
    """Is this PostgreSQL's E'...' string, where a backslash escapes?"""
    return (dollar_quotes and sql[position] == "'" and position > 0 and sql[position - 1] in "eE"
            and (position == 1 or not _WORD.match(sql[position - 2])))


def _after_quoted(sql: str, position: int, quote: str, backslash: bool) -> int:
    """The position just past the quoted text opening at ``position`` (a doubled quote
    stands for itself)."""
    index = position + 1
    while index < len(sql):
        char = sql[index]
        if backslash and char == "\\":
            index += 2
            continue
        if char == quote:
            if sql.startswith(quote, index + 1):
                index += 2
                continue
            return index + 1
        index += 1
    return len(sql)


def _without_comments(piece: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?\*/", "", piece, flags=re.DOTALL).rstrip()

"""What `mf db lint` asks a dialect, as records: the rules a database adds, a
migration's statements as the lint sees them (which transaction each runs in, who
wrote it), and what a check finds. Small helpers read SQL text for the checks: the
statements they classify are single statements, split as migrate splits them.

The rule engine is mfcore/lint.py; what is risky on one database lives in that
database's module (postgresql_risks.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Rule:
    """A lint rule: its name (squawk's where squawk has one), what it looks for, why
    that hurts, and the safe way. ``accepted``: why mf accepts it on every migration
    (it then never reports it), else None."""

    name: str
    what: str
    why: str
    alternative: str
    accepted: Optional[str] = None


@dataclass(frozen=True)
class LintStatement:
    """One statement of a migration, as migrate runs it."""

    sql: str
    number: int              # 1-based, as `mf db sql NNN` lists the statements
    step: int                # the transaction (or the statement outside one) it runs in, from 0
    in_transaction: bool
    hand_written: bool       # from a run_sql step; else mf wrote it from an operation
    operation: Optional[int]  # the position of its operation in "ops", when known


@dataclass(frozen=True)
class Risk:
    """What a check found: the rule and why it applies here."""

    rule: str
    reason: str


@dataclass(frozen=True)
class Rewrite:
    """A table that a change rewrites (or scans) while holding ACCESS EXCLUSIVE."""

    table: str
    column: Optional[str]
    why: str
    # The rule the lint reports it under, from the operation; None when a rule on the
    # statement says it already (a new column's volatile default).
    rule: Optional[str] = "changing-column-type"


# ---------------------------------------------------------------- reading SQL text

_LINE_COMMENT = re.compile(r"--[^\n]*")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_BLANKS = re.compile(r"\s+")
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def normalized(sql: str) -> str:
    """The statement without comments, on one line, blanks collapsed."""
    text = _BLOCK_COMMENT.sub(" ", _LINE_COMMENT.sub(" ", sql))
    return _BLANKS.sub(" ", text).strip()


def masked(sql: str) -> str:
    """The statement with its string literals and quoted identifiers blanked out, so a
    type or keyword inside a name or a value is not taken for one."""
    return _QUOTED.sub(lambda m: m.group()[0] * 2, normalized(sql))


# An identifier as SQL writes it: "quoted" or bare, optionally schema-qualified.
IDENTIFIER = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)(?:\s*\.\s*(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*))?'


def identifier(text: str) -> str:
    """The object's own name: its last part, unquoted (a bare name folded to lower case)."""
    last = re.split(r'\s*\.\s*(?=(?:"|[A-Za-z_]))', text.strip())[-1]
    if last.startswith('"'):
        return last[1:-1].replace('""', '"')
    return last.lower()


def is_comment(sql: str) -> bool:
    """Does the statement hold nothing to run (a marker or a note that reads as a comment)?"""
    return not normalized(sql)

"""The compiled reader of models.mp (mfcore/_parser.pyx): text -> the raw tree of raw.py."""
from __future__ import annotations

from typing import Any

from mfcore.language.raw import RawEnum, RawModel

class ReadError(ValueError):
    """The text is not models.mp; the Lark reader says why and where."""

def read(text: str, first_line: int = 1) -> list[RawEnum | RawModel]:
    """Parse models.mp text into the raw tree; raise ReadError if the grammar rejects it.
    ``first_line``: the line the text starts on (a part of a file cut at a line's start)."""

def new_form_fields(raw_fields: list, field_class: Any) -> tuple | None: ...

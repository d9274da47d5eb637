"""The compiled reader of models.mp (mfcore/_parser.pyx): text -> the raw tree of raw.py."""
from __future__ import annotations

from typing import Any

from mfcore.language.raw import RawEnum, RawModel

class ReadError(ValueError):
    """The text is not models.mp; the Lark reader says why and where."""

def read(text: str) -> list[RawEnum | RawModel]:
    """Parse models.mp text into the raw tree; raise ReadError if the grammar rejects it."""

def split_statements(statements: tuple, call_class: Any) -> tuple[list, list]: ...

def build_fields(model_name: str, statements: Any, enums: Any, cache: dict, fields: list, by_name: dict,
                 positions: dict, index_fields: list, add: Any, build_uncached: Any, field_class: Any,
                 name_class: Any) -> None: ...

def new_form_fields(raw_fields: list, field_class: Any) -> tuple | None: ...

def changed_models(old_models: dict, new_models: dict) -> list[str]: ...

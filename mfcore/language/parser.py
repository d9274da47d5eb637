"""models.mp text -> Schema, on the compiled reader when it is there.

The compiled reader (mfcore._parser) and the Lark reader produce the same raw
tree; validate.py gives it meaning. Set MF_PURE_PYTHON=1 to use the Lark reader
only (tests and benchmarks run both ways).
"""
from __future__ import annotations

import os

from ..errors import ModelsError
from ..gcpause import gc_paused
from ..schema import Schema
from .validate import Problem, build_fields, build_schema, split_statements


def _load_compiled():
    if os.environ.get("MF_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from .. import _parser
    except ImportError:
        return None
    return _parser


_compiled = _load_compiled()


def implementation() -> str:
    """'compiled' or 'python': which reader parse() uses in this process."""
    return "compiled" if _compiled is not None else "python"


def read_raw(text: str, path: str = "models.mp", *, compiled: bool | None = None) -> list:
    """The raw declaration tree of a models file (see raw.py); ModelsError on bad syntax.

    ``compiled`` forces one reader (None: the compiled one when it is available).
    """
    use_compiled = _compiled is not None if compiled is None else compiled
    if use_compiled:
        if _compiled is None:
            raise RuntimeError("the compiled reader is not built in this installation")
        try:
            return _compiled.read(text)
        except (ValueError, RecursionError):  # ReadError is a ValueError
            pass  # Lark explains the error: it is the normative reader.
    from .lark_reader import SyntaxProblem, read

    try:
        declarations = read(text)
    except SyntaxProblem as problem:
        raise ModelsError([Problem(problem.message, (problem.line, problem.column), path, text)]) from None
    except RecursionError:
        raise ModelsError([Problem("lists, tuples or calls are nested too deeply to read", None, path,
                                   text)]) from None
    if use_compiled:
        raise RuntimeError(
            f"{path}: the compiled reader rejected text that the grammar accepts; "
            "set MF_PURE_PYTHON=1 to work around it and report the file")
    return declarations


def parse(text: str, path: str = "models.mp", *, compiled: bool | None = None) -> Schema:
    """Parse and validate models.mp text; raise ModelsError listing every problem."""
    with gc_paused():
        # The raw tree dies inside the pause: alive when the collector came back, it
        # would be scanned once in full for nothing.
        use_compiled = _compiled is not None if compiled is None else compiled
        core = _compiled if use_compiled else None
        schema, problems = build_schema(read_raw(text, path, compiled=compiled),
                                        core.build_fields if core else build_fields,
                                        core.split_statements if core else split_statements)
    if problems:
        raise ModelsError([Problem(message, pos, path, text) for message, pos in problems])
    return schema


def parse_file(path: str, *, display_path: str | None = None) -> Schema:
    try:
        with open(path, encoding="utf-8-sig") as handle:  # a byte-order mark is no error
            text = handle.read()
    except FileNotFoundError:
        from ..errors import ConfigError

        raise ConfigError(f"models file not found: {display_path or path} (it is looked for beside "
                          "language_config.yaml; set `models:` there to put it elsewhere)") from None
    except UnicodeDecodeError as exc:
        raise ModelsError([Problem(f"the file is not UTF-8 text ({exc.reason})", None,
                                   display_path or path)]) from None
    return parse(text, display_path or path)

"""models.mp text -> Schema, on the compiled core when it is there.

The compiled reader (mfcore._parser) and the Lark reader produce the same raw
tree; validate.py gives it meaning, its hot loops compiled from hotloops.py when
the compiled reader is used. Set MF_PURE_PYTHON=1 to use the Lark reader and
hotloops.py as Python only (tests and benchmarks run both ways).
"""
from __future__ import annotations

from .. import compiled as compiled_core
from ..errors import ModelsError
from ..gcpause import gc_paused
from ..schema import Schema
from . import hotloops
from .chunks import parts
from .raw import RawEnum
from .validate import Problem, SchemaBuilder, build_schema


_compiled = compiled_core.core
# validation's hot loops compiled from hotloops.py, used with the compiled reader
_compiled_loops = compiled_core.load("mfcore.language._hotloops")


def implementation() -> str:
    """'compiled' or 'python': which reader parse() uses in this process."""
    return "compiled" if _compiled is not None else "python"


def read_raw(text: str, path: str = "models.mp", *, compiled: bool | None = None, first_line: int = 1) -> list:
    """The raw declaration tree of a models file (see raw.py); ModelsError on bad syntax.

    ``compiled`` forces one reader (None: the compiled one when it is available).
    ``first_line``: the line ``text`` starts on, when it is a part of the file cut at a
    line's start; the tree's positions are then the file's (a ModelsError's are not).
    """
    use_compiled = _compiled is not None if compiled is None else compiled
    if use_compiled:
        if _compiled is None:
            raise RuntimeError("the compiled reader is not built in this installation")
        try:
            return _compiled.read(text, first_line)
        except (ValueError, RecursionError):  # ReadError is a ValueError
            pass  # Lark explains the error: it is the normative reader.
    from .lark_reader import SyntaxProblem, read

    try:
        declarations = read(text, first_line)
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


def parse(text: str, path: str = "models.mp", *, compiled: bool | None = None,
          outline: list | None = None, index_foreign_keys: bool = False) -> Schema:
    """Parse and validate models.mp text; raise ModelsError listing every problem.

    ``outline``, when given, receives (kind, name, base, line) for each top-level
    declaration, kind "model" or "enum" and base None for an enum.
    ``index_foreign_keys``: a ForeignKey whose db_index is not given is indexed (a
    project's setting, see store.index_foreign_keys)."""
    with gc_paused():
        # The raw tree dies inside the pause: alive when the collector came back, it
        # would be scanned once in full for nothing.
        cut = parts(text, PART_SIZE) if len(text) > PART_SIZE else None
        read_in_parts = _read_in_parts(text, cut, compiled, index_foreign_keys) if cut and len(cut) > 1 else None
        if read_in_parts is not None:
            schema, declared = read_in_parts
            problems = ()
            if outline is not None:
                outline.extend(declared)
        else:
            declarations = read_raw(text, path, compiled=compiled)
            if outline is not None:
                outline.extend(declaration_outline(declarations))
            schema, problems = build(declarations, compiled=compiled, index_foreign_keys=index_foreign_keys,
                                     consume=True)
    if problems:
        raise ModelsError([Problem(message, pos, path, text) for message, pos in problems])
    return schema


# A file longer than this (in characters) is read in parts of about this size, each
# built into its models before the next is read: the raw tree of a whole file is
# about ten times its text (over 200 MB at 20,000 models).
PART_SIZE = 1 << 20


def _read_in_parts(text: str, cut: list, compiled, index_foreign_keys: bool):
    """(schema, outline) of a valid file read part by part (``cut``: chunks.parts), the
    enums first; None when anything is wrong, or when a part holds what its kind does
    not say (a declaration that does not start its line): the whole file is then read
    at once, which is what explains every problem in it, in the order of the file."""
    use_compiled = _compiled is not None if compiled is None else compiled
    loops = _compiled_loops if use_compiled and _compiled_loops is not None else hotloops
    builder = SchemaBuilder(loops.build_fields, loops.split_statements, index_foreign_keys=index_foreign_keys,
                            keep_positions=False)
    declared = []
    try:
        for kind in ("enum", "model"):
            for part in cut:
                if part.kind != kind:
                    continue
                declarations = read_raw(text[part.start:part.end], compiled=compiled, first_line=part.line)
                if any((type(d) is RawEnum) != (kind == "enum") for d in declarations):
                    return None
                declared += declaration_outline(declarations)
                builder.declare(declarations)
                del declarations
                builder.build_declared(consume=True, ready_only=True)
    except ModelsError:
        return None
    schema, problems = builder.finish()
    if problems:
        return None
    declared.sort(key=lambda entry: entry[3])  # by line: several declarations on one line are one part
    return schema, declared


def build(declarations, *, compiled: bool | None = None, other_models=frozenset(),
          index_foreign_keys: bool = False, consume: bool = False) -> tuple:
    """(Schema, problems as (message, pos)) of a raw tree; see validate.build_schema
    (``consume``: the tree is let go as it is built)."""
    use_compiled = _compiled is not None if compiled is None else compiled
    loops = _compiled_loops if use_compiled and _compiled_loops is not None else hotloops
    return build_schema(declarations, loops.build_fields, loops.split_statements, other_models,
                        index_foreign_keys, consume)


def declaration_outline(declarations) -> list:
    """(kind, name, base, line) of each raw declaration."""
    return [("enum", d.name, None, d.pos[0]) if type(d) is RawEnum else ("model", d.name, d.base, d.pos[0])
            for d in declarations]


def read_models_file(path: str, *, display_path: str | None = None) -> bytes:
    """The bytes of a models file; ConfigError when it is missing."""
    from ..errors import ConfigError
    from ..files import read_file

    try:
        return read_file(path, ConfigError, shown=display_path or path)
    except FileNotFoundError:
        raise ConfigError(f"models file not found: {display_path or path} (it is looked for beside "
                          "language_config.yaml; set `models:` there to put it elsewhere)") from None


def parse_bytes(data: bytes, path: str = "models.mp", *, outline: list | None = None,
                index_foreign_keys: bool = False) -> Schema:
    """parse() of a file's bytes: UTF-8, with or without a byte-order mark."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ModelsError([Problem(f"the file is not UTF-8 text ({exc.reason})", None, path)]) from None
    return parse(text, path, outline=outline, index_foreign_keys=index_foreign_keys)


def parse_file(path: str, *, display_path: str | None = None) -> Schema:
    return parse_bytes(read_models_file(path, display_path=display_path), display_path or path)

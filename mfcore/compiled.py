"""The compiled core, where it is built and not turned off.

It is two extension modules: mfcore._parser (the reader, mfcore/_parser.pyx, and the
loop that loads a snapshot's fields) and mfcore.language._hotloops (validation's hot
loops: mfcore/language/hotloops.py, compiled as it is by Cython's pure-Python mode).
The pure-Python path is the Lark reader, hotloops.py itself and the twins named below.
MF_PURE_PYTHON=1 makes mf use the pure-Python path only (the test suite and the
benchmarks run both ways); an installation without a C compiler has only that path.
"""
from __future__ import annotations

import importlib
import os


def pure_python() -> bool:
    """True when MF_PURE_PYTHON asks for the pure-Python path."""
    return os.environ.get("MF_PURE_PYTHON", "") not in ("", "0")


def load(module_name: str):
    """The compiled module of that name, or None when it is not built or MF_PURE_PYTHON=1."""
    if pure_python():
        return None
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


core = load("mfcore._parser")


def twin(function):
    """The compiled twin of a pure-Python function (the same name in mfcore._parser),
    or the function itself when the compiled core is not in use."""
    return getattr(core, function.__name__) if core is not None else function

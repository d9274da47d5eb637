"""The compiled core, mfcore._parser, where it is built and not turned off.

Each function of the compiled core has a pure-Python twin that stays the reference.
MF_PURE_PYTHON=1 makes mf use the twins only (the test suite and the benchmarks run
both ways); an installation without a C compiler has only the twins.
"""
from __future__ import annotations

import os


def _load():
    if os.environ.get("MF_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from . import _parser
    except ImportError:
        return None
    return _parser


core = _load()


def twin(function):
    """The compiled twin of a pure-Python function (the same name in mfcore._parser),
    or the function itself when the compiled core is not in use."""
    return getattr(core, function.__name__) if core is not None else function

"""Builds the compiled core when a C compiler is there: the reader (mfcore/_parser.pyx)
and validation's hot loops (mfcore/language/hotloops.py, plain Python that Cython
compiles as it is into mfcore.language._hotloops; the .py stays the pure-Python path).

Without one the install still succeeds and mf runs on its pure-Python path; the
build says so once, here, and never at run time.
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """A failed compile is a slower mf, not a failed install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure
            self._skip(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._skip(exc)

    def _skip(self, exc):
        sys.stderr.write(f"mfcore: compiled reader not built ({exc}); using the pure-Python path\n")


def extensions():
    if os.environ.get("MF_PURE_PYTHON_BUILD"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        sys.stderr.write("mfcore: Cython not available; using the pure-Python path\n")
        return []
    try:
        return cythonize([Extension("mfcore._parser", ["mfcore/_parser.pyx"]),
                          Extension("mfcore.language._hotloops", ["mfcore/language/hotloops.py"])],
                         language_level=3, quiet=True)
    except Exception as exc:  # noqa: BLE001 - a failed translation is a failed compile
        sys.stderr.write(f"mfcore: compiled reader not translated ({exc}); using the pure-Python path\n")
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})

"""`import mfcore` and `mf --help` stay light: parsers and drivers load on first use."""
from __future__ import annotations

import subprocess
import sys

HEAVY = {"lark", "asyncpg", "aiosqlite", "anyio", "yaml", "orjson"}


def loaded_modules(code: str) -> set:
    completed = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                               check=True, capture_output=True, text=True)
    return set(completed.stdout.split())


def test_import_mfcore_loads_nothing_heavy():
    assert not HEAVY & loaded_modules("import mfcore")


def test_mf_help_loads_nothing_heavy():
    assert not HEAVY & loaded_modules("import mfcore.cli\nmfcore.cli.build_parser().format_help()")


def test_parsing_loads_no_driver_and_lark_only_on_the_pure_python_path():
    code = ("import mfcore\nfrom mfcore.language.parser import implementation\n"
            "mfcore.parse('model A extends Model { n = IntegerField() }')\nprint(implementation())")
    completed = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                               check=True, capture_output=True, text=True)
    path, modules = completed.stdout.split("\n", 1)
    modules = set(modules.split())
    assert not {"asyncpg", "aiosqlite", "anyio"} & modules
    assert ("lark" in modules) == (path == "python")

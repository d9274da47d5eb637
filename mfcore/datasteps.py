"""run_python steps: finding the project's function before anything runs, and the
small connection it is given.

A step names ``package.module:function``, an ``async def function(conn)`` that runs
inside the migration's transaction. ``conn`` is a MigrationConnection:

    await conn.execute(sql, *args)     # run a statement
    await conn.fetch(sql, *args)       # its rows, as tuples
    await conn.fetchval(sql, *args)    # the first column of the first row, or None
    conn.dialect                       # "postgresql" or "sqlite": placeholders are $1 or ?

It must not COMMIT or ROLLBACK: the migration's transaction is mf's.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys

from .errors import MigrationFileError


class PythonCall(str):
    """A run_python step among a migration's statements: it reads as an SQL comment
    (what `mf db sql` and the dry run print) and carries the function it calls."""

    function_name: str
    function: object = None

    def __new__(cls, function_name: str):
        call = super().__new__(cls, f"-- run_python {function_name}")
        call.function_name = function_name
        return call


def resolve(call: PythonCall, project_dir: str) -> PythonCall:
    """The call with its function imported (the project's directory first on the import
    path); a module that does not import, a missing name or a function that is not
    ``async def`` is a MigrationFileError, before anything runs."""
    module_name, _, name = call.function_name.partition(":")
    if project_dir not in sys.path:
        sys.path.insert(0, project_dir)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the project's code: anything it raises is its import error
        raise MigrationFileError(f"run_python {call.function_name}: cannot import {module_name} "
                                 f"({type(exc).__name__}: {exc})") from None
    function = getattr(module, name, None)
    if function is None:
        raise MigrationFileError(f"run_python {call.function_name}: module {module_name} has no {name}")
    if not inspect.iscoroutinefunction(function):
        raise MigrationFileError(f"run_python {call.function_name}: {name} must be an `async def {name}(conn)`")
    resolved = PythonCall(call.function_name)
    resolved.function = function
    return resolved


def import_root(config) -> str:
    """Where the project's modules are imported from: the directory of language_config.yaml."""
    return os.path.dirname(config.config_path) if config.config_path else os.getcwd()


class MigrationConnection:
    """What a run_python function gets: the migration's own connection, in its transaction."""

    def __init__(self, connection, dialect: str):
        self._connection = connection
        self.dialect = dialect

    async def execute(self, sql: str, *args) -> None:
        await self._connection.execute(sql, args)

    async def fetch(self, sql: str, *args) -> list:
        return [tuple(row) for row in await self._connection.fetch(sql, args)]

    async def fetchval(self, sql: str, *args):
        rows = await self._connection.fetch(sql, args)
        return rows[0][0] if rows else None

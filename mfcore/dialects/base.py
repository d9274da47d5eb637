"""What every dialect answers, and what is written once for all of them."""
from __future__ import annotations

from ..operations import Operation


class Dialect:
    """Turns operations into SQL for one database.

    Subclasses (dialects/sqlite.py, dialects/postgresql.py) set ``name`` and
    implement the per-operation hooks; everything the two databases share lives
    here, once.
    """

    name: str = ""

    # ------------------------------------------------------------ quoting
    def quote(self, identifier: str) -> str:
        """An identifier, always quoted: names with quotes, spaces or keywords work."""
        return '"' + identifier.replace('"', '""') + '"'

    def literal(self, value) -> str:  # pragma: no cover - see subclasses
        """A value written into DDL (defaults), escaped so nothing can be injected."""
        raise NotImplementedError

    def placeholder(self, position: int) -> str:  # pragma: no cover
        """The bound-parameter marker for the 1-based ``position`` (``?`` or ``$1``)."""
        raise NotImplementedError

    # ------------------------------------------------------------ operations
    def operation_sql(self, operation: Operation, *, atomic: bool = True) -> list[str]:  # pragma: no cover
        """The statements that carry out one operation, in order."""
        raise NotImplementedError

    def migration_sql(self, operations, *, atomic: bool = True) -> list[str]:
        """Every statement of a migration, in order."""
        statements: list[str] = []
        for operation in operations:
            statements.extend(self.operation_sql(operation, atomic=atomic))
        return statements

    def needs_foreign_keys_off(self, operations) -> bool:
        """Must foreign-key enforcement be switched off (outside the transaction) while
        these run? True for SQLite table rebuilds; never for PostgreSQL."""
        return False

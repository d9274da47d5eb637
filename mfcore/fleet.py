"""Many targets at once: every database and tenant schema of a Fleet, in one event loop.

A target is a Config (one database, or one PostgreSQL schema of a database, with its
own ledger and lock), and each is migrated by the single-database run
(applier.migrate), unchanged: its lock, its transactions, its exactly-once
guarantee. Here only: which targets, how many at a time (a CapacityLimiter over an
anyio task group), and a result per target. A failing target is one result among
the others; with ``fail_fast`` the first failure cancels the runs not yet finished
(a cancelled run rolls its open transaction back, as a killed one does).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import anyio

from .config import Config, Fleet
from .dialects import dialect_for
from .drivers import StatementError, connect, shared_connections
from .errors import ConfigError, DatabaseError, DataLossError, IrreversibleError, MfError

DEFAULT_CONCURRENCY = 10   # runs at a time; each PostgreSQL run with work holds two connections
SERVER_SHARE = 4           # use at most 1/SERVER_SHARE of a server's max_connections

ResultCallback = Callable[["TargetResult", int, int], object]


@dataclass
class TargetResult:
    """What happened on one target: ``applied`` names (migrate), ``records`` (status),
    ``rolled_back`` names (rollback), or ``error``; ``finished`` is False when
    fail_fast stopped the fleet before this target's run ended (a run cut short rolls
    back its open transaction)."""

    name: str
    display: str
    applied: list = field(default_factory=list)
    records: list = field(default_factory=list)
    rolled_back: list = field(default_factory=list)   # rollback: names undone (dry run: would be)
    losses: list = field(default_factory=list)        # rollback: what its undo cannot bring back
    sql: list = field(default_factory=list)           # rollback dry run: [(name, [statement])]
    # Sentences for the user, as the single-database run gives them (a lock wait's
    # retry, a database ahead of the files); ``warnings``: those that ask them to act.
    notices: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    error: Optional[MfError] = None
    finished: bool = False

    @property
    def ok(self) -> bool:
        return self.finished and self.error is None

    @property
    def migration(self) -> Optional[str]:
        """The migration that failed, when the error names one."""
        return getattr(self.error, "migration", None)


async def expand(fleet: Fleet, hosts: Optional[set] = None) -> dict:
    """name -> Config for every target to migrate: each target that holds no tenants,
    and each tenant schema as "<target>.<schema>" (schemas from a query are read now;
    only those of the targets in ``hosts``, when given)."""
    tenant_hosts = {group.target for group in fleet.tenants}
    chosen = {name: config for name, config in fleet.targets.items() if name not in tenant_hosts}
    for group in fleet.tenants:
        if hosts is not None and group.target not in hosts:
            continue
        host = fleet.targets[group.target]
        schemas = group.schemas or await _query_schemas(host, group.query, group.target)
        for schema in schemas:
            chosen[f"{group.target}.{schema}"] = replace(host, schema=schema)
    return chosen


async def _query_schemas(host: Config, query: str, target: str) -> tuple:
    async with await connect(host) as connection:
        try:
            rows = await connection.fetch(query)
        except StatementError as exc:
            raise DatabaseError(f"the tenants query of target {target} failed on {host.display_dsn}: "
                                f"{exc.message}") from None
    names = [row[0] for row in rows]
    if not all(isinstance(name, str) and name for name in names):
        raise ConfigError(f"the tenants query of target {target} must return schema names (text) in its "
                          "first column")
    return tuple(dict.fromkeys(names))


def select(fleet: Fleet, targets: dict, names=(), tenants=()) -> dict:
    """The targets named (``names``: target names, where a target that holds tenants
    means all of them; ``tenants``: schema names or "<target>.<schema>"); every one
    when neither is given."""
    if not names and not tenants:
        return targets
    hosts = {group.target for group in fleet.tenants}
    chosen = {}
    for name in names:
        if name not in fleet.targets:
            raise ConfigError(f"no target named '{name}' (targets: {', '.join(fleet.targets)})")
        if name in hosts:
            chosen.update((n, c) for n, c in targets.items() if n.startswith(name + ".") and c.schema is not None)
        else:
            chosen[name] = targets[name]
    for tenant in tenants:
        found = {n: c for n, c in targets.items() if c.schema is not None and tenant in (n, c.schema)}
        if not found:
            raise ConfigError(f"no tenant schema named '{tenant}'")
        chosen.update(found)
    return chosen


def hosts_needed(fleet: Fleet, names=(), tenants=()) -> Optional[set]:
    """The targets whose tenant schemas must be listed for this choice (None: all)."""
    if tenants or not names:
        return None
    return {group.target for group in fleet.tenants} & set(names)


async def default_concurrency(targets: dict) -> int:
    """DEFAULT_CONCURRENCY, lowered so that two connections per run stay within a
    share of each server's max_connections."""
    limit = DEFAULT_CONCURRENCY
    servers = {}
    for config in targets.values():
        if dialect_for(config.driver).limits_connections:
            servers.setdefault(config.dsn, replace(config, schema=None))
    for config in servers.values():
        async with await connect(config) as connection:
            most = await dialect_for(config.driver).connection_limit(connection)
        limit = min(limit, max(1, most // SERVER_SHARE // 2))
    return limit


async def run_all(targets: dict, work, *, concurrency: int, fail_fast: bool = False,
                  on_result: Optional[ResultCallback] = None) -> list:
    """``await work(config, result)`` for every target, ``concurrency`` at a time; the
    results in the order of ``targets``."""
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
    limiter = anyio.CapacityLimiter(concurrency)
    results = [TargetResult(name, _display(config)) for name, config in targets.items()]
    done = 0

    async def one(config: Config, result: TargetResult, scope: anyio.CancelScope) -> None:
        nonlocal done
        async with limiter:
            try:
                await work(config, result)
            except MfError as exc:
                result.error = exc
                if fail_fast:
                    scope.cancel()
            result.finished = True
        done += 1
        if on_result is not None:
            on_result(result, done, len(results))

    # Two connections per run (the run's and its lock's), one more for a tenants query.
    async with shared_connections(2 * concurrency + 1):
        async with anyio.create_task_group() as group:
            for config, result in zip(targets.values(), results):
                group.start_soon(one, config, result, group.cancel_scope)
    return results


def refusal(checks: list, allow_data_loss: bool) -> Optional[MfError]:
    """The one error that stops a fleet rollback before any target is touched: every
    target whose undo cannot be done at all (IrreversibleError), else every target
    whose undo would lose data (DataLossError, unless ``allow_data_loss``); None when
    the rollback may go ahead. ``checks`` are the results of the read-only pass."""
    irreversible = [c for c in checks if isinstance(c.error, IrreversibleError)]
    if irreversible:
        reasons = "; ".join(f"{c.name}: {_without_ending(str(c.error))}" for c in irreversible)
        return IrreversibleError(f"{len(irreversible)} of {len(checks)} target(s) cannot be rolled back: "
                                 f"{reasons}. Nothing was undone on any target.")
    losing = [c for c in checks if c.losses and c.error is None]
    if losing and not allow_data_loss:
        reasons = "; ".join(f"{c.name}: " + "; ".join(c.losses) for c in losing)
        return DataLossError(f"undoing would lose data on {len(losing)} of {len(checks)} target(s): {reasons}. "
                             "Nothing was undone on any target; pass --allow-data-loss (allow_data_loss=True) "
                             "to go ahead.")
    return None


def _without_ending(message: str) -> str:
    ending = " Nothing was undone."
    return message[:-len(ending)] if message.endswith(ending) else message.rstrip(".")


def _display(config: Config) -> str:
    shown = config.display_dsn
    return f"{shown} schema {config.schema}" if config.schema is not None else shown

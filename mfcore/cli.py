"""The `mf` command: argparse, rendering and exit codes over the API (api.py).

Each command parses its arguments, calls one API function, renders the result and
maps MfError to an exit code; it does nothing else.

Exit codes (SPEC §4): 0 success; 1 the command found something (--check found
changes); 2 bad input or usage; 3 database error. Nothing heavy is imported until
a command runs, so `mf --help` stays fast.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Optional



class _API:
    """mfcore.api, imported when a command first uses it, so `mf --help` and argument
    errors stay as light as the parser itself."""

    def __getattr__(self, name):
        from . import api as module

        return getattr(module, name)


api = _API()

EXIT_OK, EXIT_FOUND, EXIT_INPUT, EXIT_DATABASE = 0, 1, 2, 3
DB_COMMANDS = ("makemigrations", "migrate", "rollback", "status", "drift", "inspect", "baseline", "sql", "lint",
               "reset", "resolve", "rebase", "squash")


class Output:
    """Where and how to print: marks and colour only on a terminal, never with NO_COLOR."""

    def __init__(self, json_mode: bool = False):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(errors="replace")
            except (AttributeError, ValueError):
                pass
        self.json_mode = json_mode
        self.tty = sys.stdout.isatty()
        self.fancy = self.tty and "NO_COLOR" not in os.environ

    def mark(self, symbol: str = "✓") -> str:
        return f"{symbol} " if self.fancy else ""

    def color(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.fancy else text

    def line(self, text: str = "") -> None:
        if not self.json_mode:
            print(text)

    def error(self, text: str) -> None:
        print(self.color("error:", "31;1") + " " + text, file=sys.stderr)

    def notice(self, text: str) -> None:
        # Flushed: a notice printed while a run goes on (a lock retry) is read as it happens.
        print(text, file=sys.stderr if self.json_mode else sys.stdout, flush=True)

    def document(self, doc) -> None:
        import json

        print(json.dumps(doc, indent=2, sort_keys=True, default=str))


def _display_path(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


# ---------------------------------------------------------------- commands

def _run(make):
    """``await make()`` on an event loop, with Ctrl-C as a cancellation of it: the
    command's own cleanup (a rollback, closing the connection, .applied) runs, shielded
    where it must finish, and then KeyboardInterrupt leaves -- also when the work
    happened to end meanwhile, so an interrupted command always exits 130."""
    import signal

    import anyio

    interrupted = False

    async def main():
        nonlocal interrupted
        outcome = None
        async with anyio.create_task_group() as group:
            async def watch():
                nonlocal interrupted
                with anyio.open_signal_receiver(signal.SIGINT) as signals:
                    async for _signal in signals:
                        interrupted = True
                        group.cancel_scope.cancel()
                        return

            group.start_soon(watch)
            try:
                outcome = (True, await make())
            except Exception as exc:  # noqa: BLE001 - raised below, outside the task group
                outcome = (False, exc)
            group.cancel_scope.cancel()
        return outcome

    outcome = anyio.run(main)
    if interrupted or outcome is None:
        raise KeyboardInterrupt
    succeeded, value = outcome
    if not succeeded:
        raise value
    return value



def cmd_makemigrations(args, out: Output) -> int:
    # The collector stays paused, as it is while the migration is made, until its result
    # is printed and freed: a first pass over a large project's millions of objects, set
    # off by printing the tree, would take longer than the printing.
    with api.collector_paused():
        return _makemigrations(args, out)


def _makemigrations(args, out: Output) -> int:
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.no_input and not out.json_mode
    questioner = api.InteractiveQuestioner() if interactive else api.Questioner()
    result = api.makemigrations(args.config_path, name=args.name, dry_run=args.dry_run, check=args.check,
                            empty=args.empty, questioner=questioner, backfill=args.backfill,
                            accept_rounding=args.accept_rounding, max_tables=args.max_tables)
    for notice in result.notices:
        out.notice(notice)
    if args.verbose and result.models_read < result.models_total:
        out.notice(f"Read {result.models_read} of {result.models_total} models; the others are unchanged "
                   "since schema.json was written (its \"sources\").")
    if out.json_mode:
        out.document({
            "changes": [dict(op.to_json(), destructive=op.destructive, description=op.describe())
                        for op in result.operations],
            "file": _display_path(result.path) if result.path else None,
            "files": [_display_path(planned.path) for planned in result.files],
            "split": result.split_reason,
            "written": result.written,
            "notices": result.notices,
            "models_read": result.models_read,
            "models_total": result.models_total,
            "lint": [finding.to_json() for finding in result.findings],
            "rewrites": [[{"table": r.table, "column": r.column, "why": r.why} for r in rewritten]
                         for rewritten in result.rewrites],
            **({"sql": result.sql} if args.dry_run else {}),
        })
        return EXIT_FOUND if args.check and result.path else EXIT_OK
    if result.path is None:
        out.line("No changes detected.")
        return EXIT_OK
    _render_changes(result.operations, out, result.rewrites)
    if result.findings:
        out.line("Lint (`mf db lint` will report these):")
        _render_findings(result.findings, out, indent="  ")
    shown = ", ".join(_display_path(planned.path) for planned in result.files)
    if result.split_reason:
        out.line(result.split_reason[0].upper() + result.split_reason[1:] + ".")
    if args.check:
        out.line(f"Changes detected: {shown} would be generated (run `mf db makemigrations`).")
        return EXIT_FOUND
    if args.dry_run:
        out.line(f"Would write {shown}, which runs on {api.resolve_config(args.config_path).driver}:")
        for statement in result.sql:
            ends_in_sql = not statement.splitlines()[-1].startswith("--")  # a comment, or comments before SQL
            out.line(statement.rstrip(";") + ";" if ends_in_sql else statement)
        return EXIT_OK
    if len(result.files) == 1:
        out.line(out.color(f"{out.mark()}Migrations generated: {shown}", "32"))
        return EXIT_OK
    out.line(out.color(f"{out.mark()}Migrations generated:", "32"))
    for planned in result.files:
        out.line(f"  {_display_path(planned.path)}")
    return EXIT_OK


def _render_changes(operations, out: Output, rewrites=()) -> None:
    """The tree of detected changes: enums, then each model, destructive ones marked ⚠,
    those that rewrite a table under a lock that blocks traffic marked ⏳."""
    groups: dict = {}
    for position, operation in enumerate(operations):
        key = operation.model_name or ("Data steps" if operation.op in ("run_sql", "run_python") else "Enums")
        groups.setdefault(key, []).append((operation, rewrites[position] if position < len(rewrites) else ()))
    if not operations:
        out.line("Empty migration (no operations).")
        return
    out.line("Detected changes:")
    for group, members in groups.items():
        out.line(f"  {group}")
        for operation, rewritten in members:
            tables = list(dict.fromkeys(rewrite.table for rewrite in rewritten))
            waits = f"  ⏳ rewrites table {', '.join(tables)}" if tables else ""
            if operation.destructive:
                out.line(out.color(f"    ⚠ {operation.describe()}{waits}", "33"))
            else:
                out.line(f"    + {operation.describe()}{waits}")


def _render_findings(findings, out: Output, indent: str = "") -> None:
    """Each finding: rule and place, the statement, why, and the safe way."""
    for finding in findings:
        mark, accepted = ("·", " (accepted)") if finding.accepted else ("✗", "")
        out.line(out.color(f"{indent}{mark} {finding.rule}{accepted}: {finding.migration} {finding.where}",
                           "2" if finding.accepted else "33"))
        if finding.sql:
            shown = finding.sql if len(finding.sql) <= 160 else finding.sql[:157] + "..."
            out.line(f"{indent}    {shown}")
        out.line(f"{indent}    why: {finding.reason}")
        out.line(f"{indent}    instead: {finding.alternative}")


def cmd_lint(args, out: Output) -> int:
    if args.rules:
        rules = api.lint_rules(args.config_path)
        if out.json_mode:
            import dataclasses

            out.document({"rules": [dataclasses.asdict(rule) for rule in rules]})
            return EXIT_OK
        for rule in rules:
            out.line(f"{rule.name}: {rule.what}")
            out.line(f"    why: {rule.why}")
            out.line(f"    instead: {rule.alternative}")
            if rule.accepted:
                out.line(f"    accepted by mf: {rule.accepted}")
        return EXIT_OK
    report = api.lint_migrations(args.config_path, migrations=args.numbers, every=args.all)
    problems = report.problems
    if out.json_mode:
        out.document({"driver": report.driver, "migrations": list(report.migrations),
                      "findings": [finding.to_json() for finding in report.findings],
                      "problems": len(problems), "accepted": len(report.findings) - len(problems)})
        return EXIT_FOUND if problems else EXIT_OK
    if not report.migrations:
        out.line("No pending migrations to lint (name them, e.g. `mf db lint 004`, or use --all).")
        return EXIT_OK
    _render_findings(report.findings, out)
    accepted = len(report.findings) - len(problems)
    also = f" ({accepted} accepted)" if accepted else ""
    checked = f"{len(report.migrations)} migration(s) checked on {report.driver}"
    if problems:
        out.line(out.color(f"{len(problems)} finding(s) in {checked}{also}.", "31"))
        return EXIT_FOUND
    out.line(out.color(f"{out.mark()}{checked}: no findings{also}.", "32"))
    return EXIT_OK


def cmd_migrate(args, out: Output) -> int:
    if _fleet_wanted(args):
        return _migrate_fleet(args, out)
    _refuse_fake_dry_run(args)
    config = api.resolve_config(args.config_path)
    if args.dry_run:
        undos = _run(lambda: api.rollback_sql(config, to=args.to)) if args.to is not None else []
        plans = _run(lambda: api.pending_sql(config, to=args.to))
        offline = plans.offline or getattr(undos, "offline", None)
        if out.json_mode:
            out.document({"pending": [{"name": name, "sql": sql} for name, sql in plans],
                          "rollback": [{"name": name, "sql": sql} for name, sql in undos],
                          "offline": offline})
            return EXIT_OK
        _print_offline(out, config, offline)
        _print_undo_sql(out, undos)
        if not plans and not undos:
            out.line("No unapplied migrations.")
        for name, statements in plans:
            out.line(f"-- {name}")
            for statement in statements:
                out.line(_sql_line(statement))
        return EXIT_OK

    if args.to is not None and not args.fake:
        _confirm_data_loss(out, args, _run(lambda: api.rollback_losses(config, to=args.to)))
    _quiet_library_log()
    progress = _Progress(out) if out.tty and not out.json_mode else None
    told = _Told(out, progress)
    undone: list = []

    def event(kind, name, index, total):
        if kind == "rolled_back":
            undone.append(name)
        elif not told.heard(kind) and progress:
            progress.event(kind, name, index, total)

    with told.running():
        applied = _run(lambda: api.migrate(config, to=args.to, fake=args.fake, on_event=event,
                                            notices=told.notices,
                                            allow_data_loss=True if args.to is not None else False))
    told.show(applied.warnings)
    notices = told.notices
    if out.json_mode:
        out.document({"applied": applied, "rolled_back": undone, "fake": args.fake, "notices": notices,
                      "warnings": applied.warnings, "ahead": applied.ahead,
                      "models_changed": applied.models_changed})
        return EXIT_OK
    if undone:
        _print_undone(out, undone, args.fake)
    if not applied:
        if not undone:
            out.line("No unapplied migrations.")
        return EXIT_OK
    verb = "Faked" if args.fake else "Applied"
    out.line(out.color(f"{out.mark()}{verb} {len(applied)} migration(s):", "32"))
    for name in applied:
        out.line(f"  {out.mark()}{name}")
    return EXIT_OK


class _Told:
    """The notices of a run, printed as it goes: a lock wait's retry at once (not after
    the run), what led up to an error before the error, the rest after the run."""

    def __init__(self, out: Output, progress: Optional["_Progress"] = None):
        self.out, self.progress = out, progress
        self.notices: list = []
        self.shown = 0  # notices printed so far

    def show(self, warnings=()) -> None:
        for notice in self.notices[self.shown:]:
            self.out.notice(f"⚠ {notice}" if notice in warnings else notice)
        self.shown = len(self.notices)

    def heard(self, kind: str) -> bool:
        """An event of the run: True when it was a retry, said now."""
        if kind != "retry":
            return False
        if self.progress:
            self.progress.finish()
        self.show()
        return True

    @contextmanager
    def running(self):
        from .errors import MfError

        try:
            yield
        except MfError:
            if self.progress:
                self.progress.finish()
            self.show()  # what led up to the error (lock retries, waits) comes before it
            raise
        finally:
            if self.progress:  # cleared before the result, an error or the interrupted line
                self.progress.finish()


def _quiet_library_log() -> None:
    """The command prints the API's notices itself: without a handler of the
    application's, logging would print its warnings a second time on stderr."""
    import logging

    logging.getLogger("mfcore").addHandler(logging.NullHandler())


def cmd_rollback(args, out: Output) -> int:
    if _fleet_wanted(args):
        return _rollback_fleet(args, out)
    _refuse_fake_dry_run(args)
    config = api.resolve_config(args.config_path)
    if args.dry_run:
        undos = _run(lambda: api.rollback_sql(config, steps=args.steps, to=args.to))
        if out.json_mode:
            out.document({"rollback": [{"name": name, "sql": sql} for name, sql in undos],
                          "offline": undos.offline})
            return EXIT_OK
        _print_offline(out, config, undos.offline)
        if not undos:
            out.line("No applied migrations to roll back.")
        _print_undo_sql(out, undos)
        return EXIT_OK
    if not args.fake:
        _confirm_data_loss(out, args, _run(lambda: api.rollback_losses(config, steps=args.steps, to=args.to)))
    _quiet_library_log()
    told = _Told(out)
    with told.running():
        undone = _run(lambda: api.rollback(config, steps=args.steps, to=args.to, allow_data_loss=True,
                                                fake=args.fake, on_event=lambda kind, *_: told.heard(kind),
                                                notices=told.notices))
    told.show()
    if out.json_mode:
        out.document({"rolled_back": undone, "fake": args.fake, "notices": told.notices})
    elif not undone:
        out.line("No applied migrations to roll back.")
    else:
        _print_undone(out, undone, args.fake)
    return EXIT_OK


def _refuse_fake_dry_run(args) -> None:
    from .errors import ConfigError

    if args.fake and args.dry_run:
        raise ConfigError("--fake runs no SQL, so --dry-run has none to show; leave one of them out")


def _confirm_data_loss(out: Output, args, losses: list) -> None:
    """Undoing would bring back empty what was dropped: off a terminal only with
    --allow-data-loss; on one, after a warning and a yes."""
    from .errors import DataLossError

    if not losses or args.allow_data_loss:
        return
    text = "undoing would lose data: " + "; ".join(losses)
    if not (out.tty and sys.stdin.isatty()) or out.json_mode:
        raise DataLossError(text + ". Nothing was undone; pass --allow-data-loss to go ahead.")
    for loss in losses:
        out.line(out.color(f"⚠ {loss}", "33"))
    try:
        answer = input("Undo anyway? [y/N] ").strip().lower()
    except EOFError:
        answer = ""
    if answer not in ("y", "yes"):
        raise DataLossError(text + ". Nothing was undone.")


def _print_offline(out: Output, config, offline) -> None:
    """A dry run's first line when its plan comes from .applied, the database being unreachable."""
    if offline:
        out.line(f"-- {config.display_dsn} is unreachable, so this plan comes from "
                 f"{_display_path(os.path.join(config.migrations_dir, '.applied'))}, not from its ledger")


def _print_undo_sql(out: Output, undos) -> None:
    for name, statements in undos:
        out.line(f"-- undo {name}")
        for statement in statements:
            out.line(statement.rstrip(";") + ";")


def _print_undone(out: Output, undone, fake: bool = False) -> None:
    heading = f"Faked rollback of {len(undone)} migration(s) (ledger rows removed, nothing run):" if fake \
        else f"Rolled back {len(undone)} migration(s):"
    out.line(out.color(f"{out.mark()}{heading}", "32"))
    for name in undone:
        out.line(f"  {out.mark()}{name}")


class _Progress:
    """A one-line progress indicator on stderr, for runs of more than a few migrations."""

    def __init__(self, out: Output):
        self.out = out
        self.shown = False

    def event(self, kind, name, index, total):
        if total < 5 or kind != "start":
            return
        self.draw((index - 1) / total, f"{index}/{total} {name[:40]:<40}")

    def draw(self, fraction: float, text: str) -> None:
        width = 24
        filled = int(width * fraction)
        sys.stderr.write(f"\r[{'#' * filled + '-' * (width - filled)}] {text}")
        sys.stderr.flush()
        self.shown = True

    def finish(self):
        if self.shown:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()
            self.shown = False


# ---------------------------------------------------------------- a fleet (--all, --target, --tenant)

def _fleet_wanted(args) -> bool:
    return bool(getattr(args, "all", False) or getattr(args, "target", None) or getattr(args, "tenant", None))


def _fleet_choice(args, fleet_options=()) -> dict:
    """The API's fleet arguments; ``fleet_options`` are the command's options that also
    work on a fleet (the others of --to, --dry-run, --fake, --drift are one database's)."""
    from .errors import ConfigError

    if args.all and (args.target or args.tenant):
        raise ConfigError("--all takes every target; leave out --target and --tenant, or --all")
    for option in ("to", "dry_run", "fake", "drift", "check"):
        if option not in fleet_options and getattr(args, option, None):
            raise ConfigError(f"--{option.replace('_', '-')} works on one database; it cannot be combined with "
                              "--all, --target or --tenant")
    return {"targets": args.target or (), "tenants": args.tenant or (), "concurrency": args.concurrency}


def _migrate_fleet(args, out: Output) -> int:
    _quiet_library_log()
    progress = _FleetProgress(out) if out.tty and not out.json_mode else None
    results = _run(lambda: api.migrate_all(args.config_path, fail_fast=args.fail_fast,
                                                on_result=progress.event if progress else None,
                                                **_fleet_choice(args)))
    if progress:
        progress.finish()
    if out.json_mode:
        out.document({"targets": [_fleet_doc(r) for r in results]})
        return _fleet_exit(results)
    for result in results:
        if result.ok:
            what = f"applied {len(result.applied)}: " + ", ".join(result.applied) if result.applied else "up to date"
            out.line(f"  {out.mark()}{result.name}  {what}")
    return _fleet_summary(results, out, "migrated")


def _rollback_fleet(args, out: Output) -> int:
    _quiet_library_log()
    progress = _FleetProgress(out) if out.tty and not out.json_mode else None
    confirm = _FleetConfirm(out) if out.tty and sys.stdin.isatty() and not out.json_mode else None
    results = _run(lambda: api.rollback_all(args.config_path, steps=args.steps, to=args.to,
                                                 dry_run=args.dry_run, allow_data_loss=args.allow_data_loss,
                                                 confirm_data_loss=confirm, fail_fast=args.fail_fast,
                                                 on_result=progress.event if progress else None,
                                                 **_fleet_choice(args, ("to", "dry_run"))))
    if progress:
        progress.finish()
    if out.json_mode:
        doc = []
        for result in results:
            entry = _fleet_doc(result, "rolled_back")
            entry["losses"] = result.losses
            if args.dry_run:
                entry["sql"] = [{"name": name, "sql": sql} for name, sql in result.sql]
            doc.append(entry)
        out.document({"targets": doc, "dry_run": args.dry_run})
        return _fleet_exit(results)
    for result in results:
        if not result.ok:
            continue
        if args.dry_run:
            out.line(f"-- {result.name}: " + (f"would roll back {len(result.rolled_back)}" if result.rolled_back
                                               else "nothing to roll back"))
            _print_undo_sql(out, result.sql)
            continue
        undone = result.rolled_back
        what = f"rolled back {len(undone)}: " + ", ".join(undone) if undone else "nothing to roll back"
        out.line(f"  {out.mark()}{result.name}  {what}")
    return _fleet_summary(results, out, "read (dry run)" if args.dry_run else "rolled back")


class _FleetConfirm:
    """On a terminal: each target's losses with ⚠, then one yes for the whole fleet."""

    def __init__(self, out: Output):
        self.out = out

    def __call__(self, losses: dict) -> bool:
        for name, sentences in losses.items():
            for sentence in sentences:
                self.out.line(self.out.color(f"⚠ {name}: {sentence}", "33"))
        try:
            answer = input(f"Undo anyway, on {len(losses)} target(s)? [y/N] ").strip().lower()
        except EOFError:
            answer = ""
        return answer in ("y", "yes")


def _status_fleet(args, out: Output) -> int:
    progress = _FleetProgress(out) if out.tty and not out.json_mode else None
    results = _run(lambda: api.status_all(args.config_path, on_result=progress.event if progress else None,
                                               **_fleet_choice(args)))
    if progress:
        progress.finish()
    if out.json_mode:
        doc = []
        for result in results:
            entry = _fleet_doc(result, None)
            entry["migrations"] = [_record_doc(r) for r in result.records]
            doc.append(entry)
        out.document({"targets": doc})
        return _fleet_exit(results)
    for result in results:
        if result.ok:
            applied = sum(1 for r in result.records if r.applied)
            pending = len(result.records) - applied
            trouble = sorted({r.state for r in result.records} - {"applied", "pending"})
            out.line(f"  {result.name}  {applied} applied, {pending} pending"
                     + (f"  ⚠ {', '.join(trouble)}" if trouble else ""))
    return _fleet_summary(results, out, "read")


def _fleet_doc(result, done: Optional[str] = "applied") -> dict:
    """A target's entry of a fleet's --json document; ``done``: the key of the names the
    command applied or undid (None for status, which does neither)."""
    doc = {"name": result.name, "database": result.display,
           "finished": result.finished, "failed": result.error is not None,
           "migration": result.migration, "error": str(result.error) if result.error else None,
           "notices": result.notices, "warnings": result.warnings}
    if done is not None:
        doc[done] = getattr(result, done)
    return doc


def _fleet_exit(results) -> int:
    if any(not r.ok for r in results):
        return max([r.error.exit_code for r in results if r.error] + [EXIT_DATABASE])
    return EXIT_OK


def _fleet_summary(results, out: Output, verb: str) -> int:
    """The last lines: each target's notices (⚠ on those that ask the user to act), how
    many targets, and every failed one with its migration and message."""
    for result in results:
        for notice in result.notices:
            out.notice(f"{'⚠ ' if notice in result.warnings else ''}{result.name}: {notice}")
    failed = [r for r in results if r.error is not None]
    stopped = [r for r in results if not r.finished]
    good = len(results) - len(failed) - len(stopped)
    out.line(f"{good} of {len(results)} target(s) {verb}" + (f", {len(failed)} failed" if failed else "")
             + (f", {len(stopped)} not finished (--fail-fast)" if stopped else "") + ".")
    if not failed and not stopped:
        return EXIT_OK
    for result in failed:
        where = f" at {result.migration}" if result.migration else ""
        out.error(f"{result.name}{where}: {result.error}")
    for result in stopped:
        out.error(f"{result.name}: stopped before it finished, because another target failed (--fail-fast)")
    return _fleet_exit(results)


class _FleetProgress(_Progress):
    """Targets done / total and failures, on one line of stderr."""

    failed = 0

    def event(self, result, done, total):
        self.failed += result.error is not None
        failures = f", {self.failed} failed" if self.failed else ""
        self.draw(done / total, f"{done}/{total} targets{failures}   ")


def cmd_reset(args, out: Output) -> int:
    import anyio

    config = api.resolve_config(args.config_path)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    shown = None  # with --drop-db, what the user was shown would be dropped
    if args.drop_db and not args.yes:
        shown = anyio.run(lambda: api.reset_plan(config))
        if not interactive:
            text = (f"reset --drop-db would drop {', '.join(shown) or 'nothing'} in {config.display_dsn}; off a "
                    "terminal it needs --yes to confirm")
            if out.json_mode:
                out.document({"error": {"kind": "UsageError", "message": text, "file": None, "line": None,
                                        "column": None}, "would_drop": shown})
            else:
                out.error(text)
            return EXIT_INPUT
    if not args.yes and interactive:
        if args.drop_db:
            sys.stderr.write(f"This will drop, in {config.display_dsn}:\n"
                             + "".join(f"  {what}\n" for what in shown or ["nothing (mf owns nothing there)"])
                             + "and nothing else in the database, and ")
        else:
            sys.stderr.write(f"This will empty the ledger (mf_migrations) of {config.display_dsn}, keeping its "
                             "tables and rows, and ")
        sys.stderr.write(f"remove the migration files, schema.json and .applied in "
                         f"{_display_path(config.migrations_dir)}. Continue? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            out.line("Reset cancelled; nothing changed.")
            return EXIT_OK
    result = _run(lambda: api.reset(config, drop_database=args.drop_db, expected=shown))
    dropped, removed = result.dropped, result.removed
    if out.json_mode:
        out.document({"dropped": dropped, "removed": removed, "forgotten": result.forgotten})
        return EXIT_OK
    if args.drop_db:
        out.line(f"{out.mark()}Dropped {len(dropped)} database object(s)" +
                 (": " + ", ".join(dropped) if dropped else ""))
    elif result.forgotten:
        out.line(f"{out.mark()}Emptied the ledger of {config.display_dsn} ({len(result.forgotten)} row(s)); "
                 "its tables stay")
    out.line(f"{out.mark()}Removed {len(removed)} file(s) from {_display_path(config.migrations_dir)}")
    return EXIT_OK


def cmd_status(args, out: Output) -> int:
    if _fleet_wanted(args):
        return _status_fleet(args, out)
    records = _run(lambda: api.status(args.config_path))
    report = _run(lambda: api.drift(args.config_path)) if args.drift else None
    code = records.check_code if args.check else EXIT_OK
    summary = _status_summary(records)
    if out.json_mode:
        doc = {"migrations": [_record_doc(r) for r in records], "pending": records.pending,
               "problems": [f"{r.name}: {_TROUBLE[r.state]}" for r in records.problems],
               "ahead": records.ahead, "models_changed": records.models_changed, "notices": records.notices,
               "up_to_date": summary == ["Up to date."], "check": records.check_code}
        if report is not None:
            doc["drift"] = report.to_json()
        out.document(doc)
        return code
    if not records:
        out.line("No migrations.")
    for record in records:
        doc = _record_doc(record)
        trouble = f"  ⚠ {_TROUBLE[record.state]}" if record.state in _TROUBLE else ""
        if doc.get("applied"):
            when = _local_time(doc.get("applied_at"))
            replaced = "  (replaced by a squashed migration)" if record.state == "replaced" else ""
            out.line(f"  [X] {doc['name']}" + (f"  (applied {when})" if when else "") + replaced + trouble)
        else:
            state = doc.get("state")
            shown = f"  ({state})" if state not in ("pending", None) and not trouble else ""
            if state == "partial":
                of = f" of {record.steps}" if record.steps else ""
                shown = (f"  (partly applied: step {record.steps_done}{of} done; `mf db migrate` resumes at "
                         f"step {record.steps_done + 1})")
            out.line(f"  [ ] {doc['name']}" + shown + trouble)
    for line in summary:
        if records or line != "Up to date.":
            out.line(line)
    if report is not None:
        out.line(report.verdict())
    return code


# What status says beside a migration in each state that is not plain applied or pending.
_TROUBLE = {"edited": "the file was edited after it was applied",
            "missing": "the file is missing",
            "started": "a run stopped inside it: settle it with `mf db resolve`",
            "out_of_order": "not applied, numbered below the newest applied migration, and it cannot run "
                            "there (`mf db rebase` moves it after)",
            "ahead": "applied by newer code: the database is ahead of these files"}


def _status_summary(records) -> list:
    """The last lines of status: "Up to date." only when nothing is pending, wrong or unmigrated."""
    lines = []
    if records.problems:
        count = len(records.problems)
        lines.append(f"⚠ {count} migration(s) do not match the database's history (marked above); "
                     "`mf db migrate` refuses to run until they are settled.")
    if records.pending:
        lines.append(f"{len(records.pending)} pending.")
    if records.models_changed:
        lines.append(f"⚠ {records.models_changed}.")
    lines += [f"⚠ {notice}" for notice in records.notices]
    return lines or ["Up to date."]


def cmd_inspect(args, out: Output) -> int:
    result = _run(lambda: api.inspect(args.config_path, output=args.output))
    if out.json_mode:
        out.document({"models": result.text, "tables": result.tables,
                      "notes": [{"table": table, "note": note} for table, note in result.notes]})
        return EXIT_OK
    if args.output is None:
        sys.stdout.write(result.text)
        return EXIT_OK
    out.line(f"{out.mark()}Wrote {result.tables} model(s) to {_display_path(args.output)}"
             + (f" ({len(result.notes)} note(s) as // comments)" if result.notes else ""))
    return EXIT_OK


def cmd_baseline(args, out: Output) -> int:
    result = _run(lambda: api.baseline(args.config_path, name=args.name))
    if out.json_mode:
        out.document({"migration": result.migration, "migrations": result.migrations, "tables": result.tables,
                      "kept_names": result.kept_names, "models_written": result.models_written,
                      "notes": [{"table": table, "note": note} for table, note in result.notes]})
        return EXIT_OK
    written = (result.migration if len(result.migrations) == 1 else
               f"{len(result.migrations)} files, {result.migrations[0]} to {result.migrations[-1]},")
    it = "it" if len(result.migrations) == 1 else "them"
    out.line(f"{out.mark()}Wrote {written} for {result.tables} table(s) and recorded {it} as applied"
             + (f" (keeping {len(result.kept_names)} constraint name(s) of the database)"
                if result.kept_names else ""))
    if result.models_written:
        out.line(f"{out.mark()}Wrote models.mp" + (f" ({len(result.notes)} note(s) as // comments)"
                                                   if result.notes else ""))
    return EXIT_OK


def cmd_drift(args, out: Output) -> int:
    report = _run(lambda: api.drift(args.config_path, strict=args.strict, sql=args.sql))
    code = EXIT_FOUND if report.drifted else EXIT_OK
    if out.json_mode:
        out.document(report.to_json())
        return code
    if args.sql:
        if report.partly_applied:
            out.line(f"-- migration {', '.join(report.partly_applied)} is partly applied: settle it with "
                     "`mf db resolve` first")
        elif not report.statements:
            out.line("-- no drift to repair")
        for statement in report.statements:
            out.line(statement.rstrip(";") + ";")
        return code
    if report.differences:
        out.line(f"Drift from the {report.applied} applied migration(s):")
        groups: dict = {}
        for difference in report.differences:
            groups.setdefault(difference.table or "Enums", []).append(difference)
        for group, members in groups.items():
            out.line(f"  {group}")
            for difference in members:
                out.line(f"    {difference.describe()}")
    for line in report.partial_lines():
        out.line(line)
    if report.unmanaged:
        label = "Unmanaged (in no migration; drift with --strict):"
        out.line(label + " " + ", ".join(report.unmanaged))
    if not report.differences and not report.partly_applied:
        out.line(report.verdict())
    return code


def _local_time(moment) -> str:
    """A ledger time to the second, in the local zone with its offset."""
    import datetime

    if not isinstance(moment, datetime.datetime):
        return str(moment) if moment else ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)  # the ledger keeps UTC
    return moment.astimezone().isoformat(sep=" ", timespec="seconds")


def _record_doc(record) -> dict:
    import dataclasses

    doc = dataclasses.asdict(record)
    if record.state != "partial":  # the steps reached: only for a migration partly applied
        doc.pop("steps_done", None)
        doc.pop("steps", None)
    return doc


def cmd_sql(args, out: Output) -> int:
    config = api.resolve_config(args.config_path)
    name, statements = api.sql(config, args.number, reverse=args.reverse)
    notes = {} if args.reverse else api.sql_rewrites(config, args.number)
    if out.json_mode:
        out.document({"name": name, "driver": config.driver, "sql": statements, "reverse": args.reverse,
                      "rewrites": [{"statement": index, "note": note}
                                   for index, statement in enumerate(statements, 1)
                                   for note in notes.get(str(statement).rstrip(";"), ())]})
        return EXIT_OK
    out.line(f"-- {'undo ' if args.reverse else ''}{name} ({config.driver})")
    for statement in statements:
        for note in notes.get(str(statement).rstrip(";"), ()):
            out.line(f"-- {note}")
        out.line(_sql_line(statement))
    return EXIT_OK


def _sql_line(statement: str) -> str:
    """A statement as `mf db sql` prints it: with its semicolon; a step's heading as it is."""
    from mfcore.steps import StepHeading

    return statement if isinstance(statement, StepHeading) else statement.rstrip(";") + ";"


def cmd_resolve(args, out: Output) -> int:
    message = _run(lambda: api.resolve(args.config_path, args.number, applied=args.applied))
    if out.json_mode:
        out.document({"resolved": args.number, "applied": args.applied, "message": message})
    else:
        out.line(f"{out.mark()}{message}")
    return EXIT_OK


def cmd_rebase(args, out: Output) -> int:
    result = _run(lambda: api.rebase(args.config_path, files=tuple(args.files)))
    for notice in result.notices:
        out.notice(notice)
    if out.json_mode:
        out.document({"moved": [{"from": old, "to": new} for old, new in result.moved], "schema": result.newest,
                      "files": result.files, "notices": result.notices})
        return EXIT_OK
    for old, new in result.moved:
        out.line(f"{out.mark()}Moved {old} to {new}")
    if not result.moved:
        out.line("No migration to move.")
    if result.newest is not None:
        out.line(f"Rebuilt schema.json from the {result.files} migration file(s), up to {result.newest}.")
    return EXIT_OK


def cmd_squash(args, out: Output) -> int:
    result = api.squash(args.config_path, to=args.to, name=args.name, max_tables=args.max_tables)
    shown = _display_path(result.path)
    if out.json_mode:
        out.document({"file": shown, "files": [_display_path(path) for path in result.files],
                      "split": result.split_reason, "replaces": result.replaces,
                      "operations": [op.to_json() for op in result.operations]})
        return EXIT_OK
    if result.split_reason is not None:
        out.line(result.split_reason[0].upper() + result.split_reason[1:] + ".")
        out.line(out.color(f"{out.mark()}Squashed {len(result.replaces)} migration(s) into:", "32"))
        for path in result.files:
            out.line(f"  {_display_path(path)}")
    else:
        out.line(out.color(f"{out.mark()}Squashed {len(result.replaces)} migration(s) into {shown}", "32"))
    out.line(f"  replaces {result.replaces[0]} .. {result.replaces[-1]}; remove those files once every "
             "database has migrated past them")
    return EXIT_OK


def _error_document(exc) -> dict:
    """--json's error document: {"error": {"kind", "message", "file", "line", "column"}};
    a models error also lists every problem (the first one's place is the error's)."""
    problems = getattr(exc, "problems", None)
    if problems:
        listed = [{"message": p.message, "file": p.path, "line": p.line or None, "column": p.column or None}
                  for p in problems]
        return {"error": {"kind": type(exc).__name__, "message": listed[0]["message"], "file": listed[0]["file"],
                          "line": listed[0]["line"], "column": listed[0]["column"], "problems": listed}}
    return {"error": {"kind": type(exc).__name__, "message": str(exc), "file": getattr(exc, "path", None),
                      "line": None, "column": None}}


def cmd_completion(args, out: Output) -> int:
    if args.shell == "numbers":
        try:
            names = api.migration_names(getattr(args, "config_path", None))
        except Exception:  # noqa: BLE001 - completion offers nothing rather than an error
            return EXIT_OK
        # A squash and its originals, or a squash's parts, share a number: offer it once.
        for number in dict.fromkeys(name.split("_", 1)[0] for name in names):
            print(number)
        return EXIT_OK
    sys.stdout.write(completion_script(args.shell))
    return EXIT_OK


# ---------------------------------------------------------------- shell completion
#
# Commands and options come from the parser itself, so the scripts cannot drift from
# it; migration numbers (for `sql`, `resolve` and `--to`) are asked of `mf completion
# numbers` when the user presses Tab, which reads only the file names.

NUMBERED = ("sql", "resolve")  # (squash and migrate take a number after --to)


def _commands() -> dict:
    """{command: [option, ...]} for every `mf db` command, read from the parser."""
    parser = build_parser()
    db = parser._subparsers._group_actions[0].choices["db"]
    found = {}
    for name, sub in db._subparsers._group_actions[0].choices.items():
        found[name] = sorted(option for action in sub._actions for option in action.option_strings
                             if option.startswith("--"))
    return found


def completion_script(shell: str) -> str:
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](_commands())


def _bash(commands: dict) -> str:
    cases = "\n".join(f'        {name}) opts="{" ".join(options)}" ;;' for name, options in commands.items())
    # The words that are not options (nor --config's path) say where the user is, so
    # global options may stand anywhere: `mf --json db sql <Tab>` as `mf db sql <Tab>`.
    return f"""# mf completion for bash: eval "$(mf completion bash)"
_mf() {{
    local cur prev cmd opts word i
    local -a mf_words config
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    mf_words=()
    config=()
    i=1
    while [ "$i" -lt "$COMP_CWORD" ]; do
        word="${{COMP_WORDS[i]}}"
        i=$((i + 1))
        case "$word" in
            --config) config=(--config "${{COMP_WORDS[i]}}"); i=$((i + 1)) ;;
            --config=*) config=("$word") ;;
            -*) ;;
            *) mf_words+=("$word") ;;
        esac
    done
    if [ "$prev" = "--config" ]; then
        COMPREPLY=($(compgen -f -- "$cur")); return
    fi
    if [ "${{#mf_words[@]}}" -eq 0 ]; then
        COMPREPLY=($(compgen -W "db completion --help --version --config --json -v" -- "$cur")); return
    fi
    if [ "${{mf_words[0]}}" = "completion" ]; then
        COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur")); return
    fi
    if [ "${{#mf_words[@]}}" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{' '.join(commands)}" -- "$cur")); return
    fi
    cmd="${{mf_words[1]}}"
    if [ "$prev" = "--to" ] || {{ [ "${{#mf_words[@]}}" -eq 2 ] && {{ [ "$cmd" = "sql" ] || [ "$cmd" = "resolve" ]; }}; }}; then
        COMPREPLY=($(compgen -W "$(mf "${{config[@]}}" completion numbers 2>/dev/null)" -- "$cur")); return
    fi
    case "$cmd" in
{cases}
        *) opts="" ;;
    esac
    COMPREPLY=($(compgen -W "$opts --config --json -v --verbose --help" -- "$cur"))
}}
complete -F _mf mf
"""


def _zsh(commands: dict) -> str:
    return f"""#compdef mf
# mf completion for zsh: mf completion zsh > "${{fpath[1]}}/_mf"
autoload -U +X bashcompinit && bashcompinit
{_bash(commands)}"""


def _fish(commands: dict) -> str:
    lines = ["# mf completion for fish: mf completion fish > ~/.config/fish/completions/mf.fish",
             "complete -c mf -f",
             "complete -c mf -n '__fish_use_subcommand' -a 'db completion'",
             "complete -c mf -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'",
             "complete -c mf -l config -r -d 'language_config.yaml to use'",
             "complete -c mf -l json -d 'one JSON document'",
             "complete -c mf -s v -l verbose -d 'tracebacks and detail'"]
    names = " ".join(commands)
    lines.append(f"complete -c mf -n '__fish_seen_subcommand_from db; and not __fish_seen_subcommand_from "
                 f"{names}' -a '{names}'")
    for name, options in commands.items():
        for option in options:
            if option not in ("--config", "--json", "--verbose", "--help"):
                lines.append(f"complete -c mf -n '__fish_seen_subcommand_from {name}' -l {option[2:]}")
    for name in NUMBERED:
        lines.append(f"complete -c mf -n '__fish_seen_subcommand_from {name}' -a '(mf completion numbers)'")
    lines.append("complete -c mf -n '__fish_seen_subcommand_from migrate squash rollback' -l to -x "
                 "-a '(mf completion numbers)'")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- parser

def _migration_number(text: str) -> int:
    digits = text.split("_", 1)[0]
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"expected a migration number like 002, got '{text}'")
    return int(digits)


def _migration_file(text: str):
    """A migration's number (int), or its file name (str) when given as one: the files of
    a squash share a number with each other and with the last original."""
    if text.endswith(".json"):
        name = os.path.basename(text)
        if not name.split("_", 1)[0].isdigit():
            raise argparse.ArgumentTypeError(f"expected a migration number like 002 or a file name, got '{text}'")
        return name
    return _migration_number(text)


def _fleet_options(p) -> None:
    """--all, --target, --tenant, --concurrency: the fleet of targets: and tenants: in the config."""
    p.add_argument("--all", action="store_true", help="every target and tenant schema of the config")
    p.add_argument("--target", action="append", metavar="NAME", help="this target of the config (repeatable)")
    p.add_argument("--tenant", action="append", metavar="SCHEMA", help="this tenant schema (repeatable)")
    p.add_argument("--concurrency", type=_positive, metavar="N",
                   help="targets at a time (default: 10, fewer for a small max_connections)")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got '{text}'")
    return int(text)


def _global_options(parser, default) -> None:
    parser.add_argument("--config", dest="config_path", metavar="PATH", default=default,
                        help="language_config.yaml to use (default: found by walking up from here)")
    parser.add_argument("-v", "--verbose", action="store_true", default=default or False,
                        help="show tracebacks on errors, and more detail where a command has it")
    parser.add_argument("--json", action="store_true", default=default or False,
                        help="print one machine-readable JSON document (errors too, on stdout)")


class UsageError(Exception):
    """A command line argparse refuses: the usage and one line, or with --json the error
    document (kind UsageError); exit 2 either way."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(f"{parser.prog}: {message}")
        self.prog, self.message, self.usage = parser.prog, message, parser.format_usage()


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors raised (main renders them) rather than printed and exited."""

    def error(self, message):
        raise UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    # The global options are accepted before or after the command (`mf --json db status`
    # and `mf db status --json`). Below the top level their default is SUPPRESS, so a
    # command's parser leaves what was given before it alone.
    common = _Parser(add_help=False)
    _global_options(common, argparse.SUPPRESS)

    parser = _Parser(prog="mf", description="Schema migrations for models.mp projects.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(parser, None)
    parser.add_argument("--version", action="version", version=f"mf {__version__}")
    groups = parser.add_subparsers(dest="group", title="commands", metavar="COMMAND")
    db = groups.add_parser("db", parents=[common], help="migrations: " + ", ".join(DB_COMMANDS),
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = db.add_subparsers(dest="command", metavar="COMMAND")
    completion = groups.add_parser("completion", help="print a shell completion script (bash, zsh or fish)",
                                   description="Print a completion script; e.g. add "
                                               "`eval \"$(mf completion bash)\"` to ~/.bashrc, "
                                               "`mf completion fish > ~/.config/fish/completions/mf.fish`.")
    completion.add_argument("shell", choices=("bash", "zsh", "fish", "numbers"),
                            help="the shell (`numbers` lists the migration numbers, for the scripts)")
    completion.add_argument("--config", dest="config_path", metavar="PATH", default=argparse.SUPPRESS,
                            help=argparse.SUPPRESS)
    completion.set_defaults(handler=cmd_completion)

    p = commands.add_parser("makemigrations", parents=[common], help="write the next migration file")
    p.add_argument("--name", help="file name suffix instead of the generated one")
    p.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a migration is needed")
    p.add_argument("--empty", action="store_true", help="write an empty migration even with no changes")
    p.add_argument("--no-input", action="store_true", help="never ask (renames become drop + add)")
    p.add_argument("--max-tables", type=_positive, metavar="N",
                   help="split a migration touching more than N tables into several files "
                        "(default: max_tables_per_migration in the config, else 500)")
    p.add_argument("--backfill", action="append", metavar="Model.field=VALUE|@sql",
                   help="a one-off value for rows a NOT NULL change leaves without one, or @sql: a run_sql "
                        "step in the migration for you to fill them (repeatable)")
    p.add_argument("--accept-rounding", action="store_true",
                   help="let type changes round values (FloatField -> IntegerField, fewer decimal places, "
                        "DateTimeField -> DateField); without it migrate stops at a row they would change")
    p.set_defaults(handler=cmd_makemigrations)

    p = commands.add_parser("migrate", parents=[common], help="apply every unapplied migration")
    p.add_argument("--to", type=_migration_number, metavar="NNN",
                   help="stop after migration NNN, e.g. 002 (undo newer applied ones first)")
    p.add_argument("--dry-run", action="store_true", help="print the SQL that would run")
    p.add_argument("--fake", action="store_true",
                   help="record without running: pending ones as applied; with --to below the applied, "
                        "newer ones as rolled back")
    _fleet_options(p)
    p.add_argument("--fail-fast", action="store_true", help="with a fleet: stop every target at the first failure")
    p.add_argument("--allow-data-loss", action="store_true",
                   help="with --to below the applied: undo even where a dropped table or column comes back empty")
    p.set_defaults(handler=cmd_migrate)

    p = commands.add_parser("rollback", parents=[common], help="undo applied migrations, newest first")
    p.add_argument("steps", type=_positive, nargs="?", metavar="N", help="how many to undo (default 1)")
    p.add_argument("--to", type=_migration_number, metavar="NNN", help="undo every one after this (000: all)")
    p.add_argument("--dry-run", action="store_true", help="print the SQL of the undo; change nothing")
    p.add_argument("--allow-data-loss", action="store_true",
                   help="undo even where a dropped table or column comes back empty")
    p.add_argument("--fake", action="store_true",
                   help="only remove the ledger rows; run no undo (the tables stay as they are)")
    _fleet_options(p)
    p.add_argument("--fail-fast", action="store_true", help="with a fleet: stop every target at the first failure")
    p.set_defaults(handler=cmd_rollback)

    p = commands.add_parser("status", parents=[common], help="list migrations: applied or pending")
    p.add_argument("--drift", action="store_true", help="also say whether the database drifted from them")
    p.add_argument("--check", action="store_true",
                   help="exit 0 only when all is applied and intact; 1 pending or unmigrated models.mp "
                        "changes; 2 integrity problems")
    _fleet_options(p)
    p.set_defaults(handler=cmd_status)

    p = commands.add_parser("drift", parents=[common],
                            help="compare the live database with its applied migrations (exit 1 on drift)")
    p.add_argument("--strict", action="store_true", help="tables and types in no migration are drift too")
    p.add_argument("--sql", action="store_true", help="print the statements that bring the database back")
    p.set_defaults(handler=cmd_drift)

    p = commands.add_parser("baseline", parents=[common],
                            help="take over a database made by another tool (writes 001, records it applied)")
    p.add_argument("--name", default="baseline", help="file name suffix of the migration (default: baseline)")
    p.set_defaults(handler=cmd_baseline)

    p = commands.add_parser("inspect", parents=[common], help="write models.mp for a live database")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of printing")
    p.set_defaults(handler=cmd_inspect)

    p = commands.add_parser("lint", parents=[common],
                            help="check migrations for changes that break clients or block traffic")
    p.add_argument("numbers", nargs="*", type=_migration_file, metavar="NNN",
                   help="the migrations to check (default: the pending ones, which .applied does not list)")
    p.add_argument("--all", action="store_true", help="check every migration")
    p.add_argument("--rules", action="store_true", help="list the rules for the configured database")
    p.set_defaults(handler=cmd_lint)

    p = commands.add_parser("sql", parents=[common], help="print the SQL of one migration")
    p.add_argument("number", type=_migration_file, metavar="NNN",
                   help="the migration's number (e.g. 002) or file name")
    p.add_argument("--reverse", action="store_true", help="print the SQL that undoes it")
    p.set_defaults(handler=cmd_sql)

    p = commands.add_parser("reset", parents=[common], help="remove migration files (and, with --drop-db, "
                                                            "the schema's tables)")
    p.add_argument("--drop-db", action="store_true", help="first drop the tables and enum types the schema owns")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_reset)

    p = commands.add_parser("resolve", parents=[common],
                            help="settle a non-transactional migration that died half-way")
    p.add_argument("number", type=_migration_file, metavar="NNN",
                   help="the migration's number (e.g. 002) or file name")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--applied", dest="applied", action="store_true", help="it completed: record it")
    which.add_argument("--rolled-back", dest="applied", action="store_false", help="it did not: forget it")
    p.set_defaults(handler=cmd_resolve)

    p = commands.add_parser("rebase", parents=[common],
                            help="after a merge: move migrations after the newest, renumbered; rebuild schema.json")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="the migration files to move (default: those the database has not applied that share a "
                        "number or lie below its newest)")
    p.set_defaults(handler=cmd_rebase)

    p = commands.add_parser("squash", parents=[common], help="write one migration that replaces a range of them")
    p.add_argument("--to", type=_migration_number, metavar="NNN", help="squash up to NNN (default: the newest)")
    p.add_argument("--name", help="file name suffix (default: squashed_<first>_<last>)")
    p.add_argument("--max-tables", type=_positive, metavar="N",
                   help="write a squash touching more than N tables as several files "
                        "(default: max_tables_per_migration in the config, else 500)")
    p.set_defaults(handler=cmd_squash)
    return parser


EPILOG = """\
examples:
  mf db makemigrations              write the next migration file from models.mp
  mf db migrate                     apply the pending migrations
  mf --json db status               the state of every migration, as JSON
  mf db status --check              exit 0 only when all is applied and intact (1 pending, 2 broken)
  mf db rebase                      after a merge: renumber the other branch's migrations
  eval "$(mf completion bash)"      shell completion

environment:
  MF_DATABASE_URL   overrides database.driver and database.dsn of language_config.yaml
  NO_COLOR          no colour in the output

exit codes:
  0 success; 1 found something (--check found changes, drift found drift);
  2 bad input or usage; 3 database error (rolled back); 130 interrupted
"""


def _unknown_command(argv) -> Optional[str]:
    """`mf migrate` and friends: the sentence that points at `mf db migrate`."""
    words = [word for word in argv if not word.startswith("-")]
    if words and words[0] not in ("db", "completion") and words[0] in DB_COMMANDS:
        return f"unknown command '{words[0]}': the migration commands live under db; run `mf db {words[0]}`"
    return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    json_wanted = "--json" in argv[:argv.index("--") if "--" in argv else len(argv)]
    suggestion = _unknown_command(argv)
    parser = build_parser()
    try:
        if suggestion:
            raise UsageError(parser, suggestion)
        args = parser.parse_args(argv)
    except UsageError as exc:
        if json_wanted:
            Output(json_mode=True).document({"error": {"kind": "UsageError", "message": str(exc), "file": None,
                                                       "line": None, "column": None}})
        else:
            if not suggestion:
                sys.stderr.write(exc.usage)
            print(f"{exc.prog}: error: {exc.message}", file=sys.stderr)
        return EXIT_INPUT
    if getattr(args, "handler", None) is None:
        if args.group == "db":
            parser._subparsers._group_actions[0].choices["db"].print_help()
            return EXIT_OK
        parser.print_help()
        return EXIT_OK
    out = Output(json_mode=args.json)
    from .errors import MfError, ModelsError

    warnings.showwarning = _show_warning

    try:
        code = args.handler(args, out)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return code
    except MfError as exc:
        if args.verbose:
            import traceback

            traceback.print_exc()
        if out.json_mode:
            out.document(_error_document(exc))
        elif isinstance(exc, ModelsError):  # each problem is rendered with its own location
            print(str(exc), file=sys.stderr)
            count = len(exc.problems)
            print(f"{count} error{'s' if count != 1 else ''}; nothing was written.", file=sys.stderr)
        else:
            for line in str(exc).split("\n"):  # several problems: each is an error of its own
                out.error(line)
        return exc.exit_code
    except KeyboardInterrupt:
        import signal

        # Decided: a second Ctrl-C must not cut the report short or end the process by the signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if out.json_mode:
            out.document({"error": {"kind": "Interrupted", "message": "interrupted", "file": None,
                                    "line": None, "column": None}})
        out.error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader of the output went away (`mf ... | head`): whatever the command
        # wrote is written; end quietly, as a tool killed by SIGPIPE does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning (from the library, say that .applied could not be updated) in one line,
    as mf's other messages are: not Python's two lines of source and category."""
    text = str(message)
    print(f"warning: {text[4:] if text.startswith('mf: ') else text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
